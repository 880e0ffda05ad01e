//! The graphtape binary: parse arguments, run the command, map the outcome to an exit
//! code (0 ok, 1 the command ran but found a problem, 2 usage or input error).

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::FromArgMatches;
use graphtape::cli::Cli;

fn main() -> ExitCode {
    keep_large_blocks_returnable();
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

/// glibc starts serving blocks of 128 KiB and more from their own mappings, returned to
/// the system when freed, but raises that threshold to the size of each such block
/// freed. After a spike (the writer's queue filling while a checkpoint catches up), blocks
/// of that size then come from the heap, which cannot shrink back past them, and
/// resident memory stays up. A fixed threshold keeps the starting behaviour.
fn keep_large_blocks_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets one of glibc's malloc parameters, under its own lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
