//! `graphtape diff A B`: two sessions compared event by event.

use std::path::Path;
use std::process::ExitCode;

use super::source::load;
use crate::cli::DiffArgs;
use crate::replay::diff::{diff, render, DiffLine};

pub fn run(db: &Path, args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let a = load(db, &args.a)?.exchanges;
    let b = load(db, &args.b)?.exchanges;
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
