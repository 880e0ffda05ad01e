//! Long-running operations (invite, playPrompt, recordResponse...): what the HTTP
//! response said against the notifications that followed, how long they took, and
//! notifications about operations the session never started.

use std::collections::HashSet;

use super::{describe, hit, norm_eq, CheckOptions, Ex, Hit, Session, Severity};
use crate::graph::IdRef;
use crate::inspect::view::{self, Note};

/// The Graph Communications SDK stops waiting for an operation after 30 s and logs
/// the late completion as "not found. Ignoring request" (comms samples #408).
const SDK_OPERATION_TIMEOUT_US: i64 = 30_000_000;

/// An API exchange that started an operation, with what its response reported.
struct Started<'a> {
    api: &'a Ex,
    op: IdRef,
    call: Option<IdRef>,
    status: Option<String>,
}

fn started<'a>(s: &Session<'a>) -> impl Iterator<Item = Started<'a>> + 'a {
    let started: Vec<Started<'a>> = s
        .api()
        .filter_map(|(api, facts)| {
            Some(Started {
                op: facts.created.operation.clone()?,
                call: facts.ids.call.clone(),
                status: view::reported(api),
                api,
            })
        })
        .collect();
    started.into_iter()
}

/// The notifications about `op` recorded after `after`, with their callbacks.
fn later<'s>(
    s: &'s Session<'_>,
    after: u64,
    op: &'s IdRef,
) -> impl Iterator<Item = (&'s Ex, &'s Note)> + 's {
    s.callbacks()
        .filter(move |(cb, _)| cb.seq > after)
        .filter_map(move |(cb, notes)| {
            notes
                .iter()
                .find(|n| norm_eq(n.index.operation.as_ref(), op))
                .map(|n| (cb, n))
        })
}

fn is_final(status: Option<&str>) -> bool {
    view::is_one_of(status, &["completed", "failed"])
}

