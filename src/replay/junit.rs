//! A replay's verdict as a JUnit testsuite: one testcase per call, each divergence a
//! failure (its kind as `type`, its seqs and message), order deviations one more
//! (replay counts request order within a call).

use super::report::{Divergence, Report};
use crate::junit::{Case, Failure, Suite};

/// The key the report uses for events that name no call.
const NO_CALL: &str = "(no call)";

/// The suite for one replay; `time_s` is how long it ran.
pub fn suite(report: &Report, time_s: Option<f64>) -> Suite {
    let classname = format!("graphtape.replay.{}", report.session);
    let cases = report
        .calls
        .iter()
        .map(|call| {
            let mut failures: Vec<Failure> = report
                .divergences
                .iter()
                .filter(|d| d.call.as_deref().unwrap_or(NO_CALL) == call.call)
                .map(failure)
                .collect();
            if call.order_deviations > 0 {
                failures.push(Failure {
                    kind: "order-deviation".into(),
                    message: format!(
                        "{} request pair{} made in another order than recorded",
                        call.order_deviations,
                        if call.order_deviations == 1 { "" } else { "s" }
                    ),
                    text: format!("call: {}", call.call),
                });
            }
            Case {
                name: format!("call {}", call.call),
                classname: classname.clone(),
                failures,
                output: Some(format!(
                    "requests matched {}, unmatched {}, missing {}, extra {}; notifications delivered {}, status mismatch {}, undelivered {}",
                    call.requests_matched,
                    call.requests_unmatched,
                    call.requests_missing,
                    call.requests_extra,
                    call.notifications_delivered,
                    call.notifications_status_mismatch,
                    call.notifications_undelivered
                )),
            }
        })
        .collect();
    Suite {
        name: format!("replay {}", report.session),
        time_s,
        properties: vec![
            ("session".into(), report.session.clone()),
            ("replay_session".into(), report.replay_session.clone()),
            ("passed".into(), report.passed.to_string()),
            (
                "requests_recorded".into(),
                report.requests_recorded.to_string(),
            ),
            (
                "notifications_recorded".into(),
                report.notifications_recorded.to_string(),
            ),
        ],
        cases,
    }
}

fn seqs(d: &Divergence) -> String {
    let show = |s: Option<u64>| s.map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!(
        "recorded seq {}, replay seq {}",
        show(d.recorded_seq),
        show(d.replay_seq)
    )
}

fn failure(d: &Divergence) -> Failure {
    Failure {
        kind: d.kind.to_owned(),
        message: format!("{} ({}): {}", d.kind, seqs(d), d.message),
        text: format!(
            "kind: {}\ncall: {}\n{}\n{}",
            d.kind,
            d.call.as_deref().unwrap_or(NO_CALL),
            seqs(d),
            d.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::report::ReportBuilder;

    #[test]
    fn a_case_per_call_and_a_failure_per_divergence() {
        let mut b = ReportBuilder::default();
        let abc = Some("abc".to_string());
        b.matched(&abc, 0);
        b.matched(&Some("def".into()), 0);
        for (kind, seq) in [("missing-request", 4), ("notification-status", 6)] {
            b.diverged(Divergence {
                kind,
                call: abc.clone(),
                recorded_seq: Some(seq),
                replay_seq: None,
                message: format!("{kind} at {seq}"),
            });
        }
        b.diverged(Divergence {
            kind: "interrupted",
            call: None,
            recorded_seq: None,
            replay_seq: None,
            message: "the replay was interrupted before the end".into(),
        });
        let report = b.finish("incoming", "incoming-replay-1", 3, 2, true);
        let s = suite(&report, Some(2.0));
        assert_eq!(s.name, "replay incoming");
        let names: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["call (no call)", "call abc", "call def"]);
        assert_eq!(s.failures(), 3);
        let abc = &s.cases[1];
        assert_eq!(abc.failures[0].kind, "missing-request");
        assert_eq!(
            abc.failures[0].message,
            "missing-request (recorded seq 4, replay seq -): missing-request at 4"
        );
        assert!(abc.failures[1]
            .text
            .starts_with("kind: notification-status\ncall: abc\n"));
        assert!(s.cases[2].failures.is_empty());
        assert!(s
            .properties
            .contains(&("passed".to_string(), "false".to_string())));
    }

    #[test]
    fn order_deviations_fail_their_call() {
        let mut b = ReportBuilder::default();
        let call = Some("abc".to_string());
        for ordinal in [1, 0] {
            b.matched(&call, ordinal);
        }
        let s = suite(&b.finish("s", "r", 2, 0, true), None);
        assert_eq!(s.cases[0].failures.len(), 1);
        assert_eq!(s.cases[0].failures[0].kind, "order-deviation");
        assert_eq!(
            s.cases[0].failures[0].message,
            "1 request pair made in another order than recorded"
        );
    }
}
