//! Values the bot generates, echoed back as real Graph would.
//!
//! A bot stamps its requests with values it makes up on each run (`clientContext`, a
//! GUID per operation) and Graph echoes them in responses and notifications; bots use
//! them to find the operation a notification is about. A replayed recording carries the
//! recorded run's values, so replay learns recorded → live from each matched request
//! and substitutes the live value in everything it sends to the bot afterwards.
//!
//! Substitution splices string literals in the raw bytes: every byte it does not
//! replace stays as recorded. Pure: no I/O, and no input can make it panic.

use crate::jsonscan;
use serde_json::Value;
use std::ops::Range;

/// The learned recorded → live value pairs of one replay.
#[derive(Debug, Clone, Default)]
pub struct Substitutions {
    pairs: Vec<(String, String)>,
}

impl Substitutions {
    /// Learns pairs from a matched recorded/live request body: for each key in `keys`
    /// (ASCII case-insensitive, any depth), when both bodies have a string value at the
    /// same JSON pointer and they differ, maps recorded → live. Non-JSON bodies: nothing
    /// learned. A later mapping for the same recorded value replaces the earlier one
    /// (and moves to the end of [`Substitutions::pairs`]); a later request where the
    /// bot sent the recorded value itself drops the mapping, since echoing it unchanged
    /// is then what Graph would do.
    pub fn learn(&mut self, recorded_body: &[u8], live_body: &[u8], keys: &[String]) {
        let (Some(recorded), Some(live)) = (parse(recorded_body), parse(live_body)) else {
            return;
        };
        let mut found = Vec::new();
        paired_strings(&recorded, &live, keys, &mut found);
        for (from, to) in found {
            self.pairs.retain(|(r, _)| *r != from);
            if from != to {
                self.pairs.push((from, to));
            }
        }
    }

    #[cfg(test)] // test support: only the unit tests use it
    /// The learned pairs, in learning order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `body` with every JSON string literal whose decoded value equals a learned
    /// recorded value replaced by the live value's literal (object values and array
    /// items, never object keys; whole values only, not substrings). Every other byte
    /// is unchanged. Non-JSON bodies are returned unchanged. `None` when nothing
    /// changed, so callers can keep the recorded bytes without a copy.
    pub fn apply(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.pairs.is_empty() {
            return None;
        }
        let json = jsonscan::strip_bom(body);
        let offset = body.len() - json.len();
        let mut replacements: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        jsonscan::walk(json, |_, event| {
            if let jsonscan::Event::Str(s) = event {
                if let Some((_, live)) = self.pairs.iter().find(|(recorded, _)| s.is(recorded)) {
                    let range = s.range();
                    replacements.push((
                        range.start + offset..range.end + offset,
                        jsonscan::literal(live),
                    ));
                }
            }
        })
        .ok()?;
        if replacements.is_empty() {
            return None;
        }
        jsonscan::splice(body, &replacements)
    }
}

/// The keys whose values the bot generates, by default: `["clientContext"]`.
pub fn default_learn_keys() -> Vec<String> {
    vec!["clientContext".to_owned()]
}

fn parse(body: &[u8]) -> Option<Value> {
    serde_json::from_slice(jsonscan::strip_bom(body)).ok()
}

