//! The graphtape binary: parse arguments, run the command, map the outcome to an exit
//! code (0 ok, 1 the command ran but found a problem, 2 usage or input error).

use std::process::ExitCode;

use clap::Parser;
use graphtape::cli::Cli;

/// mimalloc: the writer frees on one thread what the proxy and the prepare threads
/// allocated on others, the pattern glibc's malloc handles worst (a third of the
/// writer bench's time went to `_int_free`/`malloc_consolidate`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    graphtape::logging::init();
    match graphtape::commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("graphtape: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
