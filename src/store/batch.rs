//! One group commit: rows ready to bind, committed in one `BEGIN IMMEDIATE` transaction,
//! with locks waited out and every other failure classified and counted.

use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::exchanges::insert_packed;
use super::health::Trouble;
use super::packed::Packed;
use super::rotation::Boundary;
use super::{insert_route, prepare, NewRoute, StoreError, StoreHealth};
use crate::exchange::Captured;
use crate::redact::Redactor;
use crate::sanitize::Sanitizer;

/// How long a locked database is waited out before its batch is given up.
pub const LOCK_PATIENCE: Duration = Duration::from_secs(60);
/// Longest pause between two attempts on a locked database.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// A prepared row: everything computed, only binding left.
pub(crate) enum Row {
    Exchange {
        /// Boxed: a packed exchange is larger than a route.
        packed: Box<Packed>,
        /// Queue budget it holds.
        cost: u32,
        /// False for requests graphtape refused (nothing passed through).
        forwarded: bool,
        /// With `--rotate SIZE`: where the next session would start, were this the
        /// exchange that crossed the threshold.
        at: Option<Boundary>,
    },
    Route(NewRoute),
}

impl Row {
    /// Redacts, caps, sanitises (if asked) and derives a captured exchange.
    pub(crate) fn exchange(
        ex: Captured,
        redactor: &Redactor,
        sanitizer: Option<&mut Sanitizer>,
        max_body: usize,
        cost: u32,
        at: Option<Boundary>,
    ) -> Row {
        let forwarded = ex.target.is_some();
        let ex = prepare(ex, redactor, max_body);
        let ex = match sanitizer {
            Some(sanitizer) => sanitizer.apply(ex),
            None => ex,
        };
        Row::Exchange {
            // The exchange is freed here, where it was made, as soon as it is packed.
            packed: Box::new(Packed::new(&ex)),
            cost,
            forwarded,
            at,
        }
    }

    fn insert(&self, conn: &Connection, session_id: i64) -> Result<(), StoreError> {
        match self {
            Row::Exchange { packed, .. } => insert_packed(conn, session_id, packed),
            Row::Route(route) => {
                let now = crate::clock::unix_micros(std::time::SystemTime::now());
                insert_route(conn, &route.token, &route.target, now)
            }
        }
    }
}

/// Rows waiting for one transaction.
#[derive(Default)]
pub(crate) struct Batch {
    rows: Vec<Row>,
    cost: u64,
}

impl Batch {
    pub(crate) fn push(&mut self, row: Row) {
        if let Row::Exchange { cost, .. } = &row {
            self.cost += u64::from(*cost);
        }
        self.rows.push(row);
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Queue budget the batch's exchanges hold.
    pub(crate) fn cost(&self) -> u64 {
        self.cost
    }

    /// Empties the batch, handing over its rows.
    pub(crate) fn take(&mut self) -> Vec<Row> {
        self.cost = 0;
        std::mem::take(&mut self.rows)
    }

    /// (forwarded, refused) exchanges in the batch.
    fn exchanges(&self) -> (u64, u64) {
        self.rows.iter().fold((0, 0), |(f, r), row| match row {
            Row::Exchange {
                forwarded: true, ..
            } => (f + 1, r),
            Row::Exchange { .. } => (f, r + 1),
            Row::Route(_) => (f, r),
        })
    }

    /// Commits every row in one transaction. A locked database is retried (see
    /// [`with_lock_retry`]); a full one loses the batch, counted; a row-specific error
    /// (a constraint) is retried row by row so one bad row cannot take its neighbours
    /// down.
    pub(crate) fn commit(&self, conn: &Connection, session_id: i64, health: &StoreHealth) {
        let result = with_lock_retry(health, || {
            in_transaction(conn, || {
                self.rows
                    .iter()
                    .try_for_each(|row| row.insert(conn, session_id))
            })
        });
        let (forwarded, refused) = self.exchanges();
        match result {
            Ok(()) => health.committed(forwarded + refused),
            Err(e) if classify(&e) == Some(Kind::Row) => {
                for row in &self.rows {
                    let one = with_lock_retry(health, || row.insert(conn, session_id));
                    match (one, row) {
                        (Ok(()), Row::Exchange { .. }) => health.committed(1),
                        (Ok(()), Row::Route(_)) => {}
                        (
                            Err(e),
                            Row::Exchange {
                                packed, forwarded, ..
                            },
                        ) => {
                            let (f, r) = if *forwarded { (1, 0) } else { (0, 1) };
                            health.lost(f, r, trouble(&e), format!("exchange {}: {e}", packed.seq))
                        }
                        (Err(e), Row::Route(route)) => health.lost(
                            0,
                            0,
                            trouble(&e),
                            format!("saving the callback route {}: {e}", route.token),
                        ),
                    }
                }
            }
            Err(e) => health.lost(forwarded, refused, trouble(&e), e.to_string()),
        }
    }
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed if it succeeds and rolled
/// back if anything fails. `BEGIN` and `COMMIT` are cached statements: under light
/// traffic a group holds one or two rows, and parsing both again for each group cost
/// as much as inserting its rows.
fn in_transaction(
    conn: &Connection,
    f: impl FnOnce() -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = f().and_then(|()| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    });
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Locked,
    Full,
    Row,
}

/// Sorts a store error into what the writer does about it.
fn classify(e: &StoreError) -> Option<Kind> {
    let StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = e else {
        return None;
    };
    match f.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(Kind::Locked),
        ErrorCode::DiskFull => Some(Kind::Full),
        ErrorCode::ConstraintViolation => Some(Kind::Row),
        _ => None,
    }
}

