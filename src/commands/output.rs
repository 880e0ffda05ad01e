//! Terminal output like git's: colour and a pager on a terminal, plain text when piped.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;

/// Whether standard output wants colour: a terminal, and `NO_COLOR` unset.
pub fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A run's summary as `replay` and `explore` give it: `text` on standard output, or on
/// standard error when `--report -` takes standard output for the JSON; then `report`
/// as pretty JSON to the `--report` file or `-`.
pub fn write_summary(
    text: &str,
    report: &impl serde::Serialize,
    report_path: Option<&Path>,
) -> anyhow::Result<()> {
    let to_stdout = report_path == Some(Path::new("-"));
    if to_stdout {
        eprint!("{text}");
    } else {
        print!("{text}");
    }
    if let Some(path) = report_path {
        let json = serde_json::to_string_pretty(report)? + "\n";
        if to_stdout {
            let mut out = std::io::stdout().lock();
            out.write_all(json.as_bytes())
                .and_then(|()| out.flush())
                .context("writing --report - to standard output")?;
        } else {
            std::fs::write(path, json)
                .with_context(|| format!("writing --report {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes `lines` to standard output, through a pager (`GRAPHTAPE_PAGER`, `PAGER`, else
/// `less -FRX`, which exits at once when the text fits the screen) when standard output
/// is a terminal and `page` is set. Streams when piped.
pub fn emit(lines: impl Iterator<Item = String>, page: bool) -> std::io::Result<()> {
    if page && std::io::stdout().is_terminal() {
        if let Some(mut pager) = spawn_pager() {
            if let Some(mut stdin) = pager.stdin.take() {
                for line in lines {
                    // The user quitting the pager closes the pipe: stop quietly.
                    if writeln!(stdin, "{line}").is_err() {
                        break;
                    }
                }
            }
            let _ = pager.wait();
            return Ok(());
        }
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        match writeln!(out, "{line}") {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}

fn spawn_pager() -> Option<std::process::Child> {
    let command = std::env::var("GRAPHTAPE_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less -FRX".to_string());
    if command.trim().is_empty() || command.trim() == "cat" {
        return None;
    }
    Command::new("sh")
        .args(["-c", &command])
        .stdin(Stdio::piped())
        .spawn()
        .ok()
}
