//! Ordering anomaly rules: what `graphtape inspect --check` reports.
//!
//! Graph does not guarantee the order of its notifications, nor their order relative
//! to the HTTP responses of the requests that caused them, and a bot that assumes
//! otherwise fails intermittently. Each rule is a small function over the whole
//! session that names one such pattern, with a stable id scripts can filter on.
//! Text comparisons of states and statuses ignore case (`Running`, `Updated` exist).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use super::view::{self, clean, Note};
use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::IdRef;

/// How bad a finding is; ordered so `--min-severity` can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, often a recording cut short.
    Info,
    /// A race or oddity a robust bot must tolerate.
    Warning,
    /// Something failed, or a bot will likely misbehave.
    Error,
}

impl Severity {
    /// The lower-case name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    /// `info`, `warning` or `error`, in any case; the error is a message for the user.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Severity::Info, Severity::Warning, Severity::Error]
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown severity {s:?} (expected info, warning or error)"))
    }
}

/// One anomaly, tied to the exchanges that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's stable id (see [`RULES`]).
    pub rule: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// Lookup form of the call concerned, if one is known.
    pub call: Option<String>,
    /// The sequence numbers involved, ascending.
    pub seqs: Vec<u64>,
    /// What happened, naming the seqs and ids as recorded.
    pub message: String,
}

impl Finding {
    /// One line for a terminal: severity, rule, seqs, call, message; ANSI colour only
    /// when `color` is set.
    pub fn render(&self, color: bool) -> String {
        let code = match self.severity {
            Severity::Error => "31",
            Severity::Warning => "33",
            Severity::Info => "2",
        };
        let severity = format!("{:<7}", self.severity.as_str());
        let severity = if color {
            format!("\x1b[{code}m{severity}\x1b[0m")
        } else {
            severity
        };
        let seqs: Vec<String> = self.seqs.iter().map(u64::to_string).collect();
        let call = self
            .call
            .as_deref()
            .map(|c| format!(" call {}", clean(c)))
            .unwrap_or_default();
        format!(
            "{severity} {} seq {}{call}: {}",
            self.rule,
            seqs.join(","),
            clean(&self.message)
        )
    }
}

/// A rule's id and what it looks for, for `--help` and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleInfo {
    /// The id findings carry.
    pub id: &'static str,
    /// One line on what the rule looks for.
    pub summary: &'static str,
}

const NOTIFICATION_BEFORE_RESPONSE: &str = "notification-before-response";
const STATE_REGRESSION: &str = "state-regression";
const STATE_SKIPPED: &str = "state-skipped";
const OPERATION_AFTER_FINAL_RESPONSE: &str = "operation-after-final-response";
const OPERATION_NEVER_COMPLETED: &str = "operation-never-completed";
const CALL_NOT_TERMINATED: &str = "call-not-terminated";
const DUPLICATE_NOTIFICATION: &str = "duplicate-notification";
const SEQUENCE_OUT_OF_ORDER: &str = "sequence-out-of-order";
const SLOW_ACK: &str = "slow-ack";
const BOT_REJECTED: &str = "bot-rejected";
const GRAPH_ERROR: &str = "graph-error";

/// Every rule [`check`] runs.
pub const RULES: [RuleInfo; 11] = [
    RuleInfo {
        id: NOTIFICATION_BEFORE_RESPONSE,
        summary: "a notification about a call or operation arrived before the response of the request that created (or answered) it",
    },
    RuleInfo {
        id: STATE_REGRESSION,
        summary: "a call's state went backwards (e.g. established, then establishing)",
    },
    RuleInfo {
        id: STATE_SKIPPED,
        summary: "a call went from establishing to terminating/terminated without being established",
    },
    RuleInfo {
        id: OPERATION_AFTER_FINAL_RESPONSE,
        summary: "an operation was notified although its HTTP response already said completed or failed",
    },
    RuleInfo {
        id: OPERATION_NEVER_COMPLETED,
        summary: "an operation answered notStarted/running, and no completed or failed notification followed",
    },
    RuleInfo {
        id: CALL_NOT_TERMINATED,
        summary: "a call's last recorded state is not terminated",
    },
    RuleInfo {
        id: DUPLICATE_NOTIFICATION,
        summary: "the same notification body (or the same notification) was delivered twice",
    },
    RuleInfo {
        id: SEQUENCE_OUT_OF_ORDER,
        summary: "toneInfo.sequenceId or a roster sequenceNumber decreased or repeated within a call",
    },
    RuleInfo {
        id: SLOW_ACK,
        summary: "the bot took over 1 s (warning) or 5 s (error) to answer a notification",
    },
    RuleInfo {
        id: BOT_REJECTED,
        summary: "the bot answered a notification with a non-2xx status, or not at all",
    },
    RuleInfo {
        id: GRAPH_ERROR,
        summary: "Graph answered 4xx (warning), 5xx or not at all (error)",
    },
];

