//! The view model the pictures are drawn from: one session as arrows between three
//! lanes (Bot | graphtape | Graph), its calls, every exchange in full, `check`'s
//! findings and, for a replay session, where it diverged from its recording.
//!
//! The HTML timeline, the Mermaid diagram and the `ui` inspector all read this one
//! model, so they cannot disagree about what happened. Pure: built from data, no I/O.

use serde::Serialize;
use serde_json::Value;

use super::rules::{Finding, Severity, RULES};
use super::view::{self, clean};
use crate::clock::format_unix_micros;
use crate::exchange::{Direction, Exchange, Headers, StoredBody};
use crate::inspect::diff::DiffLine;
use crate::store::SessionInfo;

/// The lanes, left to right.
pub const LANES: [&str; 3] = ["Bot", "graphtape", "Graph"];
const BOT: usize = 0;
const PROXY: usize = 1;
const GRAPH: usize = 2;

/// Bytes of a binary body shown as a hex dump.
const HEX_HEAD: usize = 256;

/// Everything a view of one session needs.
#[derive(Debug, Clone, Serialize)]
pub struct ViewModel {
    pub session: SessionView,
    pub lanes: [&'static str; 3],
    /// The calls in order of first appearance; a call's colour is its position.
    pub calls: Vec<CallView>,
    /// The arrows, in drawing order (time, then seq).
    pub events: Vec<EventView>,
    /// Every exchange in full, in seq order (what the side panel shows). Empty when
    /// the model is served without them (`ui` fetches one at a time).
    pub exchanges: Vec<ExchangeView>,
    pub findings: Vec<FindingView>,
    pub divergences: Vec<DivergenceView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub name: String,
    pub started_at: String,
    pub ended_us: Option<i64>,
    /// The recorded session this one replays, if it is a replay.
    pub replay_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// Lookup form (what `data-call` carries).
    pub id: String,
    /// As first spelled.
    pub raw: String,
}

/// Which of an exchange's two arrows an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Bot → Graph request.
    Request,
    /// Graph → bot answer to a request.
    Response,
    /// Graph → bot notification POST.
    Notification,
    /// Bot → Graph answer to a notification.
    Ack,
}

/// One arrow.
#[derive(Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: u64,
    pub kind: Kind,
    /// Lookup form of the call it is about.
    pub call: Option<String>,
    /// When it happened, microseconds from the session start.
    pub at_us: i64,
    /// Lane indexes (into [`LANES`]): an arrow graphtape answered itself stops there.
    pub from: usize,
    pub to: usize,
    /// Method and path, changeType resource [state], or status.
    pub label: String,
    /// The exchange failed here: an error, or a 4xx/5xx status.
    pub failed: bool,
    /// Indexes into [`ViewModel::findings`] that this arrow is part of.
    pub findings: Vec<usize>,
    /// Indexes into [`ViewModel::divergences`] about this arrow.
    pub divergences: Vec<usize>,
}

/// A `check` finding with the rule's explanation.
#[derive(Debug, Clone, Serialize)]
pub struct FindingView {
    pub rule: &'static str,
    pub severity: Severity,
    pub call: Option<String>,
    pub seqs: Vec<u64>,
    pub message: String,
    /// What the rule looks for, from the rule table.
    pub explanation: &'static str,
}

/// How a replay session differs from the session it replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DivergenceView {
    /// `unmatched` (graphtape found no recorded request for it), `extra` (not in the
    /// recording), `missing` (a recorded request the bot did not make), `undelivered`
    /// (a recorded notification this session does not have, or answered otherwise).
    pub kind: &'static str,
    /// The event of this session it is about (none for missing ones).
    pub seq: Option<u64>,
    /// The event of the recording it is about.
    pub recorded_seq: Option<u64>,
    pub summary: String,
}

