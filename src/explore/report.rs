//! What an explore found, as printed, as JSON (`--report`) and as JUnit (`--junit`).

use std::path::PathBuf;

use serde::Serialize;

use crate::explore::file::RecordingId;
use crate::junit::{Case, Failure, Suite};
use crate::replay::report::Divergence;

/// One failure group: the runs whose schedules shrank to the same minimal one.
#[derive(Debug, Serialize)]
pub struct FailureReport {
    pub run: u64,
    pub summary: String,
    pub explanation: String,
    pub schedule: PathBuf,
    pub minimal_schedule: PathBuf,
    pub perturbations: Vec<String>,
    pub minimal: Vec<String>,
    pub shrink_runs: u64,
    /// --max-shrink-runs was used up: `minimal` fails but may not be minimal.
    pub shrink_capped: bool,
    pub also_runs: Vec<u64>,
    pub divergences: Vec<Divergence>,
    pub other: Option<String>,
    pub log: Option<PathBuf>,
}

/// One run (shrink re-runs are counted, not listed).
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub run: u64,
    pub passed: bool,
    pub perturbations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
}

/// The whole explore.
#[derive(Debug, Serialize)]
pub struct ExploreReport {
    pub session: String,
    pub recording: RecordingId,
    pub seed: u64,
    pub strategy: String,
    pub passed: bool,
    /// Stopped early by SIGINT/SIGTERM.
    pub interrupted: bool,
    pub runs: u64,
    pub shrink_runs: u64,
    pub distinct_schedules: usize,
    pub total_schedules: u64,
    pub total_exact: bool,
    pub pairs_covered: usize,
    pub pairs_total: usize,
    pub runs_per_second: f64,
    pub failures: Vec<FailureReport>,
    pub run_results: Vec<RunReport>,
}

impl ExploreReport {
    /// The summary as printed.
    pub fn render(&self) -> String {
        let report = self;
        let interrupted = self.interrupted;
        let failed = report.run_results.iter().filter(|r| !r.passed).count();
        let mut out = format!(
            "explore of {}: {} runs ({} shrink runs), {} distinct schedules, {failed} failed{}\n",
            report.session,
            report.runs,
            report.shrink_runs,
            report.distinct_schedules,
            if interrupted { ", interrupted" } else { "" }
        );
        out.push_str(&format!(
            "explored {} of {}{} distinct schedules{}\n",
            report.distinct_schedules,
            if report.total_exact { "" } else { "~" },
            report.total_schedules,
            if report.total_exact {
                ""
            } else {
                " (estimate)"
            }
        ));
        out.push_str(&format!(
            "pairs covered: {} of {}\n",
            report.pairs_covered, report.pairs_total
        ));
        for f in &report.failures {
            out.push_str(&f.summary);
            out.push('\n');
            if !f.also_runs.is_empty() {
                let runs: Vec<String> = f.also_runs.iter().map(u64::to_string).collect();
                out.push_str(&format!(
                    "  also runs {} (same minimal schedule)\n",
                    runs.join(", ")
                ));
            }
            if let Some(log) = &f.log {
                out.push_str(&format!("  log: {}\n", log.display()));
            }
        }
        out.push_str(&format!(
            "{:.1} runs/s\n{}\n",
            report.runs_per_second,
            if report.passed { "PASS" } else { "FAIL" }
        ));
        out
    }
}

/// The explore as a JUnit testsuite: a testcase per run, a failure for each failed
/// run (with the explanation of its group when it is the group's first run).
pub fn junit_suite(report: &ExploreReport, time_s: Option<f64>) -> Suite {
    let classname = format!("graphtape.explore.{}", report.session);
    let cases = report
        .run_results
        .iter()
        .map(|r| {
            let what = if r.perturbations.is_empty() {
                "recorded order".to_string()
            } else {
                r.perturbations.join(", ")
            };
            let group = report
                .failures
                .iter()
                .find(|f| f.run == r.run || f.also_runs.contains(&r.run));
            let failures = match (&r.problem, r.passed) {
                (_, true) => Vec::new(),
                (problem, false) => vec![Failure {
                    kind: group
                        .and_then(|g| g.divergences.first().map(|d| d.kind.to_string()))
                        .unwrap_or_else(|| "run-failed".into()),
                    message: problem.clone().unwrap_or_default(),
                    text: group.map(|g| g.summary.clone()).unwrap_or_default(),
                }],
            };
            Case {
                name: format!("run {} [{what}]", r.run),
                classname: classname.clone(),
                failures,
                output: r.log.as_ref().map(|l| format!("log: {}", l.display())),
            }
        })
        .collect();
    Suite {
        name: format!("explore {}", report.session),
        time_s,
        properties: vec![
            ("session".into(), report.session.clone()),
            ("seed".into(), report.seed.to_string()),
            ("strategy".into(), report.strategy.clone()),
            ("passed".into(), report.passed.to_string()),
            (
                "distinct_schedules".into(),
                report.distinct_schedules.to_string(),
            ),
            (
                "pairs_covered".into(),
                format!("{} of {}", report.pairs_covered, report.pairs_total),
            ),
        ],
        cases,
    }
}
