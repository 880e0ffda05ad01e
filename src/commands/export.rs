//! `graphtape export`: a session as a recording file.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::progress::Step;
use crate::cli::{ExportArgs, ExportFormat};
use crate::inspect::har;
use crate::recording::{export_session, to_pretty};
use crate::store::{find_session, load_exchanges, open, Access};

pub fn run(db: &Path, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let conn = open(db, Access::Existing)?;
    // A large database can hold a large session: a spinner while it is turned to text.
    let db_size = std::fs::metadata(db).map_or(0, |m| m.len());
    let step = Step::start(format!("exporting {}", args.session), db_size);
    let text = match args.format {
        ExportFormat::Graphtape => to_pretty(&serde_json::to_value(export_session(
            &conn,
            &args.session,
        )?)?)
        .into_bytes(),
        ExportFormat::Har => {
            let info = find_session(&conn, &args.session)?;
            let exchanges = load_exchanges(&conn, info.id)?;
            let mut text = serde_json::to_vec_pretty(&har(&info, &exchanges))?;
            text.push(b'\n');
            text
        }
    };
    drop(step);
    match &args.output {
        None => std::io::stdout().lock().write_all(&text)?,
        Some(path) => {
            write_atomically(path, &text).with_context(|| format!("writing {}", path.display()))?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes beside the target and renames, so a failed export never leaves half a file
/// where a good recording was.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
