//! Sanitising rules: what counts as personal or tenant data, from flags, a rules file
//! (TOML or JSON) and the built-in `--redact-pii` preset.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A JSON key path: `displayName`, or dotted (`user.id`) to name a key under another.
/// Compared ASCII case-insensitively; array levels do not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(Vec<String>);

impl KeyPath {
    pub fn parse(text: &str) -> Result<KeyPath, RulesError> {
        let segments: Vec<String> = text.split('.').map(str::to_string).collect();
        if segments.iter().any(|s| s.trim().is_empty()) {
            return Err(RulesError::Invalid(format!(
                "{text:?}: not a key path (give keys joined by dots, like user.id)"
            )));
        }
        Ok(KeyPath(segments))
    }

    /// Whether a value whose enclosing keys are `path` is exactly at this key path.
    pub fn is_at(&self, path: &[String]) -> bool {
        path.len() >= self.0.len()
            && path[path.len() - self.0.len()..]
                .iter()
                .zip(&self.0)
                .all(|(p, r)| p.eq_ignore_ascii_case(r))
    }

    /// Whether such a value is at or anywhere below this key path.
    pub fn covers(&self, path: &[String]) -> bool {
        (1..=path.len()).any(|k| self.is_at(&path[..k]))
    }

    /// The last key (what the replay matcher then ignores).
    pub fn leaf(&self) -> &str {
        self.0.last().map(String::as_str).unwrap_or_default()
    }

    fn text(&self) -> String {
        self.0.join(".")
    }
}

/// Why the rules could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{0}")]
    Invalid(String),
    #[error("--redact-regex {pattern:?}: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("cannot read the sanitizers file {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("sanitizers file {file}: {reason}")]
    File { file: String, reason: String },
}

/// A rules file: the same rules as the flags, kept beside the recordings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The built-in preset (`--redact-pii`).
    #[serde(default)]
    pub pii: bool,
    /// `--redact-json-key`: string values at or below these keys.
    #[serde(default)]
    pub json_keys: Vec<String>,
    /// `--redact-id`: ids at these keys, replaced consistently everywhere they appear.
    #[serde(default)]
    pub ids: Vec<String>,
    /// `--redact-header`: whole header values.
    #[serde(default)]
    pub headers: Vec<String>,
    /// `--redact-query`: query parameter values.
    #[serde(default)]
    pub query: Vec<String>,
    /// `--redact-regex`: matches in text bodies (capture group 1 when there is one).
    #[serde(default)]
    pub regex: Vec<String>,
}

impl RulesFile {
    /// Reads a `.toml` or `.json` file (by extension; else tried as TOML, then JSON).
    pub fn read(path: &Path) -> Result<RulesFile, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses the text of a rules file named `file`.
    pub fn parse(text: &str, file: &str) -> Result<RulesFile, RulesError> {
        let bad = |reason: String| RulesError::File {
            file: file.to_string(),
            reason,
        };
        let json = || serde_json::from_str::<RulesFile>(text).map_err(|e| bad(e.to_string()));
        let toml = || toml::from_str::<RulesFile>(text).map_err(|e| bad(e.to_string()));
        if file.ends_with(".json") {
            json()
        } else if file.ends_with(".toml") || !text.trim_start().starts_with('{') {
            toml()
        } else {
            json()
        }
    }

    /// Adds `other`'s rules to these.
    pub fn merge(&mut self, other: RulesFile) {
        self.pii |= other.pii;
        self.json_keys.extend(other.json_keys);
        self.ids.extend(other.ids);
        self.headers.extend(other.headers);
        self.query.extend(other.query);
        self.regex.extend(other.regex);
    }

    pub fn is_empty(&self) -> bool {
        *self == RulesFile::default()
    }
}

/// Display names, user principal names, e-mail addresses and phone numbers, at or
/// below these keys (identity sets, participant info, directory objects).
const PII_KEYS: &[&str] = &[
    "displayName",
    "userPrincipalName",
    "upn",
    "mail",
    "email",
    "emailAddress",
    "emailAddresses",
    "otherMails",
    "givenName",
    "surname",
    "phone",
    "phoneNumber",
    "phoneNumbers",
    "telephoneNumber",
    "mobilePhone",
    "businessPhones",
];

/// Ids of people and tenants in identity sets; replaced consistently, since matching
/// and the bot rely on them.
const PII_IDS: &[&str] = &[
    "user.id",
    "guest.id",
    "encrypted.id",
    "onPremises.id",
    "acsUser.id",
    "spoolUser.id",
    "azureCommunicationServicesUser.id",
    "tenantId",
];

/// E-mail addresses anywhere in a text body.
const EMAIL_PATTERN: &str =
    r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b";

/// The validated rules.
#[derive(Debug, Clone)]
pub struct Rules {
    pub json_keys: Vec<KeyPath>,
    pub ids: Vec<KeyPath>,
    /// Lower-case header names.
    pub headers: Vec<String>,
    pub query: Vec<String>,
    pub regexes: Vec<regex::Regex>,
    /// Token claims (in Authorization headers) whose ids are learned: `tid` (the
    /// tenant), `aud` (the bot's app id).
    pub claims: Vec<String>,
    /// What the rules were given as, for the provenance.
    pub given: RulesFile,
}

