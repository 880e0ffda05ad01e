//! Which notification orders Graph may produce: the facts about each recorded
//! notification that the rules need, and the check that a schedule keeps them.
//!
//! Two kinds of constraint:
//! - **Causality** (from replay's plan): a notification cannot come before the request
//!   that caused it (nor before that request's response, when it waits for it), and a
//!   notification that a request of the bot needed cannot come after whatever that
//!   request caused. Conservatively, the bot is assumed to need every notification it
//!   had received when it made a request.
//! - **Graph's freedom** (the rule set): of one call, state notifications within one
//!   cause window may swap (Graph's `call: answer` note: "Call establishing/established
//!   notifications may arrive out of order"), roster updates move freely around state
//!   and operation notifications, nothing moves across the call's `deleted` or
//!   `terminated`; notifications of different calls interleave freely.

use crate::exchange::{Exchange, StoredBody};
use crate::graph::parse_notifications;
use crate::replay::plan::{Anchor, Plan, ResponseOrder};

/// What a notification POST is about, for the same-call rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The call's own state (`/calls/{id}`).
    State,
    /// The participant roster (`/calls/{id}/participants`).
    Roster,
    /// A commsOperation (`/calls/{id}/operations/{op}`).
    Operation,
    /// Mixed or unrecognised: never swapped within its call.
    Other,
}

/// The facts about one recorded notification POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub seq: u64,
    pub call: Option<String>,
    pub kind: Kind,
    /// It ends its call (`deleted`, or state `terminated`).
    pub terminal: bool,
    /// A short name in explanations: the state, the operation status, `roster`.
    pub label: String,
    pub anchor: Anchor,
    /// Recorded arrival, microseconds on the session clock.
    pub at_us: i64,
    /// Recorded arrival of its cause, if any.
    pub cause_us: Option<i64>,
    /// Recorded response time of its cause, if that response was recorded.
    pub cause_response_us: Option<i64>,
    /// As recorded: it came after its cause's response.
    pub after_response: bool,
}

/// A recorded API request that causes notifications, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub seq: u64,
    /// `POST invite`, `POST answer`, `DELETE call`, ...
    pub label: String,
}

/// The facts of a whole plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Per plan position (recorded order).
    pub notes: Vec<Note>,
    /// Per API ordinal.
    pub causes: Vec<Cause>,
}

/// One delivery of a schedule: a plan position, its race flip, an extra delay, and
/// whether it is a duplicate of the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivery {
    pub position: usize,
    pub response: Option<ResponseOrder>,
    pub delay_us: u64,
    pub duplicate: bool,
}

impl Delivery {
    pub fn recorded(position: usize) -> Delivery {
        Delivery {
            position,
            response: None,
            delay_us: 0,
            duplicate: false,
        }
    }
}

impl Rules {
    /// The facts of `plan` over the recorded exchanges it was made from.
    pub fn new(plan: &Plan, recorded: &[Exchange<StoredBody>]) -> Rules {
        let causes = plan
            .api
            .iter()
            .map(|&i| {
                let r = &recorded[i];
                Cause {
                    seq: r.seq,
                    label: request_label(&r.request.method, &r.request.path),
                }
            })
            .collect();
        let notes = plan
            .notifications
            .iter()
            .map(|n| {
                let ex = &recorded[n.index];
                let (kind, terminal, label) = classify(&ex.request.content());
                let cause = match n.anchor {
                    Anchor::Cause(o) => Some(&recorded[plan.api[o]]),
                    Anchor::Start => None,
                };
                Note {
                    seq: n.seq,
                    call: n.call.clone(),
                    kind,
                    terminal,
                    label,
                    anchor: n.anchor,
                    at_us: ex.timing.request_start_us,
                    cause_us: cause.map(|c| c.timing.request_start_us),
                    cause_response_us: cause.and_then(|c| c.timing.response_start_us),
                    after_response: n.after_response,
                }
            })
            .collect();
        Rules { notes, causes }
    }

