//! `graphtape sessions`: what the database holds.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::SessionsArgs;
use crate::clock::format_unix_micros;
use crate::store::{list_sessions, open, Access, SessionSummary};
use crate::ui::pages::{duration_us, summary_json};

pub fn run(db: &Path, args: &SessionsArgs) -> anyhow::Result<ExitCode> {
    let conn = open(db, Access::Existing)?;
    let sessions = list_sessions(&conn)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &sessions {
            writeln!(out, "{}", summary_json(s))?;
        }
    } else if sessions.is_empty() {
        writeln!(out, "no sessions in {}", db.display())?;
    } else {
        writeln!(
            out,
            "{:<28} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}",
            "NAME", "STARTED (UTC)", "DURATION", "CALLS", "API", "NOTIFICATIONS", "UNRECORDED"
        )?;
        for s in &sessions {
            writeln!(
                out,
                "{:<28} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}",
                s.info.name,
                format_unix_micros(s.info.started_unix_us),
                duration(s),
                s.calls,
                s.api_exchanges,
                s.notifications,
                s.info.unrecorded
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn duration(s: &SessionSummary) -> String {
    match duration_us(s) {
        Some(us) => format!("{:.3}s", us as f64 / 1e6),
        None => "-".into(),
    }
}