/// Collects `(recorded, live)` string values of the wanted keys found at the same
/// pointer in both documents, in document order. Depth is bounded by serde_json's
/// parser limit.
fn paired_strings(
    recorded: &Value,
    live: &Value,
    keys: &[String],
    out: &mut Vec<(String, String)>,
) {
    match (recorded, live) {
        (Value::Object(rec), Value::Object(liv)) => {
            for (key, rv) in rec {
                let Some(lv) = liv.get(key) else { continue };
                match (rv, lv) {
                    (Value::String(r), Value::String(l))
                        if keys.iter().any(|k| k.eq_ignore_ascii_case(key)) =>
                    {
                        out.push((r.clone(), l.clone()));
                    }
                    _ => paired_strings(rv, lv, keys, out),
                }
            }
        }
        (Value::Array(rec), Value::Array(liv)) => {
            for (rv, lv) in rec.iter().zip(liv) {
                paired_strings(rv, lv, keys, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED_CTX: &str = "d45324c1-fcb5-430a-902c-f20af696537c";
    const LIVE_CTX: &str = "0b9f0c1e-live-run";

    /// Seed: "Invite participants to an existing call" request body.
    const INVITE: &str = r#"{"participants":[{"endpointType":"default","identity":{"user":{"id":"550fae72-d251-43ec-868c-373732c2704f","displayName":"Heidi Steen"}}}],"clientContext":"d45324c1-fcb5-430a-902c-f20af696537c"}"#;

    /// Seed: "Notification - operation completed", pretty-printed as Graph sent it,
    /// plus an array carrying the value and an object key spelled like it.
    const COMPLETED: &str = r##"{
      "value": [
        {
          "changeType": "deleted",
          "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5",
          "resourceData": {
            "@odata.type": "#microsoft.graph.commsOperation",
            "@odata.etag": "W/\"51\"",
            "clientContext": "d45324c1-fcb5-430a-902c-f20af696537c",
            "status": "completed",
            "tags": ["x", "d45324c1-fcb5-430a-902c-f20af696537c"],
            "d45324c1-fcb5-430a-902c-f20af696537c": "prefix d45324c1-fcb5-430a-902c-f20af696537c"
          }
        }
      ]
    }"##;

    fn learned() -> Substitutions {
        let mut subs = Substitutions::default();
        let live = INVITE.replace(RECORDED_CTX, LIVE_CTX);
        subs.learn(INVITE.as_bytes(), live.as_bytes(), &default_learn_keys());
        subs
    }

    #[test]
    fn learns_differing_client_context() {
        assert_eq!(
            learned().pairs(),
            &[(RECORDED_CTX.to_owned(), LIVE_CTX.to_owned())]
        );
    }

    #[test]
    fn applies_in_nested_values_and_arrays_only() {
        let out = learned().apply(COMPLETED.as_bytes()).expect("changed");
        let expected = COMPLETED
            .replace(
                &format!(r#""clientContext": "{RECORDED_CTX}""#),
                &format!(r#""clientContext": "{LIVE_CTX}""#),
            )
            .replace(
                &format!(r#"["x", "{RECORDED_CTX}"]"#),
                &format!(r#"["x", "{LIVE_CTX}"]"#),
            );
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }

    #[test]
    fn matches_decoded_values_and_writes_a_valid_literal() {
        let mut subs = Substitutions::default();
        subs.learn(
            br#"{"ClientContext":"a/b"}"#,
            br#"{"ClientContext":"q\"uote"}"#,
            &default_learn_keys(),
        );
        let out = subs.apply(br#"{"x":"a\/b","y":"a/b "}"#).expect("changed");
        assert_eq!(out, br#"{"x":"q\"uote","y":"a/b "}"#);
        assert_eq!(subs.apply(br#""a/b""#), Some(br#""q\"uote""#.to_vec()));
    }

    #[test]
    fn no_change_gives_none() {
        let subs = learned();
        assert_eq!(subs.apply(br#"{"status":"completed"}"#), None);
        assert_eq!(subs.apply(b""), None);
        assert_eq!(Substitutions::default().apply(COMPLETED.as_bytes()), None);
    }

    #[test]
    fn non_json_is_left_alone() {
        let subs = learned();
        let text = format!("clientContext=\"{RECORDED_CTX}\"");
        assert_eq!(subs.apply(text.as_bytes()), None);
        assert_eq!(subs.apply(format!("[\"{RECORDED_CTX}\"").as_bytes()), None);
        let mut subs = Substitutions::default();
        subs.learn(b"not json", INVITE.as_bytes(), &default_learn_keys());
        subs.learn(INVITE.as_bytes(), b"", &default_learn_keys());
        assert!(subs.pairs().is_empty());
    }

    #[test]
    fn learning_needs_the_same_pointer_a_string_and_a_difference() {
        let keys = default_learn_keys();
        let mut subs = Substitutions::default();
        subs.learn(
            br#"{"a":{"clientContext":"r"}}"#,
            br#"{"b":{"clientContext":"l"}}"#,
            &keys,
        );
        subs.learn(br#"{"clientContext":1}"#, br#"{"clientContext":2}"#, &keys);
        subs.learn(
            br#"{"clientContext":"same"}"#,
            br#"{"clientContext":"same"}"#,
            &keys,
        );
        subs.learn(br#"{"other":"r"}"#, br#"{"other":"l"}"#, &keys);
        assert!(subs.pairs().is_empty());
        subs.learn(
            br#"[{"x":[{"clientcontext":"r"}]}]"#,
            br#"[{"x":[{"clientcontext":"l"}]}]"#,
            &keys,
        );
        assert_eq!(subs.pairs(), &[("r".to_owned(), "l".to_owned())]);
    }

    #[test]
    fn later_mapping_replaces_earlier() {
        let keys = default_learn_keys();
        let mut subs = Substitutions::default();
        subs.learn(
            br#"{"clientContext":"r1"}"#,
            br#"{"clientContext":"l1"}"#,
            &keys,
        );
        subs.learn(
            br#"{"clientContext":"r2"}"#,
            br#"{"clientContext":"l2"}"#,
            &keys,
        );
        subs.learn(
            br#"{"clientContext":"r1"}"#,
            br#"{"clientContext":"l3"}"#,
            &keys,
        );
        let pairs = |s: &Substitutions| {
            s.pairs()
                .iter()
                .map(|(r, l)| format!("{r}>{l}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(&subs), ["r2>l2", "r1>l3"]);
        subs.learn(
            br#"{"clientContext":"r2"}"#,
            br#"{"clientContext":"r2"}"#,
            &keys,
        );
        assert_eq!(pairs(&subs), ["r1>l3"]);
    }

    #[test]
    fn no_input_panics() {
        let subs = learned();
        let sample =
            format!("\u{feff}{{\"a\\\\\":[\"{RECORDED_CTX}\",{{\"\\u00e9\":\"\\ud800\"}}]}}");
        let bytes = sample.as_bytes();
        for end in 0..=bytes.len() {
            for start in 0..=end.min(4) {
                let part = &bytes[start..end];
                let _ = subs.apply(part);
                Substitutions::default().learn(part, bytes, &default_learn_keys());
            }
        }
        assert!(subs.apply(bytes).is_some());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::proptest_support::{json_value, near_json, spell};
    use proptest::prelude::*;

    fn substituted(value: &Value, from: &str, to: &str) -> Value {
        match value {
            Value::String(s) if s == from => Value::String(to.to_string()),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| substituted(v, from, to)).collect())
            }
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), substituted(v, from, to)))
                    .collect(),
            ),
            v => v.clone(),
        }
    }

    proptest! {
        #[test]
        fn no_input_panics(a in near_json(), b in near_json()) {
            let mut subs = Substitutions::default();
            subs.learn(&a, &b, &default_learn_keys());
            subs.learn(br#"{"clientContext":"r"}"#, br#"{"clientContext":"l"}"#, &default_learn_keys());
            let _ = subs.apply(&a);
            let _ = subs.apply(&b);
        }

        /// Every string value equal to the recorded one, and nothing else, becomes the
        /// live one, however the document is spelled.
        #[test]
        fn substitution_replaces_whole_string_values(
            value in json_value(),
            style in any::<u64>(),
            recorded in "[a-z0-9-]{1,8}",
            live in "[ -~]{0,8}",
        ) {
            prop_assume!(recorded != live);
            let mut subs = Substitutions::default();
            let body = |ctx: &str| serde_json::to_vec(&serde_json::json!({"clientContext": ctx})).unwrap();
            subs.learn(&body(&recorded), &body(&live), &default_learn_keys());
            let doc = serde_json::json!([value, recorded.clone(), {"k": recorded.clone()}]);
            let spelled = spell(&doc, style);
            let out = subs.apply(&spelled).expect("the recorded value occurs");
            let parsed: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(parsed, substituted(&doc, &recorded, &live));
        }
    }
}
