//! `graphtape sessions`: what the database holds; `sessions delete` removes some.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{SessionsAction, SessionsArgs};
use crate::clock::format_unix_micros;
use crate::store::{
    delete_sessions, is_recording, list_sessions, open, open_read_only, Access, SessionSummary,
};
use crate::ui::pages::{duration_us, summary_json};

pub fn run(db: &Path, args: &SessionsArgs) -> anyhow::Result<ExitCode> {
    if let Some(SessionsAction::Delete(delete)) = &args.action {
        let conn = open(db, Access::Existing)?;
        let mut out = std::io::stdout().lock();
        for removed in delete_sessions(&conn, db, &delete.names)? {
            writeln!(out, "deleted {}", super::prune::describe(&removed))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let conn = open_read_only(db)?;
    let mut sessions = list_sessions(&conn)?;
    // By start time (imports keep their recorded start), then creation.
    sessions.sort_by_key(|s| (s.info.started_unix_us, s.info.id));
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &sessions {
            let mut json = summary_json(s);
            let state = state(db, s);
            json["state"] = state.into();
            json["interrupted"] = (state == "interrupted").into();
            writeln!(out, "{json}")?;
        }
    } else if sessions.is_empty() {
        writeln!(out, "no sessions in {}", db.display())?;
    } else {
        // The name column is as wide as the longest name, so long names stay aligned.
        let w = sessions
            .iter()
            .map(|s| s.info.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(28);
        writeln!(
            out,
            "{:<w$} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}  STATE",
            "NAME", "STARTED (UTC)", "DURATION", "CALLS", "API", "NOTIFICATIONS", "UNRECORDED"
        )?;
        for s in &sessions {
            writeln!(
                out,
                "{:<w$} {:<27} {:>10} {:>6} {:>6} {:>14} {:>10}  {}",
                s.info.name,
                format_unix_micros(s.info.started_unix_us),
                duration(s),
                s.calls,
                s.api_exchanges,
                s.notifications,
                s.info.unrecorded,
                state(db, s)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ended`, `recording` (a running `record` or `replay` holds its lock), or
/// `interrupted` (its writer died first: the duration is up to the last stored event,
/// and a crash may have lost what was not yet committed).
fn state(db: &Path, s: &SessionSummary) -> &'static str {
    match s.info.ended_us {
        Some(_) => "ended",
        None if is_recording(db, &s.info).unwrap_or(false) => "recording",
        None => "interrupted",
    }
}

fn duration(s: &SessionSummary) -> String {
    match duration_us(s) {
        Some(us) => format!("{:.3}s", us as f64 / 1e6),
        None => "-".into(),
    }
}
