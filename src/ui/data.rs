//! What the views read from a database: a session's view model (with its findings and,
//! for a replay, its divergences), through a connection that cannot write.
//!
//! Blocking (SQLite): the server calls these on tokio's blocking pool.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::exchange::{Exchange, StoredBody};
use crate::inspect::diff::diff;
use crate::inspect::model::{self, ViewModel};
use crate::inspect::{check, Finding};
use crate::store::{self, SessionInfo, StoreError};

/// `PRAGMA application_id` of a graphtape database ("GTAP").
const APPLICATION_ID: i64 = 0x4754_4150;

/// Opens `path` read-only: the inspector never writes, and a recording process can
/// keep writing beside it (WAL lets readers run with the writer).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::NotFound {
            path: path.to_path_buf(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::NotSqlite {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|source| StoreError::NotSqlite {
            path: path.to_path_buf(),
            source,
        })?;
    if app_id != APPLICATION_ID {
        return Err(StoreError::NotGraphtape {
            path: path.to_path_buf(),
        });
    }
    Ok(conn)
}

/// The model of a session: `check`'s findings, and for a replay session whose
/// recording is in the same database, the divergences from it.
pub fn session_model(
    conn: Option<&Connection>,
    info: &SessionInfo,
    exchanges: &[Exchange<StoredBody>],
) -> Result<ViewModel, StoreError> {
    let findings: Vec<Finding> = check(exchanges);
    let recorded = match (conn, model::replay_of(info)) {
        (Some(conn), Some(name)) => match store::find_session(conn, &name) {
            Ok(original) => Some(store::load_exchanges(conn, original.id)?),
            Err(StoreError::SessionNotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let lines = recorded.as_deref().map(|r| diff(r, exchanges));
    Ok(model::build(info, exchanges, &findings, lines.as_deref()))
}

/// A session and its exchanges, by name.
pub fn load_session(
    conn: &Connection,
    name: &str,
) -> Result<(SessionInfo, Vec<Exchange<StoredBody>>), StoreError> {
    let info = store::find_session(conn, name)?;
    let exchanges = store::load_exchanges(conn, info.id)?;
    Ok((info, exchanges))
}

/// Changes whenever the session gains an exchange or ends: what the live page polls.
pub fn stamp(conn: &Connection, name: &str) -> Result<String, StoreError> {
    let info = store::find_session(conn, name)?;
    let (count, last): (i64, Option<i64>) = conn.query_row(
        "SELECT count(*), max(seq) FROM exchanges WHERE session_id = ?1",
        [info.id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(format!(
        "{count}:{}:{}",
        last.unwrap_or(0),
        info.ended_us.map_or_else(|| "-".into(), |e| e.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{create_session, insert_exchange, open, Access};

    #[test]
    fn read_only_reads_beside_a_writer_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        let writer = open(&db, Access::Create).unwrap();
        let id = create_session(&writer, "s", 0, &serde_json::json!({})).unwrap();
        let reader = open_read_only(&db).unwrap();
        assert_eq!(stamp(&reader, "s").unwrap(), "0:0:-");
        let ex = crate::inspect::testutil::seed_flow().remove(0);
        insert_exchange(&writer, id, &ex).unwrap();
        assert_eq!(stamp(&reader, "s").unwrap(), "1:1:-");
        assert!(reader
            .execute("DELETE FROM sessions", [])
            .is_err_and(|e| e.to_string().contains("readonly")));
        let (info, exchanges) = load_session(&reader, "s").unwrap();
        let m = session_model(Some(&reader), &info, &exchanges).unwrap();
        assert_eq!(m.events.len(), 2);
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
}
