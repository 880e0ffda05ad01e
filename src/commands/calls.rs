//! `graphtape calls`: one line per call of a session.

use std::path::Path;
use std::process::ExitCode;

use super::output::emit;
use super::source::load;
use crate::cli::CallsArgs;
use crate::inspect::calls;

pub fn run(db: &Path, args: &CallsArgs) -> anyhow::Result<ExitCode> {
    let source = load(db, &args.session)?;
    let calls = calls(&source.exchanges);
    let lines: Vec<String> = if args.json {
        calls
            .iter()
            .map(|c| {
                serde_json::json!({
                    "call": c.id,
                    "raw": c.raw,
                    "first_state": c.first_state,
                    "last_state": c.last_state,
                    "api_exchanges": c.api_count,
                    "notifications": c.notification_count,
                    "first_us": c.first_us,
                    "duration_us": c.duration_us(),
                })
                .to_string()
            })
            .collect()
    } else {
        let mut lines = vec![format!(
            "{:<34} {:<14} {:<14} {:>5} {:>13} {:>10}",
            "CALL", "FIRST STATE", "LAST STATE", "API", "NOTIFICATIONS", "DURATION"
        )];
        lines.extend(calls.iter().map(|c| {
            format!(
                "{:<34} {:<14} {:<14} {:>5} {:>13} {:>9.3}s",
                c.id,
                c.first_state.as_deref().unwrap_or("-"),
                c.last_state.as_deref().unwrap_or("-"),
                c.api_count,
                c.notification_count,
                c.duration_us() as f64 / 1e6
            )
        }));
        if calls.is_empty() {
            lines = vec![format!("no calls in session {}", source.info.name)];
        }
        lines
    };
    emit(lines.into_iter(), false)?;
    Ok(ExitCode::SUCCESS)
}
