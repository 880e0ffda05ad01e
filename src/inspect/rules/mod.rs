//! Ordering anomaly and deadline rules: what `graphtape check` reports.
//!
//! Graph does not guarantee the order of its notifications, nor their order relative
//! to the HTTP responses of the requests that caused them, and a bot that assumes
//! otherwise fails intermittently; Graph also enforces deadlines a bot can miss. Each
//! rule is a small function over the whole session that names one such pattern, with
//! a stable id scripts can filter on. [`RULES`] is the one table of them: `check`
//! runs it and `check --rules` / `check --help` print it, so the two cannot drift.
//! Text comparisons of states and statuses ignore case (`Running`, `Updated` exist).
//!
//! One file per family: [`race`] (notifications racing responses), [`lifecycle`]
//! (call states and deadlines), [`operations`], [`delivery`] (duplicates and
//! in-payload sequences), [`answers`] (how the bot and Graph answered).

mod answers;
mod delivery;
mod lifecycle;
mod operations;
mod race;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::view::{self, clean, Note};
use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::{CallIds, IdRef};

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

/// What a rule function found, before [`check`] stamps the rule's id on it.
struct Hit {
    severity: Severity,
    call: Option<String>,
    seqs: Vec<u64>,
    message: String,
}

/// Settings of the rules that have a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// `answer-too-late`: longest time from an `incoming` notification to the bot's
    /// answer, reject or redirect, in microseconds.
    pub answer_limit_us: i64,
}

/// Graph drops an incoming call not answered within 15 s (`call: answer` reference).
pub const DEFAULT_ANSWER_LIMIT_US: i64 = 15_000_000;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            answer_limit_us: DEFAULT_ANSWER_LIMIT_US,
        }
    }
}

/// A rule: its id, how severe its findings are, what it looks for, and the function
/// that looks. The one list of rules ([`RULES`]).
#[derive(Clone, Copy)]
pub struct RuleInfo {
    /// The id findings carry.
    pub id: &'static str,
    /// The severities its findings take, as documented (`warning > 1 s, error > 5 s`).
    pub severity: &'static str,
    /// One line on what the rule looks for.
    pub summary: &'static str,
    run: fn(&Session<'_>, &CheckOptions) -> Vec<Hit>,
}

impl fmt::Debug for RuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleInfo")
            .field("id", &self.id)
            .field("severity", &self.severity)
            .finish_non_exhaustive()
    }
}

/// Every rule [`check`] runs, in the order their findings are listed on a tie.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: "notification-before-response",
        severity: "warning",
        summary: "a notification about a call or operation arrived before the response of the request that created (or answered) it",
        run: race::notification_before_response,
    },
    RuleInfo {
        id: "state-regression",
        severity: "error",
        summary: "a call's state went backwards (e.g. established, then establishing)",
        run: lifecycle::state_regression,
    },
    RuleInfo {
        id: "state-skipped",
        severity: "warning",
        summary: "a call went from establishing to terminating/terminated without being established",
        run: lifecycle::state_skipped,
    },
    RuleInfo {
        id: "answer-too-late",
        severity: "error",
        summary: "an incoming call was answered, rejected or redirected more than --answer-limit (15 s) after its incoming notification: Graph drops it",
        run: lifecycle::answer_too_late,
    },
    RuleInfo {
        id: "operation-after-final-response",
        severity: "warning",
        summary: "an operation was notified although its HTTP response already said completed or failed",
        run: operations::after_final_response,
    },
    RuleInfo {
        id: "operation-never-completed",
        severity: "warning",
        summary: "an operation answered notStarted/running, and no completed or failed notification followed",
        run: operations::never_completed,
    },
    RuleInfo {
        id: "operation-timeout-risk",
        severity: "warning",
        summary: "an operation completed more than 30 s after its request: the Graph Communications SDK has given up by then and ignores the completion",
        run: operations::timeout_risk,
    },
    RuleInfo {
        id: "unknown-operation",
        severity: "warning",
        summary: "a notification about an operation that no request of the session created",
        run: operations::unknown_operation,
    },
    RuleInfo {
        id: "call-not-terminated",
        severity: "info",
        summary: "a call's last recorded state is not terminated",
        run: lifecycle::call_not_terminated,
    },
    RuleInfo {
        id: "call-without-end",
        severity: "info",
        summary: "a call announced by a created notification reached terminated, but no deleted notification about it followed by the session's end",
        run: lifecycle::call_without_end,
    },
    RuleInfo {
        id: "duplicate-notification",
        severity: "warning",
        summary: "the same notification body (or the same notification) was delivered twice",
        run: delivery::duplicate_notifications,
    },
    RuleInfo {
        id: "sequence-out-of-order",
        severity: "warning",
        summary: "toneInfo.sequenceId or a roster sequenceNumber decreased or repeated within a call",
        run: delivery::sequence_out_of_order,
    },
    RuleInfo {
        id: "slow-ack",
        severity: "warning > 1 s, error > 5 s",
        summary: "the bot took over 1 s (warning) or 5 s (error) to answer a notification",
        run: answers::slow_ack,
    },
    RuleInfo {
        id: "bot-rejected",
        severity: "error",
        summary: "the bot answered a notification with a non-2xx status, or not at all",
        run: answers::bot_rejected,
    },
    RuleInfo {
        id: "graph-error",
        severity: "warning 4xx, error 5xx",
        summary: "Graph answered 4xx (warning), 5xx or not at all (error)",
        run: answers::graph_errors,
    },
];

