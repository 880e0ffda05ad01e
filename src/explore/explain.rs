//! A failed run in words: what the bot did wrong, and which change to the recorded
//! order it did it under ("the bot answered 500 to seq 2 (establishing) delivered
//! after seq 3 (established)"). Pure.

use super::points::{cause_seq, position, Point, Side};
use super::rules::Rules;
use crate::replay::report::Divergence;

/// `seq 3 (established)`.
fn named(rules: &Rules, seq: u64) -> String {
    match position(rules, seq) {
        Some(p) => format!("seq {seq} ({})", rules.notes[p].label),
        None => format!("seq {seq}"),
    }
}

/// `seq 8 (POST invite)`.
fn request_named(rules: &Rules, seq: u64) -> String {
    match rules.causes.iter().find(|c| c.seq == seq) {
        Some(c) => format!("seq {seq} ({})", c.label),
        None => format!("seq {seq}"),
    }
}

/// The point as it affected notification `seq` itself.
fn as_seen_by(rules: &Rules, p: &Point, seq: u64) -> Option<String> {
    let response = |side: &Side, of: u64| {
        let cause = cause_seq(rules, of).map(|c| request_named(rules, c));
        let side = match side {
            Side::Before => "before",
            Side::After => "after",
        };
        format!(
            "delivered {side} the response to {}",
            cause.unwrap_or_else(|| "its cause".into())
        )
    };
    match p {
        Point::Move { seq: moved, before } if *moved == seq => {
            Some(format!("delivered before {}", named(rules, *before)))
        }
        Point::Move { seq: moved, before } if *before == seq => {
            Some(format!("delivered after {}", named(rules, *moved)))
        }
        Point::Race {
            seq: s,
            response: side,
        } if *s == seq => Some(response(side, seq)),
        Point::Delay { seq: s, ms } if *s == seq => Some(format!("delivered {ms} ms late")),
        Point::Duplicate { seq: s } if *s == seq => Some("delivered twice".into()),
        _ => None,
    }
}

/// The point in a sentence of its own: `seq 10 (completed) delivered before the
/// response to seq 8 (POST invite)`.
fn on_its_own(rules: &Rules, p: &Point) -> String {
    match p {
        Point::Drop { seq } => format!("{} dropped", named(rules, *seq)),
        _ => format!(
            "{} {}",
            named(rules, p.seq()),
            as_seen_by(rules, p, p.seq()).unwrap_or_default()
        ),
    }
}

/// What went wrong first, and the notification it is about, if any.
fn what(rules: &Rules, d: &Divergence) -> (String, Option<u64>) {
    let seq = d.recorded_seq;
    let about = |s: Option<u64>| s.map(|s| named(rules, s)).unwrap_or_default();
    match d.kind {
        "notification-status" => {
            let status = d
                .message
                .strip_prefix("the bot answered ")
                .and_then(|m| m.split(',').next())
                .unwrap_or("another status");
            (format!("the bot answered {status} to {}", about(seq)), seq)
        }
        "notification-failed" => (format!("the bot did not answer {}", about(seq)), seq),
        "notification-undelivered" => (
            format!(
                "{} was never delivered: the bot did not make its cause",
                about(seq)
            ),
            None,
        ),
        "missing-request" => {
            let request = d
                .message
                .strip_suffix(" was never made")
                .unwrap_or(&d.message);
            let at = seq
                .map(|s| format!(" (recorded seq {s})"))
                .unwrap_or_default();
            (format!("the bot never made {request}{at}"), None)
        }
        "unmatched-request" => {
            let request = d.message.split(" matches no").next().unwrap_or(&d.message);
            (
                format!("the bot made {request}, which matches no recorded request"),
                None,
            )
        }
        "extra-request" => {
            let request = d.message.split(" was made").next().unwrap_or(&d.message);
            (
                format!("the bot made {request} more often than recorded"),
                None,
            )
        }
        _ => (d.message.clone(), None),
    }
}

