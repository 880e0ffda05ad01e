//! What a replay shows while it runs: notifications sent, time elapsed, where it is on
//! the recorded clock, and how long until the next notification (recorded gaps can be
//! minutes long, and a silent replay looks hung). The scheduler updates the state; a
//! ticker draws it, redrawn on a terminal, or as a heartbeat line every 10 s when
//! standard error is a log.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::scheduler::Pace;

/// How often a terminal line is redrawn.
const REDRAW: Duration = Duration::from_millis(200);
/// How often a heartbeat line is written when standard error is not a terminal.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The replay's progress, shared by the scheduler (writes) and the ticker (reads).
pub struct Progress {
    started: Instant,
    total: usize,
    pace: Pace,
    /// Offset of the recording's last event: the length of the recorded clock.
    end_recorded_us: i64,
    /// A std mutex: held for a copy, never across an await.
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    delivered: usize,
    /// Recorded offset of the last notification sent.
    last_recorded_us: i64,
    next: Next,
}

#[derive(Debug, Clone, Copy)]
enum Next {
    /// Waiting for the bot's request that releases the next notification.
    Cause,
    /// The next notification goes at `at`; it was recorded at `recorded_us`.
    Due { at: Instant, recorded_us: i64 },
    /// Everything sent; waiting for the bot's last requests.
    Done,
}

impl Progress {
    pub fn new(total: usize, pace: Pace, end_recorded_us: i64) -> Arc<Progress> {
        Arc::new(Progress {
            started: Instant::now(),
            total,
            pace,
            end_recorded_us,
            state: Mutex::new(State {
                delivered: 0,
                last_recorded_us: 0,
                next: if total == 0 { Next::Done } else { Next::Cause },
            }),
        })
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    pub(crate) fn waiting_for_cause(&self) {
        self.update(|s| s.next = Next::Cause);
    }

    pub(crate) fn due(&self, at: Instant, recorded_us: i64) {
        self.update(|s| s.next = Next::Due { at, recorded_us });
    }

    pub(crate) fn sent(&self, count: usize, recorded_us: i64) {
        let total = self.total;
        self.update(|s| {
            s.delivered = count;
            s.last_recorded_us = s.last_recorded_us.max(recorded_us);
            s.next = if count >= total {
                Next::Done
            } else {
                Next::Cause
            };
        });
    }

    /// The progress line as of `now`.
    pub fn line(&self, now: Instant) -> String {
        let state = self.state.lock().map(|s| *s).unwrap_or(State {
            delivered: 0,
            last_recorded_us: 0,
            next: Next::Done,
        });
        render(self, state, now)
    }
}

/// Pure: the line for a state at `now`.
fn render(p: &Progress, s: State, now: Instant) -> String {
    let elapsed = now.saturating_duration_since(p.started);
    let (position, next) = match s.next {
        Next::Cause => (
            s.last_recorded_us,
            "waiting for the bot's request that releases the next notification".to_string(),
        ),
        Next::Done => (
            s.last_recorded_us.max(p.end_recorded_us),
            "all notifications sent; waiting for the bot's last requests".to_string(),
        ),
        Next::Due { at, recorded_us } => {
            let left = at.saturating_duration_since(now);
            let position = match p.pace {
                Pace::Fast => s.last_recorded_us,
                Pace::Speed(speed) => {
                    let behind = (left.as_secs_f64() * speed * 1e6) as i64;
                    recorded_us.saturating_sub(behind).max(s.last_recorded_us)
                }
            };
            let next = if left >= Duration::from_millis(100) {
                format!("next notification in {:.1} s", left.as_secs_f64())
            } else {
                "sending the next notification".to_string()
            };
            (position, next)
        }
    };
    format!(
        "replay: {}/{} {}, elapsed {}, recorded clock {} of {}, {next}",
        s.delivered,
        p.total,
        if p.total == 1 {
            "notification"
        } else {
            "notifications"
        },
        clock(elapsed.as_micros() as i64),
        clock(position),
        clock(p.end_recorded_us),
    )
}

/// `mm:ss.s`, or `h:mm:ss` past an hour.
fn clock(us: i64) -> String {
    let tenths = us.max(0) / 100_000;
    let (h, m, s, t) = (
        tenths / 36_000,
        tenths / 600 % 60,
        tenths / 10 % 60,
        tenths % 10,
    );
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}.{t}")
    }
}

/// Draws `progress` until the task is aborted: redrawn in place on a terminal, else a
/// heartbeat line every [`HEARTBEAT`].
pub async fn show(progress: Arc<Progress>, terminal: bool) {
    let period = if terminal { REDRAW } else { HEARTBEAT };
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    loop {
        ticks.tick().await;
        let line = progress.line(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = if terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "graphtape: {line}")
        };
        let _ = err.flush();
    }
}

/// Clears a terminal progress line once the replay is over.
pub fn clear(terminal: bool) {
    if terminal {
        eprint!("\r\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_knows_about_time() {
        let p = Progress::new(3, Pace::Speed(1.0), 130_000_000);
        let t0 = p.started;
        assert_eq!(
            p.line(t0 + Duration::from_millis(1500)),
            "replay: 0/3 notifications, elapsed 00:01.5, recorded clock 00:00.0 of 02:10.0, waiting for the bot's request that releases the next notification"
        );
        p.sent(1, 2_000_000);
        p.due(t0 + Duration::from_secs(20), 20_000_000);
        // 12.3 s before it is due, on the recorded clock 12.3 s before it.
        let line = p.line(t0 + Duration::from_millis(7700));
        assert!(
            line.ends_with("recorded clock 00:07.7 of 02:10.0, next notification in 12.3 s"),
            "{line}"
        );
        assert!(
            line.starts_with("replay: 1/3 notifications, elapsed 00:07.7"),
            "{line}"
        );
        p.sent(3, 130_000_000);
        assert!(p
            .line(t0)
            .ends_with("all notifications sent; waiting for the bot's last requests"));
    }

    #[test]
    fn twenty_times_faster_moves_the_recorded_clock_twenty_times_faster() {
        let p = Progress::new(2, Pace::Speed(20.0), 60_000_000);
        let t0 = p.started;
        p.due(t0 + Duration::from_secs(3), 60_000_000);
        let line = p.line(t0 + Duration::from_secs(1));
        assert!(
            line.contains("recorded clock 00:20.0 of 01:00.0, next notification in 2.0 s"),
            "{line}"
        );
        assert_eq!(clock(3_723_000_000), "1:02:03");
    }
}
