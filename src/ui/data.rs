//! What the views read from a database: a session's view model (with its findings and,
//! for a replay, its divergences), through a connection that cannot write
//! ([`store::open_read_only`]).
//!
//! Blocking (SQLite): the server calls these on tokio's blocking pool.

use rusqlite::Connection;

use crate::exchange::{Exchange, StoredBody};
use crate::inspect::diff::diff;
use crate::inspect::model::{self, ViewModel};
use crate::inspect::{check, Finding};
use crate::store::{self, SessionInfo, StoreError};

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
    use crate::store::{create_session, insert_exchange, open, open_read_only, Access};

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
}
