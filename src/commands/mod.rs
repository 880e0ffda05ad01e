//! One module per subcommand; each returns the exit code it wants.

mod calls;
mod certs;
mod check;
mod demo;
mod diff;
mod export;
mod import;
mod output;
mod prune;
mod record;
mod replay;
mod sanitizers;
mod sessions;
mod show;
mod source;
pub(crate) mod ui;

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
        Command::Diff(args) => diff::run(&cli.db, &args),
        Command::Calls(args) => calls::run(&cli.db, &args),
        Command::Show(args) => show::run(&cli.db, &args),
        Command::Check(args) => check::run(&cli.db, &args),
        Command::Ui(args) => ui::run(&cli.db, &args),
        Command::Prune(args) => prune::run(&cli.db, &args),
        Command::Vacuum => prune::vacuum(&cli.db),
        Command::Demo => demo::run(&cli.db, cli.db_given),
    }
}
