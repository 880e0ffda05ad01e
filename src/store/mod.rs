//! The SQLite store: opening and migrating a database, session and exchange rows, and
//! the writer thread that keeps SQLite off the async runtime.
//!
//! A graphtape database is marked with its own `application_id`, so a file that is not
//! SQLite, or SQLite written by another program, is refused before anything touches it.

mod exchanges;
mod live;
mod open;
mod prepare;
mod prune;
mod routes;
mod sessions;
mod writer;

pub use exchanges::{insert_exchange, load_exchanges};
pub use live::{create_live_session, is_recording, LiveLock};
pub use open::{open, redaction_key, Access};
pub use prepare::prepare;
pub use prune::{delete_sessions, prune, vacuum, PruneRule, Pruned, Removed};
pub use routes::{insert_route, load_routes};
pub use sessions::{
    create_session, find_session, list_sessions, unused_name, SessionInfo, SessionSummary,
};
pub use writer::{spawn_writer, spawn_writer_sanitized, Recorder, StoreHealth, WriterHandle};

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
        source: rusqlite_migration::Error,
    },
    #[error("session {name:?} already exists in this database; choose another name")]
    SessionExists { name: String },
    #[error("no session {name:?} in this database{}", known_sessions(.known))]
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

fn known_sessions(known: &[String]) -> String {
    if known.is_empty() {
        " (it has no sessions)".to_string()
    } else {
        format!(" (sessions: {})", known.join(", "))
    }
}
