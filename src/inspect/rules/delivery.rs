//! What Graph delivered twice or out of order: `duplicate-notification` and
//! `sequence-out-of-order` (the in-payload ordering keys Graph documents).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{hit, CheckOptions, Ex, Hit, Session, Severity};

/// The same bytes delivered twice (by SHA-256 of the whole body), or the same
/// notification object inside different POSTs.
pub(super) fn duplicate_notifications(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    let mut bodies: HashMap<(&str, u64), &Ex> = HashMap::new();
    let mut seen_notes: HashMap<String, u64> = HashMap::new();
    let mut reported: HashSet<(u64, u64)> = HashSet::new();
    for (cb, notes) in s.callbacks() {
        let body = &cb.request.body;
        if body.len == 0 {
            continue;
        }
        let call = notes.iter().find_map(|n| n.index.call.as_ref());
        if let Some(first) = bodies.get(&(body.sha256.as_str(), body.len)) {
            out.push(hit(
                Severity::Warning,
                call,
                &[first.seq, cb.seq],
                format!(
                    "notification POST at seq {} repeats the body of seq {}{}",
                    cb.seq,
                    first.seq,
                    redelivery_hint(first)
                ),
            ));
            continue;
        }
        bodies.insert((body.sha256.as_str(), body.len), cb);
        for note in notes.iter().filter(|n| !n.raw.is_null()) {
            match seen_notes.get(&note.raw.to_string()) {
                Some(&first) if reported.insert((first, cb.seq)) => out.push(hit(
                    Severity::Warning,
                    note.index.call.as_ref(),
                    &[first, cb.seq],
                    format!(
                        "notification {} of seq {} repeats one delivered at seq {first}",
                        note.index.index, cb.seq
                    ),
                )),
                Some(_) => {}
                None => {
                    seen_notes.insert(note.raw.to_string(), cb.seq);
                }
            }
        }
    }
    out
}

/// Graph redelivers when the bot did not acknowledge; say so when that explains it.
fn redelivery_hint(first: &Ex) -> String {
    match (first.response.as_ref().map(|r| r.status), &first.error) {
        (Some(status), _) if (200..300).contains(&status) => String::new(),
        (Some(status), _) => format!(" (a redelivery? the bot answered {status} to it)"),
        (None, _) => " (a redelivery? the bot never answered it)".to_owned(),
    }
}

/// The in-payload ordering keys Graph documents.
const TONE_SEQUENCE: &str = "toneInfo.sequenceId";
const ROSTER_SEQUENCE: &str = "sequenceNumber";

/// `toneInfo.sequenceId` and roster `sequenceNumber` must increase within a call.
/// Exact duplicate notifications are skipped: `duplicate-notification` covers them.
pub(super) fn sequence_out_of_order(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    // (call, key) -> highest value so far and where it was seen.
    let mut highest: HashMap<(String, &'static str), (i64, u64)> = HashMap::new();
    let mut seen_notes: HashSet<String> = HashSet::new();
    for (cb, notes) in s.callbacks() {
        for note in notes {
            if !seen_notes.insert(note.raw.to_string()) {
                continue;
            }
            let call = note.index.call.as_ref();
            let call_key = call.map(|c| c.norm.clone()).unwrap_or_default();
            let Some(data) = note.raw.get("resourceData") else {
                continue;
            };
            for (key, value) in sequence_keys(data) {
                match highest.entry((call_key.clone(), key)) {
                    Entry::Occupied(mut prev) => {
                        let (top, top_seq) = *prev.get();
                        if value <= top {
                            let verb = if value == top {
                                "repeats"
                            } else {
                                "goes back to"
                            };
                            out.push(hit(
                                Severity::Warning,
                                call,
                                &[top_seq, cb.seq],
                                format!(
                                    "{key} {verb} {value} at seq {} after {top} at seq {top_seq}",
                                    cb.seq
                                ),
                            ));
                        } else {
                            prev.insert((value, cb.seq));
                        }
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((value, cb.seq));
                    }
                }
            }
        }
    }
    out
}

/// The ordering keys in one notification's `resourceData`, each the highest value
/// found at any depth (a roster may repeat the number per participant).
fn sequence_keys(data: &Value) -> Vec<(&'static str, i64)> {
    let mut tone = None;
    let mut roster = None;
    // Explicit stack: depth is bounded by the JSON parser, but this costs nothing.
    let mut stack: Vec<(Option<&str>, &Value)> = vec![(None, data)];
    while let Some((parent, value)) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let slot = match (parent, key.as_str()) {
                        (Some("toneInfo"), "sequenceId") => Some(&mut tone),
                        (_, "sequenceNumber") => Some(&mut roster),
                        _ => None,
                    };
                    if let (Some(slot), Some(n)) = (slot, integer(child)) {
                        *slot = Some(slot.map_or(n, |old: i64| old.max(n)));
                    }
                    stack.push((Some(key.as_str()), child));
                }
            }
            Value::Array(items) => stack.extend(items.iter().map(|item| (None, item))),
            _ => {}
        }
    }
    [(TONE_SEQUENCE, tone), (ROSTER_SEQUENCE, roster)]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect()
}

