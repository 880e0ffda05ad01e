//! Removing sessions: by name (`sessions delete`), by age or count (`prune`), and
//! giving the space back (`vacuum`). A session a live process is writing is never
//! removed (see [`super::live`]).
//!
//! Deleting a session deletes its exchanges and their notification index (foreign keys
//! cascade); callback routes belong to the database, not to a session, and stay.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::live::is_recording;
use super::sessions::{find_session, list_sessions, SessionSummary};
use super::StoreError;

/// Which sessions `prune` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneRule {
    /// Sessions that started longer ago than this.
    OlderThan(Duration),
    /// All but the N most recently started sessions.
    KeepLast(usize),
}

/// A session that was (or, in a dry run, would be) deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub name: String,
    pub started_unix_us: i64,
    /// API exchanges and notification POSTs.
    pub exchanges: u64,
}

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    pub removed: Vec<Removed>,
    /// Sessions the rule chose but a live process is writing: left alone.
    pub recording: Vec<String>,
    /// Sessions left in the database.
    pub kept: usize,
}

/// Pure: the sessions `rule` chooses, oldest first, given the time now.
pub fn choose(sessions: &[SessionSummary], rule: PruneRule, now_unix_us: i64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    // Newest first; the id breaks ties between sessions started the same microsecond.
    order.sort_by_key(|&i| {
        let s = &sessions[i].info;
        std::cmp::Reverse((s.started_unix_us, s.id))
    });
    let mut chosen: Vec<usize> = match rule {
        PruneRule::KeepLast(n) => order.into_iter().skip(n).collect(),
        PruneRule::OlderThan(age) => {
            let cutoff =
                now_unix_us.saturating_sub(i64::try_from(age.as_micros()).unwrap_or(i64::MAX));
            order
                .into_iter()
                .filter(|&i| sessions[i].info.started_unix_us < cutoff)
                .collect()
        }
    };
    chosen.reverse();
    chosen
}

fn removed(s: &SessionSummary) -> Removed {
    Removed {
        name: s.info.name.clone(),
        started_unix_us: s.info.started_unix_us,
        exchanges: s.api_exchanges + s.callbacks,
    }
}

/// Deletes the named sessions, all or none: an unknown name or a session being
/// recorded refuses the whole command.
pub fn delete_sessions(
    conn: &Connection,
    db: &Path,
    names: &[String],
) -> Result<Vec<Removed>, StoreError> {
    // Immediate: the write lock from the start, so what is read is what is deleted.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let all = list_sessions(&tx)?;
    let mut chosen = Vec::new();
    for name in names {
        let info = find_session(&tx, name)?;
        if is_recording(db, &info)? {
            return Err(StoreError::Recording { name: name.clone() });
        }
        if let Some(s) = all.iter().find(|s| s.info.id == info.id) {
            if !chosen
                .iter()
                .any(|c: &&SessionSummary| c.info.id == info.id)
            {
                chosen.push(s);
            }
        }
    }
    for s in &chosen {
        tx.execute("DELETE FROM sessions WHERE id = ?1", [s.info.id])?;
    }
    tx.commit()?;
    Ok(chosen.into_iter().map(removed).collect())
}

/// Deletes (or with `dry_run` only lists) the sessions `rule` chooses, skipping those
/// being recorded.
pub fn prune(
    conn: &Connection,
    db: &Path,
    rule: PruneRule,
    now_unix_us: i64,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    prune_among(conn, db, |_| true, rule, now_unix_us, dry_run)
}

/// Like [`prune`], choosing only among the sessions `eligible` accepts (a rotating
/// `record` prunes its own sessions, nobody else's).
pub fn prune_among(
    conn: &Connection,
    db: &Path,
    eligible: impl Fn(&SessionSummary) -> bool,
    rule: PruneRule,
    now_unix_us: i64,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let (all, others): (Vec<_>, Vec<_>) = list_sessions(&tx)?.into_iter().partition(eligible);
    let mut out = Pruned::default();
    for i in choose(&all, rule, now_unix_us) {
        let s = &all[i];
        if is_recording(db, &s.info)? {
            out.recording.push(s.info.name.clone());
            continue;
        }
        if !dry_run {
            tx.execute("DELETE FROM sessions WHERE id = ?1", [s.info.id])?;
        }
        out.removed.push(removed(s));
    }
    out.kept = all.len() + others.len() - out.removed.len();
    tx.commit()?;
    Ok(out)
}

