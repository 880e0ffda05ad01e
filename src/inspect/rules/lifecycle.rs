//! A call's life: states in order (`state-regression`, `state-skipped`), its end
//! (`call-not-terminated`, `call-without-end`) and the answer deadline
//! (`answer-too-late`).

use std::collections::HashMap;

use serde_json::Value;

use super::{hit, CheckOptions, Hit, Session, Severity};
use crate::exchange::Direction;
use crate::graph::{normalize_path, IdRef};
use crate::inspect::view::{self, Note};

/// One state a call-level notification reported.
struct Seen<'n> {
    seq: u64,
    state: &'n str,
    note: &'n Note,
}

/// Everything the call rules need about one call.
struct CallTrack<'n> {
    id: IdRef,
    states: Vec<Seen<'n>>,
    last_seq: u64,
    /// The seq of a `created` notification about the call itself (an incoming call).
    created: Option<u64>,
    /// A `deleted` notification about the call itself (Graph's last word on a call).
    deleted: bool,
    /// The bot's `DELETE` of the call: seq and status.
    hangup: Option<(u64, Option<u16>)>,
}

/// The calls of the session in order of first appearance.
fn call_tracks<'n>(s: &'n Session<'_>) -> Vec<CallTrack<'n>> {
    let mut tracks = Tracks::default();
    for ((ex, notes), facts) in s.exchanges.iter().zip(&s.notes).zip(&s.facts) {
        if ex.direction == Direction::Api {
            if let Some(id) = &facts.ids.call {
                let track = track(&mut tracks, id, ex.seq);
                if ex.request.method.eq_ignore_ascii_case("DELETE")
                    && view::is_call_path(&ex.request.path)
                {
                    track.hangup = Some((ex.seq, ex.response.as_ref().map(|r| r.status)));
                }
            }
        }
        for note in notes {
            let Some(id) = &note.index.call else { continue };
            let track = track(&mut tracks, id, ex.seq);
            if let Some(state) = view::call_state(&note.index) {
                track.states.push(Seen {
                    seq: ex.seq,
                    state,
                    note,
                });
            }
            if view::is_call_resource(&note.index) {
                match note.index.change_type.as_deref() {
                    Some(c) if c.eq_ignore_ascii_case("deleted") => track.deleted = true,
                    Some(c) if c.eq_ignore_ascii_case("created") => {
                        track.created.get_or_insert(ex.seq);
                    }
                    _ => {}
                }
            }
        }
    }
    tracks.list
}

/// The calls in order of first appearance, with an index by lookup form (sessions
/// with thousands of calls are walked once per call rule).
#[derive(Default)]
struct Tracks<'n> {
    list: Vec<CallTrack<'n>>,
    by_id: HashMap<String, usize>,
}

fn track<'t, 'n>(tracks: &'t mut Tracks<'n>, id: &IdRef, seq: u64) -> &'t mut CallTrack<'n> {
    let next = tracks.list.len();
    let pos = *tracks.by_id.entry(id.norm.clone()).or_insert(next);
    if pos == next {
        tracks.list.push(CallTrack {
            id: id.clone(),
            states: Vec::new(),
            last_seq: seq,
            created: None,
            deleted: false,
            hangup: None,
        });
    }
    let track = &mut tracks.list[pos];
    track.last_seq = track.last_seq.max(seq);
    track
}

/// Position of a call state in the documented lifecycle. States that legitimately
/// alternate (establishing/ringing; established/hold/transferring/...) share a rank so
/// only real backwards steps count. Unknown states have none and are ignored.
fn rank(state: &str) -> Option<u8> {
    let rank = match state.to_ascii_lowercase().as_str() {
        "incoming" => 0,
        "establishing" | "ringing" => 1,
        "established" | "hold" | "transferring" | "transferaccepted" | "redirecting" => 2,
        "terminating" => 3,
        "terminated" => 4,
        _ => return None,
    };
    Some(rank)
}

