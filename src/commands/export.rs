//! `graphtape export`: a session (or a recording file) as a recording file, whole or
//! cut down to a fixture.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use super::sanitizers;
use super::source::{check_call, load, Source};
use crate::cli::{ExportArgs, ExportFormat};
use crate::inspect::har;
use crate::recording::{cut, note_sanitized, to_document, to_pretty, CutSpec};
use crate::sanitize::Sanitizer;

pub fn run(db: &Path, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let mut source = load(db, &args.session)?;
    if !args.calls.is_empty() || args.seq.is_some() {
        let calls = args
            .calls
            .iter()
            .map(|c| check_call(&source, c))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let spec = CutSpec {
            calls,
            seqs: args.seq,
        };
        let (info, exchanges) = cut(&source.info, &source.exchanges, &spec)?;
        source = Source { info, exchanges };
    }
    if args.sanitize || sanitizers::any(&args.sanitizers) {
        let rules = sanitizers::rules_or_pii(&args.sanitizers)?;
        let mut sanitizer = Sanitizer::new(rules, &sanitizers::key(db)?);
        // The whole session first, so an id is replaced even where it appears before
        // the exchange that says whose it is.
        for ex in &source.exchanges {
            sanitizer.learn(ex);
        }
        let exchanges = std::mem::take(&mut source.exchanges);
        source.exchanges = exchanges
            .into_iter()
            .map(|ex| sanitizer.apply(ex))
            .collect();
        note_sanitized(&mut source.info.config, sanitizer.summary());
    }
    if let Some(name) = &args.rename {
        if name.trim().is_empty() {
            anyhow::bail!("--as: give a session name");
        }
        source.info.name = name.clone();
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
    };
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
