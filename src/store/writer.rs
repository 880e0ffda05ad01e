//! The writer: prepare threads and the one thread that owns the recording connection.
//!
//! ```text
//! proxy ──record()──► budget (bytes+count) ──► inbox (a group: due T ms after its first
//!        exchange, or at N rows or B bytes) ──► a prepare thread takes it whole (redact,
//!        hash, cap, derive ids, encode headers) ──► database thread (bind + step, one
//!        transaction per group) ──► rows back to the prepare thread, freed there
//! ```
//!
//! The proxy waits only for budget (backpressure), never for SQLite. A queued exchange
//! holds its budget until its group is committed, so what a crash can lose is bounded by
//! the budget and the commit interval, whatever the body sizes.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::batch::{Batch, Row};
use super::budget::Budget;
use super::checkpoint::Checkpoints;
use super::health::Trouble;
use super::rotation::{Boundary, RotateRule, Rotation};
use super::trim::{self, TrimAfterSpike};
use super::{NewRoute, StoreHealth};
use crate::clock::SessionClock;
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

/// What the proxy hands over.
enum Input {
    Exchange {
        ex: Box<Captured>,
        cost: u32,
        at: Option<Boundary>,
    },
    Route(NewRoute),
}

impl Input {
    /// Body bytes, for the batch's byte bound.
    fn bytes(&self) -> usize {
        match self {
            Input::Exchange { ex, .. } => ex.size(),
            Input::Route(_) => 0,
        }
    }
}

/// What waits for a prepare thread: the next batch, filling up.
struct Inbox {
    items: Vec<Input>,
    bytes: usize,
    /// When the batch's first item arrived: the batch is due `commit_interval` later.
    first_at: Option<Instant>,
    /// Set once the session ends: nothing more gets in, and the prepare threads drain
    /// what is there and stop.
    closed: bool,
    /// A batch this big is due at once.
    max_rows: usize,
    max_bytes: usize,
}

