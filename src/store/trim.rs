//! Giving memory back after the writer's queue has been deep.
//!
//! When the database thread stalls (a checkpoint catching up after a reader held the
//! log, a slow disk), the proxy queues up to the byte budget. Once that drains, glibc
//! keeps the freed pages in its arenas, so resident memory stays at the peak for the
//! rest of the run. After a deep queue has drained, `malloc_trim` returns them: once per
//! spike, never on the steady path.

/// Whether a queue this deep, then this shallow, calls for a trim (pure).
#[derive(Debug, Default)]
pub(crate) struct TrimAfterSpike {
    deep: bool,
}

impl TrimAfterSpike {
    /// Observes the queue (`in_use` of `total` budget bytes) after a commit; true when it
    /// has drained after having been at least a quarter full since the last trim.
    pub(crate) fn drained(&mut self, in_use: usize, total: usize) -> bool {
        if in_use >= total / 4 {
            self.deep = true;
            return false;
        }
        if self.deep && in_use <= total / 16 {
            self.deep = false;
            return true;
        }
        false
    }
}

/// Returns free heap pages to the system (glibc only; elsewhere nothing to do).
pub(crate) fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_comes_once_after_a_deep_queue_drains_and_never_on_a_shallow_one() {
        let mut spike = TrimAfterSpike::default();
        let total = 1600;
        // Shallow traffic: never.
        assert!(![0, 100, 300, 50].iter().any(|&n| spike.drained(n, total)));
        // Deep, still draining, then drained: once.
        let seen: Vec<bool> = [500, 1600, 300, 100, 0, 0]
            .iter()
            .map(|&n| spike.drained(n, total))
            .collect();
        assert_eq!(seen, [false, false, false, true, false, false]);
        // The next spike gets its own.
        assert!(!spike.drained(400, total));
        assert!(spike.drained(10, total));
    }
}