/// One exchange in full, as `show --seq` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeView {
    pub seq: u64,
    pub direction: &'static str,
    pub call: Option<String>,
    pub operation: Option<String>,
    pub wall_start: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: BodyView,
    /// What graphtape changed in the body it forwarded (`callbackUri` rewriting).
    pub forwarded: Vec<Change>,
    pub target: Option<String>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Option<BodyView>,
    pub request_start_us: i64,
    pub request_end_us: Option<i64>,
    pub response_start_us: Option<i64>,
    pub response_end_us: Option<i64>,
    pub error: Option<String>,
    /// A callback's notifications: changeType, resource and resourceData each.
    pub notifications: Vec<NoteView>,
}

/// A body for reading: decoded, JSON pretty-printed, binary as a hex dump head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BodyView {
    /// `empty`, `json`, `text` or `binary`.
    pub kind: &'static str,
    pub text: String,
    /// The `content-encoding` it was sent with and was decoded from.
    pub encoding: Option<String>,
    /// Bytes on the wire.
    pub length: u64,
    /// Stored as a prefix only (`--max-body`).
    pub truncated: bool,
}

/// One value graphtape changed in a forwarded body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `callbackUri`, `a.b[0].c`: where in the JSON.
    pub path: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NoteView {
    pub change_type: Option<String>,
    pub resource: Option<String>,
    pub resource_data: Value,
}

/// Builds the model of a session. `replay` is the diff from the recording a replay
/// session replays to the session itself, when it is one.
pub fn build(
    info: &SessionInfo,
    exchanges: &[Exchange<StoredBody>],
    findings: &[Finding],
    replay: Option<&[DiffLine]>,
) -> ViewModel {
    let timeline = super::timeline(exchanges);
    let calls = super::calls(exchanges)
        .into_iter()
        .map(|c| CallView {
            id: c.id,
            raw: c.raw,
        })
        .collect();
    let findings: Vec<FindingView> = findings.iter().map(finding_view).collect();
    let divergences = replay
        .map(|d| divergences(d, exchanges))
        .unwrap_or_default();
    let mut events = Vec::with_capacity(exchanges.len() * 2);
    for (ex, t) in exchanges.iter().zip(&timeline) {
        let call = t.call.as_ref().map(|c| c.norm.clone());
        let [first, second] = arrows(ex, t);
        for (kind, at_us, from, to, label) in [first, second] {
            events.push(EventView {
                seq: ex.seq,
                kind,
                call: call.clone(),
                at_us,
                from,
                to,
                failed: ex.error.is_some()
                    || (second_kind(kind) && t.status.is_none_or(|s| s >= 400)),
                label,
                findings: marked(&findings, ex.seq, kind, |f| &f.seqs, finding_marks),
                divergences: divergences
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.seq == Some(ex.seq) && first_kind(kind))
                    .map(|(i, _)| i)
                    .collect(),
            });
        }
    }
    events.sort_by_key(|e| (e.at_us, e.seq, second_kind(e.kind)));
    ViewModel {
        session: SessionView {
            name: info.name.clone(),
            started_at: format_unix_micros(info.started_unix_us),
            ended_us: info.ended_us,
            replay_of: replay_of(info),
        },
        lanes: LANES,
        calls,
        events,
        exchanges: exchanges.iter().map(exchange_view).collect(),
        findings,
        divergences,
    }
}