    /// The identity schedule: every notification once, as recorded.
    pub fn identity(&self) -> Vec<Delivery> {
        (0..self.notes.len()).map(Delivery::recorded).collect()
    }

    /// Whether Graph's rules let `later` (recorded after `earlier`) arrive before it.
    pub fn may_overtake(&self, earlier: usize, later: usize) -> bool {
        let (a, b) = (&self.notes[earlier], &self.notes[later]);
        if a.call != b.call {
            return true;
        }
        if a.terminal || b.terminal {
            return false;
        }
        match (a.kind, b.kind) {
            (Kind::State, Kind::State) => a.anchor == b.anchor,
            (Kind::Roster, Kind::State | Kind::Operation)
            | (Kind::State | Kind::Operation, Kind::Roster) => true,
            _ => false,
        }
    }

    /// Whether `d` arrives after its cause's response in this schedule.
    fn effective_after(&self, d: &Delivery) -> bool {
        match d.response {
            Some(ResponseOrder::Before) => false,
            Some(ResponseOrder::After) => true,
            None => self.notes[d.position].after_response,
        }
    }

    /// When, on the recorded clock, `d` may go at the earliest (its gate opens).
    fn gate_us(&self, d: &Delivery) -> i64 {
        let n = &self.notes[d.position];
        match (n.cause_us, n.cause_response_us) {
            (Some(_), Some(resp)) if self.effective_after(d) => resp,
            (Some(cause), _) => cause,
            (None, _) => i64::MIN,
        }
    }

    /// Where `d` stands on the recorded clock once its race flip is applied: just
    /// before or just after its cause's response.
    fn time_us(&self, d: &Delivery) -> i64 {
        let n = &self.notes[d.position];
        match (d.response, n.cause_response_us) {
            (Some(ResponseOrder::Before), Some(resp)) => n.at_us.min(resp - 1),
            (Some(ResponseOrder::After), Some(resp)) => n.at_us.max(resp + 1),
            _ => n.at_us,
        }
    }

    /// Whether a schedule keeps causality and the rule set. Dropped notifications
    /// are not checked: dropping one is the point.
    pub fn feasible(&self, schedule: &[Delivery]) -> bool {
        for (i, x) in schedule.iter().enumerate() {
            let gate = self.gate_us(x);
            for y in &schedule[i + 1..] {
                if y.position == x.position {
                    continue;
                }
                // y comes after x, yet the recording needed y before x's gate opened.
                if self.time_us(y) < gate {
                    return false;
                }
                // An inversion of the recorded order: Graph must allow it.
                if y.position < x.position && !self.may_overtake(y.position, x.position) {
                    return false;
                }
            }
        }
        true
    }
}

/// `POST invite`, `POST answer`, `POST calls`, `DELETE call`: the method and the last
/// path segment that is not an id.
pub fn request_label(method: &str, path: &str) -> String {
    let last = path
        .split('/')
        .rev()
        .find(|s| !s.is_empty() && crate::graph::normalize_id(s).is_none_or(|n| !is_id(&n)))
        .unwrap_or("");
    let last = last.strip_prefix("microsoft.graph.").unwrap_or(last);
    let thing = if path
        .split('/')
        .next_back()
        .is_some_and(|s| crate::graph::normalize_id(s).is_some_and(|n| is_id(&n)))
    {
        "call"
    } else {
        last
    };
    format!("{method} {thing}")
}

