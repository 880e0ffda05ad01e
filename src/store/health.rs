//! What the writer did and is doing, readable from any thread.
//!
//! Counters are atomics (read by the proxy on every request in `fail` mode, written by
//! the writer per batch); the last error sits behind a `Mutex` because it is a `String`
//! written rarely and read only for messages.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a persisting store error is logged again (with the count so far).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a batch did not reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// Another process holds the write lock; the batch is retried.
    Locked,
    /// The disk (or filesystem) is full; the batch is dropped and counted.
    Full,
    /// Anything else; the batch is dropped and counted.
    Failed,
}

/// The writer's counters and its current state.
#[derive(Debug, Default)]
pub struct StoreHealth {
    recorded: AtomicU64,
    /// Forwarded exchanges that could not be stored.
    unrecorded: AtomicU64,
    /// Refusals (with `--on-store-error fail`) that could not be stored either.
    unrecorded_refusals: AtomicU64,
    /// Requests refused because the store was failing.
    refused: AtomicU64,
    /// Whether any write has failed during the run.
    failed: AtomicBool,
    /// Whether the store is failing right now (cleared by the next successful commit).
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    log: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    last_logged: Option<Instant>,
    /// Lines not logged since the last one, so the next line can say how many.
    suppressed: u64,
}

impl StoreHealth {
    /// Exchanges committed to the database.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Exchanges that passed through to the peer but could not be stored.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    /// Refused requests whose record could not be stored.
    pub fn unrecorded_refusals(&self) -> u64 {
        self.unrecorded_refusals.load(Ordering::Relaxed)
    }

    /// Requests refused with 503 because the store was failing (`--on-store-error fail`).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether any write has failed during the run.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Whether the store is failing now: set by a failed commit (or a lock being waited
    /// out), cleared by the next commit that succeeds.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// For `--on-store-error fail`: the reason to refuse a request while the store is
    /// failing (counting the refusal), or None when the store works.
    pub fn refusal(&self) -> Option<String> {
        if !self.is_failing() {
            return None;
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Some(self.last_error().unwrap_or_default())
    }

    /// The most recent store error, for the final report.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    pub(crate) fn committed(&self, count: u64) {
        self.recorded.fetch_add(count, Ordering::Relaxed);
        // The error lines stay rate-limited across a brief recovery: a disk hovering at
        // full must not print one line per flap.
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::warn!("the store is writable again; recording resumed");
        }
    }

    /// Counts `forwarded` exchanges and `refusals` as lost, marks the store failing, and
    /// logs (at most once per [`LOG_EVERY`] while the trouble lasts).
    pub(crate) fn lost(&self, forwarded: u64, refusals: u64, trouble: Trouble, error: String) {
        self.unrecorded.fetch_add(forwarded, Ordering::Relaxed);
        self.unrecorded_refusals
            .fetch_add(refusals, Ordering::Relaxed);
        self.trouble(trouble, error);
    }

    /// Marks the store failing without losing anything (a lock being waited out).
    pub(crate) fn trouble(&self, trouble: Trouble, error: String) {
        self.failed.store(true, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
        if self.should_log() {
            let unrecorded = self.unrecorded() + self.unrecorded_refusals();
            match trouble {
                Trouble::Locked => tracing::warn!(
                    %error,
                    "the database is locked by another process; holding exchanges and retrying"
                ),
                Trouble::Full => tracing::error!(
                    %error,
                    unrecorded,
                    "the disk is full: exchanges could not be recorded; recording resumes when space returns"
                ),
                Trouble::Failed => {
                    tracing::error!(%error, unrecorded, "exchanges could not be recorded")
                }
            }
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }

    fn should_log(&self) -> bool {
        let Ok(mut log) = self.log.lock() else {
            return true;
        };
        let now = Instant::now();
        match log.last_logged {
            Some(at) if now.duration_since(at) < LOG_EVERY => {
                log.suppressed += 1;
                false
            }
            _ => {
                log.last_logged = Some(now);
                log.suppressed = 0;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_clears_on_the_next_commit_and_counts_stay() {
        let h = StoreHealth::default();
        assert!(h.refusal().is_none());
        h.lost(2, 1, Trouble::Full, "database or disk is full".into());
        assert!(h.is_failing() && h.has_failed());
        assert_eq!(h.refusal().as_deref(), Some("database or disk is full"));
        assert_eq!(h.refused(), 1);
        h.committed(3);
        assert!(!h.is_failing(), "a successful commit ends the failure");
        assert!(h.has_failed(), "but the run remembers it");
        assert!(h.refusal().is_none());
        assert_eq!(
            (h.recorded(), h.unrecorded(), h.unrecorded_refusals()),
            (3, 2, 1)
        );
    }

    #[test]
    fn a_persisting_error_is_logged_once_per_interval() {
        let h = StoreHealth::default();
        assert!(h.should_log());
        for _ in 0..1000 {
            assert!(!h.should_log());
        }
        assert_eq!(h.log.lock().unwrap().suppressed, 1000);
    }
}