/// The recorded session a replay session replays (its config says).
pub fn replay_of(info: &SessionInfo) -> Option<String> {
    info.config
        .get("replay_of")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

type Arrow = (Kind, i64, usize, usize, String);

/// The request and its answer, or the notification and its acknowledgement.
fn arrows(ex: &Exchange<StoredBody>, t: &super::TimelineEvent) -> [Arrow; 2] {
    let start = ex.timing.request_start_us;
    // The answer reached graphtape at its head; without one, when the request ended.
    let answered = ex
        .timing
        .response_start_us
        .or(ex.timing.response_end_us)
        .or(ex.timing.request_end_us)
        .unwrap_or(start)
        .max(start);
    // graphtape answered itself when it sent the request nowhere.
    let far = |lane| if ex.target.is_some() { lane } else { PROXY };
    let answer = match (t.status, &ex.error) {
        (Some(status), None) => match &t.reported {
            Some(r) => format!("{status} {}", clean(r)),
            None => status.to_string(),
        },
        (Some(status), Some(e)) => format!("{status} error: {}", clean(e)),
        (None, Some(e)) => format!("error: {}", clean(e)),
        (None, None) => "no answer".into(),
    };
    match ex.direction {
        Direction::Api => [
            (
                Kind::Request,
                start,
                BOT,
                far(GRAPH),
                format!("{} {}", ex.request.method, clean(&t.path)),
            ),
            (Kind::Response, answered, far(GRAPH), BOT, answer),
        ],
        Direction::Callback => {
            let what: Vec<String> = t
                .notes
                .iter()
                .map(|n| {
                    let mut s = clean(n.change_type.as_deref().unwrap_or("?"));
                    if let Some(r) = &n.resource {
                        s.push(' ');
                        s.push_str(&clean(r));
                    }
                    if let Some(state) = n.state.as_ref().or(n.status.as_ref()) {
                        s.push_str(&format!(" [{}]", clean(state)));
                    }
                    s
                })
                .collect();
            let label = if what.is_empty() {
                format!("{} {}", ex.request.method, clean(&t.path))
            } else {
                what.join(" | ")
            };
            let ack = match t.latency_us {
                Some(us) => format!("{answer} ({} ms)", view::ms(us)),
                None => answer,
            };
            [
                (Kind::Notification, start, GRAPH, far(BOT), label),
                (Kind::Ack, answered, far(BOT), GRAPH, ack),
            ]
        }
    }
}

fn first_kind(kind: Kind) -> bool {
    matches!(kind, Kind::Request | Kind::Notification)
}

fn second_kind(kind: Kind) -> bool {
    !first_kind(kind)
}

/// Indexes of the items that involve `seq` and mark the arrow `kind` of it.
fn marked<T>(
    items: &[T],
    seq: u64,
    kind: Kind,
    seqs: impl Fn(&T) -> &Vec<u64>,
    marks: impl Fn(&T, Kind) -> bool,
) -> Vec<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| seqs(item).contains(&seq) && marks(item, kind))
        .map(|(i, _)| i)
        .collect()
}

/// Which arrow of an exchange a finding is drawn on: what the bot sent or got that
/// the rule is about. A race is about when the response arrived, a slow or failed
/// acknowledgement about the acknowledgement, the other notification rules about the
/// notification.
fn finding_marks(f: &FindingView, kind: Kind) -> bool {
    match f.rule {
        "slow-ack" | "bot-rejected" => kind == Kind::Ack,
        "graph-error" => matches!(kind, Kind::Response | Kind::Ack),
        _ => matches!(kind, Kind::Response | Kind::Notification),
    }
}

fn finding_view(f: &Finding) -> FindingView {
    FindingView {
        rule: f.rule,
        severity: f.severity,
        call: f.call.clone(),
        seqs: f.seqs.clone(),
        message: clean(&f.message),
        explanation: RULES
            .iter()
            .find(|r| r.id == f.rule)
            .map_or("", |r| r.summary),
    }
}

/// A replay session's divergences, from the diff of its recording (A) to it (B).
fn divergences(lines: &[DiffLine], replay: &[Exchange<StoredBody>]) -> Vec<DivergenceView> {
    let unmatched = |seq: u64| {
        replay.iter().find(|e| e.seq == seq).is_some_and(|e| {
            e.direction == Direction::Api
                && e.response.as_ref().is_some_and(|r| {
                    view::json_body(&r.content())
                        .and_then(|b| b.get("error")?.get("code")?.as_str().map(str::to_owned))
                        .as_deref()
                        == Some("replayUnmatched")
                })
        })
    };
    lines
        .iter()
        .filter_map(|line| match line {
            DiffLine::Same { .. } => None,
            DiffLine::OnlyA { a_seq, summary } => Some(DivergenceView {
                kind: if summary.starts_with("api ") {
                    "missing"
                } else {
                    "undelivered"
                },
                seq: None,
                recorded_seq: Some(*a_seq),
                summary: clean(summary),
            }),
            DiffLine::OnlyB { b_seq, summary } => Some(DivergenceView {
                kind: if unmatched(*b_seq) {
                    "unmatched"
                } else {
                    "extra"
                },
                seq: Some(*b_seq),
                recorded_seq: None,
                summary: clean(summary),
            }),
        })
        .collect()
}

