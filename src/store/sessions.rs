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
    match try_create(conn, name, started_unix_us, config)? {
        Some(id) => Ok(id),
        None => Err(StoreError::SessionExists { name: name.into() }),
    }
}

/// Creates a session under the first of `candidates` not taken, atomically: the name's
/// UNIQUE constraint decides, so processes allocating names at the same time (parallel
/// replays' `NAME-replay-N`) each get their own.
pub fn create_session_named(
    conn: &Connection,
    candidates: impl IntoIterator<Item = String>,
    started_unix_us: i64,
    config: &serde_json::Value,
) -> Result<(i64, String), StoreError> {
    let mut last = String::new();
    for name in candidates.into_iter().take(10_000) {
        if let Some(id) = try_create(conn, &name, started_unix_us, config)? {
            return Ok((id, name));
        }
        last = name;
    }
    Err(StoreError::SessionExists { name: last })
}

/// Inserts the session row; None if the name is taken.
fn try_create(
    conn: &Connection,
    name: &str,
    started_unix_us: i64,
    config: &serde_json::Value,
) -> Result<Option<i64>, StoreError> {
    let inserted = conn.execute(
        "INSERT INTO sessions (name, started_unix_us, config)
         VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
        params![name, started_unix_us, config.to_string()],
    )?;
    Ok((inserted == 1).then(|| conn.last_insert_rowid()))
}

/// The first of `candidates` that names no session yet (for suggestions; to create a
/// session under a free name, use [`create_session_named`], which is atomic).
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

#[cfg(test)]
mod naming_tests {
    use super::*;
    use crate::store::{open, Access};

    #[test]
    fn named_creation_takes_the_first_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("n.db"), Access::Create).unwrap();
        let cfg = serde_json::json!({});
        let names = || (1..).map(|n| format!("s-replay-{n}"));
        let (_, first) = create_session_named(&conn, names(), 0, &cfg).unwrap();
        let (_, second) = create_session_named(&conn, names(), 0, &cfg).unwrap();
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("s-replay-1", "s-replay-2")
        );
    }
}