impl Inbox {
    fn new(max_rows: usize, max_bytes: usize) -> Inbox {
        Inbox {
            items: Vec::new(),
            bytes: 0,
            first_at: None,
            closed: false,
            max_rows: max_rows.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= self.max_rows || self.bytes >= self.max_bytes
    }

    /// Adds `input` (arrived at `now`); true when a prepare thread must be woken: the
    /// batch has just started (its deadline begins) or just filled up.
    fn push(&mut self, input: Input, now: Instant) -> bool {
        let was_full = self.full();
        self.bytes += input.bytes();
        self.items.push(input);
        if self.first_at.is_none() {
            self.first_at = Some(now);
            return true;
        }
        !was_full && self.full()
    }

    /// Takes the batch, leaving an empty one.
    fn take(&mut self) -> Vec<Input> {
        self.first_at = None;
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }
}

/// State the recorders share with the writer.
struct Shared {
    budget: Budget,
    health: Arc<StoreHealth>,
    inbox: Mutex<Inbox>,
    /// Signalled when a batch starts (its first item), fills up, or the session ends:
    /// a prepare thread wakes once per batch, not once per exchange.
    ready: Condvar,
    /// With `--rotate SIZE`: each exchange is marked with the boundary it would start,
    /// as it is recorded (before its answer goes out), so the next session starts right
    /// after the exchange that crossed the threshold however far the writer lags.
    marks: Option<Arc<SessionClock>>,
}

/// The proxy's side of the writer: cheap to clone, one per listener or task.
#[derive(Clone)]
pub struct Recorder {
    shared: Arc<Shared>,
}

impl Recorder {
    /// Queues an exchange, waiting while the queue's byte or count budget is spent.
    pub async fn record(&self, ex: Captured) {
        let forwarded = ex.target.is_some();
        let cost = self.shared.budget.cost(ex.size());
        let at = self.shared.marks.as_deref().map(Boundary::now);
        if self.shared.budget.acquire(cost).await
            && self.send(Input::Exchange {
                ex: Box::new(ex),
                cost,
                at,
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

    /// Adds to the inbox: a lock held for a push, and a wake-up only when a batch
    /// starts or fills (no system call per exchange in between).
    fn send(&self, input: Input) -> bool {
        let Ok(mut inbox) = self.shared.inbox.lock() else {
            return false;
        };
        if inbox.closed {
            return false;
        }
        if inbox.push(input, Instant::now()) {
            self.shared.ready.notify_one();
        }
        true
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
        let shared = recorder.shared;
        let health = shared.health.clone();
        // Closing the inbox makes the prepare threads take what is in it and stop.
        match shared.inbox.lock() {
            Ok(mut inbox) => inbox.closed = true,
            Err(poisoned) => poisoned.into_inner().closed = true,
        }
        shared.ready.notify_all();
        let _ = end.send(ended_us);
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
    // Short: a lock held longer is waited out by the batch's own retry, which marks the
    // store failing meanwhile (what `--on-store-error fail` acts on).
    if let Err(e) = conn.busy_timeout(Duration::from_millis(100)) {
        tracing::warn!(error = %e, "setting the writer's busy timeout");
    }
    let shared = Arc::new(Shared {
        budget: Budget::new(options.queue_bytes),
        health: Arc::new(StoreHealth::default()),
        inbox: Mutex::new(Inbox::new(options.batch_rows, options.batch_bytes)),
        ready: Condvar::new(),
        marks: rotation.as_ref().and_then(Rotation::size_clock),
    });
    let recorder = Recorder {
        shared: shared.clone(),
    };
    let (prepared_tx, prepared) = mpsc::channel();
    let (end, end_rx) = mpsc::channel();
    let mut sanitizer = sanitizer;
    let prepare = (0..options.prepare_threads.max(1))
        .map(|n| {
            let (spent_tx, spent) = mpsc::channel();
            let stage = Stage {
                shared: shared.clone(),
                out: prepared_tx.clone(),
                spent_tx,
                spent,
                redactor: redactor.clone(),
                // With a sanitizer there is one prepare thread, and it owns it.
                sanitizer: sanitizer.take(),
                max_body: options.max_body,
                interval: options.commit_interval,
            };
            std::thread::Builder::new()
                .name(format!("graphtape-prepare-{n}"))
                .spawn(move || stage.run())
                .expect("spawning a prepare thread")
        })
        .collect();
    drop(prepared_tx);
    let writer = Database {
        checkpoints: None,
        conn,
        session_id,
        shared,
        rotation,
        spent: Vec::new(),
        spike: TrimAfterSpike::default(),
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

/// A batch ready to bind, and where to send its rows once committed: they are freed by
/// the thread that allocated them (glibc's arenas make freeing on another thread
/// contend with that thread's allocations).
struct Prepared {
    rows: Vec<Row>,
    spent: Sender<Vec<Row>>,
}

/// A prepare thread: a batch of captured exchanges in, rows ready to bind out.
struct Stage {
    shared: Arc<Shared>,
    out: Sender<Prepared>,
    spent_tx: Sender<Vec<Row>>,
    spent: Receiver<Vec<Row>>,
    redactor: Redactor,
    sanitizer: Option<Sanitizer>,
    max_body: usize,
    interval: Duration,
}

impl Stage {
    fn run(mut self) {
        let mut spent: Vec<Row> = Vec::new();
        while let Some(batch) = self.next_batch() {
            while let Ok(mut rows) = self.spent.try_recv() {
                spent.append(&mut rows);
            }
            let rows = prepare_group(&mut spent, batch, |input| self.prepare(input));
            let spent = self.spent_tx.clone();
            if self.out.send(Prepared { rows, spent }).is_err() {
                return;
            }
        }
    }

    /// Waits for a batch to be due (full, `interval` after its first item, or the
    /// session ended) and takes it; None once the inbox is closed and empty.
    fn next_batch(&self) -> Option<Vec<Input>> {
        let shared = &self.shared;
        let mut inbox = shared.inbox.lock().ok()?;
        loop {
            match inbox.first_at {
                None if inbox.closed => return None,
                None => inbox = shared.ready.wait(inbox).ok()?,
                Some(first) => {
                    let left = (first + self.interval).saturating_duration_since(Instant::now());
                    if inbox.closed || left.is_zero() || inbox.full() {
                        return Some(inbox.take());
                    }
                    inbox = shared.ready.wait_timeout(inbox, left).ok()?.0;
                }
            }
        }
    }

    fn prepare(&mut self, input: Input) -> Row {
        match input {
            Input::Exchange { ex, cost, at } => Row::exchange(
                *ex,
                &self.redactor,
                self.sanitizer.as_mut(),
                self.max_body,
                cost,
                at,
            ),
            Input::Route(route) => Row::Route(route),
        }
    }
}

/// Prepares a group. Rows the database thread has finished with (`spent`) are freed
/// here, where they were made, one before each new row: the allocator then hands the
/// same blocks straight back (freeing a whole group at once, then allocating one, made
/// glibc's malloc spend a third of the writer's time sorting its free lists). What a
/// larger group before left over is freed at the end: kept, it would stay allocated
/// for the rest of the run (after a stall, a group of 1,024 rows followed by groups of
/// 75 held some 3 MB of rows nobody used).
fn prepare_group(
    spent: &mut Vec<Row>,
    group: Vec<Input>,
    mut prepare: impl FnMut(Input) -> Row,
) -> Vec<Row> {
    let rows = group
        .into_iter()
        .map(|input| {
            drop(spent.pop());
            prepare(input)
        })
        .collect();
    spent.clear();
    rows
}

/// The database thread: the only user of the recording connection.
struct Database {
    conn: Connection,
    session_id: i64,
    shared: Arc<Shared>,
    /// With `--rotate`: which session each exchange goes to.
    rotation: Option<Rotation>,
    /// Committed rows, to go back to the thread that made them.
    spent: Vec<Row>,
    spike: TrimAfterSpike,
    /// Checkpoints on a thread of their own (None: SQLite's automatic ones).
    checkpoints: Option<Checkpoints>,
}

impl Database {
    /// Commits each prepared batch as it comes, until every prepare thread has stopped.
    fn run(mut self, prepared: Receiver<Prepared>, end: Receiver<i64>) {
        self.checkpoints = Checkpoints::start(&self.conn);
        let mut batch = Batch::default();
        loop {
            let next = match self.rotation.as_ref().and_then(Rotation::wait) {
                None => match prepared.recv() {
                    Ok(next) => next,
                    Err(_) => break,
                },
                Some(wait) => match prepared.recv_timeout(wait) {
                    Ok(next) => next,
                    Err(RecvTimeoutError::Timeout) => {
                        self.tick(None);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            for row in next.rows {
                self.push(&mut batch, row);
            }
            self.commit(&mut batch);
            // Back to the prepare thread (gone already at the end: then freed here).
            let _ = next.spent.send(std::mem::take(&mut self.spent));
            let (in_use, total) = self.shared.budget.in_use();
            if self.spike.drained(in_use, total) {
                trim::trim();
            }
            self.tick(None);
        }
        if let Ok(ended_us) = end.recv() {
            self.end(ended_us);
        }
        // Before the recording connection closes, so that, the last one, it copies the
        // rest of the WAL back and removes it.
        drop(self.checkpoints.take());
        self.shared.budget.close();
    }

    /// Adds a row to the batch; with rotation, rebases it onto its session first,
    /// committing what the batch holds for another session.
    fn push(&mut self, batch: &mut Batch, mut row: Row) {
        let mut at = None;
        if let (
            Some(rotation),
            Row::Exchange {
                packed, at: mark, ..
            },
        ) = (self.rotation.as_mut(), &mut row)
        {
            at = *mark;
            let session_id = rotation.place(packed);
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
            self.tick(at);
        }
    }

    /// Rotation's turn, between batches; `at` is the crossing exchange's mark, for a
    /// size rotation.
    fn tick(&mut self, at: Option<Boundary>) {
        if let Some(rotation) = self.rotation.as_mut() {
            rotation.tick(&self.conn, &self.shared.health, at);
        }
    }

    /// Commits the batch, waiting out locks; gives back its budget either way.
    fn commit(&mut self, batch: &mut Batch) {
        if batch.rows() == 0 {
            return;
        }
        let health = &self.shared.health;
        batch.commit(&self.conn, self.session_id, health);
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.after_commit(&self.conn);
        }
        self.shared.budget.release(batch.cost());
        self.spent.append(&mut batch.take());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{create_session, open, Access};

    fn writer(
        interval: Duration,
        rows: usize,
        queue_bytes: usize,
    ) -> (tempfile::TempDir, Recorder, WriterHandle) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("w.db"), Access::Create).unwrap();
        let sid = create_session(&conn, "s", 0, &serde_json::json!({})).unwrap();
        let mut options = WriterOptions::new(1024);
        options.commit_interval = interval;
        options.batch_rows = rows;
        options.queue_bytes = queue_bytes;
        let (recorder, handle) = spawn_writer_with(conn, sid, Redactor::disabled(), options, None);
        (dir, recorder, handle)
    }

    fn exchange(seq: u64) -> Captured {
        Captured {
            seq,
            ..crate::store::prepare::tests::captured()
        }
    }

    #[test]
    fn a_prepare_thread_is_woken_when_a_batch_starts_and_when_it_fills() {
        let route = || {
            Input::Route(NewRoute {
                token: "t".into(),
                target: "https://bot/x".into(),
            })
        };
        let mut inbox = Inbox::new(3, 1 << 20);
        let now = Instant::now();
        let wakes: Vec<bool> = (0..5).map(|_| inbox.push(route(), now)).collect();
        assert_eq!(wakes, [true, false, true, false, false]);
        assert_eq!(inbox.take().len(), 5);
        assert!(
            inbox.push(route(), now),
            "the next batch starts its own deadline"
        );
        // By bytes as well as rows.
        let mut inbox = Inbox::new(1024, 1);
        let ex = || Input::Exchange {
            ex: Box::new(exchange(1)),
            cost: 0,
            at: None,
        };
        assert_eq!(
            [inbox.push(ex(), now), inbox.push(ex(), now)],
            [true, false]
        );
        assert!(inbox.full());
    }

    #[test]
    fn preparing_a_group_keeps_no_spent_row_past_it() {
        let route = || {
            Row::Route(NewRoute {
                token: "t".into(),
                target: "https://bot/x".into(),
            })
        };
        let input = || {
            Input::Route(NewRoute {
                token: "u".into(),
                target: "https://bot/y".into(),
            })
        };
        let prepare = |input| match input {
            Input::Route(route) => Row::Route(route),
            Input::Exchange { .. } => unreachable!("the test sends routes"),
        };
        // A large group's rows come back; a smaller one follows.
        let mut spent: Vec<Row> = (0..5).map(|_| route()).collect();
        let rows = prepare_group(&mut spent, vec![input(), input()], prepare);
        assert_eq!(rows.len(), 2);
        assert!(spent.is_empty(), "{} spent rows kept", spent.len());
        let rows = prepare_group(&mut spent, Vec::new(), prepare);
        assert!(rows.is_empty() && spent.is_empty());
    }

    #[tokio::test]
    async fn a_full_group_is_committed_without_waiting_for_its_interval() {
        // Budget for exactly four: the fifth exchange waits until a commit gives back.
        let cost = super::super::budget::OVERHEAD + exchange(1).size();
        let (_dir, recorder, handle) = writer(Duration::from_secs(60), 4, 4 * cost);
        for seq in 1..=4 {
            recorder.record(exchange(seq)).await;
        }
        tokio::time::timeout(Duration::from_secs(20), recorder.record(exchange(5)))
            .await
            .expect("a full group waited for its 60 s interval");
        assert_eq!(handle.finish(1).recorded(), 5);
    }

    #[tokio::test]
    async fn finishing_commits_a_group_before_it_is_due_and_counts_later_ones_lost() {
        let (_dir, recorder, handle) = writer(Duration::from_secs(60), 1024, QUEUE_BYTES);
        for seq in 1..=3 {
            recorder.record(exchange(seq)).await;
        }
        let started = Instant::now();
        let health = handle.finish(1);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "finish waited for the interval"
        );
        assert_eq!((health.recorded(), health.unrecorded()), (3, 0));
        recorder.record(exchange(4)).await;
        assert_eq!((health.recorded(), health.unrecorded()), (3, 1));
    }
}
