//! `graphtape diff A B`: two sessions compared event by event.

use std::path::Path;
use std::process::ExitCode;

use super::source::load;
use crate::cli::DiffArgs;
use crate::inspect::diff::{diff, render, to_json};

pub fn run(db: &Path, args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let a = load(db, &args.a)?;
    let b = load(db, &args.b)?;
    let lines = diff(&a.exchanges, &b.exchanges);
    if args.json {
        println!("{}", to_json(&a.info.name, &b.info.name, &lines));
    } else {
        print!(
            "--- {}\n+++ {}\n{}",
            args.a,
            args.b,
            render(&lines, args.context)
        );
    }
    let same = !lines.iter().any(|l| l.is_change());
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
