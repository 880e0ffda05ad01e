//! `graphtape sessions`: what the database holds.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::SessionsArgs;
use crate::clock::format_unix_micros;
use crate::store::{list_sessions, open_read_only, SessionSummary};

pub fn run(db: &Path, args: &SessionsArgs) -> anyhow::Result<ExitCode> {
    let conn = open_read_only(db)?;
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
            "{:<28} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}  STATE",
            "NAME", "STARTED (UTC)", "DURATION", "CALLS", "API", "NOTIFICATIONS", "UNRECORDED"
        )?;
        for s in &sessions {
            writeln!(
                out,
                "{:<28} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}  {}",
                s.info.name,
                format_unix_micros(s.info.started_unix_us),
                duration(s),
                s.calls,
                s.api_exchanges,
                s.notifications,
                s.info.unrecorded,
                state(s)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ended`, `recording` (its writer is alive), or `interrupted` (its writer died first:
/// the duration is up to the last stored event, and a crash may have lost the last few
/// milliseconds before it).
fn state(s: &SessionSummary) -> &'static str {
    match (s.info.ended_us, s.interrupted) {
        (Some(_), _) => "ended",
        (None, true) => "interrupted",
        (None, false) => "recording",
    }
}

/// The recorded end, else the last event (a session cut short by a crash).
fn duration_us(s: &SessionSummary) -> Option<i64> {
    s.info.ended_us.or(s.last_event_us)
}

fn duration(s: &SessionSummary) -> String {
    match duration_us(s) {
        Some(us) => format!("{:.3}s", us as f64 / 1e6),
        None => "-".into(),
    }
}

fn summary_json(s: &SessionSummary) -> serde_json::Value {
    serde_json::json!({
        "name": s.info.name,
        "started_at": format_unix_micros(s.info.started_unix_us),
        "duration_us": duration_us(s),
        "ended": s.info.ended_us.is_some(),
        "state": state(s),
        "interrupted": s.interrupted,
        "calls": s.calls,
        "api_exchanges": s.api_exchanges,
        "callbacks": s.callbacks,
        "notifications": s.notifications,
        "unrecorded": s.info.unrecorded,
    })
}