impl Rules {
    /// Validates `given`, expanding the preset.
    pub fn build(given: RulesFile) -> Result<Rules, RulesError> {
        let mut json_keys = Vec::new();
        let mut ids = Vec::new();
        let mut regex_texts: Vec<String> = given.regex.clone();
        if given.pii {
            json_keys.extend(PII_KEYS.iter().map(|k| k.to_string()));
            ids.extend(PII_IDS.iter().map(|k| k.to_string()));
            regex_texts.push(EMAIL_PATTERN.to_string());
        }
        json_keys.extend(given.json_keys.iter().cloned());
        ids.extend(given.ids.iter().cloned());
        let paths = |keys: Vec<String>| -> Result<Vec<KeyPath>, RulesError> {
            let mut out: Vec<KeyPath> = Vec::new();
            for k in keys {
                let p = KeyPath::parse(&k)?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Ok(out)
        };
        let regexes = regex_texts
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| RulesError::Regex {
                    pattern: p.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for name in &given.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(RulesError::Invalid(format!(
                    "--redact-header {name:?}: not a header name"
                )));
            }
        }
        Ok(Rules {
            json_keys: paths(json_keys)?,
            ids: paths(ids)?,
            headers: given
                .headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            query: given.query.clone(),
            regexes,
            claims: ["tid", "aud"]
                .into_iter()
                .filter(|c| given.pii || given.ids.iter().any(|k| k.eq_ignore_ascii_case(c)))
                .map(String::from)
                .collect(),
            given,
        })
    }

    /// The keys replay's matcher ignores in request bodies of a sanitised recording:
    /// the bot sends its real values where the recording holds placeholders.
    pub fn match_ignores(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.json_keys.iter().chain(&self.ids) {
            let leaf = p.leaf().to_string();
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&leaf)) {
                out.push(leaf);
            }
        }
        out
    }

    /// What the provenance records: the effective keys and names, and how many
    /// regular expressions (not their text, which may name what it hides).
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "pii": self.given.pii,
            "json_keys": self.json_keys.iter().map(KeyPath::text).collect::<Vec<_>>(),
            "ids": self.ids.iter().map(KeyPath::text).collect::<Vec<_>>(),
            "headers": self.headers,
            "query": self.query,
            "claims": self.claims,
            "regexes": self.regexes.len(),
            "match_ignores": self.match_ignores(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn key_paths_match_at_or_below() {
        let p = KeyPath::parse("user.Id").unwrap();
        assert!(p.is_at(&path(&["identity", "User", "ID"])));
        assert!(!p.is_at(&path(&["application", "id"])));
        assert!(!p.is_at(&path(&["id"])));
        let name = KeyPath::parse("phone").unwrap();
        assert!(name.covers(&path(&["source", "identity", "phone", "id"])));
        assert!(!name.covers(&path(&["phones", "id"])));
        assert!(KeyPath::parse("a..b").is_err());
        assert!(KeyPath::parse("").is_err());
    }

    #[test]
    fn files_parse_as_toml_or_json_and_refuse_unknown_keys() {
        let toml = "pii = true\njson_keys = [\"subject\"]\nregex = ['\\d{4}']\n";
        let f = RulesFile::parse(toml, "rules.toml").unwrap();
        assert!(f.pii);
        assert_eq!(f.json_keys, ["subject"]);
        assert_eq!(f.regex, [r"\d{4}"]);
        let json = r#"{"ids": ["organizer.user.id"], "headers": ["x-tenant"]}"#;
        let j = RulesFile::parse(json, "rules.json").unwrap();
        assert_eq!(j.ids, ["organizer.user.id"]);
        let err = RulesFile::parse("jsonkeys = []", "r.toml").unwrap_err();
        assert!(err.to_string().contains("r.toml"), "{err}");
        assert!(err.to_string().contains("jsonkeys"), "{err}");
    }

    #[test]
    fn the_preset_expands_and_bad_rules_are_named() {
        let rules = Rules::build(RulesFile {
            pii: true,
            ..RulesFile::default()
        })
        .unwrap();
        assert_eq!(rules.claims, ["tid", "aud"]);
        let ignores = rules.match_ignores();
        for key in ["displayName", "id", "tenantId", "phone"] {
            assert!(ignores.iter().any(|k| k.eq_ignore_ascii_case(key)), "{key}");
        }
        assert!(rules.regexes[0].is_match("mail heidi.steen@contoso.com now"));
        assert!(!rules.regexes[0].is_match("19:meeting_x@thread.v2"));
        let err = Rules::build(RulesFile {
            regex: vec!["(".into()],
            ..RulesFile::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("--redact-regex \"(\""), "{err}");
        let summary = rules.summary().to_string();
        assert!(!summary.contains("A-Za-z"), "patterns stay out: {summary}");
    }
}
