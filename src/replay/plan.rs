//! The replay plan: which recorded request causes each notification, what its timing
//! is measured from, and which responses must wait for a notification (recorded races).
//!
//! Pure: built from the recorded exchanges alone, so the causal model is unit-tested
//! without sockets.

use std::collections::HashMap;

use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::{api_call, parse_notifications};

/// What a notification's recorded gap is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The arrival of the API request with this ordinal (index into [`Plan::api`]).
    Cause(usize),
    /// The start of the replay (no request preceded it: an incoming call, or
    /// `--no-graph`).
    Start,
}

/// One recorded notification POST, ready to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedNotification {
    /// Index into the recorded exchanges.
    pub index: usize,
    /// Recorded sequence number.
    pub seq: u64,
    /// Path (and query) on the bot to deliver to: the path it reached when recorded.
    pub path: String,
    pub anchor: Anchor,
    /// Recorded microseconds from the anchor to this notification.
    pub gap_us: i64,
    /// Lookup id of the call it is about, if any.
    pub call: Option<String>,
    /// When recorded, it reached graphtape after the response to its cause had: it
    /// must not overtake that response in the replay either (`--fast` could).
    pub after_response: bool,
    /// Extra hold before it is sent, in microseconds (an explored delay; 0 in replay).
    pub delay_us: u64,
}

/// Where a scheduled notification goes relative to its cause's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseOrder {
    /// Before it: the response is held until the notification is delivered.
    Before,
    /// After it: the notification waits until the response has been sent.
    After,
}

/// One delivery of a schedule: which planned notification (its position in the
/// recorded-order plan), how it stands to its cause's response, and any extra delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub position: usize,
    /// None: as recorded.
    pub response: Option<ResponseOrder>,
    pub delay_us: u64,
}

impl Step {
    #[cfg(test)] // test support: only the unit tests use it
    /// The recorded notification at `position`, unchanged.
    pub fn recorded(position: usize) -> Step {
        Step {
            position,
            response: None,
            delay_us: 0,
        }
    }
}

/// The plan for a whole replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indices of the recorded API exchanges, in sequence order (their ordinal is the
    /// index into this list).
    pub api: Vec<usize>,
    /// Lookup call id of each API exchange (same ordinals as `api`).
    pub api_calls: Vec<Option<String>>,
    /// The notifications, in recorded order.
    pub notifications: Vec<PlannedNotification>,
    /// For each API ordinal, the notifications (positions in `notifications`) that the
    /// recording shows reaching the bot before that request's response: the response is
    /// held until they are delivered.
    pub holds: Vec<Vec<usize>>,
    /// Per API ordinal: a response was recorded (only then can it be held).
    pub responded: Vec<bool>,
}

/// Options that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Keep only these calls (lookup ids); empty keeps all.
    pub calls: Vec<String>,
    /// Notifications only, on the recorded clock (`--no-graph`).
    pub no_graph: bool,
}

/// Builds the plan from a session's exchanges (in sequence order).
pub fn plan(exchanges: &[Exchange<StoredBody>], options: &PlanOptions) -> Plan {
    let wanted = |call: &Option<String>| {
        options.calls.is_empty() || call.as_ref().is_some_and(|c| options.calls.contains(c))
    };
    let first_us = exchanges
        .iter()
        .map(|e| e.timing.request_start_us)
        .min()
        .unwrap_or(0);
    let mut api = Vec::new();
    let mut api_calls = Vec::new();
    let mut notifications = Vec::new();
    // Latest API ordinal so far, overall and per call.
    let mut last_api: Option<usize> = None;
    let mut last_api_of_call: HashMap<String, usize> = HashMap::new();
    for (index, ex) in exchanges.iter().enumerate() {
        match ex.direction {
            Direction::Api if !options.no_graph => {
                let call = api_call(ex);
                if !wanted(&call) {
                    continue;
                }
                let ordinal = api.len();
                api.push(index);
                if let Some(c) = &call {
                    last_api_of_call.insert(c.clone(), ordinal);
                }
                api_calls.push(call);
                last_api = Some(ordinal);
            }
            Direction::Api => {}
            Direction::Callback => {
                let call = notification_call(ex);
                if !wanted(&call)
                    || ex.response.is_none() && ex.error.is_some() && ex.target.is_none()
                {
                    // Refused when recorded (unminted path): it never reached the bot.
                    continue;
                }
                let cause = call
                    .as_ref()
                    .and_then(|c| last_api_of_call.get(c).copied())
                    .or(last_api);
                let (anchor, gap_us, after_response) = match cause {
                    Some(ordinal) => {
                        let cause_ex = &exchanges[api[ordinal]];
                        (
                            Anchor::Cause(ordinal),
                            ex.timing.request_start_us - cause_ex.timing.request_start_us,
                            cause_ex
                                .timing
                                .response_start_us
                                .is_some_and(|r| ex.timing.request_start_us >= r),
                        )
                    }
                    None => (Anchor::Start, ex.timing.request_start_us - first_us, false),
                };
                notifications.push(PlannedNotification {
                    index,
                    seq: ex.seq,
                    path: delivery_path(ex),
                    anchor,
                    gap_us: gap_us.max(0),
                    call,
                    after_response,
                    delay_us: 0,
                });
            }
        }
    }
    let responded: Vec<bool> = api
        .iter()
        .map(|&index| exchanges[index].timing.response_start_us.is_some())
        .collect();
    Plan {
        holds: holds(&notifications, &responded),
        api,
        api_calls,
        notifications,
        responded,
    }
}

