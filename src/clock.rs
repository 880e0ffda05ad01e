//! The session clock: one monotonic time base and one sequence counter per session.
//!
//! Every event of a session, on either listener, takes its sequence number and its
//! offsets from the same `SessionClock`, so the store holds one global order even when
//! exchanges overlap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic offsets (microseconds from session start) plus the wall-clock anchor.
#[derive(Debug)]
pub struct SessionClock {
    start: Instant,
    wall_start_us: i64,
    next_seq: AtomicU64,
}

impl SessionClock {
    /// Starts the clock now; the first sequence number handed out is 1.
    pub fn start() -> Self {
        let wall_start_us = unix_micros(SystemTime::now());
        SessionClock {
            start: Instant::now(),
            wall_start_us,
            next_seq: AtomicU64::new(1),
        }
    }

    /// Microseconds since the session started, from the monotonic clock.
    pub fn now_us(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// Wall-clock time of the session start, microseconds since the Unix epoch.
    pub fn wall_start_us(&self) -> i64 {
        self.wall_start_us
    }

    /// Takes the next sequence number. Called once per event, at arrival.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The sequence number the next event will take (a session rotation's boundary).
    pub fn peek_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Relaxed)
    }
}

/// Microseconds since the Unix epoch (0 for times before it).
pub fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

const RFC3339_MICROS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// RFC 3339 in UTC with microseconds, e.g. `2026-11-27T16:53:45.123456Z`: exact for the
/// stored microseconds, so it round-trips through the recording format.
pub fn format_unix_micros(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(RFC3339_MICROS).ok())
        .unwrap_or_else(|| format!("@{us}us"))
}

/// Inverse of [`format_unix_micros`].
pub fn parse_unix_micros(text: &str) -> Option<i64> {
    let t = time::PrimitiveDateTime::parse(text, RFC3339_MICROS).ok()?;
    i64::try_from(t.assume_utc().unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_starts_at_one_and_is_dense() {
        let clock = SessionClock::start();
        let seqs: Vec<u64> = (0..5).map(|_| clock.next_seq()).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn wall_clock_text_round_trips() {
        let us = 1_795_000_000_123_456;
        let text = format_unix_micros(us);
        assert_eq!(text, "2026-11-18T11:06:40.123456Z");
        assert_eq!(parse_unix_micros(&text), Some(us));
        assert_eq!(parse_unix_micros("yesterday"), None);
    }

    #[test]
    fn offsets_are_monotonic() {
        let clock = SessionClock::start();
        let a = clock.now_us();
        let b = clock.now_us();
        assert!(a >= 0 && b >= a);
        assert!(clock.wall_start_us() > 1_600_000_000_000_000);
    }
}
