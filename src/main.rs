//! The graphtape binary: parse arguments, run the command, map the outcome to an exit
//! code (0 ok, 1 the command ran but found a problem, 2 usage or input error).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::FromArgMatches;
use graphtape::cli::Cli;

fn main() -> ExitCode {
    let matches = graphtape::help::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    cli.db_given = matches
        .value_source("db")
        .is_some_and(|s| s != ValueSource::DefaultValue);
    graphtape::logging::init();
    match graphtape::commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "graphtape: error: {}",
                graphtape::commands::error_message(&e)
            );
            ExitCode::from(2)
        }
    }
}
