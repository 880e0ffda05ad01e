//! The SQLite store: opening and migrating a database, session and exchange rows, and
//! the writer thread that keeps SQLite off the async runtime.
//!
//! A graphtape database is marked with its own `application_id`, so a file that is not
//! SQLite, or SQLite written by another program, is refused before anything touches it.

mod batch;
mod budget;
mod checkpoint;
mod exchanges;
mod health;
mod live;
mod open;
mod packed;
mod prepare;
mod prune;
mod rotation;
mod routes;
mod sessions;
mod trim;
mod writer;

pub use batch::LOCK_PATIENCE;
pub use budget::OVERHEAD as QUEUE_OVERHEAD_PER_EXCHANGE;
pub use exchanges::{insert_exchange, load_exchanges};
pub use health::StoreHealth;
pub use live::{create_live_session, create_live_session_named, is_recording, LiveLock};
pub use open::{check_integrity, open, open_read_only, redaction_key, Access};
pub use packed::Packed;
pub use prepare::prepare;
pub use prune::{delete_sessions, prune, prune_among, vacuum, PruneRule, Pruned, Removed};
pub use rotation::{RotateRule, Rotation};
pub use routes::{insert_route, load_routes, NewRoute};
pub use sessions::{
    create_session, create_session_named, find_session, list_sessions, unused_name, SessionInfo,
    SessionSummary,
};
pub use writer::{
    spawn_writer, spawn_writer_rotating, spawn_writer_sanitized, spawn_writer_with, Recorder,
    WriterHandle, WriterOptions, COMMIT_INTERVAL, QUEUE_BYTES,
};

use std::path::PathBuf;

/// What can go wrong with a database. Each variant names the file or the session so the
/// user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database at {path}: record a session first or pass --db")]
    NotFound { path: PathBuf },
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a SQLite database (is it corrupt, or another kind of file?): {source}")]
    NotSqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} is a SQLite database but not a graphtape one; refusing to modify it")]
    NotGraphtape { path: PathBuf },
    #[error(
        "{path} was written by a newer graphtape (schema {found}, this build knows up to {known}); upgrade graphtape"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("migrating {path}: {source}")]
    Migrate {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot read {path}: {source} (check the file's and its directory's permissions)")]
    Unreadable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} has schema {found}, older than this build reads without migrating; open it once with `graphtape record` or `import` to upgrade it"
    )]
    TooOld { path: PathBuf, found: i64 },
    #[error("{path} is damaged ({reason}); refusing to record into it. Export what is readable, or start a new database with --db")]
    Damaged { path: PathBuf, reason: String },
    #[error("session {name:?} already exists in this database; choose another name")]
    SessionExists { name: String },
    #[error("no session {name:?} in this database{}", suggest(.name, .known))]
    SessionNotFound { name: String, known: Vec<String> },
    #[error("session {name:?} is being recorded by a running graphtape; stop it first")]
    Recording { name: String },
    #[error("the recording lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The nearest names ("did you mean"), not every session: a database may hold hundreds.
fn suggest(name: &str, known: &[String]) -> String {
    if known.is_empty() {
        return " (it has no sessions)".to_string();
    }
    let near = nearest(name, known);
    let quoted: Vec<String> = near.iter().map(|n| format!("{n:?}")).collect();
    match quoted.as_slice() {
        [] => format!(
            " (it has {}; `graphtape sessions` lists them)",
            crate::plural::count(known.len() as u64, "session")
        ),
        [one] => format!("; did you mean {one}?"),
        many => format!("; did you mean one of {}?", many.join(", ")),
    }
}

/// Up to three names close to `name` (edit distance, ignoring case; or one containing
/// the other), closest first.
fn nearest<'a>(name: &str, known: &'a [String]) -> Vec<&'a str> {
    let wanted = name.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = known
        .iter()
        .filter_map(|k| {
            let lower = k.to_lowercase();
            let d = strsim::levenshtein(&wanted, &lower);
            let contains = lower.contains(&wanted) || wanted.contains(&lower);
            (d <= limit || contains).then_some((d, k.as_str()))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sessions_suggest_the_nearest_names() {
        let known: Vec<String> = ["demo", "demo-2", "incoming-call", "rec-20261201-101500"]
            .map(String::from)
            .to_vec();
        assert_eq!(suggest("dmo", &known), "; did you mean \"demo\"?");
        assert_eq!(
            suggest("Incoming", &known),
            "; did you mean \"incoming-call\"?"
        );
        assert_eq!(
            suggest("demo-3", &known),
            "; did you mean one of \"demo-2\", \"demo\"?"
        );
        assert_eq!(
            suggest("zzzzzz", &known),
            " (it has 4 sessions; `graphtape sessions` lists them)"
        );
        assert_eq!(suggest("x", &[]), " (it has no sessions)");
    }
}