/// For each API ordinal, the notifications that go before its response.
fn holds(notifications: &[PlannedNotification], responded: &[bool]) -> Vec<Vec<usize>> {
    responded
        .iter()
        .enumerate()
        .map(|(ordinal, &responded)| {
            notifications
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    responded && n.anchor == Anchor::Cause(ordinal) && !n.after_response
                })
                .map(|(position, _)| position)
                .collect()
        })
        .collect()
}

impl Plan {
    /// The plan that delivers `steps` in their order instead of the recorded one
    /// (a notification may appear twice, or not at all); the recorded order is
    /// `steps` = every position once, unchanged.
    pub fn scheduled(&self, steps: &[Step]) -> Plan {
        let notifications: Vec<PlannedNotification> = steps
            .iter()
            .filter_map(|step| {
                let mut n = self.notifications.get(step.position)?.clone();
                match step.response {
                    Some(ResponseOrder::Before) => n.after_response = false,
                    Some(ResponseOrder::After) => n.after_response = true,
                    None => {}
                }
                n.delay_us = step.delay_us;
                Some(n)
            })
            .collect();
        Plan {
            holds: holds(&notifications, &self.responded),
            api: self.api.clone(),
            api_calls: self.api_calls.clone(),
            notifications,
            responded: self.responded.clone(),
        }
    }
}

/// The call a notification POST is about: its first notification that names one.
pub fn notification_call(ex: &Exchange<StoredBody>) -> Option<String> {
    parse_notifications(&ex.request.content())
        .ok()?
        .into_iter()
        .find_map(|n| n.call.map(|c| c.norm))
}