/// The ranked states of a call, each with the furthest state reached before it, or
/// `None` where it moved forward (or stayed).
fn walk<'t, 'n>(track: &'t CallTrack<'n>) -> Vec<(u8, &'t Seen<'n>, Option<&'t Seen<'n>>)> {
    let mut out = Vec::new();
    // The furthest state reached so far (latest of that rank).
    let mut top: Option<(u8, &Seen<'_>)> = None;
    for seen in &track.states {
        let Some(r) = rank(seen.state) else { continue };
        match top.filter(|(top_rank, _)| r < *top_rank) {
            Some((_, top_seen)) => out.push((r, seen, Some(top_seen))),
            None => {
                top = Some((r, seen));
                out.push((r, seen, None));
            }
        }
    }
    out
}

/// A call's state going backwards, e.g. established then establishing.
pub(super) fn state_regression(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        for (_, seen, top) in walk(&track) {
            let Some(top) = top else { continue };
            out.push(hit(
                Severity::Error,
                Some(&track.id),
                &[top.seq, seen.seq],
                format!(
                    "call {} went back from {} (seq {}) to {} (seq {})",
                    track.id.raw, top.state, top.seq, seen.state, seen.seq
                ),
            ));
        }
    }
    out
}

/// A call ending (terminating or terminated) straight from establishing: the join or
/// answer failed, which a bot waiting for `established` never learns.
pub(super) fn state_skipped(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        let mut establishing: Option<u64> = None;
        let mut established = false;
        for (r, seen, _) in walk(&track).into_iter().filter(|(_, _, top)| top.is_none()) {
            if seen.state.eq_ignore_ascii_case("establishing") {
                establishing.get_or_insert(seen.seq);
            }
            established |= r == 2;
            if let Some(from) = establishing.filter(|_| r >= 3 && !established) {
                let why = outcome(&seen.note.raw)
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default();
                out.push(hit(
                    Severity::Warning,
                    Some(&track.id),
                    &[from, seen.seq],
                    format!(
                        "call {} went from establishing (seq {from}) to {} (seq {}) without being established{why}",
                        track.id.raw, seen.state, seen.seq
                    ),
                ));
                break;
            }
        }
    }
    out
}

/// Why a call ended, from a notification: `resultInfo` and `terminationReason`.
fn outcome(raw: &Value) -> Option<String> {
    let data = raw.get("resourceData")?;
    let mut parts = Vec::new();
    if let Some(info) = data.get("resultInfo").filter(|v| v.is_object()) {
        let field = |k: &str| info.get(k).map(scalar_text).unwrap_or_default();
        let code = [field("code"), field("subcode")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let message = field("message");
        let text = match (code.is_empty(), message.is_empty()) {
            (false, false) => format!("{code}: {message}"),
            (false, true) => code,
            (true, false) => message,
            (true, true) => String::new(),
        };
        if !text.is_empty() {
            parts.push(format!("resultInfo {text}"));
        }
    }
    if let Some(reason) = data.get("terminationReason").and_then(Value::as_str) {
        parts.push(format!("terminationReason {reason}"));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Whether the call's last recorded state is `terminated`.
fn reached_terminated(track: &CallTrack<'_>) -> bool {
    track
        .states
        .last()
        .is_some_and(|seen| seen.state.eq_ignore_ascii_case("terminated"))
}

/// A call whose end was never recorded: the recording stopped early, or Graph (or
/// the bot) left it hanging.
pub(super) fn call_not_terminated(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        if track.deleted || reached_terminated(&track) {
            continue;
        }
        let mut message = match track.states.last() {
            Some(seen) => format!(
                "call {} was last seen {}; no terminated notification was recorded",
                track.id.raw, seen.state
            ),
            None => format!(
                "call {} had no state notification; no terminated notification was recorded",
                track.id.raw
            ),
        };
        if let Some((seq, status)) = track.hangup {
            let status = status.map_or_else(|| "no response".to_owned(), |s| s.to_string());
            message.push_str(&format!(" (the bot hung up at seq {seq}: {status})"));
        }
        out.push(hit(
            Severity::Info,
            Some(&track.id),
            &[track.last_seq],
            message,
        ));
    }
    out
}

/// An incoming call (announced by `created`) that reached `terminated` but was never
/// `deleted`: the missing last notification seen in the field (Graph comms samples
/// #297). Calls that never reached terminated are `call-not-terminated`'s.
pub(super) fn call_without_end(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        let Some(created) = track.created else {
            continue;
        };
        if track.deleted || !reached_terminated(&track) {
            continue;
        }
        let terminated = track.states.last().map_or(track.last_seq, |seen| seen.seq);
        out.push(hit(
            Severity::Info,
            Some(&track.id),
            &[created, terminated],
            format!(
                "call {} created at seq {created} and terminated at seq {terminated} got no deleted notification by the session's end",
                track.id.raw
            ),
        ));
    }
    out
}

/// How the bot can take an incoming call: answer, reject or redirect it.
fn takes_call(path: &str) -> Option<&'static str> {
    let path = normalize_path(path);
    ["answer", "reject", "redirect"]
        .into_iter()
        .find(|action| path.ends_with(&format!("/{action}")))
}

