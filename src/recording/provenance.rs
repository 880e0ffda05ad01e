//! The provenance block of a session: where a cut came from and how it was sanitised.
//! It lives in the session's config in the store (no schema change) and at the top
//! level of a recording file.

use serde_json::Value;

/// The key of the session config that holds the provenance.
pub const PROVENANCE_KEY: &str = "provenance";

/// Where the provenance lists how the session was sanitised (one entry per pass).
const SANITIZED_KEY: &str = "sanitized";

/// Adds `summary` to the provenance in a session config (creating it).
pub fn note_sanitized(config: &mut Value, summary: Value) {
    if !config.is_object() {
        *config = serde_json::json!({ "recorded": config.take() });
    }
    let provenance = config
        .as_object_mut()
        .map(|c| {
            c.entry(PROVENANCE_KEY)
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .filter(|p| p.is_object());
    if let Some(Value::Object(p)) = provenance {
        match p
            .entry(SANITIZED_KEY)
            .or_insert_with(|| Value::Array(vec![]))
        {
            Value::Array(list) => list.push(summary),
            other => *other = Value::Array(vec![summary]),
        }
    }
}

/// The keys a session's provenance says replay must ignore in request bodies (its
/// own sanitising and that of every earlier cut).
pub fn match_ignores(config: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut at = config.get(PROVENANCE_KEY);
    while let Some(p) = at {
        for s in p
            .get(SANITIZED_KEY)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for key in s
                .get("match_ignores")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !out.iter().any(|o| o.eq_ignore_ascii_case(key)) {
                    out.push(key.to_string());
                }
            }
        }
        at = p.get("previous");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_notes_accumulate_and_name_what_replay_ignores() {
        let mut config = serde_json::json!({"upstream": "x"});
        note_sanitized(
            &mut config,
            serde_json::json!({"match_ignores": ["displayName", "id"]}),
        );
        let mut outer =
            serde_json::json!({PROVENANCE_KEY: {"previous": config[PROVENANCE_KEY].clone()}});
        note_sanitized(
            &mut outer,
            serde_json::json!({"match_ignores": ["subject"]}),
        );
        let ignores = match_ignores(&outer);
        assert!(ignores.contains(&"subject".to_string()));
        assert!(ignores.iter().any(|k| k == "displayName"), "{ignores:?}");
        assert!(match_ignores(&serde_json::json!({})).is_empty());
    }
}
