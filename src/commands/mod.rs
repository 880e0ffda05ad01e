//! One module per subcommand; each returns the exit code it wants.

mod calls;
mod certs;
mod check;
mod demo;
mod diff;
mod explore;
mod explore_run;
mod export;
mod import;
mod output;
mod progress;
mod prune;
mod record;
mod replay;
mod replay_db;
mod sanitizers;
mod sessions;
mod show;
mod source;
pub(crate) mod ui;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// An error and its causes on one line, each cause once: a message that already quotes
/// its cause (`cannot read F: No such file...`) is not followed by that cause again.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Record(args) => record::run(&cli.db, *args),
        Command::Sessions(args) => sessions::run(&cli.db, &args),
        Command::Export(args) => export::run(&cli.db, &args),
        Command::Import(args) => import::run(&cli.db, &args),
        Command::Replay(mut args) => {
            args.db_given = cli.db_given;
            replay::run(&cli.db, *args)
        }
        Command::Explore(args) => explore::run(&cli.db, *args),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        );
        let e = anyhow::Error::new(crate::recording::ImportError::Read {
            file: "x.json".into(),
            source: io,
        });
        assert_eq!(
            error_message(&e),
            "cannot read x.json: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("inner problem").context("doing the thing");
        assert_eq!(error_message(&e), "doing the thing: inner problem");
    }
}
