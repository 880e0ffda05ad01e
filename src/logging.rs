//! Diagnostics go to standard error; standard output is kept for what scripts parse
//! (`listening ...` lines, exports). Header values and query strings are never logged.

/// What is logged without `GRAPHTAPE_LOG`: graphtape's own information, but not the
/// routine news of libraries ("Database migrated to version N" is debug detail).
const DEFAULT_FILTER: &str = "info,rusqlite_migration=warn";

/// Installs the subscriber; `GRAPHTAPE_LOG` (e.g. `debug`) overrides the default.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GRAPHTAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
