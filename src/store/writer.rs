//! The writer: a prepare stage and the one thread that owns the recording connection.
//!
//! ```text
//! proxy ──record()──► budget (bytes+count) ──► input queue ──► prepare threads (redact,
//!        hash, cap, derive ids, encode headers) ──► database thread (bind + step,
//!        group commit: N rows, B bytes, or T ms after a batch's first row)
//! ```
//!
//! The proxy waits only for budget (backpressure), never for SQLite. A queued exchange
//! holds its budget until its batch is committed, so what a crash can lose is bounded by
//! the budget and the commit interval, whatever the body sizes.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::batch::{Batch, Row};
use super::budget::Budget;
use super::health::Trouble;
use super::rotation::{RotateRule, Rotation};
use super::{NewRoute, StoreHealth};
use crate::exchange::Captured;
use crate::redact::Redactor;
use crate::sanitize::Sanitizer;

/// How the writer batches and bounds its queue. The defaults are what `record` uses.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Bytes of each stored body kept (the rest is described by length and hash).
    pub max_body: usize,
    /// Longest a batch stays open after its first row: the crash bound's time part.
    pub commit_interval: Duration,
    /// Most rows in one transaction.
    pub batch_rows: usize,
    /// Most body bytes in one transaction.
    pub batch_bytes: usize,
    /// Bytes (bodies plus a fixed cost per exchange) that may wait for the database.
    pub queue_bytes: usize,
    /// Threads redacting, hashing and encoding in parallel.
    pub prepare_threads: usize,
}

/// Longest a batch waits for more rows.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(5);
/// Bytes that may wait for the database before the proxy waits.
pub const QUEUE_BYTES: usize = 16 << 20;

impl WriterOptions {
    /// The defaults, with `max_body`.
    pub fn new(max_body: usize) -> WriterOptions {
        WriterOptions {
            max_body,
            commit_interval: COMMIT_INTERVAL,
            batch_rows: 1024,
            batch_bytes: 4 << 20,
            queue_bytes: QUEUE_BYTES,
            // One core for the database thread, the rest (up to 3) for preparing.
            prepare_threads: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).clamp(1, 3))
                .unwrap_or(1),
        }
    }
}

/// What the proxy hands over. `Stop` ends one prepare thread.
enum Input {
    Exchange { ex: Box<Captured>, cost: u32 },
    Route(NewRoute),
    Stop,
}

/// State the recorders share with the writer.
struct Shared {
    budget: Budget,
    health: Arc<StoreHealth>,
    /// True once the session has ended. Held for reading while sending, so the writer's
    /// final drain sees every exchange that got past the check (a `RwLock`, not an
    /// atomic, for exactly that ordering).
    closed: RwLock<bool>,
}

/// The proxy's side of the writer: cheap to clone, one per listener or task.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<Input>,
    shared: Arc<Shared>,
}

impl Recorder {
    /// Queues an exchange, waiting while the queue's byte or count budget is spent.
    pub async fn record(&self, ex: Captured) {
        let forwarded = ex.target.is_some();
        let cost = self.shared.budget.cost(ex.size());
        if self.shared.budget.acquire(cost).await
            && self.send(Input::Exchange {
                ex: Box::new(ex),
                cost,
            })
        {
            return;
        }
        self.shared.budget.release(u64::from(cost));
        let (forwarded, refusals) = if forwarded { (1, 0) } else { (0, 1) };
        self.shared.health.lost(
            forwarded,
            refusals,
            Trouble::Failed,
            "the store writer has stopped".into(),
        );
    }

    /// Queues a callback route for storage. The route is already live in memory; this
    /// makes it survive a restart.
    pub async fn route(&self, route: NewRoute) {
        if !self.send(Input::Route(route)) {
            self.shared.health.lost(
                0,
                0,
                Trouble::Failed,
                "the store writer stopped; a callback route was not saved".into(),
            );
        }
    }

    /// The shared counters.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.shared.health
    }

    fn send(&self, input: Input) -> bool {
        let Ok(closed) = self.shared.closed.read() else {
            return false;
        };
        !*closed && self.tx.send(input).is_ok()
    }
}

/// Owns the writer threads; `finish` closes the session and waits for the last commit.
pub struct WriterHandle {
    database: JoinHandle<()>,
    prepare: Vec<JoinHandle<()>>,
    end: Sender<i64>,
    recorder: Recorder,
}

