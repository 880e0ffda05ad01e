//! The bound on what waits for the writer, in bytes and in count at once.
//!
//! Every queued exchange holds `OVERHEAD + its body bytes` of one budget until its batch
//! is committed (or given up). Small exchanges hit the count bound
//! (`BUDGET / OVERHEAD`), large ones the byte bound; either way the proxy waits
//! (backpressure) instead of growing memory or the backlog a crash would lose.
//!
//! A tokio `Semaphore` is the right tool: the proxy side waits asynchronously (never
//! blocking the runtime), the writer thread releases synchronously, and it is fair, so
//! a large exchange is not starved by small ones.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Bytes of queue one exchange costs besides its bodies (headers, strings, bookkeeping).
pub const OVERHEAD: usize = 4 << 10;

/// A shared byte budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    sem: Arc<Semaphore>,
    total: usize,
}

impl Budget {
    pub(crate) fn new(total: usize) -> Budget {
        Budget {
            sem: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// What an exchange of `body_bytes` costs: never more than the whole budget, so
    /// one oversized exchange still passes (alone).
    pub(crate) fn cost(&self, body_bytes: usize) -> u32 {
        let cost = OVERHEAD.saturating_add(body_bytes).min(self.total);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    /// Waits for `cost`; false once the writer has stopped (nothing will release it).
    pub(crate) async fn acquire(&self, cost: u32) -> bool {
        match self.sem.acquire_many(cost).await {
            Ok(permit) => {
                // Released by the writer once the exchange is committed or given up.
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back what committed (or lost) exchanges held.
    pub(crate) fn release(&self, cost: u64) {
        self.sem.add_permits(cost as usize);
    }

    /// Bytes queued now (held by exchanges not yet committed), and the whole budget.
    pub(crate) fn in_use(&self) -> (usize, usize) {
        let free = self.sem.available_permits().min(self.total);
        (self.total - free, self.total)
    }

    /// Makes every waiting and future `acquire` fail: the writer is gone.
    pub(crate) fn close(&self) {
        self.sem.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_on_bytes_and_on_count() {
        let b = Budget::new(4 * OVERHEAD);
        // Count: four small exchanges fill it.
        for _ in 0..4 {
            assert!(b.acquire(b.cost(0)).await);
        }
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(b.cost(0)).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a fifth small exchange waits");
        b.release(u64::from(b.cost(0)));
        assert!(waiting.await.unwrap());
        // Bytes: a huge exchange costs the whole budget, not more.
        assert_eq!(b.cost(1 << 30) as usize, 4 * OVERHEAD);
    }

    #[tokio::test]
    async fn close_fails_waiters() {
        let b = Budget::new(OVERHEAD);
        assert!(b.acquire(b.cost(0)).await);
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(b.cost(0)).await }
        });
        tokio::task::yield_now().await;
        b.close();
        assert!(!waiting.await.unwrap());
    }
}