/// Runs every rule over a session (exchanges in sequence order) and returns the
/// findings ordered by their first sequence number.
pub fn check(exchanges: &[Exchange<StoredBody>]) -> Vec<Finding> {
    let session = Session::new(exchanges);
    let rules: [fn(&Session<'_>) -> Vec<Finding>; 8] = [
        notification_before_response,
        state_order,
        operations,
        call_not_terminated,
        duplicate_notifications,
        sequence_out_of_order,
        callback_answers,
        graph_errors,
    ];
    let mut findings: Vec<Finding> = rules.iter().flat_map(|rule| rule(&session)).collect();
    // Stable: findings on the same first seq keep the rules' order.
    findings.sort_by_key(|f| f.seqs.first().copied().unwrap_or(u64::MAX));
    findings
}

/// The session with each callback's notifications parsed once.
struct Session<'a> {
    exchanges: &'a [Exchange<StoredBody>],
    notes: Vec<Vec<Note>>,
}

type Ex = Exchange<StoredBody>;

impl<'a> Session<'a> {
    fn new(exchanges: &'a [Ex]) -> Self {
        Session {
            exchanges,
            notes: exchanges.iter().map(view::notes).collect(),
        }
    }

    fn api(&self) -> impl Iterator<Item = &'a Ex> {
        self.exchanges
            .iter()
            .filter(|ex| ex.direction == Direction::Api)
    }

    fn callbacks(&self) -> impl Iterator<Item = (&'a Ex, &[Note])> {
        self.exchanges
            .iter()
            .zip(&self.notes)
            .filter(|(ex, _)| ex.direction == Direction::Callback)
            .map(|(ex, notes)| (ex, notes.as_slice()))
    }
}

fn finding(
    rule: &'static str,
    severity: Severity,
    call: Option<&IdRef>,
    seqs: &[u64],
    message: String,
) -> Finding {
    let mut seqs = seqs.to_vec();
    seqs.sort_unstable();
    seqs.dedup();
    Finding {
        rule,
        severity,
        call: call.map(|c| c.norm.clone()),
        seqs,
        message,
    }
}

fn norm_eq(id: Option<&IdRef>, other: &IdRef) -> bool {
    id.is_some_and(|i| i.norm == other.norm)
}

fn describe(ex: &Ex) -> String {
    format!("{} {}", ex.request.method, view::full_path(ex))
}

// ---- notification-before-response -------------------------------------------------

/// What an API exchange brought into being, which notifications may then be about.
enum Created {
    Call(IdRef),
    Answered(IdRef),
    Operation(IdRef),
}

impl Created {
    fn of(ex: &Ex) -> Vec<Created> {
        let created = view::created_ids(ex);
        let mut out: Vec<Created> = created
            .operation
            .into_iter()
            .map(Created::Operation)
            .collect();
        match created.call {
            Some(call) => out.push(Created::Call(call)),
            None if view::is_answer(ex) => {
                out.extend(view::api_ids(ex).call.map(Created::Answered));
            }
            None => {}
        }
        out
    }

