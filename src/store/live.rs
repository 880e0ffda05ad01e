//! Which sessions a running process is still writing.
//!
//! A recorder (`record`, `replay`) holds an exclusive lock on a small file beside the
//! database for as long as it writes its session. The kernel releases the lock when the
//! process ends however it ends (Ctrl-C, a crash, `kill -9`), so a dead recorder can
//! never keep its session "live": unlike a heartbeat or a pid, nothing has to expire
//! and nothing can be mistaken for a reused pid. The session row and the lock appear
//! together (one transaction), so a deleter never sees a new session without its lock.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{create_session, create_session_named, SessionInfo, StoreError};

/// A running recorder's claim on its session; dropping it (or dying) releases it.
#[derive(Debug)]
pub struct LiveLock {
    path: PathBuf,
    _file: File,
}

impl Drop for LiveLock {
    fn drop(&mut self) {
        // Remove first, then release: a checker that opened the file just before finds
        // the lock free once the file handle closes, which is the truth by then.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The lock file of a session: its id and start time name it, so a session created
/// later under a reused id or name never inherits a stale file.
pub fn lock_path(db: &Path, id: i64, started_unix_us: i64) -> PathBuf {
    let name = db.file_name().map_or_else(
        || "graphtape.db".into(),
        |n| n.to_string_lossy().to_string(),
    );
    db.with_file_name(format!("{name}.recording-{id}-{started_unix_us}.lock"))
}

/// Creates a session and claims it for this process in one step.
pub fn create_live_session(
    conn: &Connection,
    db: &Path,
    name: &str,
    started_unix_us: i64,
    config: &serde_json::Value,
) -> Result<(i64, LiveLock), StoreError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let id = create_session(&tx, name, started_unix_us, config)?;
    let lock = claim(db, id, started_unix_us)?;
    tx.commit()?;
    Ok((id, lock))
}

/// Like [`create_live_session`], under the first of `candidates` not taken (allocated
/// atomically: parallel processes each get their own name).
pub fn create_live_session_named(
    conn: &Connection,
    db: &Path,
    candidates: impl IntoIterator<Item = String>,
    started_unix_us: i64,
    config: &serde_json::Value,
) -> Result<(i64, String, LiveLock), StoreError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let (id, name) = create_session_named(&tx, candidates, started_unix_us, config)?;
    let lock = claim(db, id, started_unix_us)?;
    tx.commit()?;
    Ok((id, name, lock))
}

fn claim(db: &Path, id: i64, started_unix_us: i64) -> Result<LiveLock, StoreError> {
    let path = lock_path(db, id, started_unix_us);
    let io = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    let file = crate::private_file::create_new_private(&path).map_err(io)?;
    file.try_lock().map_err(|e| match e {
        TryLockError::Error(e) => io(e),
        TryLockError::WouldBlock => io(std::io::Error::other("already locked")),
    })?;
    Ok(LiveLock { path, _file: file })
}

/// Whether a live process is writing `session`. A lock file left by a dead recorder is
/// removed on the way.
pub fn is_recording(db: &Path, session: &SessionInfo) -> Result<bool, StoreError> {
    let path = lock_path(db, session.id, session.started_unix_us);
    let io = |source| StoreError::Lock {
        path: path.clone(),
        source,
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(e)),
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{find_session, open, Access};

    #[test]
    fn a_claimed_session_is_live_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let conn = open(&db, Access::Create).unwrap();
        let (_, lock) = create_live_session(&conn, &db, "a", 5, &serde_json::json!({})).unwrap();
        let info = find_session(&conn, "a").unwrap();
        assert!(is_recording(&db, &info).unwrap());
        drop(lock);
        assert!(!is_recording(&db, &info).unwrap());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "db, -wal, -shm"
        );
    }

    #[test]
    fn a_stale_lock_file_is_not_live_and_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let conn = open(&db, Access::Create).unwrap();
        let id = create_session(&conn, "a", 7, &serde_json::json!({})).unwrap();
        // What a killed recorder leaves: the file, nobody holding its lock.
        let path = lock_path(&db, id, 7);
        std::fs::write(&path, b"").unwrap();
        let info = find_session(&conn, "a").unwrap();
        assert!(!is_recording(&db, &info).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn a_taken_name_claims_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("l.db");
        let conn = open(&db, Access::Create).unwrap();
        let _held = create_live_session(&conn, &db, "a", 1, &serde_json::json!({})).unwrap();
        assert!(matches!(
            create_live_session(&conn, &db, "a", 2, &serde_json::json!({})),
            Err(StoreError::SessionExists { .. })
        ));
    }
}
