//! Progress for the file work of `import`, `check` and `export` on large recordings
//! (indicatif: a byte bar for reading, a spinner with elapsed time for the steps that
//! cannot count). Drawn on standard error and only on a terminal; small files, which
//! take no time, show nothing.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::recording::{parse_recording, ImportError, Loaded};

/// Files at least this large get progress (a 100 MB recording takes seconds).
const WORTH_SHOWING: u64 = 8 << 20;

fn enabled(len: u64) -> bool {
    len >= WORTH_SHOWING && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Reads a whole file, with a byte bar when it is large and stderr a terminal.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    if !enabled(len) {
        file.read_to_end(&mut bytes)?;
        return Ok(bytes);
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("reading {}", path.display()));
    bar.wrap_read(file).read_to_end(&mut bytes)?;
    bar.finish_and_clear();
    Ok(bytes)
}

/// A step that cannot count its work: a spinner with the elapsed time, cleared when
/// the step is dropped.
pub struct Step(Option<ProgressBar>);

impl Step {
    /// Starts `what` when `size` (bytes of the file or data concerned) is worth it.
    pub fn start(what: String, size: u64) -> Step {
        if !enabled(size) {
            return Step(None);
        }
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        spinner.set_message(what);
        spinner.enable_steady_tick(Duration::from_millis(120));
        Step(Some(spinner))
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(s) = &self.0 {
            s.finish_and_clear();
        }
    }
}

/// Megabytes, for step messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Reads and validates a recording file as `recording::read_recording` does, with
/// progress for large files.
pub fn read_recording(path: &Path) -> Result<Loaded, ImportError> {
    let file = path.display().to_string();
    let bytes = read_file(path).map_err(|source| ImportError::Read {
        file: file.clone(),
        source,
    })?;
    let size = bytes.len() as u64;
    let (session, exchanges) = {
        let _step = Step::start(format!("validating {file} ({})", mib(size)), size);
        parse_recording(&bytes, &file)?
    };
    Ok(Loaded {
        file,
        session,
        exchanges,
    })
}