impl WriterHandle {
    /// Records the session end and blocks until everything queued is committed. Call it
    /// once the listeners have stopped; anything recorded after it is counted as lost.
    pub fn finish(self, ended_us: i64) -> Arc<StoreHealth> {
        let WriterHandle {
            database,
            prepare,
            end,
            recorder,
        } = self;
        let health = recorder.shared.health.clone();
        // One Stop per prepare thread: each exits at the first it takes, after the
        // exchanges queued before it.
        for _ in &prepare {
            let _ = recorder.tx.send(Input::Stop);
        }
        let _ = end.send(ended_us);
        drop(recorder);
        for thread in prepare {
            if thread.join().is_err() {
                health.lost(
                    0,
                    0,
                    Trouble::Failed,
                    "a store prepare thread panicked".into(),
                );
            }
        }
        if database.join().is_err() {
            health.lost(0, 0, Trouble::Failed, "the store writer panicked".into());
        }
        health
    }
}

/// Starts the writer for `session_id` with the default options, taking `conn`.
pub fn spawn_writer(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    max_body: usize,
) -> (Recorder, WriterHandle) {
    spawn_writer_with(
        conn,
        session_id,
        redactor,
        WriterOptions::new(max_body),
        None,
    )
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
    let options = WriterOptions::new(max_body);
    spawn_writer_with(conn, session_id, redactor, options, sanitizer)
}

/// Like [`spawn_writer_sanitized`], starting new sessions as `rotation` says.
pub fn spawn_writer_rotating(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    max_body: usize,
    sanitizer: Option<Sanitizer>,
    rotation: Rotation,
) -> (Recorder, WriterHandle) {
    let options = WriterOptions::new(max_body);
    spawn(
        conn,
        session_id,
        redactor,
        options,
        sanitizer,
        Some(rotation),
    )
}

/// Starts the writer's threads for `session_id`, taking ownership of `conn`. A sanitizer
/// learns ids as exchanges pass, in order, so with one there is a single prepare thread.
pub fn spawn_writer_with(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    options: WriterOptions,
    sanitizer: Option<Sanitizer>,
) -> (Recorder, WriterHandle) {
    spawn(conn, session_id, redactor, options, sanitizer, None)
}

fn spawn(
    conn: Connection,
    session_id: i64,
    redactor: Redactor,
    mut options: WriterOptions,
    sanitizer: Option<Sanitizer>,
    rotation: Option<Rotation>,
) -> (Recorder, WriterHandle) {
    if sanitizer.is_some() {
        options.prepare_threads = 1;
    }
    // Shared with the database thread only for exchanges that come after the prepare
    // thread stopped; never contended.
    let sanitizer = Arc::new(Mutex::new(sanitizer));
    // Short: a lock held longer is waited out by the batch's own retry, which marks the
    // store failing meanwhile (what `--on-store-error fail` acts on).
    if let Err(e) = conn.busy_timeout(Duration::from_millis(100)) {
        tracing::warn!(error = %e, "setting the writer's busy timeout");
    }
    let (tx, input) = mpsc::channel();
    // The prepare threads share one queue; a `Mutex` around the receiver is enough
    // because a thread holds it only to take the next item, never while preparing.
    let input = Arc::new(Mutex::new(input));
    let (prepared_tx, prepared) = mpsc::channel();
    let (end, end_rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        budget: Budget::new(options.queue_bytes),
        health: Arc::new(StoreHealth::default()),
        closed: RwLock::new(false),
    });
    let recorder = Recorder { tx, shared };
    let prepare = (0..options.prepare_threads.max(1))
        .map(|n| {
            let stage = Stage {
                input: input.clone(),
                out: prepared_tx.clone(),
                redactor: redactor.clone(),
                sanitizer: sanitizer.clone(),
                max_body: options.max_body,
            };
            std::thread::Builder::new()
                .name(format!("graphtape-prepare-{n}"))
                .spawn(move || stage.run())
                .expect("spawning a prepare thread")
        })
        .collect();
    drop(prepared_tx);
    let writer = Database {
        conn,
        session_id,
        options,
        shared: recorder.shared.clone(),
        input,
        redactor,
        sanitizer,
        rotation,
    };
    let database = std::thread::Builder::new()
        .name("graphtape-writer".into())
        .spawn(move || writer.run(prepared, end_rx))
        .expect("spawning the writer thread");
    let handle = WriterHandle {
        database,
        prepare,
        end,
        recorder: recorder.clone(),
    };
    (recorder, handle)
}

/// A prepare thread: captured exchanges in, rows ready to bind out.
struct Stage {
    input: Arc<Mutex<Receiver<Input>>>,
    out: Sender<Row>,
    redactor: Redactor,
    sanitizer: Arc<Mutex<Option<Sanitizer>>>,
    max_body: usize,
}

impl Stage {
    fn run(self) {
        loop {
            let next = match self.input.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let row = match next {
                Ok(Input::Stop) | Err(_) => return,
                Ok(input) => self.prepare(input),
            };
            if let Some(row) = row {
                if self.out.send(row).is_err() {
                    return;
                }
            }
        }
    }

    fn prepare(&self, input: Input) -> Option<Row> {
        to_row(input, &self.redactor, &self.sanitizer, self.max_body)
    }
}

