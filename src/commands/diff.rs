//! `graphtape diff A B`: two sessions compared event by event.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::DiffArgs;
use crate::replay::diff::{diff, render, DiffLine};
use crate::store::{find_session, load_exchanges, open_read_only};

pub fn run(db: &Path, args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let conn = open_read_only(db)?;
    let a = load_exchanges(&conn, find_session(&conn, &args.a)?.id)?;
    let b = load_exchanges(&conn, find_session(&conn, &args.b)?.id)?;
    let lines = diff(&a, &b);
    print!(
        "--- {}\n+++ {}\n{}",
        args.a,
        args.b,
        render(&lines, args.context)
    );
    let same = lines.iter().all(|l| matches!(l, DiffLine::Same { .. }));
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
