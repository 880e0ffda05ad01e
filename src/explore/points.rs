//! Perturbation points and the schedules they make: a schedule is the recorded order
//! with a list of points applied in turn, each kept only if the result is still
//! feasible under the rules. Pure.

use serde::{Deserialize, Serialize};

use super::rules::{Delivery, Rules};
use crate::replay::plan::{Anchor, ResponseOrder};

/// One change to the recorded order, named by recorded sequence numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Point {
    /// Notification `seq` is delivered just before `before` (recorded earlier).
    Move { seq: u64, before: u64 },
    /// Notification `seq` goes on the other side of its cause's response.
    Race { seq: u64, response: Side },
    /// Notification `seq` is held `ms` milliseconds longer.
    Delay { seq: u64, ms: u64 },
    /// Notification `seq` is delivered a second time, right after the first.
    Duplicate { seq: u64 },
    /// Notification `seq` never arrives.
    Drop { seq: u64 },
}

/// Which side of its cause's response a raced notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Before,
    After,
}

impl From<Side> for ResponseOrder {
    fn from(side: Side) -> Self {
        match side {
            Side::Before => ResponseOrder::Before,
            Side::After => ResponseOrder::After,
        }
    }
}

/// Which kinds of point a run may use (`--perturb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub reorder: bool,
    pub race: bool,
    pub delay: bool,
    pub duplicate: bool,
    pub drop: bool,
}

impl Point {
    pub fn seq(&self) -> u64 {
        match self {
            Point::Move { seq, .. }
            | Point::Race { seq, .. }
            | Point::Delay { seq, .. }
            | Point::Duplicate { seq }
            | Point::Drop { seq } => *seq,
        }
    }

    /// Short form for summaries: `swap 2 and 3`, `move 6 before 4`, `5 before the
    /// response to 4`, `delay 5 by 800 ms`, `duplicate 5`, `drop 5`.
    pub fn describe(&self, rules: &Rules) -> String {
        match self {
            Point::Move { seq, before } => {
                let adjacent = position(rules, *seq)
                    .zip(position(rules, *before))
                    .is_some_and(|(a, b)| a.abs_diff(b) == 1);
                if adjacent {
                    format!("swap {} and {}", before.min(seq), before.max(seq))
                } else {
                    format!("move {seq} before {before}")
                }
            }
            Point::Race { seq, response } => {
                let cause = cause_seq(rules, *seq)
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into());
                let side = match response {
                    Side::Before => "before",
                    Side::After => "after",
                };
                format!("{seq} {side} the response to {cause}")
            }
            Point::Delay { seq, ms } => format!("delay {seq} by {ms} ms"),
            Point::Duplicate { seq } => format!("duplicate {seq}"),
            Point::Drop { seq } => format!("drop {seq}"),
        }
    }
}

/// The plan position of recorded notification `seq`.
pub fn position(rules: &Rules, seq: u64) -> Option<usize> {
    rules.notes.iter().position(|n| n.seq == seq)
}

/// The recorded sequence number of the request that caused notification `seq`.
pub fn cause_seq(rules: &Rules, seq: u64) -> Option<u64> {
    let note = &rules.notes[position(rules, seq)?];
    match note.anchor {
        Anchor::Cause(o) => rules.causes.get(o).map(|c| c.seq),
        Anchor::Start => None,
    }
}

/// Every point of the allowed kinds that is feasible on its own, in a fixed order
/// (by kind, then by sequence number). Delays carry `max_delay_ms`; strategies that
/// draw a delay replace it.
pub fn universe(rules: &Rules, kinds: Kinds, max_delay_ms: u64) -> Vec<Point> {
    let notes = &rules.notes;
    let mut points = Vec::new();
    if kinds.reorder {
        for later in 0..notes.len() {
            for earlier in (0..later).rev() {
                let p = Point::Move {
                    seq: notes[later].seq,
                    before: notes[earlier].seq,
                };
                if apply(rules, std::slice::from_ref(&p)).1.len() == 1 {
                    points.push(p);
                }
            }
        }
    }
    if kinds.race {
        for (i, n) in notes.iter().enumerate() {
            if n.cause_response_us.is_none() || !matches!(n.anchor, Anchor::Cause(_)) {
                continue;
            }
            let response = if n.after_response {
                Side::Before
            } else {
                Side::After
            };
            let p = Point::Race {
                seq: notes[i].seq,
                response,
            };
            if apply(rules, std::slice::from_ref(&p)).1.len() == 1 {
                points.push(p);
            }
        }
    }
    if kinds.delay && max_delay_ms > 0 {
        points.extend(notes.iter().map(|n| Point::Delay {
            seq: n.seq,
            ms: max_delay_ms,
        }));
    }
    if kinds.duplicate {
        // A duplicate of a call's deleted would be a notification after it.
        points.extend(
            notes
                .iter()
                .filter(|n| !n.terminal)
                .map(|n| Point::Duplicate { seq: n.seq }),
        );
    }
    if kinds.drop {
        points.extend(notes.iter().map(|n| Point::Drop { seq: n.seq }));
    }
    points
}

