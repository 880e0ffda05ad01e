//! Replacing ids consistently: every spelling of a GUID (dashed or not, any case,
//! braced) maps to the same replacement, written in the original's spelling, so
//! lookups that normalise ids (`graph::normalize_id`) still tie things together.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::bytes::{Captures, Regex};
use ring::hmac;

/// A whole GUID, dashed or not.
static GUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
        .expect("a valid pattern")
});

/// Replacement ids start with this, so a sanitised id is never replaced again
/// (sanitising twice changes nothing) and reads as one.
const MARK: &str = "00000000";

/// The 32 lower-case hex digits of a GUID, if `text` is one (any spelling).
pub(crate) fn guid_norm(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    GUID.is_match(t.as_bytes()).then(|| {
        t.chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    })
}

/// The ids learned so far and what each becomes.
pub(crate) struct IdMap {
    key: hmac::Key,
    map: HashMap<String, String>,
    /// Any spelling of any learned id, wherever it occurs (glued to other text too);
    /// rebuilt after learning.
    pattern: Option<Regex>,
}

impl IdMap {
    pub fn new(key: &[u8]) -> IdMap {
        // A key of its own, derived from the database's: placeholders of other kinds
        // and replacement ids never share a hash.
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key),
            b"graphtape-sanitize-ids",
        );
        IdMap {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
            map: HashMap::new(),
            pattern: None,
        }
    }

    /// Learns `text` if it is a GUID not yet sanitised; returns whether it is one.
    pub fn learn(&mut self, text: &str) -> bool {
        let Some(norm) = guid_norm(text) else {
            return false;
        };
        if !norm.starts_with(MARK) && !self.map.contains_key(&norm) {
            let tag = hmac::sign(&self.key, norm.as_bytes());
            let hex = crate::exchange::hex(&tag.as_ref()[..12]);
            self.map.insert(norm, format!("{MARK}{hex}"));
            self.pattern = None;
        }
        true
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// `bytes` with every learned id replaced, or None if none occurs.
    pub fn replace(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        if self.map.is_empty() {
            return None;
        }
        let IdMap { map, pattern, .. } = self;
        let pattern = pattern.get_or_insert_with(|| any_of(map.keys()));
        if !pattern.is_match(bytes) {
            return None;
        }
        let mut changed = false;
        let out = pattern.replace_all(bytes, |c: &Captures<'_>| {
            let token = &c[0];
            let norm: String = token
                .iter()
                .filter(|b| **b != b'-')
                .map(|b| b.to_ascii_lowercase() as char)
                .collect();
            match map.get(&norm) {
                Some(new) => {
                    changed = true;
                    respell(token, new)
                }
                None => token.to_vec(),
            }
        });
        changed.then(|| out.into_owned())
    }

    /// `text` with every learned id replaced (unchanged when none occurs).
    pub fn replace_str(&mut self, text: &str) -> String {
        self.replace(text.as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| text.to_string())
    }
}

/// A pattern for any spelling of any of `ids` (32 hex digits each).
fn any_of<'a>(ids: impl Iterator<Item = &'a String>) -> Regex {
    let alternatives: Vec<String> = ids
        .map(|n| {
            let (a, rest) = n.split_at(8);
            let (b, rest) = rest.split_at(4);
            let (c, rest) = rest.split_at(4);
            let (d, e) = rest.split_at(4);
            format!("{a}-?{b}-?{c}-?{d}-?{e}")
        })
        .collect();
    Regex::new(&format!("(?i){}", alternatives.join("|"))).expect("hex digits and dashes")
}

/// `new` (32 hex digits) in the spelling of `token`: its dashes and its case.
fn respell(token: &[u8], new: &str) -> Vec<u8> {
    let upper = token.iter().any(u8::is_ascii_uppercase);
    let mut digits = new.bytes();
    token
        .iter()
        .map(|&b| {
            if b == b'-' {
                b'-'
            } else {
                let d = digits.next().unwrap_or(b'0');
                if upper {
                    d.to_ascii_uppercase()
                } else {
                    d
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698";

    #[test]
    fn every_spelling_maps_to_the_same_id_in_its_own_spelling() {
        let mut ids = IdMap::new(&[1; 32]);
        assert!(ids.learn(ID));
        assert!(!ids.learn("not-an-id"));
        let text = format!(
            "/participants/8A34A46B3D174ADC8DCEDC4E7D572698 {} {{{ID}}} x{ID}",
            ID.to_lowercase()
        );
        let out = String::from_utf8(ids.replace(text.as_bytes()).unwrap()).unwrap();
        assert!(!out.to_lowercase().contains("8a34a46b"), "{out}");
        let words: Vec<&str> = out.split(' ').collect();
        let norms: Vec<String> = words[..3]
            .iter()
            .map(|w| crate::graph::normalize_id(w.rsplit('/').next().unwrap()).unwrap())
            .collect();
        assert_eq!(norms[0], norms[1]);
        assert_eq!(norms[1], norms[2]);
        assert!(norms[0].starts_with(MARK));
        assert!(words[0].ends_with(&norms[0].to_uppercase()));
        assert_eq!(words[1].len(), 36);
        assert!(words[2].starts_with('{') && words[2].ends_with('}'));
    }

    #[test]
    fn deterministic_per_key_and_idempotent() {
        let replaced = |key: u8| {
            let mut ids = IdMap::new(&[key; 32]);
            ids.learn(ID);
            ids.replace_str(ID)
        };
        assert_eq!(replaced(1), replaced(1));
        assert_ne!(replaced(1), replaced(2));
        let mut ids = IdMap::new(&[1; 32]);
        assert!(ids.learn(&replaced(1)));
        assert_eq!(ids.len(), 0, "a sanitised id is not learned again");
        assert_eq!(ids.replace(b"nothing here"), None);
    }
}
