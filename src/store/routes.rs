//! Callback route rows: minted token → the URL the bot gave.

use rusqlite::{params, Connection};

use super::StoreError;

/// A callback route to persist: the minted token and the URL it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoute {
    pub token: String,
    pub target: String,
}

/// Every route ever minted in this database.
pub fn load_routes(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare("SELECT token, target_url FROM callback_routes")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Stores a route; storing a known one again is a no-op.
pub fn insert_route(
    conn: &Connection,
    token: &str,
    target: &str,
    created_unix_us: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR IGNORE INTO callback_routes (token, target_url, created_unix_us)
         VALUES (?1, ?2, ?3)",
        params![token, target, created_unix_us],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, Access};

    #[test]
    fn routes_persist_and_repeat_inserts_are_harmless() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let conn = open(&path, Access::Create).unwrap();
        insert_route(&conn, "t1", "https://bot/a", 1).unwrap();
        insert_route(&conn, "t1", "https://bot/a", 2).unwrap();
        drop(conn);
        let conn = open(&path, Access::Existing).unwrap();
        assert_eq!(
            load_routes(&conn).unwrap(),
            vec![("t1".to_string(), "https://bot/a".to_string())]
        );
    }
}
