//! The session as one ordered list of events, and per-call summaries.
//!
//! Both directions share one sequence and one clock, so a single list shows the races
//! the rules look for: a notification landing between a request and its response.

use serde_json::{json, Value};

use super::rules::Finding;
use super::view::{self, clean, Note};
use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::{normalize_id, IdRef};

/// One notification of a callback POST, reduced to what a reader scans for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSummary {
    /// `changeType` as sent (`Updated` stays capitalised).
    pub change_type: Option<String>,
    /// `resource` as sent, else `resourceUrl`.
    pub resource: Option<String>,
    /// `resourceData.state`: a call's state.
    pub state: Option<String>,
    /// `resourceData.status`: an operation's status.
    pub status: Option<String>,
    /// The call the notification is about.
    pub call: Option<IdRef>,
    /// The operation the notification is about, if any.
    pub operation: Option<IdRef>,
}

/// One exchange on the session timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// The session-wide arrival order.
    pub seq: u64,
    /// Request start, microseconds from the session start.
    pub offset_us: i64,
    /// API (bot → Graph) or callback (Graph → bot).
    pub direction: Direction,
    /// The request method as sent.
    pub method: String,
    /// The request path with its query.
    pub path: String,
    /// For API events, the call named by the path or created by the response; for
    /// callbacks, the first call their notifications name.
    pub call: Option<IdRef>,
    /// Likewise for the operation.
    pub operation: Option<IdRef>,
    /// A callback's notifications, in body order (empty for API events and for bodies
    /// that are not notification batches).
    pub notes: Vec<NoteSummary>,
    /// What an API response body reported: an operation's `status` or a call's
    /// `state` (so `running` shows next to the invite that started it).
    pub reported: Option<String>,
    /// The response status; `None` when no response arrived.
    pub status: Option<u16>,
    /// Request start to response end.
    pub latency_us: Option<i64>,
    /// Why the exchange did not complete normally, if it did not.
    pub error: Option<String>,
}

/// The session as events, in the order given (sequence order from the store).
pub fn timeline(exchanges: &[Exchange<StoredBody>]) -> Vec<TimelineEvent> {
    exchanges.iter().map(event).collect()
}

fn event(ex: &Exchange<StoredBody>) -> TimelineEvent {
    let notes: Vec<NoteSummary> = view::notes(ex).into_iter().map(summary).collect();
    let (call, operation) = match ex.direction {
        Direction::Api => {
            let ids = view::api_ids(ex);
            (ids.call, ids.operation)
        }
        Direction::Callback => {
            let first = notes.iter().find(|n| n.call.is_some());
            (
                first.and_then(|n| n.call.clone()),
                first.and_then(|n| n.operation.clone()),
            )
        }
    };
    TimelineEvent {
        seq: ex.seq,
        offset_us: ex.timing.request_start_us,
        direction: ex.direction,
        method: ex.request.method.clone(),
        path: view::full_path(ex),
        call,
        operation,
        notes,
        reported: view::reported(ex),
        status: ex.response.as_ref().map(|r| r.status),
        latency_us: view::latency_us(ex),
        error: ex.error.clone(),
    }
}

fn summary(note: Note) -> NoteSummary {
    let n = note.index;
    NoteSummary {
        change_type: n.change_type,
        resource: n.resource.or(n.resource_url),
        state: n.state,
        status: n.status,
        call: n.call,
        operation: n.operation,
    }
}

impl TimelineEvent {
    /// Whether the event, or any of its notifications, is about the call whose lookup
    /// form is `norm`.
    fn mentions(&self, norm: &str) -> bool {
        let is = |id: &Option<IdRef>| id.as_ref().is_some_and(|i| i.norm == norm);
        is(&self.call) || self.notes.iter().any(|n| is(&n.call))
    }
}

/// Which events to keep, as `inspect` flags select them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep events about this call, in any spelling (`57DAB8B1...`, dashed, braced).
    pub call: Option<String>,
    /// Keep events from this sequence number on (inclusive).
    pub since_seq: Option<u64>,
}

impl Filter {
    /// Whether `event` passes. A call filter that names no id (`""`, `null`) matches
    /// nothing rather than everything, so a typo cannot silently show the whole session.
    pub fn matches(&self, event: &TimelineEvent) -> bool {
        let call_ok = match &self.call {
            None => true,
            Some(call) => normalize_id(call).is_some_and(|norm| event.mentions(&norm)),
        };
        call_ok && self.since_seq.is_none_or(|since| event.seq >= since)
    }

