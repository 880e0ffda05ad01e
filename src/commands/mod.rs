//! One module per subcommand; each returns the exit code it wants.

mod calls;
mod certs;
mod check;
mod diff;
mod explore;
mod export;
mod import;
mod output;
mod record;
mod replay;
mod sessions;
mod show;
mod source;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Record(args) => record::run(&cli.db, *args),
        Command::Sessions(args) => sessions::run(&cli.db, &args),
        Command::Export(args) => export::run(&cli.db, &args),
        Command::Import(args) => import::run(&cli.db, &args),
        Command::Replay(args) => replay::run(&cli.db, *args),
        Command::Explore(args) => explore::run(&cli.db, *args),
        Command::Diff(args) => diff::run(&cli.db, &args),
        Command::Calls(args) => calls::run(&cli.db, &args),
        Command::Show(args) => show::run(&cli.db, &args),
        Command::Check(args) => check::run(&cli.db, &args),
    }
}
