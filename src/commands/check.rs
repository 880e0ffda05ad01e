//! `graphtape check`: the ordering anomalies of a session.

use std::path::Path;
use std::process::ExitCode;

use super::output::{color, emit};
use super::source::{check_call, load};
use crate::cli::CheckArgs;
use crate::config::seconds;
use crate::inspect::{check_with, rules_table, CheckOptions, Filter};

pub fn run(db: &Path, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(session) = args.session.as_deref().filter(|_| !args.rules) else {
        emit(rules_table().into_iter(), false)?;
        return Ok(ExitCode::SUCCESS);
    };
    let answer_limit = seconds("--answer-limit", args.answer_limit, true)?;
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
    let fail = findings.iter().any(|f| f.severity >= args.fail_on);
    Ok(if fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