    /// The events that pass, in order.
    pub fn apply(&self, events: Vec<TimelineEvent>) -> Vec<TimelineEvent> {
        events.into_iter().filter(|e| self.matches(e)).collect()
    }

    /// Whether a finding passes: it is about the call, and involves an exchange at or
    /// after `since_seq` (so a race that straddles the cut is still shown).
    pub fn matches_finding(&self, finding: &Finding) -> bool {
        let call_ok = match &self.call {
            None => true,
            Some(call) => normalize_id(call).is_some_and(|n| finding.call.as_ref() == Some(&n)),
        };
        call_ok
            && self
                .since_seq
                .is_none_or(|since| finding.seqs.iter().any(|&s| s >= since))
    }
}

/// One call of the session, for the overview `inspect` starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSummary {
    /// Lookup form of the call id.
    pub id: String,
    /// The id as first seen.
    pub raw: String,
    /// First state a notification about the call itself reported.
    pub first_state: Option<String>,
    /// Last state a notification about the call itself reported.
    pub last_state: Option<String>,
    /// API exchanges about the call.
    pub api_count: usize,
    /// Notifications about the call (a POST may carry several).
    pub notification_count: usize,
    /// Request start of the first exchange about the call.
    pub first_us: i64,
    /// Request start of the last exchange about the call.
    pub last_us: i64,
}

impl CallSummary {
    /// Time from the first to the last exchange about the call.
    pub fn duration_us(&self) -> i64 {
        self.last_us.saturating_sub(self.first_us)
    }
}

/// The calls of a session, in order of first appearance.
pub fn calls(exchanges: &[Exchange<StoredBody>]) -> Vec<CallSummary> {
    let mut out: Vec<CallSummary> = Vec::new();
    for e in timeline(exchanges) {
        if e.direction == Direction::Api {
            if let Some(id) = &e.call {
                entry(&mut out, id, e.offset_us).api_count += 1;
            }
        }
        for n in &e.notes {
            let Some(id) = &n.call else { continue };
            let call = entry(&mut out, id, e.offset_us);
            call.notification_count += 1;
            if let Some(state) = n.state.as_ref().filter(|_| n.operation.is_none()) {
                call.first_state.get_or_insert_with(|| state.clone());
                call.last_state = Some(state.clone());
            }
        }
    }
    out
}

/// The summary for `id`, created on first sight, with `at_us` taken into its span.
fn entry<'a>(calls: &'a mut Vec<CallSummary>, id: &IdRef, at_us: i64) -> &'a mut CallSummary {
    let pos = match calls.iter().position(|c| c.id == id.norm) {
        Some(pos) => pos,
        None => {
            calls.push(CallSummary {
                id: id.norm.clone(),
                raw: id.raw.clone(),
                first_state: None,
                last_state: None,
                api_count: 0,
                notification_count: 0,
                first_us: at_us,
                last_us: at_us,
            });
            calls.len() - 1
        }
    };
    let call = &mut calls[pos];
    call.first_us = call.first_us.min(at_us);
    call.last_us = call.last_us.max(at_us);
    call
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";
const DIM: &str = "2";

/// One human-readable line per event:
/// `seq  offset ms  arrow  what [state]  status  latency`, with ANSI colours only
/// when `color` is set. Recorded text is escaped so control characters in a path or
/// payload cannot drive the terminal.
pub fn render_line(e: &TimelineEvent, color: bool) -> String {
    let paint = |text: &str, code: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let (arrow, what) = match e.direction {
        Direction::Api => ("→", describe_api(e)),
        Direction::Callback => ("←", paint(&describe_callback(e), CYAN)),
    };
    let status = match e.status {
        Some(s) if s >= 400 => paint(&s.to_string(), RED),
        Some(s) if s >= 300 => paint(&s.to_string(), YELLOW),
        Some(s) => paint(&s.to_string(), GREEN),
        None => paint("---", RED),
    };
    let latency = e
        .latency_us
        .map_or_else(|| "-".to_owned(), |us| format!("{}ms", view::ms(us)));
    let mut line = format!(
        "{:>5} {:>14} {arrow} {what}  {status}  {}",
        e.seq,
        view::offset(e.offset_us),
        paint(&latency, DIM)
    );
    if let Some(err) = &e.error {
        line.push_str("  ");
        line.push_str(&paint(&format!("error: {}", clean(err)), RED));
    }
    line
}

fn describe_api(e: &TimelineEvent) -> String {
    let mut text = format!("{} {}", clean(&e.method), clean(&e.path));
    if let Some(reported) = &e.reported {
        text.push_str(&format!(" [{}]", clean(reported)));
    }
    text
}

