//! Opening a database: permission-safe creation, identity and version checks, migrations
//! under the write lock (so processes starting together on a new file all succeed), and
//! read-only opening for the commands that only read.

use std::path::Path;
use std::time::Duration;

use include_dir::{include_dir, Dir};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use super::StoreError;

/// Marks a SQLite file as graphtape's ("GTAP").
const APPLICATION_ID: i64 = 0x4754_4150;

/// The oldest schema the read-only commands can read without migrating it (schema 3
/// only dropped an index).
const OLDEST_READABLE: i64 = 2;

/// The page size of a new database. Under load a group commit appends a few hundred KiB
/// of rows: at SQLite's default 4 KiB every page costs two `pwrite`s in the WAL and a
/// read and a write at checkpoint, and the B-tree splits often. 16 KiB pages cut the
/// writer's CPU per exchange from 22.5 to 18.4 µs (`cargo bench --bench writer`); 32 KiB
/// gain nothing more. Larger pages cost at low rates, where each exchange commits alone
/// and rewrites a few whole pages: 52 KB written per exchange at 50 exchanges/s against
/// 17 KB at 4 KiB (and 103 KB at 32 KiB). An existing file keeps its size (SQLite cannot
/// change it in WAL mode).
const PAGE_SIZE: i64 = 16 * 1024;

/// WAL pages between checkpoints: 16 MiB at [`PAGE_SIZE`], four times SQLite's default,
/// so a page the group commits rewrite (an index's last leaf) is copied back once per
/// checkpoint rather than once per 4 MiB. SQLite's automatic checkpoint uses it; so does
/// the recording writer's checkpoint thread (`store/checkpoint.rs`), which reads it from
/// the connection.
const AUTOCHECKPOINT_PAGES: i64 = 16 * 1024 * 1024 / PAGE_SIZE;

/// How long opening waits for another process's write lock (a migration, an import).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

/// The embedded migrations in order: `NN-name/up.sql`, numbered from 1.
fn migrations() -> Vec<(&'static str, &'static str)> {
    let mut dirs: Vec<_> = MIGRATIONS_DIR
        .dirs()
        .filter_map(|d| {
            let name = d.path().to_str()?;
            let up = d.get_file(d.path().join("up.sql"))?.contents_utf8()?;
            Some((name, up))
        })
        .collect();
    dirs.sort();
    dirs
}

/// The schema version this build writes.
fn latest() -> i64 {
    MIGRATIONS_DIR.dirs().count() as i64
}

/// Whether a command may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create the file if missing (record, import).
    Create,
    /// The file must exist (sessions, export).
    Existing,
}

/// Opens (and if allowed creates) a graphtape database for writing, migrated to the
/// current schema.
///
/// A new file is created owner-only (0600) before SQLite sees it: it holds traffic that
/// may be sensitive even with credentials redacted. SQLite gives its WAL and shared-memory
/// files the same permissions. Several processes may open the same new file at once:
/// creation tolerates a file that appeared meanwhile, and the migration runs inside one
/// `BEGIN IMMEDIATE` transaction that re-reads the version, so exactly one applies it.
pub fn open(path: &Path, access: Access) -> Result<Connection, StoreError> {
    if !path.exists() {
        match access {
            Access::Existing => {
                return Err(StoreError::NotFound {
                    path: path.to_path_buf(),
                })
            }
            Access::Create => create_private(path)?,
        }
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| not_openable(path, source))?;
    // Before anything that locks: the other processes starting now must wait, not fail.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    check_identity(&conn, path)?;
    // Only takes effect while the file is empty (before the WAL switch writes page 1);
    // processes creating one file together all ask for the same size.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    use_wal(&conn).map_err(|e| match e {
        StoreError::Sqlite(source) => not_openable(path, source),
        e => e,
    })?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Puts the database in WAL mode (persistent: only its first opener changes it).
/// Switching needs an exclusive lock, and SQLite answers "database is locked" at once,
/// without waiting, to a connection that would deadlock with another one switching at the
/// same moment (several processes opening one new file): that is retried here.
fn use_wal(conn: &Connection) -> Result<(), StoreError> {
    super::batch::retry_locked(
        BUSY_TIMEOUT,
        |_| {},
        || {
            let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                conn.pragma_update(None, "journal_mode", "WAL")?;
            }
            Ok(())
        },
    )
}

/// Opens an existing database for reading only: no migration, no file created, works in
/// a read-only directory. Used by every command that does not write.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|source| not_openable(path, source))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let conn = match check_identity(&conn, path) {
        // A WAL database needs its -shm file; in a read-only directory with no writer
        // (no -wal file) nothing can change it, so it is read as immutable.
        Err(StoreError::Unreadable { .. }) if !wal_file(path).exists() => {
            let conn = Connection::open_with_flags(
                immutable_uri(path),
                flags | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(|source| not_openable(path, source))?;
            check_identity(&conn, path)?;
            conn
        }
        Err(e) => return Err(e),
        Ok(()) => conn,
    };
    let found = user_version(&conn)?;
    if found < OLDEST_READABLE {
        return Err(StoreError::TooOld {
            path: path.to_path_buf(),
            found,
        });
    }
    Ok(conn)
}