/// Applies `points` in turn to the recorded order, skipping any that would break the
/// rules (or change nothing). Returns the schedule and the points that were applied.
pub fn apply(rules: &Rules, points: &[Point]) -> (Vec<Delivery>, Vec<Point>) {
    let mut schedule = rules.identity();
    let mut applied = Vec::new();
    for p in points {
        if let Some(next) = apply_one(rules, &schedule, p) {
            if next != schedule && rules.feasible(&next) {
                schedule = next;
                applied.push(p.clone());
            }
        }
    }
    (schedule, applied)
}

fn apply_one(rules: &Rules, schedule: &[Delivery], p: &Point) -> Option<Vec<Delivery>> {
    let at = |seq: u64| {
        let pos = position(rules, seq)?;
        schedule.iter().position(|d| d.position == pos)
    };
    let mut next = schedule.to_vec();
    match p {
        Point::Move { seq, before } => {
            let (from, to) = (at(*seq)?, at(*before)?);
            if from < to {
                return None;
            }
            let d = next.remove(from);
            next.insert(to, d);
        }
        Point::Race { seq, response } => {
            let pos = position(rules, *seq)?;
            for d in next.iter_mut().filter(|d| d.position == pos) {
                d.response = Some((*response).into());
            }
        }
        Point::Delay { seq, ms } => next[at(*seq)?].delay_us = ms.saturating_mul(1000),
        Point::Duplicate { seq } => {
            let i = at(*seq)?;
            let mut copy = next[i];
            copy.delay_us = 0;
            copy.duplicate = true;
            next.insert(i + 1, copy);
        }
        Point::Drop { seq } => {
            let pos = position(rules, *seq)?;
            next.retain(|d| d.position != pos);
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::rules::tests::{incoming, invite, rules_of};

    const ALL: Kinds = Kinds {
        reorder: true,
        race: true,
        delay: true,
        duplicate: true,
        drop: true,
    };

    #[test]
    fn the_universe_of_an_incoming_call() {
        let r = rules_of(&incoming());
        let only = |kinds: Kinds| universe(&r, kinds, 2000);
        let none = Kinds {
            reorder: false,
            race: false,
            delay: false,
            duplicate: false,
            drop: false,
        };
        assert_eq!(
            only(Kinds {
                reorder: true,
                ..none
            }),
            vec![Point::Move { seq: 4, before: 3 }]
        );
        // establishing may beat the answer's response (established only together
        // with a swap: alone it would wait behind establishing); so may the
        // terminated beat the hang-up's.
        assert_eq!(
            only(Kinds { race: true, ..none }),
            vec![
                Point::Race {
                    seq: 3,
                    response: Side::Before
                },
                Point::Race {
                    seq: 6,
                    response: Side::Before
                },
            ]
        );
        assert_eq!(
            only(Kinds {
                duplicate: true,
                ..none
            })
            .len(),
            3,
            "not the deleted"
        );
        assert_eq!(only(ALL).len(), 1 + 2 + 4 + 3 + 4);
    }

    #[test]
    fn points_apply_in_turn_and_infeasible_ones_are_skipped() {
        let r = rules_of(&incoming());
        let (s, applied) = apply(
            &r,
            &[
                Point::Move { seq: 4, before: 3 },
                Point::Duplicate { seq: 4 },
                // Incoming after the answer's notifications: never.
                Point::Move { seq: 3, before: 1 },
                Point::Delay { seq: 3, ms: 5 },
            ],
        );
        let order: Vec<(usize, bool, u64)> = s
            .iter()
            .map(|d| (d.position, d.duplicate, d.delay_us))
            .collect();
        assert_eq!(
            order,
            vec![
                (0, false, 0),
                (2, false, 0),
                (2, true, 0),
                (1, false, 5000),
                (3, false, 0)
            ]
        );
        assert_eq!(applied.len(), 3);
        assert_eq!(
            Point::Move { seq: 4, before: 3 }.describe(&r),
            "swap 3 and 4"
        );
    }

    #[test]
    fn races_and_descriptions() {
        let r = rules_of(&invite());
        let (s, applied) = apply(
            &r,
            &[Point::Race {
                seq: 5,
                response: Side::Before,
            }],
        );
        assert_eq!(applied.len(), 1);
        assert_eq!(s[2].response, Some(ResponseOrder::Before));
        assert_eq!(applied[0].describe(&r), "5 before the response to 4");
        assert_eq!(
            Point::Move { seq: 6, before: 3 }.describe(&r),
            "move 6 before 3"
        );
        // Serialised as the schedule file holds it.
        let json = serde_json::to_string(&applied[0]).unwrap();
        assert_eq!(json, r#"{"kind":"race","seq":5,"response":"before"}"#);
    }

    #[test]
    fn a_drop_leaves_the_notification_out() {
        let r = rules_of(&invite());
        let (s, _) = apply(&r, &[Point::Drop { seq: 6 }]);
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|d| d.position != 3));
    }
}