    fn is_about(&self, note: &Note) -> bool {
        match self {
            Created::Operation(op) => norm_eq(note.index.operation.as_ref(), op),
            Created::Call(call) | Created::Answered(call) => {
                norm_eq(note.index.call.as_ref(), call)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Created::Operation(op) => format!("operation {} that it created", op.raw),
            Created::Call(call) => format!("call {} that it created", call.raw),
            Created::Answered(call) => format!("call {} that it answered", call.raw),
        }
    }
}

/// A notification that reached the bot between a request and its response: the bot
/// may not yet know the id the notification talks about.
fn notification_before_response(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for api in s.api() {
        let Some(response_start) = api.timing.response_start_us else {
            continue;
        };
        let created = Created::of(api);
        if created.is_empty() {
            continue;
        }
        let window = api.timing.request_start_us..response_start;
        for (cb, notes) in s.callbacks() {
            let arrived = cb.timing.request_start_us;
            if !window.contains(&arrived) {
                continue;
            }
            let hit = created
                .iter()
                .find_map(|c| notes.iter().find(|n| c.is_about(n)).map(|n| (c, n)));
            if let Some((what, note)) = hit {
                let call = note.index.call.clone().or_else(|| view::api_ids(api).call);
                out.push(finding(
                    NOTIFICATION_BEFORE_RESPONSE,
                    Severity::Warning,
                    call.as_ref(),
                    &[api.seq, cb.seq],
                    format!(
                        "notification at seq {} arrived {} ms before the response to seq {} ({}) about the {}",
                        cb.seq,
                        view::ms(response_start.saturating_sub(arrived)),
                        api.seq,
                        describe(api),
                        what.describe()
                    ),
                ));
            }
        }
    }
    out
}

// ---- per-call state tracking --------------------------------------------------------

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
    /// A `deleted` notification about the call itself (Graph's last word on a call).
    deleted: bool,
    /// The bot's `DELETE` of the call: seq and status.
    hangup: Option<(u64, Option<u16>)>,
}

/// The calls of the session in order of first appearance.
fn call_tracks<'n>(s: &'n Session<'_>) -> Vec<CallTrack<'n>> {
    let mut tracks: Vec<CallTrack<'n>> = Vec::new();
    for (ex, notes) in s.exchanges.iter().zip(&s.notes) {
        if ex.direction == Direction::Api {
            if let Some(id) = view::api_ids(ex).call {
                let track = track(&mut tracks, &id, ex.seq);
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
            let deleted = note
                .index
                .change_type
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("deleted"));
            if deleted && view::is_call_resource(&note.index) {
                track.deleted = true;
            }
        }
    }
    tracks
}

