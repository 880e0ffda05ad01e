//! `graphtape import`: a recording file as a new session.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::ImportArgs;
use crate::recording::{read_recording, store_recording};
use crate::store::{open, Access};

pub fn run(db: &Path, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    // Validate the whole file first: a bad file must not even create the database.
    let mut loaded = read_recording(&args.file)?;
    if let Some(name) = &args.rename {
        loaded.session.name = name.clone();
    }
    let mut conn = open(db, Access::Create)?;
    store_recording(&mut conn, &loaded)?;
    println!(
        "imported session {} ({} events) into {}",
        loaded.session.name,
        loaded.exchanges.len(),
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}