fn describe_callback(e: &TimelineEvent) -> String {
    if e.notes.is_empty() {
        return format!("{} {}", clean(&e.method), clean(&e.path));
    }
    let parts: Vec<String> = e
        .notes
        .iter()
        .map(|n| {
            let mut text = format!(
                "{} {}",
                clean(n.change_type.as_deref().unwrap_or("?")),
                clean(n.resource.as_deref().unwrap_or("?"))
            );
            if let Some(s) = n.state.as_deref().or(n.status.as_deref()) {
                text.push_str(&format!(" [{}]", clean(s)));
            }
            text
        })
        .collect();
    parts.join(" | ")
}

/// One JSON object per event for scripts; the keys are stable and always present
/// (`null` when unknown), ids in lookup form.
pub fn event_json(e: &TimelineEvent) -> Value {
    let norm = |id: &Option<IdRef>| id.as_ref().map(|i| i.norm.clone());
    let notes: Vec<Value> = e
        .notes
        .iter()
        .map(|n| {
            json!({
                "change_type": n.change_type,
                "resource": n.resource,
                "state": n.state,
                "status": n.status,
                "call": norm(&n.call),
                "operation": norm(&n.operation),
            })
        })
        .collect();
    json!({
        "seq": e.seq,
        "offset_us": e.offset_us,
        "direction": e.direction.as_str(),
        "method": e.method,
        "path": e.path,
        "call": norm(&e.call),
        "operation": norm(&e.operation),
        "reported": e.reported,
        "status": e.status,
        "latency_us": e.latency_us,
        "error": e.error,
        "notifications": notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{self, api, callback, seed_flow, CALL_A, CALL_A_DASHED, CALL_B};

    const CALL_A_NORM: &str = "57dab8b1894c409ab240bd8beae78896";
    const CALL_B_NORM: &str = "90ed37dcd8e34e119de330a955dda06f";

    #[test]
    fn timeline_of_the_seed_flow() {
        let events = timeline(&seed_flow());
        assert_eq!(events.len(), 14);
        let answer = &events[1];
        assert_eq!(answer.direction, Direction::Api);
        assert_eq!(answer.offset_us, 10_000);
        assert_eq!(
            answer.call.as_ref().map(|c| c.norm.as_str()),
            Some(CALL_A_NORM)
        );
        assert_eq!(answer.status, Some(202));
        assert_eq!(answer.latency_us, Some(20_000));
        let join = &events[4];
        assert_eq!(
            join.call.as_ref().map(|c| c.norm.as_str()),
            Some(CALL_B_NORM)
        );
        assert_eq!(join.reported.as_deref(), Some("establishing"));
        let invite = &events[7];
        assert_eq!(
            invite.operation.as_ref().map(|o| o.raw.as_str()),
            Some(testutil::OP)
        );
        assert_eq!(invite.reported.as_deref(), Some("Running"));
        let completed = &events[8];
        assert_eq!(completed.direction, Direction::Callback);
        assert_eq!(completed.notes.len(), 1);
        assert_eq!(completed.notes[0].status.as_deref(), Some("completed"));
        assert_eq!(
            completed.operation,
            invite.operation.as_ref().map(|o| IdRef {
                raw: testutil::OP.into(),
                norm: o.norm.clone(),
            })
        );
        assert_eq!(events[2].notes[0].state.as_deref(), Some("establishing"));
    }

    #[test]
    fn calls_in_order_of_first_appearance() {
        let calls = calls(&seed_flow());
        assert_eq!(calls.len(), 2);
        let a = &calls[0];
        assert_eq!((a.id.as_str(), a.raw.as_str()), (CALL_A_NORM, CALL_A));
        assert_eq!(a.first_state.as_deref(), Some("incoming"));
        assert_eq!(a.last_state.as_deref(), Some("terminated"));
        // answer; incoming, establishing, established, roster, terminated, deleted.
        assert_eq!((a.api_count, a.notification_count), (1, 6));
        assert_eq!(
            (a.first_us, a.last_us, a.duration_us()),
            (0, 650_000, 650_000)
        );
        let b = &calls[1];
        assert_eq!(b.raw, "90ed37dc-d8e3-4e11-9de3-30a955dda06f");
        assert_eq!(b.first_state.as_deref(), Some("establishing"));
        assert_eq!(b.last_state.as_deref(), Some("terminated"));
        // create, invite, delete; establishing, established, op completed, terminated.
        assert_eq!((b.api_count, b.notification_count), (3, 4));
    }

    #[test]
    fn filter_by_call_in_any_spelling_and_since() {
        let all = timeline(&seed_flow());
        for spelling in [
            CALL_A,
            CALL_A_DASHED,
            "{57DAB8B1-894C-409A-B240-BD8BEAE78896}",
        ] {
            let f = Filter {
                call: Some(spelling.into()),
                since_seq: None,
            };
            let seqs: Vec<u64> = f.apply(all.clone()).iter().map(|e| e.seq).collect();
            assert_eq!(seqs, vec![1, 2, 3, 4, 10, 11, 12], "{spelling}");
        }
        let f = Filter {
            call: Some(CALL_B.to_lowercase()),
            since_seq: Some(8),
        };
        let seqs: Vec<u64> = f.apply(all.clone()).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![8, 9, 13, 14]);
        let nothing = Filter {
            call: Some("null".into()),
            since_seq: None,
        };
        assert!(nothing.apply(all.clone()).is_empty());
        assert_eq!(Filter::default().apply(all.clone()).len(), all.len());
    }

    #[test]
    fn filter_findings_by_call_and_since() {
        let finding = Finding {
            rule: "state-regression",
            severity: crate::inspect::Severity::Error,
            call: Some(CALL_A_NORM.into()),
            seqs: vec![4, 6],
            message: String::new(),
        };
        let f = |call: Option<&str>, since| Filter {
            call: call.map(str::to_owned),
            since_seq: since,
        };
        assert!(f(Some(CALL_A_DASHED), Some(6)).matches_finding(&finding));
        assert!(!f(Some(CALL_A), Some(7)).matches_finding(&finding));
        assert!(!f(Some(CALL_B), None).matches_finding(&finding));
        assert!(f(None, None).matches_finding(&finding));
    }

    #[test]
    fn render_plain_and_coloured() {
        let events = timeline(&seed_flow());
        let line = render_line(&events[1], false);
        assert_eq!(
            line,
            format!("    2       10.000ms → POST /v1.0/communications/calls/{CALL_A_DASHED}/answer  202  20.000ms")
        );
        let line = render_line(&events[2], false);
        assert!(
            line.contains(&format!(
                "← updated /app/calls/{CALL_A} [establishing]  202  2.000ms"
            )),
            "{line}"
        );
        assert!(!line.contains('\x1b'));
        let coloured = render_line(&events[2], true);
        assert!(coloured.contains("\x1b[36m"), "{coloured}");
    }

    #[test]
    fn render_batches_errors_and_hostile_text() {
        let body = format!(
            r#"{{"value":[{},{}]}}"#,
            r#"{"changeType":"Updated","resource":"/app/calls/A","resourceData":{"state":"established"}}"#,
            r#"{"changeType":"deleted","resource":"/app/calls/A/operations/B","resourceData":{"status":"failed"}}"#
        );
        let e = &timeline(&[callback(1, 0, &body).build()])[0];
        assert!(render_line(e, false).contains(
            "Updated /app/calls/A [established] | deleted /app/calls/A/operations/B [failed]"
        ));
        let failed = api(2, 1, "GET", "/v1.0/me\x1b[2J?x=1")
            .fail("upstreamTimeout: no answer")
            .build();
        let e = &timeline(&[failed])[0];
        let line = render_line(e, false);
        assert!(
            line.contains("GET /v1.0/me\\u{1b}[2J?x=1  ---  -  error: upstreamTimeout"),
            "{line}"
        );
        let coloured = render_line(e, true);
        assert!(coloured.contains("\x1b[31m---\x1b[0m"), "{coloured}");
        let e = &timeline(&[api(3, 0, "GET", "/x").respond(404, "").build()])[0];
        assert!(render_line(e, true).contains("\x1b[31m404"));
    }

    #[test]
    fn json_has_stable_keys() {
        let events = timeline(&seed_flow());
        let v = event_json(&events[8]);
        let keys: Vec<&str> = v
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "seq",
                "offset_us",
                "direction",
                "method",
                "path",
                "call",
                "operation",
                "reported",
                "status",
                "latency_us",
                "error",
                "notifications"
            ]
        );
        assert_eq!(v["direction"], "callback");
        assert_eq!(v["call"], CALL_B_NORM);
        assert_eq!(v["notifications"][0]["status"], "completed");
        assert_eq!(v["notifications"][0]["change_type"], "deleted");
        let api_event = event_json(&events[1]);
        assert_eq!(api_event["notifications"], json!([]));
        assert_eq!(api_event["error"], Value::Null);
    }
}