fn track<'t, 'n>(
    tracks: &'t mut Vec<CallTrack<'n>>,
    id: &IdRef,
    seq: u64,
) -> &'t mut CallTrack<'n> {
    let pos = match tracks.iter().position(|t| t.id.norm == id.norm) {
        Some(pos) => pos,
        None => {
            tracks.push(CallTrack {
                id: id.clone(),
                states: Vec::new(),
                last_seq: seq,
                deleted: false,
                hangup: None,
            });
            tracks.len() - 1
        }
    };
    let track = &mut tracks[pos];
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

/// `state-regression` and `state-skipped`, which share one walk over each call.
fn state_order(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        // The furthest state reached so far (latest of that rank).
        let mut top: Option<(u8, &Seen<'_>)> = None;
        let mut establishing: Option<u64> = None;
        let mut established = false;
        let mut skip_reported = false;
        for seen in &track.states {
            let Some(r) = rank(seen.state) else { continue };
            if let Some((_, top_seen)) = top.filter(|(top_rank, _)| r < *top_rank) {
                out.push(finding(
                    STATE_REGRESSION,
                    Severity::Error,
                    Some(&track.id),
                    &[top_seen.seq, seen.seq],
                    format!(
                        "call {} went back from {} (seq {}) to {} (seq {})",
                        track.id.raw, top_seen.state, top_seen.seq, seen.state, seen.seq
                    ),
                ));
                continue;
            }
            top = Some((r, seen));
            if seen.state.eq_ignore_ascii_case("establishing") {
                establishing.get_or_insert(seen.seq);
            }
            established |= r == 2;
            if let Some(from) = establishing.filter(|_| r >= 3 && !established && !skip_reported) {
                skip_reported = true;
                let why = outcome(&seen.note.raw)
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default();
                out.push(finding(
                    STATE_SKIPPED,
                    Severity::Warning,
                    Some(&track.id),
                    &[from, seen.seq],
                    format!(
                        "call {} went from establishing (seq {from}) to {} (seq {}) without being established{why}",
                        track.id.raw, seen.state, seen.seq
                    ),
                ));
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

/// A call whose end was never recorded: the recording stopped early, or Graph (or
/// the bot) left it hanging.
fn call_not_terminated(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for track in call_tracks(s) {
        let last = track.states.last().map(|seen| seen.state);
        if track.deleted || last.is_some_and(|st| st.eq_ignore_ascii_case("terminated")) {
            continue;
        }
        let mut message = match last {
            Some(state) => format!(
                "call {} was last seen {state}; no terminated notification was recorded",
                track.id.raw
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
        out.push(finding(
            CALL_NOT_TERMINATED,
            Severity::Info,
            Some(&track.id),
            &[track.last_seq],
            message,
        ));
    }
    out
}

// ---- operations ---------------------------------------------------------------------

/// `operation-after-final-response` and `operation-never-completed`: what the HTTP
/// response said about an operation against the notifications that followed.
fn operations(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for api in s.api() {
        let Some(op) = view::created_ids(api).operation else {
            continue;
        };
        let call = view::api_ids(api).call;
        let status = view::reported(api);
        let later = || {
            s.callbacks()
                .filter(move |(cb, _)| cb.seq > api.seq)
                .filter_map(|(cb, notes)| {
                    notes
                        .iter()
                        .find(|n| norm_eq(n.index.operation.as_ref(), &op))
                        .map(|n| (cb, n))
                })
        };
        if view::is_one_of(status.as_deref(), &["completed", "failed"]) {
            for (cb, _) in later() {
                out.push(finding(
                    OPERATION_AFTER_FINAL_RESPONSE,
                    Severity::Warning,
                    call.as_ref(),
                    &[api.seq, cb.seq],
                    format!(
                        "operation {} was notified at seq {} although the response to seq {} ({}) already said {}",
                        op.raw,
                        cb.seq,
                        api.seq,
                        describe(api),
                        status.as_deref().unwrap_or_default()
                    ),
                ));
            }
        } else if view::is_one_of(status.as_deref(), &["notStarted", "running"]) {
            let finished = later()
                .any(|(_, n)| view::is_one_of(n.index.status.as_deref(), &["completed", "failed"]));
            if !finished {
                out.push(finding(
                    OPERATION_NEVER_COMPLETED,
                    Severity::Warning,
                    call.as_ref(),
                    &[api.seq],
                    format!(
                        "operation {} started by seq {} ({}) answered {}; no completed or failed notification followed",
                        op.raw,
                        api.seq,
                        describe(api),
                        status.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
    }
    out
}

// ---- duplicates and in-payload sequences --------------------------------------------

/// The same bytes delivered twice (by SHA-256 of the whole body), or the same
/// notification object inside different POSTs.
fn duplicate_notifications(s: &Session<'_>) -> Vec<Finding> {
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
            out.push(finding(
                DUPLICATE_NOTIFICATION,
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
                Some(&first) if reported.insert((first, cb.seq)) => out.push(finding(
                    DUPLICATE_NOTIFICATION,
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
fn sequence_out_of_order(s: &Session<'_>) -> Vec<Finding> {
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
                let slot = highest.entry((call_key.clone(), key));
                match slot {
                    std::collections::hash_map::Entry::Occupied(mut prev) => {
                        let (top, top_seq) = *prev.get();
                        if value <= top {
                            let verb = if value == top {
                                "repeats"
                            } else {
                                "goes back to"
                            };
                            out.push(finding(
                                SEQUENCE_OUT_OF_ORDER,
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
                    std::collections::hash_map::Entry::Vacant(slot) => {
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

// ---- how the bot answered callbacks, how Graph answered the bot ---------------------

/// Over this, Graph may give up on the bot (it asks for about 5 s).
const ACK_ERROR_US: i64 = 5_000_000;
/// Over this, the bot is close enough to the limit to be worth a look.
const ACK_WARNING_US: i64 = 1_000_000;

/// `slow-ack` and `bot-rejected`: the bot's side of each notification POST.
fn callback_answers(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (cb, notes) in s.callbacks() {
        let call = notes.iter().find_map(|n| n.index.call.as_ref());
        let took = view::latency_us(cb).or_else(|| {
            cb.timing
                .response_start_us
                .map(|t| t.saturating_sub(cb.timing.request_start_us))
        });
        if let Some(took) = took.filter(|t| *t > ACK_WARNING_US) {
            let severity = if took > ACK_ERROR_US {
                Severity::Error
            } else {
                Severity::Warning
            };
            out.push(finding(
                SLOW_ACK,
                severity,
                call,
                &[cb.seq],
                format!(
                    "the bot took {} ms to answer the notification POST at seq {}",
                    view::ms(took),
                    cb.seq
                ),
            ));
        }
        let status = cb.response.as_ref().map(|r| r.status);
        let rejected = !status.is_some_and(|st| (200..300).contains(&st)) || cb.error.is_some();
        if rejected {
            let answer = status.map_or_else(|| "no answer".to_owned(), |st| format!("status {st}"));
            let error = cb
                .error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            out.push(finding(
                BOT_REJECTED,
                Severity::Error,
                call,
                &[cb.seq],
                format!(
                    "the bot gave {answer} to the notification POST at seq {}{error}",
                    cb.seq
                ),
            ));
        }
    }
    out
}

/// Graph (or the way to it) failing an API request.
fn graph_errors(s: &Session<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for api in s.api() {
        let status = api.response.as_ref().map(|r| r.status);
        let severity = match (status, &api.error) {
            (_, Some(_)) | (None, None) => Severity::Error,
            (Some(st), None) if st >= 500 => Severity::Error,
            (Some(st), None) if st >= 400 => Severity::Warning,
            _ => continue,
        };
        let mut message = format!(
            "{} answered {}",
            describe(api),
            status.map_or_else(|| "nothing".to_owned(), |st| st.to_string())
        );
        if let Some(detail) = api
            .response
            .as_ref()
            .and_then(|r| graph_error_detail(&r.content()))
        {
            message.push_str(&format!(" ({detail})"));
        }
        if let Some(error) = &api.error {
            message.push_str(&format!(": {error}"));
        }
        out.push(finding(
            GRAPH_ERROR,
            severity,
            view::api_ids(api).call.as_ref(),
            &[api.seq],
            message,
        ));
    }
    out
}

/// `code: message` from Graph's error body `{"error":{"code":..,"message":..}}`.
fn graph_error_detail(body: &[u8]) -> Option<String> {
    let body = view::json_body(body)?;
    let error = body.get("error")?;
    let code = error.get("code").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{
        api, call_deleted_body, call_state_body, callback, incoming_body, op_status_body,
        operation_response, roster_body, seed_flow, CALL_A, CALL_A_DASHED, CALL_B, OP,
    };

    const CALL_A_NORM: &str = "57dab8b1894c409ab240bd8beae78896";
    const CALL_B_NORM: &str = "90ed37dcd8e34e119de330a955dda06f";

    /// The findings of one rule, as (severity, seqs).
    fn of(findings: &[Finding], rule: &str) -> Vec<(Severity, Vec<u64>)> {
        findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| (f.severity, f.seqs.clone()))
            .collect()
    }

    /// Graph's last word on a call, so `call-not-terminated` stays quiet.
    fn ended(seq: u64, call: &str) -> Exchange<StoredBody> {
        callback(seq, 10_000, &call_state_body(call, "terminated")).build()
    }

    fn invite(seq: u64, at_ms: i64, status: &str) -> Exchange<StoredBody> {
        api(
            seq,
            at_ms,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_B}/participants/invite"),
        )
        .respond(200, &operation_response(status))
        .location(&format!(
            "https://graph.microsoft.com/v1.0/communications/calls/{CALL_B}/operations/{OP}"
        ))
        .build()
    }

    #[test]
    fn the_seed_flow_is_clean() {
        let findings = check(&seed_flow());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn every_rule_is_listed_once() {
        let ids: HashSet<&str> = RULES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), RULES.len());
    }

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Error);
        assert_eq!("WARNING".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!(" error".parse::<Severity>(), Ok(Severity::Error));
        assert!("fatal"
            .parse::<Severity>()
            .is_err_and(|e| e.contains("fatal")));
        assert_eq!(Severity::Info.to_string(), "info");
        assert_eq!(
            serde_json::to_value(Severity::Warning).ok(),
            Some(json_str("warning"))
        );
    }

    fn json_str(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn operation_notified_before_its_response() {
        // The completion lands 10 ms into the invite's 20 ms round trip.
        let ex = vec![
            invite(1, 400, "running"),
            callback(2, 410, &op_status_body(CALL_B, OP, "completed")).build(),
            ended(3, CALL_B),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, NOTIFICATION_BEFORE_RESPONSE),
            vec![(Severity::Warning, vec![1, 2])]
        );
        let f = &findings[0];
        assert_eq!(f.call.as_deref(), Some(CALL_B_NORM));
        assert!(
            f.message.contains("9.900 ms before the response to seq 1"),
            "{}",
            f.message
        );
        assert!(f.message.contains(OP), "{}", f.message);
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn call_notified_before_create_or_answer_response() {
        let create = api(1, 100, "POST", "/v1.0/communications/calls")
            .respond(
                201,
                r#"{"id":"90ed37dc-d8e3-4e11-9de3-30a955dda06f","state":"establishing"}"#,
            )
            .latency_ms(50)
            .build();
        let early = callback(2, 120, &call_state_body(CALL_B, "establishing")).build();
        let found = of(&check(&[create, early]), NOTIFICATION_BEFORE_RESPONSE);
        assert_eq!(found, vec![(Severity::Warning, vec![1, 2])]);

        // The incoming notification precedes the answer and is not a race; the
        // establishing one inside the answer's round trip is.
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            api(
                2,
                10,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_A_DASHED}/answer"),
            )
            .respond(202, "")
            .latency_ms(30)
            .build(),
            callback(3, 20, &call_state_body(CALL_A, "establishing")).build(),
            callback(4, 60, &call_state_body(CALL_A, "established")).build(),
            callback(5, 70, &call_state_body(CALL_A, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, NOTIFICATION_BEFORE_RESPONSE),
            vec![(Severity::Warning, vec![2, 3])]
        );
        assert!(
            findings[0].message.contains("that it answered"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn state_going_backwards() {
        let ex = vec![
            callback(1, 0, &call_state_body(CALL_A, "establishing")).build(),
            callback(2, 10, &call_state_body(CALL_A, "Established")).build(),
            callback(3, 20, &call_state_body(CALL_A, "hold")).build(),
            callback(4, 30, &call_state_body(CALL_A, "established")).build(),
            callback(5, 40, &call_state_body(CALL_A, "Establishing")).build(),
            callback(6, 50, &call_state_body(CALL_A, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, STATE_REGRESSION),
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
            of(&findings, STATE_SKIPPED),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");

        let ex = vec![
            callback(1, 0, &call_state_body(CALL_B, "establishing")).build(),
            callback(2, 20, &failed).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, STATE_SKIPPED),
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
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &call_state_body(CALL_A, "established")).build(),
            callback(3, 20, &call_state_body(CALL_A, "terminated")).build(),
        ];
        assert!(check(&ex).is_empty());
    }

    #[test]
    fn notified_although_the_response_was_final() {
        let ex = vec![
            invite(1, 400, "Completed"),
            callback(2, 500, &op_status_body(CALL_B, OP, "completed")).build(),
            ended(3, CALL_B),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, OPERATION_AFTER_FINAL_RESPONSE),
            vec![(Severity::Warning, vec![1, 2])]
        );
        assert_eq!(findings[0].call.as_deref(), Some(CALL_B_NORM));
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn operation_that_never_completes() {
        let ex = vec![
            invite(1, 400, "Running"),
            // Still running is not an end.
            callback(2, 500, &op_status_body(CALL_B, OP, "running")).build(),
            ended(3, CALL_B),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, OPERATION_NEVER_COMPLETED),
            vec![(Severity::Warning, vec![1])]
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
        // A failed notification ends it.
        let ex = vec![
            invite(1, 400, "notStarted"),
            callback(2, 500, &op_status_body(CALL_B, OP, "Failed")).build(),
            ended(3, CALL_B),
        ];
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
            of(&findings, CALL_NOT_TERMINATED),
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
            of(&check(&only_api), CALL_NOT_TERMINATED),
            vec![(Severity::Info, vec![1])]
        );
    }

    #[test]
    fn same_body_twice() {
        let body = call_state_body(CALL_A, "established");
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            callback(2, 10, &body).respond(500, "").build(),
            callback(3, 20, &body).build(),
            callback(4, 30, &call_state_body(CALL_A, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, DUPLICATE_NOTIFICATION),
            vec![(Severity::Warning, vec![2, 3])]
        );
        let dup = findings.iter().find(|f| f.rule == DUPLICATE_NOTIFICATION);
        assert!(
            dup.is_some_and(|f| f.message.contains("the bot answered 500")),
            "{findings:#?}"
        );
        // The 500 itself is the bot's doing.
        assert_eq!(
            of(&findings, BOT_REJECTED),
            vec![(Severity::Error, vec![2])]
        );
        assert_eq!(findings.len(), 2, "{findings:#?}");
    }

    #[test]
    fn same_notification_in_another_batch() {
        let one = r#"{"changeType":"updated","resource":"/app/calls/ABC","resourceData":{"state":"established"}}"#;
        let other = r#"{"changeType":"updated","resource":"/app/calls/ABC/participants","resourceData":[]}"#;
        let ex = vec![
            callback(1, 0, &format!(r#"{{"value":[{one}]}}"#)).build(),
            callback(2, 10, &format!(r#"{{"value":[{other},{one}]}}"#)).build(),
        ];
        let found = of(&check(&ex), DUPLICATE_NOTIFICATION);
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
        let ex = vec![
            tone(1, 0, 1),
            tone(2, 10, 3),
            tone(3, 20, 2),
            tone(4, 30, 4),
            callback(5, 40, &call_state_body(CALL_A, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, SEQUENCE_OUT_OF_ORDER),
            vec![(Severity::Warning, vec![2, 3])]
        );
        assert!(findings[0]
            .message
            .contains("toneInfo.sequenceId goes back to 2 at seq 3 after 3 at seq 2"));
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn roster_sequence_repeating() {
        let roster = |n: &str| {
            format!(
                r##"{{"value":[{{"changeType":"updated","resource":"/app/calls/{CALL_B}/participants","resourceData":[{{"@odata.type":"#microsoft.graph.participant","sequenceNumber":{n},"id":"p"}},{{"sequenceNumber":{n},"id":"q"}}]}}]}}"##
            )
        };
        let ex = vec![
            callback(1, 0, &roster("5")).build(),
            callback(2, 10, &roster("\"6\"")).build(),
            callback(3, 20, &roster("6")).build(),
            callback(4, 30, &call_state_body(CALL_B, "terminated")).build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, SEQUENCE_OUT_OF_ORDER),
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
        assert!(of(&check(&ex), SEQUENCE_OUT_OF_ORDER).is_empty());
    }

    #[test]
    fn slow_acks() {
        let body = |s| call_state_body(CALL_A, s);
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A))
                .latency_ms(1_000)
                .build(),
            callback(2, 10, &body("establishing"))
                .latency_us(1_000_001)
                .build(),
            callback(3, 20, &body("established"))
                .latency_us(5_000_001)
                .build(),
            callback(4, 30, &body("terminated"))
                .latency_ms(5_000)
                .build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, SLOW_ACK),
            vec![
                (Severity::Warning, vec![2]),
                (Severity::Error, vec![3]),
                (Severity::Warning, vec![4])
            ]
        );
        assert!(
            findings[1].message.contains("5000.001 ms"),
            "{}",
            findings[1].message
        );
        assert_eq!(findings.len(), 3, "{findings:#?}");
    }

    #[test]
    fn bot_rejections() {
        let body = |s| call_state_body(CALL_A, s);
        let ex = vec![
            callback(1, 0, &incoming_body(CALL_A))
                .respond(401, "")
                .build(),
            callback(2, 10, &body("establishing"))
                .fail("bot unreachable: connection refused")
                .build(),
            callback(3, 20, &body("established"))
                .respond(200, "")
                .build(),
            callback(4, 30, &body("terminated"))
                .error("reset mid-body")
                .build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, BOT_REJECTED),
            vec![
                (Severity::Error, vec![1]),
                (Severity::Error, vec![2]),
                (Severity::Error, vec![4])
            ]
        );
        assert!(
            findings[1].message.contains("no answer")
                && findings[1].message.contains("connection refused")
        );
        assert_eq!(findings.len(), 3, "{findings:#?}");
    }

    #[test]
    fn graph_failures() {
        let ex = vec![
            api(
                1,
                0,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_B}/playPrompt"),
            )
            .respond(
                404,
                r#"{"error":{"code":"itemNotFound","message":"Call not found"}}"#,
            )
            .build(),
            api(2, 10, "GET", "/v1.0/me").respond(503, "").build(),
            api(3, 20, "GET", "/v1.0/me")
                .fail("upstreamUnreachable: refused")
                .build(),
            api(4, 30, "GET", "/v1.0/me")
                .respond(502, "{}")
                .error("upstreamReset")
                .build(),
            api(5, 40, "GET", "/v1.0/me").respond(302, "").build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, GRAPH_ERROR),
            vec![
                (Severity::Warning, vec![1]),
                (Severity::Error, vec![2]),
                (Severity::Error, vec![3]),
                (Severity::Error, vec![4])
            ]
        );
        let not_found = findings.iter().find(|f| f.rule == GRAPH_ERROR);
        assert!(
            not_found.is_some_and(|f| f.message == format!(
                "POST /v1.0/communications/calls/{CALL_B}/playPrompt answered 404 (itemNotFound: Call not found)"
            ) && f.call.as_deref() == Some(CALL_B_NORM)),
            "{findings:#?}"
        );
        let reset = findings.iter().find(|f| f.seqs == [4]);
        assert!(
            reset.is_some_and(|f| f.message == "GET /v1.0/me answered 502: upstreamReset"),
            "{findings:#?}"
        );
        // The playPrompt names call B, never seen ending: that is reported as info.
        assert_eq!(
            of(&findings, CALL_NOT_TERMINATED),
            vec![(Severity::Info, vec![1])]
        );
        assert_eq!(findings.len(), 5, "{findings:#?}");
    }

    #[test]
    fn findings_are_sorted_and_render() {
        let ex = vec![
            callback(1, 0, &call_state_body(CALL_A, "established"))
                .respond(500, "")
                .build(),
            callback(2, 10, &call_state_body(CALL_A, "establishing")).build(),
            api(3, 20, "GET", "/v1.0/me").respond(400, "").build(),
        ];
        let findings = check(&ex);
        let firsts: Vec<u64> = findings.iter().map(|f| f.seqs[0]).collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        let regression = findings.iter().find(|f| f.rule == STATE_REGRESSION);
        let line = regression.map(|f| f.render(false)).unwrap_or_default();
        assert_eq!(
            line,
            format!("error   state-regression seq 1,2 call {CALL_A_NORM}: call {CALL_A} went back from established (seq 1) to establishing (seq 2)")
        );
        assert!(regression.is_some_and(|f| f.render(true).starts_with("\x1b[31merror")));
        let json = serde_json::to_value(&findings[0]).unwrap_or_default();
        assert_eq!(json["severity"], "error");
        assert!(json["rule"].is_string() && json["seqs"].is_array());
    }

    #[test]
    fn no_input_panics() {
        let weird = [
            "",
            "null",
            "[]",
            "{}",
            r#"{"value":null}"#,
            r#"{"value":[{"resourceData":{"toneInfo":{"sequenceId":"x"}}}]}"#,
            r#"{"value":[{"resource":"/app/calls/A","resourceData":{"state":7,"status":[]}}]}"#,
            r#"{"value":[{"resource":"/app/calls/A","resourceData":{"state":"terminated","resultInfo":{"code":{}}}}]}"#,
        ];
        let mut ex: Vec<Exchange<StoredBody>> = weird
            .iter()
            .enumerate()
            .map(|(i, body)| callback(i as u64 + 1, -5, body).latency_ms(-10).build())
            .collect();
        ex.push(
            api(100, 9_000_000_000_000, "POST", "/calls")
                .respond(201, "\u{0}")
                .build(),
        );
        ex.push(api(101, 0, "", "").fail("").build());
        ex.push(invite(102, 1, "running"));
        ex.push(callback(103, 0, &roster_body(CALL_A)).latency_ms(0).build());
        let _ = check(&ex);
        for e in crate::inspect::timeline(&ex) {
            let _ = crate::inspect::render_line(&e, true);
            let _ = crate::inspect::event_json(&e);
        }
        let _ = crate::inspect::calls(&ex);
        let _ = crate::inspect::har(&crate::inspect::testutil::session(), &ex);
    }
}