/// An incoming call answered (or rejected, redirected) after the limit: Graph has
/// dropped it by then (15 s; 5 s for policy-based recording bots).
pub(super) fn answer_too_late(s: &Session<'_>, options: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for (cb, notes) in s.callbacks() {
        let incoming = notes.iter().find_map(|n| {
            let state = view::call_state(&n.index)?;
            state
                .eq_ignore_ascii_case("incoming")
                .then_some(n.index.call.as_ref())
                .flatten()
        });
        let Some(call) = incoming else { continue };
        let taken = s.api().find_map(|(api, facts)| {
            let action = takes_call(&api.request.path)?;
            let about = facts.ids.call.as_ref()?;
            (about.norm == call.norm && api.seq > cb.seq).then_some((api, action))
        });
        let Some((api, action)) = taken else { continue };
        let after = api
            .timing
            .request_start_us
            .saturating_sub(cb.timing.request_start_us);
        if after <= options.answer_limit_us {
            continue;
        }
        out.push(hit(
            Severity::Error,
            Some(call),
            &[cb.seq, api.seq],
            format!(
                "call {} was incoming at seq {}; the bot's {action} (seq {}) came {} s later, past the {} s limit after which Graph drops the call",
                call.raw,
                cb.seq,
                api.seq,
                seconds(after),
                seconds(options.answer_limit_us)
            ),
        ));
    }
    out
}

