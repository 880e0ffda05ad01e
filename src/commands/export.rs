//! `graphtape export`: a session (or a recording file) as a recording file, whole or
//! cut down to a fixture, or as a view (HAR, the HTML timeline, Mermaid).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use super::progress::Step;
use super::sanitizers;
use super::source::{check_call, load, Source};
use crate::cli::{ExportArgs, ExportFormat};
use crate::inspect::har;
use crate::inspect::html::page;
use crate::inspect::mermaid::mermaid;
use crate::recording::{cut, note_sanitized, to_document, to_pretty, CutSpec};
use crate::sanitize::Sanitizer;
use crate::store::open_read_only;
use crate::ui::data::session_model;

pub fn run(db: &Path, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    // A session of a large database takes a while to become text: a spinner (a
    // recording file has its own progress while it is read).
    let from_db = !Path::new(&args.session).is_file();
    let db_size = std::fs::metadata(db).map_or(0, |m| m.len());
    let step = Step::start(
        format!("exporting {}", args.session),
        if from_db { db_size } else { 0 },
    );
    let source = load(db, &args.session)?;
    let calls = args
        .calls
        .iter()
        .map(|c| check_call(&source, c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let is_view = matches!(args.format, ExportFormat::Html | ExportFormat::Mermaid);
    // Cut first: the calls are named as recorded, before any id is sanitised.
    let mut source = if is_view || calls.is_empty() && args.seq.is_none() {
        source
    } else {
        let spec = CutSpec {
            calls: calls.clone(),
            seqs: args.seq,
        };
        let (info, exchanges) = cut(&source.info, &source.exchanges, &spec)?;
        Source { info, exchanges }
    };
    if args.sanitize || sanitizers::any(&args.sanitizers) {
        sanitize(db, args, &mut source)?;
    }
    if let Some(name) = &args.rename {
        if name.trim().is_empty() {
            bail!("--as: give a session name");
        }
        source.info.name = name.clone();
    }
    if is_view {
        return write(args, &view(db, args, &source, &calls)?);
    }
    let text = match args.format {
        ExportFormat::Graphtape => to_pretty(&serde_json::to_value(to_document(
            &source.info,
            &source.exchanges,
        ))?)
        .into_bytes(),
        ExportFormat::Har => {
            let mut text = serde_json::to_vec_pretty(&har(&source.info, &source.exchanges))?;
            text.push(b'\n');
            text
        }
        ExportFormat::Html | ExportFormat::Mermaid => unreachable!("handled above"),
    };
    drop(step);
    write(args, &text)
}

/// Sanitises the whole session with the rules given (the `--redact-pii` preset when
/// none is) and notes it in the provenance.
fn sanitize(db: &Path, args: &ExportArgs, source: &mut Source) -> anyhow::Result<()> {
    let rules = sanitizers::rules_or_pii(&args.sanitizers)?;
    let mut sanitizer = Sanitizer::new(rules, &sanitizers::key(db)?);
    // The whole session first, so an id is replaced even where it appears before the
    // exchange that says whose it is.
    for ex in &source.exchanges {
        sanitizer.learn(ex);
    }
    let exchanges = std::mem::take(&mut source.exchanges);
    source.exchanges = exchanges
        .into_iter()
        .map(|ex| sanitizer.apply(ex))
        .collect();
    note_sanitized(&mut source.info.config, sanitizer.summary());
    Ok(())
}

/// The timeline views keep the session's own sequence numbers: `--call` selects one
/// call (Mermaid) rather than cutting a fixture.
fn view(
    db: &Path,
    args: &ExportArgs,
    source: &Source,
    calls: &[String],
) -> anyhow::Result<Vec<u8>> {
    if args.seq.is_some() || calls.len() > 1 {
        bail!("--seq and a repeated --call cut fixtures (formats graphtape and har); --format html|mermaid takes at most one --call");
    }
    if !calls.is_empty() && args.format != ExportFormat::Mermaid {
        bail!("--call with --format html: the page has a call filter; use --format mermaid for one call's diagram");
    }
    // A replay session's divergences need its recording, from the same database.
    let conn = (!Path::new(&args.session).is_file())
        .then(|| open_read_only(db))
        .transpose()?;
    let model = session_model(conn.as_ref(), &source.info, &source.exchanges)?;
    Ok(match args.format {
        ExportFormat::Mermaid => mermaid(&model, calls.first().map(String::as_str)),
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
