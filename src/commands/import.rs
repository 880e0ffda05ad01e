//! `graphtape import`: a recording file as a new session.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use super::progress::{mib, Step};

use crate::cli::ImportArgs;
use crate::recording::store_recording;
use crate::store::{find_session, open, unused_name, Access};

pub fn run(db: &Path, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    // Validate the whole file first: a bad file must not even create the database.
    let mut loaded = super::progress::read_recording(&args.file)?;
    if let Some(name) = &args.rename {
        crate::recording::session_name(name)
            .map_err(|why| anyhow::anyhow!("--as {name:?}: {why}"))?;
        loaded.session.name = name.clone();
    }
    let mut conn = open(db, Access::Create)?;
    let name = &loaded.session.name;
    if find_session(&conn, name).is_ok() {
        let free = (2..).map(|n| format!("{name}-{n}"));
        let example = unused_name(&conn, free).unwrap_or_else(|| format!("{name}-imported"));
        bail!(
            "{}: session {name:?} already exists in {}; import it under another name with --as NAME (e.g. --as {example})",
            args.file.display(),
            db.display()
        );
    }
    let size: u64 = loaded
        .exchanges
        .iter()
        .map(|e| e.request.body.len + e.response.as_ref().map_or(0, |r| r.body.len))
        .sum();
    let step = Step::start(
        format!(
            "storing {} ({})",
            crate::plural::count(loaded.exchanges.len() as u64, "event"),
            mib(size)
        ),
        size,
    );
    store_recording(&mut conn, &loaded)?;
    drop(step);
    println!(
        "imported session {} ({}) into {}",
        loaded.session.name,
        crate::plural::count(loaded.exchanges.len() as u64, "event"),
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}
