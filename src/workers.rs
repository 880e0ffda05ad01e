//! Connection workers: threads that each run a single-threaded tokio runtime, with every
//! accepted connection placed on one of them, round robin, for its whole life.
//!
//! This is pingora's no-steal runtime and nginx's worker model. A connection's client
//! socket, its upstream connection (from the same worker's pool) and its timers all
//! wake the same thread, so a request never hops between threads and no idle thread is
//! woken to look for work to steal. Against tokio's work-stealing runtime with the same
//! two threads, `bench/ab.sh` measured about a fifth more requests per second at 32
//! connections and 5-9% less CPU per request.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    /// The index of the worker this thread is, on a worker.
    static CURRENT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The index of the worker the caller runs on, if it runs on one.
pub fn current() -> Option<usize> {
    CURRENT.with(std::cell::Cell::get)
}

/// How long a stopping worker gives tasks still running before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A set of connection worker threads; [`Workers::stop`] (or dropping) ends them.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    running: Mutex<Vec<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Workers {
    /// Starts `count` workers (at least one), named `gt-conn-N` (Linux keeps 15 bytes
    /// of a thread's name), and returns once each is running.
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        let mut running = Vec::new();
        for i in 0..count.max(1) {
            let (started, handle) = std::sync::mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("gt-conn-{i}"))
                .spawn(move || {
                    CURRENT.with(|current| current.set(Some(i)));
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => return drop(started.send(Err(e))),
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    // Tasks of a current-thread runtime run only inside its block_on.
                    let _ = runtime.block_on(stopped);
                    runtime.shutdown_timeout(STOP_GRACE);
                })?;
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("a connection worker ended as it started"))??;
            handles.push(handle);
            running.push((stop, thread));
        }
        Ok(Workers {
            handles,
            next: AtomicUsize::new(0),
            running: Mutex::new(running),
        })
    }

    /// The number of workers.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next worker, round robin.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(task);
    }

    /// Runs `serve` on the next worker with `stream`, which moves to that worker's own
    /// I/O driver, so the socket's readiness wakes that thread.
    pub fn spawn_connection<F, Fut>(&self, stream: TcpStream, serve: F) -> std::io::Result<()>
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stream = stream.into_std()?;
        self.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(e) => tracing::warn!(error = %e, "a worker could not take a connection"),
            }
        });
        Ok(())
    }

    /// Ends every worker, all at once: tasks still running get [`STOP_GRACE`], then
    /// are dropped (so what they hold, such as a recorder, is released). Blocks: call
    /// it outside async code, after the listeners have drained. Later calls do nothing.
    pub fn stop(&self) {
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|e| e.into_inner()));
        let threads: Vec<_> = running
            .into_iter()
            .map(|(stop, thread)| {
                drop(stop);
                thread
            })
            .collect();
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a connection worker panicked");
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::mpsc;

    #[test]
    fn tasks_go_round_robin_and_each_stays_on_its_thread() {
        let workers = Workers::start(2).expect("workers");
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(async move {
                let before = std::thread::current().id();
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                let after = std::thread::current().id();
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((before, after, name)).expect("the test waits");
            });
        }
        drop(tx);
        let seen: Vec<_> = rx.iter().collect();
        assert_eq!(seen.len(), 4);
        assert!(seen.iter().all(|(before, after, _)| before == after));
        let threads: HashSet<_> = seen.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(threads.len(), 2, "four tasks over two workers use both");
        let names: HashSet<_> = seen.iter().filter_map(|(_, _, n)| n.clone()).collect();
        assert_eq!(
            names,
            HashSet::from(["gt-conn-0".to_owned(), "gt-conn-1".to_owned()])
        );
        workers.stop();
    }

    #[test]
    fn stopping_drops_tasks_that_never_end() {
        let workers = Workers::start(1).expect("workers");
        let (held, released) = mpsc::channel::<()>();
        workers.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        workers.stop();
        // The sender was dropped with the task: the receiver sees the channel close.
        assert!(released.recv().is_err());
    }
}
