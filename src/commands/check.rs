//! `graphtape check`: the ordering anomalies of a session.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::output::{color, emit};
use super::source::{check_call, load};
use crate::cli::CheckArgs;
use crate::config::seconds;
use crate::inspect::{calls, check_with, rules_table, CheckOptions, Filter, Finding, Severity};
use crate::junit::{self, Case, Failure, Suite};

pub fn run(db: &Path, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(session) = args.session.as_deref().filter(|_| !args.rules) else {
        emit(rules_table().into_iter(), false)?;
        return Ok(ExitCode::SUCCESS);
    };
    let answer_limit = seconds("--answer-limit", args.answer_limit, true)?;
    if args.junit.as_deref() == Some(Path::new("-")) {
        bail!("--junit -: give a file name (standard output carries the findings)");
    }
    let options = CheckOptions {
        answer_limit_us: i64::try_from(answer_limit.as_micros()).unwrap_or(i64::MAX),
    };
    let source = load(db, session)?;
    if let Some(call) = &args.call {
        check_call(&source, call)?;
    }
    let filter = Filter {
        call: args.call.clone(),
        since_seq: None,
    };
    let findings: Vec<_> = check_with(&source.exchanges, &options)
        .into_iter()
        .filter(|f| filter.matches_finding(f))
        .collect();
    if args.json {
        emit(
            findings
                .iter()
                .map(|f| serde_json::to_string(f).unwrap_or_default()),
            false,
        )?;
    } else {
        let color = color();
        let mut lines: Vec<String> = findings.iter().map(|f| f.render(color)).collect();
        let failing = findings
            .iter()
            .filter(|f| f.severity >= args.fail_on)
            .count();
        lines.push(format!(
            "{} in {} ({failing} at or above {})",
            crate::plural::count(findings.len() as u64, "finding"),
            source.info.name,
            args.fail_on
        ));
        emit(lines.into_iter(), false)?;
    }
    if let Some(path) = &args.junit {
        let ids: Vec<String> = calls(&source.exchanges).into_iter().map(|c| c.id).collect();
        let suite = suite(&source.info.name, &ids, &findings, args.fail_on);
        std::fs::write(path, junit::to_xml("graphtape check", &[suite]))
            .with_context(|| format!("writing --junit {}", path.display()))?;
    }
    let fail = findings.iter().any(|f| f.severity >= args.fail_on);
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The key for findings that name no call.
const NO_CALL: &str = "(no call)";

/// The findings as a JUnit testsuite: a testcase per call (and one for findings that
/// name no call, if any), a failure per finding at or above `fail_on`; findings below
/// it are listed in the testcase's output.
fn suite(session: &str, call_ids: &[String], findings: &[Finding], fail_on: Severity) -> Suite {
    let mut names: Vec<&str> = call_ids.iter().map(String::as_str).collect();
    if findings.iter().any(|f| f.call.is_none()) {
        names.push(NO_CALL);
    }
    let cases = names
        .into_iter()
        .map(|call| {
            let mine = findings
                .iter()
                .filter(|f| f.call.as_deref().unwrap_or(NO_CALL) == call);
            let (failing, below): (Vec<&Finding>, Vec<&Finding>) =
                mine.partition(|f| f.severity >= fail_on);
            let seqs = |f: &Finding| {
                f.seqs
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Case {
                name: format!("call {call}"),
                classname: format!("graphtape.check.{session}"),
                failures: failing
                    .iter()
                    .map(|f| Failure {
                        kind: f.rule.to_owned(),
                        message: format!(
                            "{} {} seq {}: {}",
                            f.severity,
                            f.rule,
                            seqs(f),
                            f.message
                        ),
                        text: f.render(false),
                    })
                    .collect(),
                output: (!below.is_empty()).then(|| {
                    below
                        .iter()
                        .map(|f| f.render(false))
                        .collect::<Vec<_>>()
                        .join("\n")
                }),
            }
        })
        .collect();
    Suite {
        name: format!("check {session}"),
        time_s: None,
        properties: vec![
            ("session".into(), session.to_owned()),
            ("fail_on".into(), fail_on.to_string()),
            ("findings".into(), findings.len().to_string()),
        ],
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &'static str, severity: Severity, call: Option<&str>) -> Finding {
        Finding {
            rule,
            severity,
            call: call.map(str::to_owned),
            seqs: vec![2, 3],
            message: format!("{rule} happened"),
        }
    }

    #[test]
    fn failures_at_or_above_fail_on_the_rest_as_output() {
        let findings = [
            finding("state-regression", Severity::Error, Some("abc")),
            finding("call-not-terminated", Severity::Info, Some("abc")),
            finding("graph-error", Severity::Warning, None),
        ];
        let s = suite(
            "racy",
            &["abc".into(), "def".into()],
            &findings,
            Severity::Warning,
        );
        let names: Vec<&str> = s.cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["call abc", "call def", "call (no call)"]);
        let abc = &s.cases[0];
        assert_eq!(abc.failures.len(), 1);
        assert_eq!(abc.failures[0].kind, "state-regression");
        assert_eq!(
            abc.failures[0].message,
            "error state-regression seq 2,3: state-regression happened"
        );
        assert!(abc
            .output
            .as_deref()
            .is_some_and(|o| o.contains("call-not-terminated seq 2,3")));
        assert!(s.cases[1].failures.is_empty() && s.cases[1].output.is_none());
        assert_eq!(s.cases[2].failures[0].kind, "graph-error");
        assert_eq!(s.failures(), 2);
        // Nothing without a call: no such testcase.
        let s = suite("clean", &["abc".into()], &[], Severity::Warning);
        assert_eq!(s.cases.len(), 1);
    }
}