pub(crate) fn exchange_view(ex: &Exchange<StoredBody>) -> ExchangeView {
    let ids = view::api_ids(ex);
    let notes = view::notes(ex);
    let (call, operation) = match ex.direction {
        Direction::Api => (ids.call, ids.operation),
        Direction::Callback => notes
            .iter()
            .find(|n| n.index.call.is_some())
            .map(|n| (n.index.call.clone(), n.index.operation.clone()))
            .unwrap_or_default(),
    };
    let request_content = ex.request.content();
    let forwarded = ex
        .forwarded_body
        .as_ref()
        .map(|f| {
            changes(
                &request_content,
                &crate::content_encoding::content(
                    crate::exchange::header(&ex.request.headers, "content-encoding"),
                    &f.bytes,
                ),
            )
        })
        .unwrap_or_default();
    let resp = ex.response.as_ref();
    ExchangeView {
        seq: ex.seq,
        direction: ex.direction.as_str(),
        call: call.map(|c| c.norm),
        operation: operation.map(|o| o.norm),
        wall_start: format_unix_micros(ex.wall_start_us),
        method: ex.request.method.clone(),
        path: ex.request.path.clone(),
        query: ex.request.query.clone(),
        version: ex.request.version.clone(),
        request_headers: headers(&ex.request.headers),
        request_body: body_view(&ex.request.headers, &ex.request.body, &request_content),
        forwarded,
        target: ex.target.clone(),
        status: resp.map(|r| r.status),
        response_headers: resp.map(|r| headers(&r.headers)).unwrap_or_default(),
        response_body: resp.map(|r| body_view(&r.headers, &r.body, &r.content())),
        request_start_us: ex.timing.request_start_us,
        request_end_us: ex.timing.request_end_us,
        response_start_us: ex.timing.response_start_us,
        response_end_us: ex.timing.response_end_us,
        error: ex.error.clone(),
        notifications: notes
            .into_iter()
            .map(|n| NoteView {
                change_type: n.index.change_type,
                resource: n.index.resource.or(n.index.resource_url),
                resource_data: n.raw.get("resourceData").cloned().unwrap_or(Value::Null),
            })
            .collect(),
    }
}

/// Headers as stored (credentials are already placeholders); non-UTF-8 bytes escaped.
fn headers(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// A body for reading. `content` is the stored bytes decoded.
pub(crate) fn body_view(headers: &Headers, stored: &StoredBody, content: &[u8]) -> BodyView {
    let encoding = crate::exchange::header(headers, "content-encoding")
        .filter(|_| content != stored.bytes.as_slice())
        .map(str::to_owned);
    let (kind, text) = if content.is_empty() {
        ("empty", String::new())
    } else if let Some(json) = serde_json::from_slice::<Value>(content)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
    {
        (
            "json",
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
    } else if let Ok(text) = std::str::from_utf8(content) {
        ("text", text.to_owned())
    } else {
        ("binary", hex_dump(content))
    };
    BodyView {
        kind,
        text,
        encoding,
        length: stored.len,
        truncated: stored.truncated,
    }
}

/// `offset  hex bytes  ascii`, 16 bytes a line, the first [`HEX_HEAD`] bytes.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).take(HEX_HEAD / 16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = line
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {:<47}  {ascii}\n", i * 16, hex.join(" ")));
    }
    if bytes.len() > HEX_HEAD {
        out.push_str(&format!("... {} more bytes\n", bytes.len() - HEX_HEAD));
    }
    out
}