fn is_id(norm: &str) -> bool {
    norm.len() >= 16 && norm.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Kind, terminality and label of a notification POST body.
fn classify(body: &[u8]) -> (Kind, bool, String) {
    let entries = parse_notifications(body).unwrap_or_default();
    let mut kinds = Vec::new();
    let mut terminal = false;
    let mut labels: Vec<String> = Vec::new();
    for n in &entries {
        let resource = n
            .resource_url
            .as_deref()
            .or(n.resource.as_deref())
            .unwrap_or("");
        let kind = if n.operation.is_some() {
            Kind::Operation
        } else if resource.to_ascii_lowercase().contains("/participants") {
            Kind::Roster
        } else if n.call.is_some() {
            Kind::State
        } else {
            Kind::Other
        };
        let deleted = n
            .change_type
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("deleted"));
        let state = n.state.as_deref().unwrap_or("");
        if kind == Kind::State && (deleted || state.eq_ignore_ascii_case("terminated")) {
            terminal = true;
        }
        let label = match kind {
            Kind::Roster => "roster".to_string(),
            Kind::Operation => n.status.clone().unwrap_or_else(|| "operation".into()),
            _ => n
                .state
                .clone()
                .or_else(|| n.change_type.clone())
                .unwrap_or_else(|| "notification".into()),
        };
        if !labels.contains(&label) {
            labels.push(label);
        }
        kinds.push(kind);
    }
    let kind = match kinds.first() {
        Some(&k) if kinds.iter().all(|&x| x == k) => k,
        _ => Kind::Other,
    };
    let label = if labels.is_empty() {
        "notification".to_string()
    } else {
        labels.join("+")
    };
    (kind, terminal, label)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exchange::Direction;
    use crate::replay::plan::{plan, PlanOptions};

    pub const CALL: &str = "57DAB8B1894C409AB240BD8BEAE78896";
    pub const OTHER: &str = "90ED37DCD8E34E119DE330A955DDA06F";
    pub const OP: &str = "0FE0623FD62842EDB4BD8AC290072CC5";

    fn ex(seq: u64, direction: Direction, start: i64, response: i64) -> Exchange<StoredBody> {
        crate::replay::plan::tests::ex(seq, direction, start, Some(response))
    }

    pub fn api(seq: u64, method: &str, path: &str, start: i64, resp: i64) -> Exchange<StoredBody> {
        let mut e = ex(seq, Direction::Api, start, resp);
        e.request.method = method.into();
        e.request.path = path.into();
        e
    }

    pub fn note(seq: u64, start: i64, item: &str) -> Exchange<StoredBody> {
        let mut e = ex(seq, Direction::Callback, start, start + 10);
        let body = format!(r#"{{"value":[{item}]}}"#);
        e.request.body = StoredBody::capture(body.as_bytes(), usize::MAX);
        e
    }

    pub fn state(call: &str, change: &str, state: &str) -> String {
        format!(
            r#"{{"changeType":"{change}","resource":"/app/calls/{call}","resourceData":{{"state":"{state}"}}}}"#
        )
    }

    pub fn roster(call: &str) -> String {
        format!(
            r#"{{"changeType":"updated","resource":"/app/calls/{call}/participants","resourceData":[]}}"#
        )
    }

    pub fn completed(call: &str) -> String {
        format!(
            r#"{{"changeType":"deleted","resource":"/app/calls/{call}/operations/{OP}","resourceData":{{"status":"completed"}}}}"#
        )
    }

    /// Incoming call answered, establishing/established, hang-up, terminated.
    pub fn incoming() -> Vec<Exchange<StoredBody>> {
        let call = format!("/v1.0/communications/calls/{CALL}");
        vec![
            note(1, 1_000, &state(CALL, "created", "incoming")),
            api(2, "POST", &format!("{call}/answer"), 3_000, 4_000),
            note(3, 35_000, &state(CALL, "updated", "establishing")),
            note(4, 37_000, &state(CALL, "updated", "established")),
            api(5, "DELETE", &call, 38_000, 39_000),
            note(6, 70_000, &state(CALL, "deleted", "terminated")),
        ]
    }

    /// A joined call: invite, completion after the response, roster, hang-up.
    pub fn invite() -> Vec<Exchange<StoredBody>> {
        let call = format!("/v1.0/communications/calls/{OTHER}");
        vec![
            api(1, "POST", "/v1.0/communications/calls", 1_000, 2_000),
            note(2, 35_000, &state(OTHER, "updated", "establishing")),
            note(3, 36_000, &state(OTHER, "updated", "established")),
            api(
                4,
                "POST",
                &format!("{call}/participants/invite"),
                37_000,
                38_000,
            ),
            note(5, 69_000, &completed(OTHER)),
            note(6, 70_000, &roster(OTHER)),
            api(7, "DELETE", &call, 71_000, 72_000),
            note(8, 104_000, &state(OTHER, "deleted", "terminated")),
        ]
    }

    pub fn rules_of(session: &[Exchange<StoredBody>]) -> Rules {
        let mut session = session.to_vec();
        // The join's response names the call.
        for e in &mut session {
            if e.request.path == "/v1.0/communications/calls" {
                let body = format!(r#"{{"id":"{OTHER}","state":"establishing"}}"#);
                e.response.as_mut().unwrap().body =
                    StoredBody::capture(body.as_bytes(), usize::MAX);
            }
        }
        Rules::new(&plan(&session, &PlanOptions::default()), &session)
    }

    fn moved(rules: &Rules, from: usize, to: usize) -> Vec<Delivery> {
        let mut s = rules.identity();
        let d = s.remove(from);
        s.insert(to, d);
        s
    }

    #[test]
    fn facts_name_kinds_labels_and_causes() {
        let r = rules_of(&invite());
        let labels: Vec<&str> = r.notes.iter().map(|n| n.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "establishing",
                "established",
                "completed",
                "roster",
                "terminated"
            ]
        );
        let kinds: Vec<Kind> = r.notes.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::State,
                Kind::State,
                Kind::Operation,
                Kind::Roster,
                Kind::State
            ]
        );
        assert!(r.notes[4].terminal && !r.notes[0].terminal);
        let causes: Vec<&str> = r.causes.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(causes, ["POST calls", "POST invite", "DELETE call"]);
        assert!(r.feasible(&r.identity()));
    }

    #[test]
    fn state_notifications_of_one_cause_window_may_swap() {
        let r = rules_of(&incoming());
        // establishing/established (positions 1, 2), both caused by the answer.
        assert!(r.feasible(&moved(&r, 2, 1)));
        // The incoming call cannot come after the answer's notifications: the bot
        // answered because of it.
        assert!(!r.feasible(&moved(&r, 0, 2)));
        // Nothing of a call after its deleted.
        assert!(!r.feasible(&moved(&r, 2, 3)));
    }

    #[test]
    fn roster_moves_around_operations_and_operations_stay_behind_their_request() {
        let r = rules_of(&invite());
        // roster (3) before completed (2).
        assert!(r.feasible(&moved(&r, 3, 2)));
        // completed (2) before established (1): caused by the invite, which the bot
        // made after established.
        assert!(!r.feasible(&moved(&r, 2, 1)));
    }

    #[test]
    fn races_flip_either_way_but_never_deadlock() {
        let r = rules_of(&invite());
        // completed (2) before the invite's response.
        let mut s = r.identity();
        s[2].response = Some(ResponseOrder::Before);
        assert!(r.feasible(&s));
        // roster (3), also after the response, may not go before it while completed,
        // which waits for the response, comes first.
        let mut s = r.identity();
        s[3].response = Some(ResponseOrder::Before);
        assert!(!r.feasible(&s));
    }

    #[test]
    fn different_calls_interleave_freely() {
        let mut session = incoming();
        let other = note(7, 36_000, &state(OTHER, "updated", "established"));
        session.insert(3, other);
        let r = rules_of(&session);
        // OTHER's established (its cause: the answer, the session's last request)
        // before CALL's establishing.
        assert!(r.feasible(&moved(&r, 2, 1)));
    }

    #[test]
    fn request_labels() {
        let id = "57dab8b1-894c-409a-b240-bd8beae78896";
        assert_eq!(
            request_label(
                "POST",
                &format!("/v1.0/communications/calls/{id}/microsoft.graph.answer")
            ),
            "POST answer"
        );
        assert_eq!(
            request_label("DELETE", &format!("/v1.0/communications/calls/{id}")),
            "DELETE call"
        );
        assert_eq!(
            request_label("POST", "/v1.0/communications/calls"),
            "POST calls"
        );
    }
}