fn trouble(e: &StoreError) -> Trouble {
    match classify(e) {
        Some(Kind::Full) => Trouble::Full,
        Some(Kind::Locked) => Trouble::Locked,
        _ => Trouble::Failed,
    }
}

/// Runs `f` until it succeeds or fails for another reason than a lock held elsewhere,
/// backing off between attempts, for up to [`LOCK_PATIENCE`]. Meanwhile the store is
/// marked failing (so `--on-store-error fail` refuses) and the queue fills up, which
/// is the backpressure.
pub(crate) fn with_lock_retry<T>(
    health: &StoreHealth,
    f: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    retry_locked(
        LOCK_PATIENCE,
        |e| health.trouble(Trouble::Locked, e.to_string()),
        f,
    )
}

/// Runs `f` until it succeeds or fails for another reason than a lock held elsewhere,
/// for up to `patience`, backing off between attempts; `on_locked` hears each lock.
pub(crate) fn retry_locked<T>(
    patience: Duration,
    mut on_locked: impl FnMut(&StoreError),
    mut f: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(e) if classify(&e) == Some(Kind::Locked) && started.elapsed() < patience => {
                on_locked(&e);
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_BACKOFF);
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{create_session, open, Access};

    fn busy() -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ))
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(classify(&busy()), Some(Kind::Locked));
        let full = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert_eq!(classify(&full), Some(Kind::Full));
        assert_eq!(classify(&StoreError::Corrupt("x".into())), None);
    }

    #[test]
    fn a_lock_is_waited_out_and_marks_the_store_failing_meanwhile() {
        let health = StoreHealth::default();
        let mut attempts = 0;
        let result = with_lock_retry(&health, || {
            attempts += 1;
            if attempts < 3 {
                Err(busy())
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(result.unwrap(), 3);
        assert!(health.is_failing());
        assert_eq!(health.unrecorded(), 0, "waiting loses nothing");
    }

    #[test]
    fn a_duplicate_row_loses_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("b.db"), Access::Create).unwrap();
        let sid = create_session(&conn, "s", 0, &serde_json::json!({})).unwrap();
        let captured = |seq| Captured {
            seq,
            ..crate::store::prepare::tests::captured()
        };
        let redactor = Redactor::disabled();
        let mut batch = Batch::default();
        for seq in [1, 2, 2, 3] {
            batch.push(Row::exchange(
                captured(seq),
                &redactor,
                None,
                1024,
                10,
                None,
            ));
        }
        let health = StoreHealth::default();
        batch.commit(&conn, sid, &health);
        assert_eq!((health.recorded(), health.unrecorded()), (3, 1));
        assert_eq!(batch.cost(), 40);
        // The failed group was rolled back, not left open: the rows are committed.
        assert!(conn.is_autocommit(), "no transaction left open");
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM exchanges", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 3);
    }
}