/// The values that differ between the body the bot sent and the one forwarded, by
/// JSON path; the whole body as one change when either is not JSON.
pub(crate) fn changes(sent: &[u8], forwarded: &[u8]) -> Vec<Change> {
    let parse = |b: &[u8]| serde_json::from_slice::<Value>(b).ok();
    let mut out = Vec::new();
    match (parse(sent), parse(forwarded)) {
        (Some(a), Some(b)) => json_changes("", &a, &b, &mut out),
        _ if sent != forwarded => out.push(Change {
            path: String::new(),
            from: String::from_utf8_lossy(sent).into_owned(),
            to: String::from_utf8_lossy(forwarded).into_owned(),
        }),
        _ => {}
    }
    out
}

fn json_changes(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match y.get(k) {
                    Some(vb) => json_changes(&p, va, vb, out),
                    None => out.push(leaf(p, Some(va), None)),
                }
            }
            for (k, vb) in y.iter().filter(|(k, _)| !x.contains_key(*k)) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.push(leaf(p, None, Some(vb)));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                json_changes(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push(leaf(path.to_owned(), Some(a), Some(b))),
        _ => {}
    }
}

fn leaf(path: String, a: Option<&Value>, b: Option<&Value>) -> Change {
    let show = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "(absent)".into(),
    };
    Change {
        path,
        from: show(a),
        to: show(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{self, api, callback, session, CALL_B, OP};

    fn racy() -> Vec<Exchange<StoredBody>> {
        let graph = "https://graph.microsoft.com/v1.0/communications/calls";
        vec![
            api(
                1,
                0,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_B}/participants/invite"),
            )
            .respond(200, &testutil::operation_response("running"))
            .location(&format!("{graph}/{CALL_B}/operations/{OP}"))
            .target(graph)
            .latency_ms(20)
            .build(),
            callback(2, 5, &testutil::op_status_body(CALL_B, OP, "completed"))
                .target("http://bot/api/calls")
                .build(),
        ]
    }

    fn model(exchanges: &[Exchange<StoredBody>]) -> ViewModel {
        build(
            &session(),
            exchanges,
            &crate::inspect::check(exchanges),
            None,
        )
    }

    #[test]
    fn two_arrows_per_exchange_in_time_order() {
        let m = model(&racy());
        let order: Vec<(u64, Kind)> = m.events.iter().map(|e| (e.seq, e.kind)).collect();
        // The notification arrives (5 ms) before the response (~20 ms): the race.
        assert_eq!(
            order,
            [
                (1, Kind::Request),
                (2, Kind::Notification),
                (2, Kind::Ack),
                (1, Kind::Response)
            ]
        );
        let req = &m.events[0];
        assert_eq!((req.from, req.to), (BOT, GRAPH));
        assert!(req.label.starts_with("POST /v1.0/communications/calls/"));
        let note = &m.events[1];
        assert_eq!((note.from, note.to), (GRAPH, BOT));
        assert!(note.label.contains("deleted /app/calls/") && note.label.ends_with("[completed]"));
        assert_eq!(m.events[3].label, "200 running");
        let call = CALL_B.to_ascii_lowercase();
        assert!(m.events.iter().all(|e| e.call.as_deref() == Some(&*call)));
        assert_eq!(m.calls.len(), 1);
        assert_eq!(m.exchanges.len(), 2);
    }

    #[test]
    fn the_race_is_marked_on_the_notification_and_the_late_response() {
        let m = model(&racy());
        let race = m
            .findings
            .iter()
            .position(|f| f.rule == "notification-before-response")
            .expect("race found");
        assert!(!m.findings[race].explanation.is_empty());
        let marked: Vec<(u64, Kind)> = m
            .events
            .iter()
            .filter(|e| e.findings.contains(&race))
            .map(|e| (e.seq, e.kind))
            .collect();
        assert_eq!(marked, [(2, Kind::Notification), (1, Kind::Response)]);
    }

    #[test]
    fn refused_requests_stop_at_graphtape() {
        let ex = api(1, 0, "CONNECT", "evil.example:443")
            .respond(403, "{}")
            .error("refused: CONNECT")
            .build();
        let m = model(&[ex]);
        assert_eq!((m.events[0].from, m.events[0].to), (BOT, PROXY));
        assert_eq!((m.events[1].from, m.events[1].to), (PROXY, BOT));
        assert!(m.events[1].failed);
        assert!(m.events[1].label.starts_with("403 error:"));
    }

    #[test]
    fn exchange_in_full_decodes_and_shows_the_rewrite() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"id":"x","state":"establishing"}"#)
            .unwrap();
        let gz = gz.finish().unwrap();
        let mut ex = api(1, 0, "POST", "/v1.0/communications/calls")
            .body(r#"{"callbackUri":"https://bot/cb","subject":"s"}"#)
            .respond(201, "")
            .build();
        ex.forwarded_body = Some(testutil::body(
            br#"{"callbackUri":"https://rec/callback/abc","subject":"s"}"#,
        ));
        let resp = ex.response.as_mut().unwrap();
        resp.headers
            .push(("content-encoding".into(), b"gzip".to_vec()));
        resp.body = testutil::body(&gz);
        let v = exchange_view(&ex);
        assert_eq!(
            v.forwarded,
            [Change {
                path: "callbackUri".into(),
                from: "https://bot/cb".into(),
                to: "https://rec/callback/abc".into()
            }]
        );
        let body = v.response_body.unwrap();
        assert_eq!(body.kind, "json");
        assert_eq!(body.encoding.as_deref(), Some("gzip"));
        assert!(body.text.contains("\"state\": \"establishing\""));
        assert_eq!(body.length, gz.len() as u64);
    }

    #[test]
    fn bodies_binary_and_notifications() {
        let b = body_view(
            &Vec::new(),
            &testutil::body(&[0, 159, 146, 150]),
            &[0, 159, 146, 150],
        );
        assert_eq!(b.kind, "binary");
        assert!(b.text.starts_with("00000000  00 9f 92 96"));
        let ex = callback(1, 0, &testutil::op_status_body(CALL_B, OP, "completed")).build();
        let v = exchange_view(&ex);
        assert_eq!(v.notifications.len(), 1);
        assert_eq!(v.notifications[0].resource_data["status"], "completed");
        assert_eq!(v.operation, Some(OP.to_ascii_lowercase()));
    }

    #[test]
    fn replay_divergences_are_classified_and_placed() {
        let recorded = racy();
        let mut replayed = racy();
        replayed[0] = api(1, 0, "POST", "/v1.0/communications/calls/x/other")
            .respond(404, r#"{"error":{"code":"replayUnmatched","message":"m"}}"#)
            .build();
        replayed.truncate(1);
        let lines = crate::inspect::diff::diff(&recorded, &replayed);
        let mut info = session();
        info.config = serde_json::json!({"replay_of": "racy"});
        let m = build(&info, &replayed, &[], Some(&lines));
        assert_eq!(m.session.replay_of.as_deref(), Some("racy"));
        let kinds: Vec<&str> = m.divergences.iter().map(|d| d.kind).collect();
        assert!(kinds.contains(&"unmatched") && kinds.contains(&"missing"));
        assert!(kinds.contains(&"undelivered"));
        let req = m.events.iter().find(|e| e.kind == Kind::Request).unwrap();
        assert_eq!(req.divergences.len(), 1);
        assert_eq!(m.divergences[req.divergences[0]].kind, "unmatched");
    }

    #[test]
    fn changes_of_non_json_and_nested() {
        assert_eq!(changes(b"a", b"a"), []);
        assert_eq!(changes(b"a", b"b")[0].to, "b");
        let c = changes(
            br#"{"x":[{"callback":"u"}]}"#,
            br#"{"x":[{"callback":"v"}],"n":1}"#,
        );
        assert_eq!(c[0].path, "x[0].callback");
        assert_eq!((c[1].path.as_str(), c[1].from.as_str()), ("n", "(absent)"));
    }
}
