//! Checkpoints off the commit path.
//!
//! With SQLite's automatic checkpoint the database thread copies the WAL back into the
//! database (and syncs both files) inside a commit, every 16 MiB: a third of its time
//! in the writer bench, during which nothing is committed. Here a thread of its own,
//! with its own connection, copies the bulk while the database thread keeps committing.
//! A passive checkpoint only reaches the frames that existed when it began, and SQLite
//! restarts the WAL from its start only when a write begins with every frame copied, so
//! the database thread finishes each round itself: it copies the few frames committed
//! meanwhile (the tail), and its next transaction starts the WAL over. The WAL stays
//! bounded by the threshold plus what is committed during one background pass.

use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

/// Where a round of checkpointing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No round under way.
    Idle,
    /// The database thread asked; the checkpointer has not started yet.
    Requested,
    /// The checkpointer is copying.
    Running,
    /// The background pass ended; the tail is the database thread's.
    Copied,
    /// The recording ends: the checkpointer stops.
    Stop,
}

/// What the database thread does after a commit (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Nothing,
    /// Wake the checkpointer.
    Request,
    /// Copy the tail here, so the next transaction restarts the WAL.
    Tail,
}

/// The step for a WAL of `pages` frames after a commit, at `threshold` frames.
fn step(phase: Phase, pages: i64, threshold: i64) -> Step {
    match phase {
        Phase::Idle if pages >= threshold => Step::Request,
        Phase::Copied => Step::Tail,
        _ => Step::Nothing,
    }
}

thread_local! {
    /// Frames in the WAL after this thread's last commit (SQLite's WAL hook runs on the
    /// committing thread; the database thread is the only one committing on its
    /// connection).
    static WAL_PAGES: Cell<i64> = const { Cell::new(0) };
}

fn note_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(i64::from(pages)));
    Ok(())
}

struct Shared {
    phase: Mutex<Phase>,
    wake: Condvar,
}

impl Shared {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The database thread's side: decides after each commit, owns the checkpointer thread.
pub(crate) struct Checkpoints {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    threshold: i64,
}

impl Checkpoints {
    /// Takes over checkpointing for `conn` (the recording connection) with a thread of
    /// its own. If that thread's connection cannot be opened, SQLite's automatic
    /// checkpoint stays in place, as before.
    pub(crate) fn start(conn: &Connection) -> Option<Checkpoints> {
        let threshold: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .ok()
            .filter(|&pages: &i64| pages > 0)?;
        let path = conn.path().filter(|p| !p.is_empty())?.to_owned();
        let own = match open_checkpointer(Path::new(&path)) {
            Ok(own) => own,
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing in the writer: no connection of its own");
                return None;
            }
        };
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Idle),
            wake: Condvar::new(),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("graphtape-checkpoint".into())
                .spawn(move || run(own, &shared))
                .ok()?
        };
        // `wal_hook` replaces the automatic checkpoint's own hook: from here on only
        // these rounds checkpoint.
        conn.wal_hook(Some(note_pages));
        Some(Checkpoints {
            shared,
            thread: Some(thread),
            threshold,
        })
    }

    /// After a commit on `conn`: starts a round, or finishes one.
    pub(crate) fn after_commit(&self, conn: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        let mut phase = self.shared.phase();
        match step(*phase, pages, self.threshold) {
            Step::Nothing => {}
            Step::Request => {
                *phase = Phase::Requested;
                self.shared.wake.notify_one();
            }
            Step::Tail => {
                *phase = Phase::Idle;
                drop(phase);
                if let Err(e) = passive(conn) {
                    tracing::warn!(error = %e, "checkpointing the WAL's tail");
                }
            }
        }
    }
}

#[cfg(test)]
impl Checkpoints {
    /// Waits until no background pass is asked for or running: a test's way to let a
    /// round reach its tail without sleeping.
    fn settle(&self) {
        let mut phase = self.shared.phase();
        while matches!(*phase, Phase::Requested | Phase::Running) {
            phase = self
                .shared
                .wake
                .wait(phase)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        *self.shared.phase() = Phase::Stop;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies what it can of the WAL without waiting for anyone (a reader's snapshot keeps
/// its frames in the WAL until it ends).
fn passive(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // As the recording connection: the WAL synced before copying, the database after.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// The checkpointer thread: one passive pass per request, until told to stop.
fn run(conn: Connection, shared: &Shared) {
    let mut phase = shared.phase();
    loop {
        match *phase {
            Phase::Stop => return,
            Phase::Requested => {
                *phase = Phase::Running;
                drop(phase);
                if let Err(e) = passive(&conn) {
                    tracing::warn!(error = %e, "checkpointing the WAL");
                }
                phase = shared.phase();
                if *phase == Phase::Running {
                    *phase = Phase::Copied;
                    shared.wake.notify_all();
                }
            }
            _ => phase = shared.wake.wait(phase).unwrap_or_else(|p| p.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_starts_at_the_threshold_and_the_tail_is_the_writers() {
        assert_eq!(step(Phase::Idle, 99, 100), Step::Nothing);
        assert_eq!(step(Phase::Idle, 100, 100), Step::Request);
        // While the background pass runs, the WAL grows and nothing more is asked.
        assert_eq!(step(Phase::Requested, 500, 100), Step::Nothing);
        assert_eq!(step(Phase::Running, 500, 100), Step::Nothing);
        assert_eq!(step(Phase::Copied, 3, 100), Step::Tail);
        assert_eq!(step(Phase::Stop, 500, 100), Step::Nothing);
    }

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn the_wal_stays_bounded_and_every_row_reaches_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let conn = crate::store::open(&db, crate::store::Access::Create).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let threshold: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        let page: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        let checkpoints = Checkpoints::start(&conn).expect("a checkpointer");
        // Four times the threshold in commits of 64 KiB each.
        let rows = 4 * threshold * page / (64 << 10);
        let mut largest = 0;
        for _ in 0..rows {
            conn.execute("INSERT INTO t VALUES (zeroblob(65536))", [])
                .unwrap();
            checkpoints.after_commit(&conn);
            // Each background pass finishes before the next commit: the bound below then
            // holds however the threads are scheduled.
            checkpoints.settle();
            largest = largest.max(wal_len(&db));
        }
        drop(checkpoints);
        // Restarted at least once: never near four thresholds' worth.
        assert!(
            (largest as i64) < 3 * threshold * page,
            "WAL reached {largest} bytes"
        );
        let reader = Connection::open(&db).unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows);
    }
}
