//! Facts about one exchange that both the timeline and the rules need: its ids, the
//! notifications it carries, what its response reported and how long it took.
//!
//! Everything is derived from the stored bytes on demand, so inspection works on any
//! recording, including imported ones, without trusting an index.

use serde_json::Value;

use crate::exchange::{header, Direction, Exchange, StoredBody};
use crate::graph::{
    ids_from_exchange, ids_from_path, normalize_path, parse_notifications, CallIds,
    NotificationIndex,
};

/// One notification: its index (ids, state, status) and its JSON as sent.
pub(crate) struct Note {
    pub index: NotificationIndex,
    /// The notification object as it appeared in the body (`Null` if unavailable).
    pub raw: Value,
}

/// The request path with its query, as the bot or Graph sent it.
pub(crate) fn full_path(ex: &Exchange<StoredBody>) -> String {
    match &ex.request.query {
        Some(q) => format!("{}?{}", ex.request.path, q),
        None => ex.request.path.clone(),
    }
}

/// The ids an API exchange is about (path first, then what the response revealed);
/// empty for callbacks, whose ids live in their notifications.
pub(crate) fn api_ids(ex: &Exchange<StoredBody>) -> CallIds {
    if ex.direction != Direction::Api {
        return CallIds::default();
    }
    let resp = ex.response.as_ref();
    ids_from_exchange(
        &ex.request.method,
        &full_path(ex),
        resp.map(|r| r.status),
        resp.and_then(|r| header(&r.headers, "location")),
        &resp.map(|r| r.content()).unwrap_or_default(),
    )
}

/// The ids an API exchange brought into being: those its response named but its path
/// did not (a created call, a started operation).
pub(crate) fn created_ids(ex: &Exchange<StoredBody>) -> CallIds {
    let named = ids_from_path(&full_path(ex));
    let ids = api_ids(ex);
    CallIds {
        call: ids.call.filter(|_| named.call.is_none()),
        operation: ids.operation.filter(|_| named.operation.is_none()),
    }
}

/// Whether an API exchange answers an incoming call (`.../calls/{id}/answer`).
pub(crate) fn is_answer(ex: &Exchange<StoredBody>) -> bool {
    ex.direction == Direction::Api
        && ex.request.method.eq_ignore_ascii_case("POST")
        && normalize_path(&ex.request.path).ends_with("/answer")
}

/// The notifications of a callback, in body order; empty for API exchanges and for
/// bodies that are not notification batches.
pub(crate) fn notes(ex: &Exchange<StoredBody>) -> Vec<Note> {
    if ex.direction != Direction::Callback {
        return Vec::new();
    }
    let body = &ex.request.content();
    let Ok(indexes) = parse_notifications(body) else {
        return Vec::new();
    };
    let entries = raw_entries(body);
    indexes
        .into_iter()
        .map(|index| Note {
            raw: entries.get(index.index).cloned().unwrap_or(Value::Null),
            index,
        })
        .collect()
}

/// The body's notification objects by position, mirroring `parse_notifications`:
/// the `value` array, or the body itself for a legacy single notification.
fn raw_entries(body: &[u8]) -> Vec<Value> {
    let body = crate::jsonscan::strip_bom(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(top)) => match top.get("value") {
            Some(Value::Array(entries)) => entries.clone(),
            _ => vec![Value::Object(top)],
        },
        _ => Vec::new(),
    }
}

/// A call's state from a notification about the call itself (not one of its
/// operations), as sent.
pub(crate) fn call_state(n: &NotificationIndex) -> Option<&str> {
    n.operation
        .is_none()
        .then_some(n.state.as_deref())
        .flatten()
}

/// Whether a notification's resource is a call itself (`/app/calls/{id}`), not a
/// participant, operation or other sub-resource.
pub(crate) fn is_call_resource(n: &NotificationIndex) -> bool {
    n.resource_url
        .as_deref()
        .or(n.resource.as_deref())
        .is_some_and(is_call_path)
}

/// Whether `path` names one call (`/communications/calls/{id}` in any spelling), not
/// the collection, an action or a sub-resource.
pub(crate) fn is_call_path(path: &str) -> bool {
    let canonical = normalize_path(path);
    canonical.starts_with("/communications/calls/")
        && canonical.split('/').filter(|s| !s.is_empty()).count() == 3
        && ids_from_path(path).call.is_some()
}