/// Which divergence explains a failure best: a wrong answer to a notification, then
/// a request never made, then anything.
fn first(divergences: &[Divergence]) -> Option<&Divergence> {
    let rank = |d: &Divergence| match d.kind {
        "notification-status" | "notification-failed" => 0,
        "unmatched-request" | "extra-request" => 1,
        "missing-request" => 2,
        _ => 3,
    };
    divergences.iter().min_by_key(|d| rank(d))
}

/// The failure in words. `other` is a failure that is not a divergence (the bot's
/// process exiting, `--check-cmd`), used when there is no divergence.
pub fn explain(
    rules: &Rules,
    points: &[Point],
    divergences: &[Divergence],
    other: Option<&str>,
) -> String {
    let (what, seq) = match (first(divergences), other) {
        (Some(d), _) => what(rules, d),
        (None, Some(o)) => (o.to_string(), None),
        (None, None) => ("the run failed".into(), None),
    };
    if points.is_empty() {
        return format!("{what} in the recorded order");
    }
    let direct = seq.and_then(|s| points.iter().find_map(|p| as_seen_by(rules, p, s)));
    let rest: Vec<String> = points
        .iter()
        .filter(|p| seq.is_none_or(|s| as_seen_by(rules, p, s).is_none()))
        .map(|p| on_its_own(rules, p))
        .collect();
    match (direct, rest.is_empty()) {
        (Some(direct), true) => format!("{what} {direct}"),
        (Some(direct), false) => format!("{what} {direct}, with {}", rest.join(" and ")),
        (None, _) => format!("{what} with {}", rest.join(" and ")),
    }
}

/// `1 perturbation (swap 2 and 3)`, `0 perturbations (the recorded order)`.
pub fn minimal(rules: &Rules, points: &[Point]) -> String {
    let n = points.len();
    let plural = if n == 1 { "" } else { "s" };
    if n == 0 {
        return "0 perturbations (the recorded order)".into();
    }
    let said: Vec<String> = points.iter().map(|p| p.describe(rules)).collect();
    format!("{n} perturbation{plural} ({})", said.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::rules::tests::{incoming, invite, rules_of};

    fn status(seq: u64) -> Divergence {
        Divergence {
            kind: "notification-status",
            call: None,
            recorded_seq: Some(seq),
            replay_seq: Some(9),
            message: "the bot answered 500, recorded 202".into(),
        }
    }

    #[test]
    fn a_wrong_answer_under_a_swap() {
        let r = rules_of(&incoming());
        let swap = [Point::Move { seq: 4, before: 3 }];
        assert_eq!(
            explain(&r, &swap, &[status(3)], None),
            "the bot answered 500 to seq 3 (establishing) delivered after seq 4 (established)"
        );
        assert_eq!(
            explain(&r, &swap, &[status(4)], None),
            "the bot answered 500 to seq 4 (established) delivered before seq 3 (establishing)"
        );
        assert_eq!(minimal(&r, &swap), "1 perturbation (swap 3 and 4)");
    }

    #[test]
    fn a_missing_request_under_a_race() {
        let r = rules_of(&invite());
        let race = [Point::Race {
            seq: 5,
            response: Side::Before,
        }];
        let missing = Divergence {
            kind: "missing-request",
            call: None,
            recorded_seq: Some(7),
            replay_seq: None,
            message: "DELETE /v1.0/communications/calls/x was never made".into(),
        };
        assert_eq!(
            explain(&r, &race, &[missing], None),
            "the bot never made DELETE /v1.0/communications/calls/x (recorded seq 7) with seq 5 (completed) delivered before the response to seq 4 (POST invite)"
        );
    }

    #[test]
    fn other_failures_and_the_recorded_order() {
        let r = rules_of(&incoming());
        assert_eq!(
            explain(&r, &[], &[], Some("the bot's process exited with status 3")),
            "the bot's process exited with status 3 in the recorded order"
        );
        assert_eq!(minimal(&r, &[]), "0 perturbations (the recorded order)");
        let two = [Point::Duplicate { seq: 3 }, Point::Drop { seq: 4 }];
        assert_eq!(
            explain(&r, &two, &[status(3)], None),
            "the bot answered 500 to seq 3 (establishing) delivered twice, with seq 4 (established) dropped"
        );
    }
}