/// Where the notification reached the bot when recorded: the path of the URL graphtape
/// forwarded it to (a rewritten callbackUri maps back to the bot's own path), else the
/// path it arrived at.
fn delivery_path(ex: &Exchange<StoredBody>) -> String {
    if let Some(target) = &ex.target {
        if let Ok(uri) = target.parse::<http::Uri>() {
            if let Some(pq) = uri.path_and_query() {
                return pq.as_str().to_string();
            }
        }
    }
    match &ex.request.query {
        Some(q) => format!("{}?{q}", ex.request.path),
        None => ex.request.path.clone(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exchange::{RequestRecord, ResponseRecord, Timing};

    const CALL: &str = "57DAB8B1894C409AB240BD8BEAE78896";

    /// A bare exchange (POST /api/calls, 202) with the given timing; tests set the rest.
    pub(crate) fn ex(
        seq: u64,
        direction: Direction,
        start: i64,
        response_start: Option<i64>,
    ) -> Exchange<StoredBody> {
        Exchange {
            seq,
            direction,
            wall_start_us: 0,
            timing: Timing {
                request_start_us: start,
                request_end_us: Some(start),
                response_start_us: response_start,
                response_end_us: response_start,
            },
            request: RequestRecord {
                method: "POST".into(),
                path: "/api/calls".into(),
                query: None,
                version: "HTTP/1.1".into(),
                headers: vec![],
                body: StoredBody::capture(b"", usize::MAX),
            },
            target: None,
            forwarded_body: None,
            response: Some(ResponseRecord {
                status: 202,
                headers: vec![],
                body: StoredBody::capture(b"", usize::MAX),
            }),
            error: None,
        }
    }

    fn api(seq: u64, path: &str, start: i64, response_start: i64) -> Exchange<StoredBody> {
        let mut e = ex(seq, Direction::Api, start, Some(response_start));
        e.request.path = path.into();
        e
    }

    fn note(seq: u64, call: &str, state: &str, start: i64) -> Exchange<StoredBody> {
        let mut e = ex(seq, Direction::Callback, start, Some(start + 10));
        let body = format!(
            r#"{{"value":[{{"changeType":"updated","resource":"/app/calls/{call}","resourceData":{{"state":"{state}"}}}}]}}"#
        );
        e.request.body = StoredBody::capture(body.as_bytes(), usize::MAX);
        e.target = Some("http://127.0.0.1:3978/api/calls?tenant=1".into());
        e
    }

    #[test]
    fn incoming_call_is_timed_from_start_then_caused_by_the_answer() {
        let answer = format!("/v1.0/communications/calls/{CALL}/answer");
        let session = vec![
            note(1, CALL, "incoming", 1_000),
            api(2, &answer, 50_000, 60_000),
            note(3, CALL, "establishing", 70_000),
            note(4, CALL, "established", 90_000),
        ];
        let p = plan(&session, &PlanOptions::default());
        assert_eq!(p.api, vec![1]);
        assert_eq!(p.api_calls, vec![Some(CALL.to_lowercase())]);
        let anchors: Vec<(Anchor, i64)> = p
            .notifications
            .iter()
            .map(|n| (n.anchor, n.gap_us))
            .collect();
        assert_eq!(
            anchors,
            vec![
                (Anchor::Start, 0),
                (Anchor::Cause(0), 20_000),
                (Anchor::Cause(0), 40_000)
            ]
        );
        assert_eq!(p.notifications[0].path, "/api/calls?tenant=1");
        assert_eq!(p.holds, vec![Vec::<usize>::new()]);
    }

    #[test]
    fn a_notification_that_beat_its_response_holds_that_response() {
        let invite = format!("/v1.0/communications/calls/{CALL}/participants/invite");
        let session = vec![
            api(1, &invite, 1_000, 9_000),
            note(2, CALL, "x", 5_000),  // before the response (9 000)
            note(3, CALL, "y", 12_000), // after it
        ];
        let p = plan(&session, &PlanOptions::default());
        assert_eq!(p.holds, vec![vec![0]]);
        let after: Vec<bool> = p.notifications.iter().map(|n| n.after_response).collect();
        assert_eq!(
            after,
            vec![false, true],
            "the second waits for the response"
        );
    }

    #[test]
    fn a_schedule_reorders_flips_races_and_recomputes_holds() {
        let invite = format!("/v1.0/communications/calls/{CALL}/participants/invite");
        let session = vec![
            api(1, &invite, 1_000, 9_000),
            note(2, CALL, "x", 5_000),
            note(3, CALL, "y", 12_000),
        ];
        let p = plan(&session, &PlanOptions::default());
        let identity = p.scheduled(&[Step::recorded(0), Step::recorded(1)]);
        assert_eq!(identity, p);
        let swapped = p.scheduled(&[
            Step {
                position: 1,
                response: Some(ResponseOrder::Before),
                delay_us: 7,
            },
            Step {
                position: 0,
                response: Some(ResponseOrder::After),
                delay_us: 0,
            },
            Step::recorded(0),
        ]);
        let seqs: Vec<u64> = swapped.notifications.iter().map(|n| n.seq).collect();
        assert_eq!(seqs, vec![3, 2, 2]);
        assert_eq!(
            swapped.holds,
            vec![vec![0, 2]],
            "the raced one and the duplicate held"
        );
        assert_eq!(swapped.notifications[0].delay_us, 7);
    }

    #[test]
    fn same_call_causes_win_over_later_requests_of_other_calls() {
        let other = "AAAAAAAABBBBCCCCDDDDEEEEEEEEEEEE";
        let session = vec![
            api(1, &format!("/communications/calls/{CALL}/answer"), 0, 10),
            api(2, &format!("/communications/calls/{other}/answer"), 20, 30),
            note(3, CALL, "established", 40),
        ];
        let p = plan(&session, &PlanOptions::default());
        assert_eq!(p.notifications[0].anchor, Anchor::Cause(0));
        assert_eq!(p.notifications[0].gap_us, 40);
    }

    #[test]
    fn call_filter_and_no_graph() {
        let other = "AAAAAAAABBBBCCCCDDDDEEEEEEEEEEEE";
        let session = vec![
            api(1, &format!("/communications/calls/{CALL}/answer"), 0, 10),
            note(2, other, "established", 40),
            note(3, CALL, "established", 50),
        ];
        let only = PlanOptions {
            calls: vec![CALL.to_lowercase()],
            no_graph: false,
        };
        let p = plan(&session, &only);
        assert_eq!(p.notifications.len(), 1);
        assert_eq!(p.notifications[0].seq, 3);
        let no_graph = PlanOptions {
            calls: vec![],
            no_graph: true,
        };
        let p = plan(&session, &no_graph);
        assert!(p.api.is_empty());
        assert!(p.notifications.iter().all(|n| n.anchor == Anchor::Start));
        assert_eq!(p.notifications[1].gap_us, 50);
    }
}