/// Notified although the response already said completed or failed: Graph documents
/// that no notification follows then, so a bot may not expect one.
pub(super) fn after_final_response(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for st in started(s).filter(|st| is_final(st.status.as_deref())) {
        for (cb, _) in later(s, st.api.seq, &st.op) {
            out.push(hit(
                Severity::Warning,
                st.call.as_ref(),
                &[st.api.seq, cb.seq],
                format!(
                    "operation {} was notified at seq {} although the response to seq {} ({}) already said {}",
                    st.op.raw,
                    cb.seq,
                    st.api.seq,
                    describe(st.api),
                    st.status.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    out
}

/// Started (notStarted/running) and never finished in the recording.
pub(super) fn never_completed(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    let pending =
        |st: &Started<'_>| view::is_one_of(st.status.as_deref(), &["notStarted", "running"]);
    for st in started(s).filter(pending) {
        if later(s, st.api.seq, &st.op).any(|(_, n)| is_final(n.index.status.as_deref())) {
            continue;
        }
        out.push(hit(
            Severity::Warning,
            st.call.as_ref(),
            &[st.api.seq],
            format!(
                "operation {} started by seq {} ({}) answered {}; no completed or failed notification followed",
                st.op.raw,
                st.api.seq,
                describe(st.api),
                st.status.as_deref().unwrap_or_default()
            ),
        ));
    }
    out
}

/// Finished more than 30 s after its request: by then the SDK has given up on it.
pub(super) fn timeout_risk(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for st in started(s) {
        let finished =
            later(s, st.api.seq, &st.op).find(|(_, n)| is_final(n.index.status.as_deref()));
        let Some((cb, note)) = finished else { continue };
        let took = cb
            .timing
            .request_start_us
            .saturating_sub(st.api.timing.request_start_us);
        if took <= SDK_OPERATION_TIMEOUT_US {
            continue;
        }
        out.push(hit(
            Severity::Warning,
            st.call.as_ref(),
            &[st.api.seq, cb.seq],
            format!(
                "operation {} started by seq {} ({}) was {} at seq {}, {} ms after its request; the Graph Communications SDK gives up after 30 s and ignores a later completion",
                st.op.raw,
                st.api.seq,
                describe(st.api),
                note.index.status.as_deref().unwrap_or_default(),
                cb.seq,
                view::ms(took)
            ),
        ));
    }
    out
}

/// A notification about an operation no request of the session started or named: the
/// bot cannot tie it to anything it did (another instance's operation, a recording
/// started mid-call, or an id the bot never saw).
pub(super) fn unknown_operation(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let known: HashSet<String> = s
        .api()
        .filter_map(|(_, facts)| facts.ids.operation.as_ref())
        .map(|op| op.norm.clone())
        .collect();
    let mut reported: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (cb, notes) in s.callbacks() {
        for note in notes {
            let Some(op) = &note.index.operation else {
                continue;
            };
            if known.contains(&op.norm) || !reported.insert(op.norm.clone()) {
                continue;
            }
            out.push(hit(
                Severity::Warning,
                note.index.call.as_ref(),
                &[cb.seq],
                format!(
                    "notification {} of seq {} is about operation {}, which no request of the session created",
                    note.index.index, cb.seq, op.raw
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check_of, ended, invite, of, CALL_B_NORM};
    use super::super::{check, Severity};
    use crate::inspect::testutil::{callback, op_status_body, CALL_B, OP};

    #[test]
    fn notified_although_the_response_was_final() {
        let mut ex = vec![
            invite(1, 400, "Completed"),
            callback(2, 500, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "operation-after-final-response"),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert_eq!(findings[0].call.as_deref(), Some(CALL_B_NORM));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // Final response, no notification: as documented, silent.
        let mut quiet = vec![invite(1, 400, "completed")];
        quiet.extend(ended(2, CALL_B));
        assert!(check(&quiet).is_empty());
    }

    #[test]
    fn operation_that_never_completes() {
        let mut ex = vec![
            invite(1, 400, "Running"),
            // Still running is not an end.
            callback(2, 500, &op_status_body(CALL_B, OP, "running")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "operation-never-completed"),
            vec![(Severity::Warning, vec![1])]
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // A failed notification ends it.
        let mut ex = vec![
            invite(1, 400, "notStarted"),
            callback(2, 500, &op_status_body(CALL_B, OP, "Failed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        assert!(check(&ex).is_empty());
    }

    fn completed_after(ms: i64) -> Vec<crate::exchange::Exchange<crate::exchange::StoredBody>> {
        let mut ex = vec![
            invite(1, 400, "running"),
            callback(2, 400 + ms, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        ex
    }

    #[test]
    fn completion_after_the_sdk_gave_up() {
        let findings = check(&completed_after(30_001));
        assert_eq!(
            of(&findings, "operation-timeout-risk"),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert!(
            findings[0]
                .message
                .contains("was completed at seq 2, 30001.000 ms after its request"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings[0].call.as_deref(), Some(CALL_B_NORM));
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn completion_within_30_s_is_silent() {
        assert!(check(&completed_after(30_000)).is_empty());
        assert!(check(&completed_after(50)).is_empty());
    }

    #[test]
    fn notification_about_an_operation_nobody_started() {
        let mut ex = vec![
            callback(1, 0, &op_status_body(CALL_B, OP, "running")).build(),
            callback(2, 10, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "unknown-operation"),
            vec![(Severity::Warning, vec![1])],
            "reported once per operation"
        );
        assert!(findings[0].message.contains(OP), "{}", findings[0].message);
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn an_operation_the_session_started_is_known() {
        // Even when its notification raced the response that named it.
        let mut ex = vec![
            invite(1, 400, "running"),
            callback(2, 410, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        assert!(check_of(&ex, "unknown-operation").is_empty());
        assert!(check(&completed_after(100)).is_empty());
    }
}
