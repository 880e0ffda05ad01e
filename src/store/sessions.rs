//! Session rows: one per `record` run (or import).

use rusqlite::{params, Connection, OptionalExtension};

use super::StoreError;

/// A session's identity and recording settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub id: i64,
    pub name: String,
    pub started_unix_us: i64,
    pub ended_us: Option<i64>,
    pub config: serde_json::Value,
    pub unrecorded: u64,
}

/// A session with the counts `graphtape sessions` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    pub info: SessionInfo,
    pub api_exchanges: u64,
    /// Callback POSTs (each may carry several notifications).
    pub callbacks: u64,
    /// Notifications inside those POSTs.
    pub notifications: u64,
    /// Distinct calls named by API exchanges or notifications.
    pub calls: u64,
    /// Offset of the last thing that happened, for sessions that never recorded an end.
    pub last_event_us: Option<i64>,
}

/// Creates a session; a name already taken is an error rather than a silent merge.
pub fn create_session(
    conn: &Connection,
    name: &str,
    started_unix_us: i64,
    config: &serde_json::Value,
) -> Result<i64, StoreError> {
    let taken: Option<i64> = conn
        .query_row("SELECT id FROM sessions WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::SessionExists { name: name.into() });
    }
    conn.execute(
        "INSERT INTO sessions (name, started_unix_us, config) VALUES (?1, ?2, ?3)",
        params![name, started_unix_us, config.to_string()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The first of `candidates` that names no session yet.
pub fn unused_name(
    conn: &Connection,
    candidates: impl IntoIterator<Item = String>,
) -> Option<String> {
    candidates
        .into_iter()
        .find(|name| find_session(conn, name).is_err())
}

/// Looks a session up by name; the error lists the sessions that do exist.
pub fn find_session(conn: &Connection, name: &str) -> Result<SessionInfo, StoreError> {
    let found = conn
        .query_row(
            "SELECT id, name, started_unix_us, ended_us, config, unrecorded
             FROM sessions WHERE name = ?1",
            [name],
            session_from_row,
        )
        .optional()?;
    match found {
        Some(info) => info,
        None => {
            let mut stmt = conn.prepare("SELECT name FROM sessions ORDER BY id")?;
            let known = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Err(StoreError::SessionNotFound {
                name: name.into(),
                known,
            })
        }
    }
}

/// All sessions in creation order, with their counts.
pub fn list_sessions(conn: &Connection) -> Result<Vec<SessionSummary>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT s.id, s.name, s.started_unix_us, s.ended_us, s.config, s.unrecorded,
                (SELECT count(*) FROM exchanges e WHERE e.session_id = s.id AND e.direction = 'api'),
                (SELECT count(*) FROM exchanges e WHERE e.session_id = s.id AND e.direction = 'callback'),
                (SELECT count(*) FROM (
                    SELECT call_id FROM exchanges e WHERE e.session_id = s.id AND call_id IS NOT NULL
                    UNION
                    SELECT call_id FROM notifications n WHERE n.session_id = s.id AND call_id IS NOT NULL)),
                (SELECT max(coalesce(response_end_us, request_end_us, request_start_us))
                   FROM exchanges e WHERE e.session_id = s.id),
                (SELECT count(*) FROM notifications n WHERE n.session_id = s.id)
         FROM sessions s ORDER BY s.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let info = session_from_row(r)?;
        Ok(info.map(|info| SessionSummary {
            info,
            api_exchanges: r.get::<_, i64>(6).map(|n| n as u64).unwrap_or(0),
            callbacks: r.get::<_, i64>(7).map(|n| n as u64).unwrap_or(0),
            notifications: r.get::<_, i64>(10).map(|n| n as u64).unwrap_or(0),
            calls: r.get::<_, i64>(8).map(|n| n as u64).unwrap_or(0),
            last_event_us: r.get(9).unwrap_or(None),
        }))
    })?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// Reads the session columns (the first six of the query); a config that is not JSON
/// is reported as damage, not a panic.
fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<SessionInfo, StoreError>> {
    let config: String = r.get(4)?;
    let name: String = r.get(1)?;
    let config = match serde_json::from_str(&config) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(StoreError::Corrupt(format!(
                "session {name:?} has an unreadable config: {e}"
            ))))
        }
    };
    Ok(Ok(SessionInfo {
        id: r.get(0)?,
        name,
        started_unix_us: r.get(2)?,
        ended_us: r.get(3)?,
        config,
        unrecorded: r.get::<_, i64>(5)? as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, Access};

    #[test]
    fn create_find_list() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("s.db"), Access::Create).unwrap();
        let cfg = serde_json::json!({"upstream": "https://graph.microsoft.com"});
        let id = create_session(&conn, "a", 1_700_000_000_000_000, &cfg).unwrap();
        assert!(matches!(
            create_session(&conn, "a", 0, &cfg),
            Err(StoreError::SessionExists { .. })
        ));
        let found = find_session(&conn, "a").unwrap();
        assert_eq!(found.id, id);
        assert_eq!(found.config, cfg);
        let err = find_session(&conn, "b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no session \"b\" in this database; did you mean \"a\"?"
        );
        let all = list_sessions(&conn).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].api_exchanges, 0);
        assert_eq!(all[0].calls, 0);
    }
}
