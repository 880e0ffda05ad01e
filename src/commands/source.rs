//! What the reading commands take: a session in the database, or a recording file.

use std::path::Path;

use anyhow::bail;

use crate::exchange::{Exchange, StoredBody};
use crate::graph::normalize_id;
use crate::store::{self, SessionInfo};

/// A session and its exchanges, from wherever they are.
pub struct Source {
    pub info: SessionInfo,
    pub exchanges: Vec<Exchange<StoredBody>>,
}

/// A recording file if `source` names one, else a session in `db`.
pub fn load(db: &Path, source: &str) -> anyhow::Result<Source> {
    let as_file = Path::new(source);
    if as_file.is_file() {
        let loaded = super::progress::read_recording(as_file)?;
        return Ok(Source {
            info: loaded.session,
            exchanges: loaded.exchanges,
        });
    }
    // A path that names no file is a recording the user expected to find, whatever
    // database happens to be around (a stray ./graphtape.db must not change the answer).
    let looks_like_file = source.ends_with(".json") || source.contains('/');
    if looks_like_file && !db.exists() {
        bail!(
            "{source}: no such recording file (and no database at {} to find a session in)",
            db.display()
        );
    }
    let conn = store::open_read_only(db)?;
    let info = match store::find_session(&conn, source) {
        Err(store::StoreError::SessionNotFound { .. }) if looks_like_file => bail!(
            "{source}: no such recording file, and no session of that name in {}",
            db.display()
        ),
        found => found?,
    };
    let exchanges = store::load_exchanges(&conn, info.id)?;
    Ok(Source { info, exchanges })
}

/// Checks that `call` (any spelling) is a call of the session; the error lists them.
pub fn check_call(source: &Source, call: &str) -> anyhow::Result<String> {
    let Some(norm) = normalize_id(call) else {
        bail!("--call {call:?}: not a call id");
    };
    let known: Vec<String> = crate::inspect::calls(&source.exchanges)
        .into_iter()
        .map(|c| c.id)
        .collect();
    if !known.contains(&norm) {
        bail!(
            "--call {call}: no such call in session {} (calls: {})",
            source.info.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(norm)
}
