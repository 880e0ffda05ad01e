//! `graphtape export`: a session as a recording file.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::source::{check_call, load};
use crate::cli::{ExportArgs, ExportFormat};
use crate::inspect::har;
use crate::inspect::html::page;
use crate::inspect::mermaid::mermaid;
use crate::recording::{export_session, to_pretty};
use crate::store::{find_session, load_exchanges, open, Access};
use crate::ui::data::{open_read_only, session_model};

pub fn run(db: &Path, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    if args.call.is_some() && args.format != ExportFormat::Mermaid {
        bail!("--call goes with --format mermaid");
    }
    if let ExportFormat::Html | ExportFormat::Mermaid = args.format {
        return write(args, &view(db, args)?);
    }
    let conn = open(db, Access::Existing)?;
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
        ExportFormat::Html | ExportFormat::Mermaid => unreachable!("handled above"),
    };
    write(args, &text)
}

/// The timeline views, from a session or a recording file.
fn view(db: &Path, args: &ExportArgs) -> anyhow::Result<Vec<u8>> {
    let source = load(db, &args.session)?;
    let call = args
        .call
        .as_deref()
        .map(|c| check_call(&source, c))
        .transpose()?;
    // A replay session's divergences need its recording, from the same database.
    let conn = (!Path::new(&args.session).is_file())
        .then(|| open_read_only(db))
        .transpose()?;
    let model = session_model(conn.as_ref(), &source.info, &source.exchanges)?;
    Ok(match args.format {
        ExportFormat::Mermaid => mermaid(&model, call.as_deref()),
        _ => page(&model),
    }
    .into_bytes())
}

fn write(args: &ExportArgs, text: &[u8]) -> anyhow::Result<ExitCode> {
    match &args.output {
        None => std::io::stdout().lock().write_all(text)?,
        Some(path) => {
            write_atomically(path, text).with_context(|| format!("writing {}", path.display()))?
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
