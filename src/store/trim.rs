//! Giving memory back after the writer's queue drains.
//!
//! Exchanges waiting for the writer are allocated by the connection workers and freed
//! by the prepare thread. glibc's malloc keeps the pages of a drained queue in those
//! threads' arenas, so after a burst (the queue full, then empty) resident memory
//! stays at the burst's high-water mark. `malloc_trim` returns free pages of every
//! arena to the kernel; it walks them under their locks, so it runs only after a
//! queue that held a lot has drained, and at most every [`EVERY`].

use std::time::{Duration, Instant};

/// A queue that held this much is worth trimming after.
const WORTH: usize = 4 << 20;
/// Drained: what is left queued is at most this.
const DRAINED: usize = 256 << 10;
/// At most one trim this often.
const EVERY: Duration = Duration::from_secs(5);

/// When to trim, from the bytes queued each time a group has been handed on.
#[derive(Debug, Default)]
pub(crate) struct TrimRule {
    peak: usize,
    last: Option<Instant>,
}

impl TrimRule {
    /// Notes `queued` bytes at `now`; true when memory should be given back now.
    pub(crate) fn observe(&mut self, queued: usize, now: Instant) -> bool {
        self.peak = self.peak.max(queued);
        let rested = self
            .last
            .is_none_or(|last| now.duration_since(last) >= EVERY);
        if self.peak >= WORTH && queued <= DRAINED && rested {
            self.peak = 0;
            self.last = Some(now);
            return true;
        }
        false
    }
}

/// Returns free heap pages to the kernel (glibc; elsewhere the allocator decides).
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the arenas' own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_a_full_queue_has_drained_and_not_again_too_soon() {
        let t0 = Instant::now();
        let mut rule = TrimRule::default();
        // Small queues never trim.
        assert!(!rule.observe(DRAINED, t0));
        assert!(!rule.observe(WORTH - 1, t0));
        assert!(!rule.observe(0, t0));
        // A big one: not while it is still full, then once it has drained.
        assert!(!rule.observe(WORTH, t0));
        assert!(!rule.observe(DRAINED + 1, t0));
        assert!(rule.observe(DRAINED, t0));
        assert!(!rule.observe(0, t0), "once per drain");
        // Another burst within EVERY waits; after it, the drain trims.
        assert!(!rule.observe(WORTH, t0 + EVERY / 2));
        assert!(!rule.observe(0, t0 + EVERY / 2));
        assert!(rule.observe(0, t0 + EVERY));
    }
}