/// Rebuilds the file without the space deleted sessions left, and empties the WAL.
/// Refused while any session is being recorded: a rebuild blocks writers for its whole
/// length, longer than a recorder waits before counting exchanges as lost.
pub fn vacuum(conn: &Connection, db: &Path) -> Result<(), StoreError> {
    for s in list_sessions(conn)? {
        if s.info.ended_us.is_none() && is_recording(db, &s.info)? {
            return Err(StoreError::Recording { name: s.info.name });
        }
    }
    conn.execute_batch("VACUUM")?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::live::create_live_session;
    use crate::store::{create_session, open, Access, SessionInfo};

    fn summary(id: i64, started: i64) -> SessionSummary {
        SessionSummary {
            info: SessionInfo {
                id,
                name: format!("s{id}"),
                started_unix_us: started,
                ended_us: Some(1),
                config: serde_json::json!({}),
                unrecorded: 0,
            },
            api_exchanges: 0,
            callbacks: 0,
            notifications: 0,
            calls: 0,
            last_event_us: None,
        }
    }

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn keep_last_chooses_all_but_the_newest() {
        // Creation order is not start order (imports keep their recorded start).
        let s = [
            summary(1, 30),
            summary(2, 10),
            summary(3, 20),
            summary(4, 40),
        ];
        assert_eq!(choose(&s, PruneRule::KeepLast(2), 0), vec![1, 2]);
        assert_eq!(choose(&s, PruneRule::KeepLast(0), 0), vec![1, 2, 0, 3]);
        assert!(choose(&s, PruneRule::KeepLast(9), 0).is_empty());
    }

    #[test]
    fn older_than_uses_the_start_time() {
        let now = 100 * DAY;
        let s = [
            summary(1, now - 8 * DAY),
            summary(2, now - DAY),
            summary(3, now - 30 * DAY),
        ];
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(choose(&s, PruneRule::OlderThan(week), now), vec![2, 0]);
        assert!(choose(&s, PruneRule::OlderThan(Duration::MAX), now).is_empty());
    }

    fn db_with(names: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("p.db");
        let conn = open(&db, Access::Create).unwrap();
        for (i, name) in names.iter().enumerate() {
            create_session(&conn, name, i as i64, &serde_json::json!({})).unwrap();
        }
        (dir, db, conn)
    }

    #[test]
    fn delete_is_all_or_nothing() {
        let (_dir, db, conn) = db_with(&["a", "b"]);
        let err = delete_sessions(&conn, &db, &["a".into(), "nope".into()]).unwrap_err();
        assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err}");
        assert_eq!(list_sessions(&conn).unwrap().len(), 2);
        let gone = delete_sessions(&conn, &db, &["a".into(), "a".into()]).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(list_sessions(&conn).unwrap()[0].info.name, "b");
    }

    #[test]
    fn live_sessions_are_refused_or_skipped() {
        let (_dir, db, conn) = db_with(&["old"]);
        let (_, lock) = create_live_session(&conn, &db, "live", 0, &serde_json::json!({})).unwrap();
        let err = delete_sessions(&conn, &db, &["live".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "session \"live\" is being recorded by a running graphtape; stop it first"
        );
        assert!(matches!(
            vacuum(&conn, &db),
            Err(StoreError::Recording { .. })
        ));
        let dry = prune(&conn, &db, PruneRule::KeepLast(0), 0, true).unwrap();
        assert_eq!(dry.recording, vec!["live".to_string()]);
        assert_eq!(dry.removed.len(), 1);
        assert_eq!(
            list_sessions(&conn).unwrap().len(),
            2,
            "a dry run deletes nothing"
        );
        let done = prune(&conn, &db, PruneRule::KeepLast(0), 0, false).unwrap();
        assert_eq!(done.removed[0].name, "old");
        assert_eq!(done.kept, 1);
        drop(lock);
        delete_sessions(&conn, &db, &["live".into()]).unwrap();
        vacuum(&conn, &db).unwrap();
        assert!(list_sessions(&conn).unwrap().is_empty());
    }
}