/// Refuses a damaged database before anything is appended to it (`PRAGMA quick_check`:
/// every page and index entry, not the contents of rows).
pub fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|e| damaged(e.to_string()))?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| damaged(e.to_string()))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(damaged(
            problems
                .iter()
                .flat_map(|p| p.lines())
                .filter(|l| !l.starts_with("***"))
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

fn wal_file(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// `file:PATH?immutable=1`, with the characters a URI gives meaning to escaped.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    match crate::private_file::create_new_private(path) {
        Ok(_) => Ok(()),
        // Another process created it a moment ago: open theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A failure to open or read the file: permissions and missing directories are said as
/// such; only SQLite's "not a database" and corruption codes call the file corrupt.
fn not_openable(path: &Path, source: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::NotSqlite { path, source }
        }
        _ => StoreError::Unreadable { path, source },
    }
}

/// Refuses files that are not SQLite, SQLite files of other programs, and databases from
/// a newer graphtape. A fresh empty file passes (the migration stamps it).
fn check_identity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let (app_id, objects) = identity(conn).map_err(|source| not_openable(path, source))?;
    match (app_id, objects) {
        (APPLICATION_ID, _) | (0, 0) => {}
        _ => {
            return Err(StoreError::NotGraphtape {
                path: path.to_path_buf(),
            })
        }
    }
    let found = user_version(conn)?;
    if found > latest() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known: latest(),
        });
    }
    Ok(())
}

/// The application id and the number of schema objects, read in one statement (one
/// snapshot): read apart, another process's migration committing in between made a new
/// graphtape file look like someone else's (an id of 0 with tables).
fn identity(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id()),
                (SELECT count(*) FROM sqlite_schema)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Applies the migrations this file lacks, all in one transaction that holds the write
/// lock from its start, re-checking identity and version under it.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let failed = |source| StoreError::Migrate {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let (app_id, objects) = identity(&tx).map_err(failed)?;
    if app_id == 0 && objects == 0 {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(failed)?;
    }
    let found = user_version(&tx)?;
    let all = migrations();
    for (name, up) in all.iter().skip(found.max(0) as usize) {
        tracing::debug!(migration = name, "migrating {}", path.display());
        tx.execute_batch(up).map_err(failed)?;
    }
    if (found as usize) < all.len() {
        tx.pragma_update(None, "user_version", all.len() as i64)
            .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

/// The key behind deterministic redaction placeholders, made once per database so that
/// the same token gets the same placeholder in every session of it.
pub fn redaction_key(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let read = || -> Result<Option<Vec<u8>>, StoreError> {
        Ok(conn
            .query_row(
                "SELECT value FROM settings WHERE key = 'redaction_key'",
                [],
                |r| r.get(0),
            )
            .optional()?)
    };
    if let Some(key) = read()? {
        return Ok(key);
    }
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| StoreError::Corrupt("the system random generator failed".into()))?;
    // Another process opening the new database at the same time may win: keep its key.
    conn.execute(
        "INSERT OR IGNORE INTO settings (key, value) VALUES ('redaction_key', ?1)",
        [&key],
    )?;
    read()?.ok_or_else(|| StoreError::Corrupt("the redaction key was not stored".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_threads_opening_one_new_file_at_once_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format!("new-{round}.db"));
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        open(&path, Access::Create).map(|_| ())
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
        }
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute("CREATE TABLE t (x)", [])
            .unwrap();
        assert!(matches!(
            open_read_only(&other),
            Err(StoreError::NotGraphtape { .. })
        ));
        assert!(matches!(
            open_read_only(&dir.path().join("none.db")),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn embedded_migrations_are_numbered_from_one_in_order() {
        let all = migrations();
        assert_eq!(all.len() as i64, latest());
        for (i, (name, up)) in all.iter().enumerate() {
            assert!(name.starts_with(&format!("{:02}-", i + 1)), "{name}");
            assert!(!up.trim().is_empty(), "{name}");
        }
    }

    #[test]
    fn fresh_file_is_created_private_and_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open(&path, Access::Create).unwrap();
        let id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(id, APPLICATION_ID);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        drop(conn);
        // Reopening is fine and keeps the redaction key.
        let conn = open(&path, Access::Existing).unwrap();
        let k1 = redaction_key(&conn).unwrap();
        let k2 = redaction_key(&conn).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 32);
    }

    fn page_size(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_new_file_gets_large_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new.db");
        let conn = open(&new, Access::Create).unwrap();
        assert_eq!(page_size(&conn), PAGE_SIZE);
        let pages: i64 = conn
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(pages * PAGE_SIZE, 16 << 20);

        // A database made by an earlier graphtape, with SQLite's default pages, in WAL.
        let old = dir.path().join("old.db");
        let conn = Connection::open(&old).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        drop(conn);
        let conn = open(&old, Access::Existing).unwrap();
        assert_eq!(page_size(&conn), 4096);
        let session = crate::store::create_session(&conn, "s", 0, &serde_json::json!({}));
        assert!(session.is_ok(), "{session:?}");
    }

    #[test]
    fn missing_file_is_not_created_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.db");
        let err = open(&path, Access::Existing).unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
        assert!(!path.exists());
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(open(&path, Access::Create).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = open(&path, Access::Existing).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }
}
