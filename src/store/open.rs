//! Opening a database: permission-safe creation, identity and version checks, migrations.

use std::path::Path;
use std::sync::LazyLock;

use include_dir::{include_dir, Dir};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::Migrations;

use super::StoreError;

/// Marks a SQLite file as graphtape's ("GTAP").
const APPLICATION_ID: i64 = 0x4754_4150;

static MIGRATIONS_DIR: Dir = include_dir!("$CARGO_MANIFEST_DIR/migrations");

static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::from_directory(&MIGRATIONS_DIR).expect("embedded migrations are well-formed")
});

/// Whether a command may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create the file if missing (record, import).
    Create,
    /// The file must exist (sessions, export).
    Existing,
}

/// Opens (and if allowed creates) a graphtape database, migrated to the current schema.
///
/// A new file is created owner-only (0600) before SQLite sees it: it holds traffic that
/// may be sensitive even with credentials redacted. SQLite gives its WAL and shared-memory
/// files the same permissions.
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
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::NotSqlite {
        path: path.to_path_buf(),
        source,
    })?;
    check_identity(&conn, path)?;
    let mut conn = conn;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(conn)
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    crate::private_file::create_new_private(path)
        .map(drop)
        .map_err(|source| StoreError::Create {
            path: path.to_path_buf(),
            source,
        })
}

/// Refuses files that are not SQLite, SQLite files of other programs, and databases from
/// a newer graphtape; stamps a fresh empty file as graphtape's.
fn check_identity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let not_sqlite = |source| StoreError::NotSqlite {
        path: path.to_path_buf(),
        source,
    };
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(not_sqlite)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(not_sqlite)?;
    match (app_id, objects) {
        (APPLICATION_ID, _) => {}
        (0, 0) => conn.pragma_update(None, "application_id", APPLICATION_ID)?,
        _ => {
            return Err(StoreError::NotGraphtape {
                path: path.to_path_buf(),
            })
        }
    }
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS_DIR.dirs().count() as i64;
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    Ok(())
}

/// The key behind deterministic redaction placeholders, made once per database so that
/// the same token gets the same placeholder in every session of it.
pub fn redaction_key(conn: &Connection) -> Result<Vec<u8>, StoreError> {
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'redaction_key'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(key) = existing {
        return Ok(key);
    }
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| StoreError::Corrupt("the system random generator failed".into()))?;
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('redaction_key', ?1)",
        [&key],
    )?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_migrations_are_valid() {
        assert!(MIGRATIONS.validate().is_ok());
        assert!(MIGRATIONS_DIR.dirs().count() >= 1);
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