/// Recorded text with control characters escaped (`\u{1b}`), so a hostile path or
/// payload cannot drive the terminal it is printed on.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The JSON object of a body, if it is one.
pub(crate) fn json_body(bytes: &[u8]) -> Option<serde_json::Map<String, Value>> {
    let bytes = crate::jsonscan::strip_bom(bytes);
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// What an API response body reported: an operation's `status`, else a call's
/// `state`, as sent.
pub(crate) fn reported(ex: &Exchange<StoredBody>) -> Option<String> {
    if ex.direction != Direction::Api {
        return None;
    }
    let body = json_body(&ex.response.as_ref()?.content())?;
    ["status", "state"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Request start to response end: for a callback, how long the bot took to answer.
pub(crate) fn latency_us(ex: &Exchange<StoredBody>) -> Option<i64> {
    ex.timing
        .response_end_us
        .map(|end| end.saturating_sub(ex.timing.request_start_us))
}

/// Case-insensitive membership, because Graph sends `Running` as well as `running`.
pub(crate) fn is_one_of(value: Option<&str>, set: &[&str]) -> bool {
    value.is_some_and(|v| set.iter().any(|s| s.eq_ignore_ascii_case(v)))
}

/// Milliseconds with three decimals, from microseconds, without float rounding.
pub(crate) fn ms(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let abs = us.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

/// An offset into a session: `5.190ms` under a minute, `mm:ss.mmm` past it (long
/// sessions read as clock time, not as six-digit milliseconds), `h:mm:ss.mmm` past an
/// hour.
pub(crate) fn offset(us: i64) -> String {
    const MINUTE: u64 = 60_000_000;
    let abs = us.unsigned_abs();
    if abs < MINUTE {
        return format!("{}ms", ms(us));
    }
    let sign = if us < 0 { "-" } else { "" };
    let millis = abs / 1000;
    let (h, m, s, frac) = (
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000,
    );
    if h > 0 {
        format!("{sign}{h}:{m:02}:{s:02}.{frac:03}")
    } else {
        format!("{sign}{m:02}:{s:02}.{frac:03}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{self, api, callback, CALL_A, OP};

    #[test]
    fn offsets_past_a_minute_read_as_clock_time() {
        assert_eq!(offset(5_190), "5.190ms");
        assert_eq!(offset(59_999_999), "59999.999ms");
        assert_eq!(offset(60_000_000), "01:00.000");
        assert_eq!(offset(754_321_987), "12:34.321");
        assert_eq!(offset(3_723_004_000), "1:02:03.004");
    }

    #[test]
    fn notes_keep_raw_entries_aligned_with_indexes() {
        let body = format!(
            r#"{{"value":[3,{}]}}"#,
            r#"{"changeType":"updated","resource":"/app/calls/X","resourceData":{"state":"established"}}"#
        );
        let ex = callback(1, 0, &body).build();
        let found = notes(&ex);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].index.index, 1);
        assert_eq!(found[0].raw["resourceData"]["state"], "established");
        let legacy = callback(
            2,
            0,
            r#"{"changeType":"deleted","resource":"/app/calls/X"}"#,
        )
        .build();
        assert_eq!(notes(&legacy)[0].raw["changeType"], "deleted");
        assert!(notes(&callback(3, 0, "not json").build()).is_empty());
    }

    #[test]
    fn created_ids_are_what_the_path_did_not_name() {
        let ex = api(
            1,
            0,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_A}/participants/invite"),
        )
        .respond(200, r#"{"id":"x","status":"running"}"#)
        .location(&format!(
            "https://graph.microsoft.com/v1.0/communications/calls/{CALL_A}/operations/{OP}"
        ))
        .build();
        let created = created_ids(&ex);
        assert!(created.call.is_none());
        assert_eq!(created.operation.map(|o| o.raw).as_deref(), Some(OP));
        assert_eq!(reported(&ex).as_deref(), Some("running"));
        assert!(!is_answer(&ex));
        let answer = api(
            2,
            0,
            "POST",
            &format!("/app/calls/{CALL_A}/microsoft.graph.Answer"),
        )
        .build();
        assert!(is_answer(&answer));
    }

    #[test]
    fn call_resources_and_states() {
        let ex = callback(1, 0, &testutil::roster_body(CALL_A)).build();
        assert!(!is_call_resource(&notes(&ex)[0].index));
        let ex = callback(2, 0, &testutil::call_deleted_body(CALL_A)).build();
        assert!(is_call_resource(&notes(&ex)[0].index));
        let ex = callback(3, 0, &testutil::call_state_body(CALL_A, "Established")).build();
        assert_eq!(call_state(&notes(&ex)[0].index), Some("Established"));
    }

    #[test]
    fn small_helpers() {
        assert_eq!(ms(1_234_567), "1234.567");
        assert_eq!(ms(-5), "-0.005");
        assert_eq!(ms(i64::MIN), "-9223372036854775.808");
        assert!(is_one_of(Some("Running"), &["running"]));
        assert!(!is_one_of(None, &["running"]));
    }
}
