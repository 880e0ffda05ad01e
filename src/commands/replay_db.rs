//! Where a replay records its own session: the user's database, or a temporary one
//! removed at the end (`--no-record`, or a recording file replayed without `--db`, which
//! then needs no database file at all).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::{self, Access};

/// The database a replay writes its session to.
pub struct ReplayDb {
    path: PathBuf,
    /// Set when the database is temporary; removing the directory removes it.
    temp: Option<tempfile::TempDir>,
}

impl ReplayDb {
    /// `db` unless the session is not to be kept, or nothing asked for a database.
    pub fn choose(
        db: &Path,
        db_given: bool,
        source_is_file: bool,
        no_record: bool,
    ) -> anyhow::Result<ReplayDb> {
        if !no_record && (db_given || !source_is_file) {
            return Ok(ReplayDb {
                path: db.to_path_buf(),
                temp: None,
            });
        }
        let temp = tempfile::Builder::new()
            .prefix("graphtape-replay-")
            .tempdir()
            .context("creating a temporary database for the replay")?;
        Ok(ReplayDb {
            path: temp.path().join("replay.db"),
            temp: Some(temp),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the replay session outlives the command.
    pub fn kept(&self) -> bool {
        self.temp.is_none()
    }

    /// Deletes the replay session (a replay that failed before any traffic leaves no
    /// stub behind). Best effort: the failure that led here is the one to report.
    pub fn discard(&self, session: &str) {
        if self.temp.is_some() {
            return;
        }
        let removed = store::open(&self.path, Access::Existing)
            .map_err(anyhow::Error::from)
            .and_then(|conn| {
                Ok(store::delete_sessions(
                    &conn,
                    &self.path,
                    &[session.to_string()],
                )?)
            });
        if let Err(e) = removed {
            tracing::warn!("could not remove the empty replay session {session}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kept_session_in_a_named_database_uses_it() {
        let db = Path::new("/data/x.db");
        for (given, file, no_record, kept) in [
            (true, true, false, true),
            (false, false, false, true),
            (false, true, false, false),
            (true, true, true, false),
            (false, false, true, false),
        ] {
            let chosen = ReplayDb::choose(db, given, file, no_record).unwrap();
            assert_eq!(chosen.kept(), kept, "{given} {file} {no_record}");
            assert_eq!(chosen.path() == db, kept);
        }
    }
}
