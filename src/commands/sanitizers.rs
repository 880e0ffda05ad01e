//! The sanitiser flags and rules file as [`Rules`], and the key placeholders use.

use std::path::Path;

use crate::cli::SanitizeArgs;
use crate::sanitize::{Rules, RulesFile, Sanitizer};
use crate::store::{self, Access};

/// The rules the flags and the `--sanitizers` file give (possibly none).
pub fn given(args: &SanitizeArgs) -> anyhow::Result<RulesFile> {
    let mut given = RulesFile {
        pii: args.redact_pii,
        json_keys: args.json_keys.clone(),
        ids: args.ids.clone(),
        headers: args.headers.clone(),
        query: args.query.clone(),
        regex: args.regex.clone(),
    };
    if let Some(file) = &args.sanitizers {
        given.merge(RulesFile::read(file)?);
    }
    Ok(given)
}

/// The rules given, or the `--redact-pii` preset when none is (`export --sanitize`).
pub fn rules_or_pii(args: &SanitizeArgs) -> anyhow::Result<Rules> {
    let mut given = given(args)?;
    if given.is_empty() {
        given.pii = true;
    }
    Ok(Rules::build(given)?)
}

/// Whether any rule flag or file was given.
pub fn any(args: &SanitizeArgs) -> bool {
    args.redact_pii
        || args.sanitizers.is_some()
        || !(args.json_keys.is_empty()
            && args.ids.is_empty()
            && args.headers.is_empty()
            && args.query.is_empty()
            && args.regex.is_empty())
}

/// The database's key, so placeholders match those of its recordings; a fresh one
/// (consistent within this run only) when there is no database.
pub fn key(db: &Path) -> anyhow::Result<Vec<u8>> {
    if db.exists() {
        let conn = store::open(db, Access::Existing)?;
        return Ok(store::redaction_key(&conn)?);
    }
    tracing::warn!(
        "no database at {}: placeholders are consistent within this export only",
        db.display()
    );
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(key)
}

/// The sanitiser `record` runs on its writer thread, if rules were given; notes the
/// rules in the session's provenance.
pub fn for_record(
    args: &SanitizeArgs,
    key: &[u8],
    config: &mut serde_json::Value,
) -> anyhow::Result<Option<Sanitizer>> {
    let given = given(args)?;
    if given.is_empty() {
        return Ok(None);
    }
    let rules = Rules::build(given)?;
    crate::recording::note_sanitized(config, rules.summary());
    Ok(Some(Sanitizer::new(rules, key)))
}
