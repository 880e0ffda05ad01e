//! The writer thread: the only owner of the recording connection.
//!
//! The proxy hands captured exchanges to a bounded channel and goes on; this thread
//! redacts, caps and inserts them in batched transactions. A full channel makes the
//! proxy wait (backpressure) instead of dropping anything; a failing store is counted
//! and reported, never silent.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::{insert_exchange, insert_route, prepare, StoreError};
use crate::exchange::Captured;
use crate::proxy::NewRoute;
use crate::redact::Redactor;
use crate::sanitize::Sanitizer;

/// How many captured exchanges may wait for the writer before the proxy waits.
const QUEUE: usize = 4096;
/// Most exchanges committed in one transaction.
const BATCH: usize = 256;

enum WriteOp {
    Exchange(Box<Captured>),
    Route(NewRoute),
    End { ended_us: i64 },
}

/// What the writer did, readable from any thread.
#[derive(Debug, Default)]
pub struct StoreHealth {
    recorded: AtomicU64,
    unrecorded: AtomicU64,
    failed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl StoreHealth {
    /// Exchanges committed to the database.
    pub fn recorded(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Exchanges that passed through but could not be stored.
    pub fn unrecorded(&self) -> u64 {
        self.unrecorded.load(Ordering::Relaxed)
    }

    /// Whether any write has failed.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// The most recent store error, for the final report.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    fn lost(&self, count: u64, error: String) {
        self.unrecorded.fetch_add(count, Ordering::Relaxed);
        self.failed.store(true, Ordering::Relaxed);
        tracing::error!(count, %error, "exchanges could not be recorded");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// The proxy's side of the writer: cheap to clone, one per listener or task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<WriteOp>,
    health: Arc<StoreHealth>,
}

impl Recorder {
    /// Queues an exchange, waiting while the writer is behind.
    pub async fn record(&self, ex: Captured) {
        if self.tx.send(WriteOp::Exchange(Box::new(ex))).await.is_err() {
            self.health.lost(1, "the store writer has stopped".into());
        }
    }

    /// Queues a callback route for storage. The route is already live in memory; this
    /// makes it survive a restart.
    pub async fn route(&self, route: NewRoute) {
        if self.tx.send(WriteOp::Route(route)).await.is_err() {
            self.health.lost(
                0,
                "the store writer stopped; a callback route was not saved".into(),
            );
        }
    }

    /// The shared counters.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }
}

/// Owns the writer thread; `finish` closes the session and waits for the last commit.
pub struct WriterHandle {
    thread: JoinHandle<()>,
    recorder: Recorder,
}

impl WriterHandle {
    /// Records the session end and blocks until everything queued is committed. Call it
    /// once the listeners have stopped; anything recorded after it is counted as lost.
    pub fn finish(self, ended_us: i64) -> Arc<StoreHealth> {
        let WriterHandle { thread, recorder } = self;
        let health = recorder.health.clone();
        if recorder
            .tx
            .blocking_send(WriteOp::End { ended_us })
            .is_err()
        {
            health.lost(0, "the store writer stopped before the session end".into());
        }
        drop(recorder);
        if thread.join().is_err() {
            health.lost(0, "the store writer panicked".into());
        }
        health
    }
}

/// Starts the writer thread for `session_id`, taking ownership of `conn`.
pub fn spawn_writer(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    max_body: usize,
) -> (Recorder, WriterHandle) {
    spawn_writer_sanitized(conn, session_id, redactor, max_body, None)
}

/// Like [`spawn_writer`], with personal data sanitised (after credential redaction)
/// before anything is stored.
pub fn spawn_writer_sanitized(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    max_body: usize,
    sanitizer: Option<Sanitizer>,
) -> (Recorder, WriterHandle) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let health = Arc::new(StoreHealth::default());
    let recorder = Recorder {
        tx,
        health: health.clone(),
    };
    let writer = Writer {
        conn,
        session_id,
        redactor,
        max_body,
        sanitizer,
        health,
    };
    let thread = std::thread::Builder::new()
        .name("graphtape-writer".into())
        .spawn(move || writer.run(rx))
        .expect("spawning the writer thread");
    let handle = WriterHandle {
        thread,
        recorder: recorder.clone(),
    };
    (recorder, handle)
}

struct Writer {
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    max_body: usize,
    /// Learns ids as exchanges pass, hence owned by this thread.
    sanitizer: Option<Sanitizer>,
    health: Arc<StoreHealth>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<WriteOp>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut ended = None;
        while let Some(op) = rx.blocking_recv() {
            let mut next = Some(op);
            while let Some(op) = next {
                match op {
                    WriteOp::Exchange(ex) => batch.push(*ex),
                    // Routes are rare and must not wait behind a batch: write at once.
                    WriteOp::Route(route) => self.route(&route),
                    WriteOp::End { ended_us } => ended = Some(ended_us),
                }
                next = if batch.len() < BATCH {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            self.write(std::mem::take(&mut batch));
            if let Some(ended_us) = ended {
                self.end(ended_us);
                // The session is over: refuse further sends (a recorder still alive
                // counts them as lost) and store what was already queued.
                rx.close();
                let late: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok())
                    .filter_map(|op| match op {
                        WriteOp::Exchange(ex) => Some(*ex),
                        WriteOp::Route(route) => {
                            self.route(&route);
                            None
                        }
                        WriteOp::End { .. } => None,
                    })
                    .collect();
                self.write(late);
                return;
            }
        }
    }

    /// Commits a batch in one transaction; if that fails, retries one by one so a single
    /// bad row cannot take its neighbours down with it.
    fn write(&mut self, batch: Vec<Captured>) {
        if batch.is_empty() {
            return;
        }
        let rows: Vec<_> = batch
            .into_iter()
            .map(|ex| {
                let row = prepare(ex, &self.redactor, self.max_body);
                match self.sanitizer.as_mut() {
                    Some(sanitizer) => sanitizer.apply(row),
                    None => row,
                }
            })
            .collect();
        let all = (|| -> Result<(), StoreError> {
            let tx = self.conn.transaction()?;
            for row in &rows {
                insert_exchange(&tx, self.session_id, row)?;
            }
            tx.commit()?;
            Ok(())
        })();
        match all {
            Ok(()) => {
                self.health
                    .recorded
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            // A locked or full database fails every row alike: no point retrying each.
            Err(e) if !row_specific(&e) => self.health.lost(rows.len() as u64, e.to_string()),
            Err(_) => {
                for row in &rows {
                    match insert_exchange(&self.conn, self.session_id, row) {
                        Ok(()) => {
                            self.health.recorded.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => self.health.lost(1, format!("exchange {}: {e}", row.seq)),
                    }
                }
            }
        }
    }

    fn route(&mut self, route: &NewRoute) {
        let now = crate::clock::unix_micros(std::time::SystemTime::now());
        if let Err(e) = insert_route(&self.conn, &route.token, &route.target, now) {
            self.health
                .lost(0, format!("saving the callback route {}: {e}", route.token));
        }
    }

    fn end(&mut self, ended_us: i64) {
        let result = self.conn.execute(
            "UPDATE sessions SET ended_us = ?1, unrecorded = ?2 WHERE id = ?3",
            rusqlite::params![ended_us, self.health.unrecorded() as i64, self.session_id],
        );
        if let Err(e) = result {
            self.health.lost(0, format!("closing the session: {e}"));
        }
    }
}

/// Whether an insert error is about the row (a constraint) rather than the database.
fn row_specific(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation
    )
}