/// The rule table as aligned lines (id, severity, summary): `check --rules` prints
/// them and `check --help` shows them.
pub fn rules_table() -> Vec<String> {
    let id = RULES.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let sev = RULES.iter().map(|r| r.severity.len()).max().unwrap_or(0);
    RULES
        .iter()
        .map(|r| format!("{:<id$}  {:<sev$}  {}", r.id, r.severity, r.summary))
        .collect()
}

/// Runs every rule over a session (exchanges in sequence order) with the default
/// limits and returns the findings ordered by their first sequence number.
pub fn check(exchanges: &[Exchange<StoredBody>]) -> Vec<Finding> {
    check_with(exchanges, &CheckOptions::default())
}

/// [`check`] with the given limits.
pub fn check_with(exchanges: &[Exchange<StoredBody>], options: &CheckOptions) -> Vec<Finding> {
    let session = Session::new(exchanges);
    let mut findings: Vec<Finding> = RULES
        .iter()
        .flat_map(|rule| {
            (rule.run)(&session, options)
                .into_iter()
                .map(|hit| Finding {
                    rule: rule.id,
                    severity: hit.severity,
                    call: hit.call,
                    seqs: hit.seqs,
                    message: hit.message,
                })
        })
        .collect();
    // Stable: findings on the same first seq keep the table's order.
    findings.sort_by_key(|f| f.seqs.first().copied().unwrap_or(u64::MAX));
    findings
}

/// The session with what the rules ask of every exchange worked out once: a
/// callback's notifications, an API exchange's ids (parsing response bodies is the
/// costly part, and several rules ask).
struct Session<'a> {
    exchanges: &'a [Exchange<StoredBody>],
    notes: Vec<Vec<Note>>,
    facts: Vec<Facts>,
}

/// The ids of one API exchange (empty for a callback).
#[derive(Default)]
struct Facts {
    /// What it is about: [`view::api_ids`].
    ids: CallIds,
    /// What it brought into being: [`view::created_ids`].
    created: CallIds,
}

type Ex = Exchange<StoredBody>;

impl<'a> Session<'a> {
    fn new(exchanges: &'a [Ex]) -> Self {
        Session {
            exchanges,
            notes: exchanges.iter().map(view::notes).collect(),
            facts: exchanges
                .iter()
                .map(|ex| match ex.direction {
                    Direction::Api => Facts {
                        ids: view::api_ids(ex),
                        created: view::created_ids(ex),
                    },
                    Direction::Callback => Facts::default(),
                })
                .collect(),
        }
    }

    /// The API exchanges with their ids.
    fn api(&self) -> impl Iterator<Item = (&'a Ex, &Facts)> {
        self.exchanges
            .iter()
            .zip(&self.facts)
            .filter(|(ex, _)| ex.direction == Direction::Api)
    }

    fn callbacks(&self) -> impl Iterator<Item = (&'a Ex, &[Note])> {
        self.exchanges
            .iter()
            .zip(&self.notes)
            .filter(|(ex, _)| ex.direction == Direction::Callback)
            .map(|(ex, notes)| (ex, notes.as_slice()))
    }
}

fn hit(severity: Severity, call: Option<&IdRef>, seqs: &[u64], message: String) -> Hit {
    let mut seqs = seqs.to_vec();
    seqs.sort_unstable();
    seqs.dedup();
    Hit {
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

#[cfg(test)]
mod testkit;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::inspect::testutil::{
        api, call_state_body, callback, roster_body, seed_flow, CALL_A,
    };
    use testkit::{invite, CALL_A_NORM};

    #[test]
    fn the_seed_flow_is_clean() {
        let findings = check(&seed_flow());
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn every_rule_is_listed_once_with_a_severity_and_summary() {
        let ids: HashSet<&str> = RULES.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), RULES.len());
        assert!(RULES
            .iter()
            .all(|r| !r.severity.is_empty() && !r.summary.is_empty()));
        let table = rules_table();
        assert_eq!(table.len(), RULES.len());
        // Aligned: every summary starts in the same column.
        let column = |line: &str, r: &RuleInfo| line.find(r.summary);
        let columns: HashSet<Option<usize>> =
            table.iter().zip(RULES).map(|(l, r)| column(l, r)).collect();
        assert_eq!(columns.len(), 1, "{table:#?}");
        assert!(
            table[0].starts_with("notification-before-response    warning  "),
            "{}",
            table[0]
        );
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
            Some(serde_json::Value::String("warning".into()))
        );
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
        let regression = findings.iter().find(|f| f.rule == "state-regression");
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
            r#"{"value":[{"changeType":"created","resource":"/app/calls/A","resourceData":{"state":"incoming"}}]}"#,
            r#"{"value":[{"resource":"/app/calls/A/operations/B","resourceData":{"status":"completed"}}]}"#,
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
        ex.push(api(104, i64::MIN / 1000, "POST", "/app/calls/A/answer").build());
        let _ = check(&ex);
        let _ = check_with(
            &ex,
            &CheckOptions {
                answer_limit_us: i64::MIN,
            },
        );
        for e in crate::inspect::timeline(&ex) {
            let _ = crate::inspect::render_line(&e, true);
            let _ = crate::inspect::event_json(&e);
        }
        let _ = crate::inspect::calls(&ex);
        let _ = crate::inspect::har(&crate::inspect::testutil::session(), &ex);
    }
}