fn to_row(
    input: Input,
    redactor: &Redactor,
    sanitizer: &Mutex<Option<Sanitizer>>,
    max_body: usize,
) -> Option<Row> {
    match input {
        Input::Exchange { ex, cost } => {
            let mut sanitizer = sanitizer.lock().ok();
            let sanitizer = sanitizer.as_mut().and_then(|s| s.as_mut());
            Some(Row::exchange(*ex, redactor, sanitizer, max_body, cost))
        }
        Input::Route(route) => Some(Row::Route(route)),
        Input::Stop => None,
    }
}

/// The database thread: the only user of the recording connection.
struct Database {
    conn: Connection,
    session_id: i64,
    options: WriterOptions,
    shared: Arc<Shared>,
    /// The input queue and redactor, for exchanges that arrive after the prepare threads
    /// stopped: the database thread prepares those itself.
    input: Arc<Mutex<Receiver<Input>>>,
    redactor: Redactor,
    sanitizer: Arc<Mutex<Option<Sanitizer>>>,
    /// With `--rotate`: which session each exchange goes to.
    rotation: Option<Rotation>,
}

impl Database {
    fn run(mut self, prepared: Receiver<Row>, end: Receiver<i64>) {
        let mut batch = Batch::default();
        loop {
            let first = match self.rotation.as_ref().and_then(Rotation::wait) {
                None => match prepared.recv() {
                    Ok(row) => row,
                    Err(_) => break,
                },
                Some(wait) => match prepared.recv_timeout(wait) {
                    Ok(row) => row,
                    Err(RecvTimeoutError::Timeout) => {
                        self.tick();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let deadline = Instant::now() + self.options.commit_interval;
            self.push(&mut batch, first);
            while batch.rows() < self.options.batch_rows
                && batch.body_bytes() < self.options.batch_bytes
            {
                let left = deadline.saturating_duration_since(Instant::now());
                match prepared.recv_timeout(left) {
                    Ok(row) => self.push(&mut batch, row),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            self.commit(&mut batch);
            self.tick();
        }
        // Every prepare thread has stopped: close the gate, then store what got past it.
        if let Ok(mut closed) = self.shared.closed.write() {
            *closed = true;
        }
        let late: Vec<Input> = match self.input.lock() {
            Ok(rx) => std::iter::from_fn(|| rx.try_recv().ok()).collect(),
            Err(_) => Vec::new(),
        };
        for input in late {
            if let Some(row) = to_row(
                input,
                &self.redactor,
                &self.sanitizer,
                self.options.max_body,
            ) {
                self.push(&mut batch, row);
            }
        }
        self.commit(&mut batch);
        if let Ok(ended_us) = end.recv() {
            self.end(ended_us);
        }
        self.shared.budget.close();
    }

    /// Adds a row to the batch; with rotation, rebases it onto its session first,
    /// committing what the batch holds for another session.
    fn push(&mut self, batch: &mut Batch, mut row: Row) {
        if let (Some(rotation), Row::Exchange { ex, .. }) = (self.rotation.as_mut(), &mut row) {
            let bytes = super::batch::stored_bytes(ex);
            let session_id = rotation.place(ex, bytes);
            if session_id != self.session_id {
                self.commit(batch);
                self.session_id = session_id;
            }
        }
        batch.push(row);
        // Size rotation on the row that crossed the threshold, not a batch later.
        if self
            .rotation
            .as_ref()
            .is_some_and(|r| matches!(r.rule(), RotateRule::Size(_)) && r.due())
        {
            self.commit(batch);
            self.tick();
        }
    }

    /// Rotation's turn, between batches.
    fn tick(&mut self) {
        if let Some(rotation) = self.rotation.as_mut() {
            rotation.tick(&self.conn, &self.shared.health);
        }
    }

    /// Commits the batch, waiting out locks; gives back its budget either way.
    fn commit(&mut self, batch: &mut Batch) {
        if batch.rows() == 0 {
            return;
        }
        let health = &self.shared.health;
        batch.commit(&mut self.conn, self.session_id, health);
        self.shared.budget.release(batch.cost());
        batch.clear();
    }

    fn end(&mut self, ended_us: i64) {
        if let Some(rotation) = self.rotation.as_mut() {
            rotation.finish(&self.conn, &self.shared.health, ended_us);
            return;
        }
        let unrecorded = self.shared.health.unrecorded() as i64;
        let session_id = self.session_id;
        let result = super::batch::with_lock_retry(&self.shared.health, || {
            Ok(self.conn.execute(
                "UPDATE sessions SET ended_us = ?1, unrecorded = ?2 WHERE id = ?3",
                rusqlite::params![ended_us, unrecorded, session_id],
            )?)
        });
        if let Err(e) = result {
            self.shared
                .health
                .lost(0, 0, Trouble::Failed, format!("closing the session: {e}"));
        }
    }
}