/// Seconds with three decimals, from microseconds, without float rounding.
fn seconds(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "" };
    let ms = us.unsigned_abs() / 1000;
    format!("{sign}{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check_of, ended, of, CALL_A_NORM};
    use super::super::{check, check_with, CheckOptions, Severity};
    use super::seconds;
    use crate::inspect::testutil::{
        api, call_deleted_body, call_state_body, callback, incoming_body, CALL_A, CALL_A_DASHED,
        CALL_B,
    };

    #[test]
    fn state_going_backwards() {
        let mut ex = vec![
            callback(1, 0, &call_state_body(CALL_A, "establishing")).build(),
            callback(2, 10, &call_state_body(CALL_A, "Established")).build(),
            callback(3, 20, &call_state_body(CALL_A, "hold")).build(),
            callback(4, 30, &call_state_body(CALL_A, "established")).build(),
            callback(5, 40, &call_state_body(CALL_A, "Establishing")).build(),
        ];
        ex.extend(ended(6, CALL_A));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "state-regression"),
            vec![(Severity::Error, vec![4, 5])]
        );
        assert_eq!(findings[0].call.as_deref(), Some(CALL_A_NORM));
        assert!(
            findings[0]
                .message
                .contains("from established (seq 4) to Establishing (seq 5)"),
            "{findings:#?}"
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // Forward only (hold and back counts as the same rank): silent.
        ex.remove(4);
        assert!(check(&ex).is_empty(), "{:#?}", check(&ex));
    }

    #[test]
    fn establishing_straight_to_terminated() {
        let mut failed = call_state_body(CALL_B, "terminated");
        failed = failed.replace(
            r#""state":"terminated""#,
            r#""state":"terminated","resultInfo":{"code":403,"subcode":7507,"message":"Application is not authorized"}"#,
        );
        let ex = vec![
            callback(1, 0, &call_state_body(CALL_B, "establishing")).build(),
            callback(2, 10, &call_state_body(CALL_B, "Terminating")).build(),
            callback(3, 20, &failed).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "state-skipped"),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");

        let ex = vec![
            callback(1, 0, &call_state_body(CALL_B, "establishing")).build(),
            callback(2, 20, &failed).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "state-skipped"),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert!(
            findings[0]
                .message
                .contains("resultInfo 403/7507: Application is not authorized"),
            "{}",
            findings[0].message
        );
        // Established, then terminated without terminating: Graph often skips it.
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &call_state_body(CALL_A, "established")).build(),
        ];
        ex.extend(ended(3, CALL_A));
        assert!(check(&ex).is_empty());
    }

    #[test]
    fn call_left_hanging() {
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &call_state_body(CALL_A, "established")).build(),
            api(
                3,
                20,
                "DELETE",
                &format!("/v1.0/communications/calls/{CALL_A_DASHED}"),
            )
            .respond(204, "")
            .build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "call-not-terminated"),
            vec![(Severity::Info, vec![3])]
        );
        assert!(findings[0].message.contains("last seen established"));
        assert!(
            findings[0].message.contains("hung up at seq 3: 204"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // A deleted notification about the call itself closes it, state or not.
        let mut closed = ex.clone();
        closed.push(callback(4, 30, &call_deleted_body(CALL_A)).build());
        assert!(check(&closed).is_empty());
        // A call only ever seen in the API is reported too.
        let only_api =
            vec![api(1, 0, "GET", &format!("/v1.0/communications/calls/{CALL_B}")).build()];
        assert_eq!(
            check_of(&only_api, "call-not-terminated"),
            vec![(Severity::Info, vec![1])]
        );
    }

    #[test]
    fn terminated_but_never_deleted() {
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &call_state_body(CALL_A, "established")).build(),
            callback(3, 20, &call_state_body(CALL_A, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "call-without-end"),
            vec![(Severity::Info, vec![1, 3])]
        );
        assert!(
            findings[0]
                .message
                .contains("created at seq 1 and terminated at seq 3 got no deleted notification"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // Silent: the deleted notification came; a call the bot created (no created
        // notification) is not expected to get one; a call still up is
        // call-not-terminated's, not this rule's.
        let mut deleted = ex.clone();
        deleted.push(callback(4, 30, &call_deleted_body(CALL_A)).build());
        assert!(check(&deleted).is_empty());
        let joined = vec![
            callback(1, 0, &call_state_body(CALL_B, "established")).build(),
            callback(2, 10, &call_state_body(CALL_B, "terminated")).build(),
        ];
        assert!(check(&joined).is_empty());
        let up = &ex[..2];
        assert!(check_of(up, "call-without-end").is_empty());
        assert_eq!(check_of(up, "call-not-terminated").len(), 1);
    }

    fn answered_after(
        ms: i64,
        action: &str,
    ) -> Vec<crate::exchange::Exchange<crate::exchange::StoredBody>> {
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            api(
                2,
                ms,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_A_DASHED}/{action}"),
            )
            .respond(202, "")
            .build(),
        ];
        ex.extend(ended(3, CALL_A));
        ex
    }

    #[test]
    fn answered_too_late() {
        let findings = check(&answered_after(15_001, "answer"));
        assert_eq!(
            of(&findings, "answer-too-late"),
            vec![(Severity::Error, vec![1, 2])]
        );
        assert_eq!(
            findings[0].message,
            format!("call {CALL_A} was incoming at seq 1; the bot's answer (seq 2) came 15.001 s later, past the 15.000 s limit after which Graph drops the call")
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // A reject counts too.
        assert_eq!(
            check_of(
                &answered_after(20_000, "microsoft.graph.reject"),
                "answer-too-late"
            )
            .len(),
            1
        );
        // The limit is a setting: 5 s for policy-based recording bots.
        let strict = CheckOptions {
            answer_limit_us: 5_000_000,
        };
        let found = check_with(&answered_after(6_000, "answer"), &strict);
        assert_eq!(
            of(&found, "answer-too-late"),
            vec![(Severity::Error, vec![1, 2])]
        );
    }

    #[test]
    fn answered_in_time_is_silent() {
        assert!(check(&answered_after(15_000, "answer")).is_empty());
        assert!(check(&answered_after(10, "redirect")).is_empty());
        // Another call's answer does not count for this one.
        let mut other = answered_after(20_000, "answer");
        other[1] = api(
            2,
            20_000,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_B}/answer"),
        )
        .build();
        assert!(check_of(&other, "answer-too-late").is_empty());
        assert_eq!(seconds(-1_500), "-0.001");
    }
}