/// An integer, or a string holding one (some senders quote numbers).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check_of, ended, of};
    use super::super::{check, Severity};
    use crate::exchange::{Exchange, StoredBody};
    use crate::inspect::testutil::{call_state_body, callback, incoming_body, CALL_A, CALL_B};

    #[test]
    fn same_body_twice() {
        let body = call_state_body(CALL_A, "established");
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &body).respond(500, "").build(),
            callback(3, 20, &body).build(),
        ];
        ex.extend(ended(4, CALL_A));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "duplicate-notification"),
            vec![(Severity::Warning, vec![2, 3])]
        );
        let dup = findings.iter().find(|f| f.rule == "duplicate-notification");
        assert!(
            dup.is_some_and(|f| f.message.contains("the bot answered 500")),
            "{findings:#?}"
        );
        // The 500 itself is the bot's doing.
        assert_eq!(
            of(&findings, "bot-rejected"),
            vec![(Severity::Error, vec![2])]
        );
        assert_eq!(findings.len(), 2, "{findings:#?}");
        // Different bodies: silent.
        ex.remove(2);
        assert!(check_of(&ex, "duplicate-notification").is_empty());
    }

    #[test]
    fn same_notification_in_another_batch() {
        let one = r#"{"changeType":"updated","resource":"/app/calls/ABC","resourceData":{"state":"established"}}"#;
        let other = r#"{"changeType":"updated","resource":"/app/calls/ABC/participants","resourceData":[]}"#;
        let ex = vec![
            callback(1, 0, &format!(r#"{{"value":[{one}]}}"#)).build(),
            callback(2, 10, &format!(r#"{{"value":[{other},{one}]}}"#)).build(),
        ];
        let found = check_of(&ex, "duplicate-notification");
        assert_eq!(found, vec![(Severity::Warning, vec![1, 2])]);
    }

    fn tone(seq: u64, at_ms: i64, id: i64) -> Exchange<StoredBody> {
        let body = format!(
            r##"{{"value":[{{"changeType":"updated","resource":"/app/calls/{CALL_A}","resourceData":{{"@odata.type":"#microsoft.graph.call","state":"established","toneInfo":{{"@odata.type":"#microsoft.graph.toneInfo","sequenceId":{id},"tone":"tone{id}"}}}}}}]}}"##
        );
        callback(seq, at_ms, &body).build()
    }

    #[test]
    fn tone_sequence_going_back_or_repeating() {
        let mut ex = vec![
            tone(1, 0, 1),
            tone(2, 10, 3),
            tone(3, 20, 2),
            tone(4, 30, 4),
        ];
        ex.extend(ended(5, CALL_A));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "sequence-out-of-order"),
            vec![(Severity::Warning, vec![2, 3])]
        );
        assert!(findings[0]
            .message
            .contains("toneInfo.sequenceId goes back to 2 at seq 3 after 3 at seq 2"));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // In order: silent.
        ex.remove(2);
        assert!(check(&ex).is_empty());
    }

    #[test]
    fn roster_sequence_repeating() {
        let roster = |n: &str| {
            format!(
                r##"{{"value":[{{"changeType":"updated","resource":"/app/calls/{CALL_B}/participants","resourceData":[{{"@odata.type":"#microsoft.graph.participant","sequenceNumber":{n},"id":"p"}},{{"sequenceNumber":{n},"id":"q"}}]}}]}}"##
            )
        };
        let mut ex = vec![
            callback(1, 0, &roster("5")).build(),
            callback(2, 10, &roster("\"6\"")).build(),
            callback(3, 20, &roster("6")).build(),
        ];
        ex.extend(ended(4, CALL_B));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "sequence-out-of-order"),
            vec![(Severity::Warning, vec![2, 3])]
        );
        assert!(
            findings[0].message.contains("sequenceNumber repeats 6"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // Another call's numbers are its own.
        let ex = vec![tone(1, 0, 5), callback(2, 10, &roster("1")).build()];
        assert!(check_of(&ex, "sequence-out-of-order").is_empty());
    }
}
