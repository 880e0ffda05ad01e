//! Helpers the rule families' tests share.

use super::{check, Finding, Severity};
use crate::exchange::{Exchange, StoredBody};
use crate::inspect::testutil::{
    api, call_deleted_body, call_state_body, callback, operation_response, CALL_B, OP,
};

pub(super) const CALL_A_NORM: &str = "57dab8b1894c409ab240bd8beae78896";
pub(super) const CALL_B_NORM: &str = "90ed37dcd8e34e119de330a955dda06f";

/// The findings of one rule, as (severity, seqs).
pub(super) fn of(findings: &[Finding], rule: &str) -> Vec<(Severity, Vec<u64>)> {
    findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| (f.severity, f.seqs.clone()))
        .collect()
}

/// The findings of one rule over `ex`.
pub(super) fn check_of(ex: &[Exchange<StoredBody>], rule: &str) -> Vec<(Severity, Vec<u64>)> {
    of(&check(ex), rule)
}

/// Graph's last word on a call (terminated, then deleted), so the end-of-call rules
/// stay quiet.
pub(super) fn ended(seq: u64, call: &str) -> Vec<Exchange<StoredBody>> {
    vec![
        callback(seq, 10_000, &call_state_body(call, "terminated")).build(),
        callback(seq + 1, 10_010, &call_deleted_body(call)).build(),
    ]
}

/// Call B's invite at `at_ms`, answered with an operation in `status`.
pub(super) fn invite(seq: u64, at_ms: i64, status: &str) -> Exchange<StoredBody> {
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
