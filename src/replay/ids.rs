//! Fresh call and operation ids for a replay run, so a long-running bot sees every run
//! as new calls.
//!
//! Graph spells one GUID several ways (lower-case dashed in `Location` and paths,
//! upper-case undashed in notification resources), so each recorded id is replaced in
//! all four spellings by the same spelling of its fresh id: what graphtape sends gets
//! the fresh ids, what the bot sends is mapped back before matching. Both spellings of
//! a GUID have the same length, so bodies keep their length. Pure.

use crate::exchange::Headers;
use crate::graph::{ids_from_exchange, parse_notifications};

use crate::exchange::{header, Direction, Exchange, StoredBody};
use crate::graph::api_call;

/// Recorded → fresh id pairs (lookup form: 32 lower-case hex digits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap {
    pairs: Vec<(String, String)>,
}

impl IdMap {
    /// A map from `(recorded, fresh)` pairs in lookup form; pairs that are not 32 hex
    /// digits (ids that are not GUIDs) are left out, since they have no spellings to
    /// vary.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> IdMap {
        IdMap {
            pairs: pairs
                .into_iter()
                .filter(|(r, f)| is_guid(r) && is_guid(f) && r != f)
                .collect(),
        }
    }

    #[cfg(test)] // test support: only the unit tests use it
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Recorded ids → fresh ones. None when nothing changed.
    pub fn to_live(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        replace(
            bytes,
            self.pairs.iter().map(|(r, f)| (r.as_str(), f.as_str())),
        )
    }

    /// Fresh ids → recorded ones. None when nothing changed.
    pub fn to_recorded(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        replace(
            bytes,
            self.pairs.iter().map(|(r, f)| (f.as_str(), r.as_str())),
        )
    }

    /// A string with fresh ids mapped back to recorded ones.
    pub fn str_to_recorded(&self, text: &str) -> String {
        self.to_recorded(text.as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| text.to_string())
    }

    /// A string with recorded ids replaced by fresh ones.
    pub fn str_to_live(&self, text: &str) -> String {
        self.to_live(text.as_bytes())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| text.to_string())
    }

    /// Header values with recorded ids replaced by fresh ones (`Location`, ...).
    pub fn headers_to_live(&self, headers: &Headers) -> Headers {
        headers
            .iter()
            .map(|(name, value)| {
                let value = self.to_live(value).unwrap_or_else(|| value.clone());
                (name.clone(), value)
            })
            .collect()
    }
}

fn is_guid(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The four spellings of a 32-hex-digit id.
fn spellings(id: &str) -> [String; 4] {
    let lower = id.to_ascii_lowercase();
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &lower[0..8],
        &lower[8..12],
        &lower[12..16],
        &lower[16..20],
        &lower[20..32]
    );
    [
        dashed.to_ascii_uppercase(),
        dashed,
        lower.to_ascii_uppercase(),
        lower,
    ]
}

fn replace<'a>(bytes: &[u8], pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    let mut changed = false;
    for (from, to) in pairs {
        for (f, t) in spellings(from).iter().zip(spellings(to).iter()) {
            let (f, t) = (f.as_bytes(), t.as_bytes());
            let mut at = 0;
            while let Some(found) = find(&out[at..], f) {
                let start = at + found;
                out[start..start + f.len()].copy_from_slice(t);
                at = start + f.len();
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every call and operation id the recording names (lookup form, first-seen order):
/// in API paths, `Location` headers and response bodies, and in notifications.
pub fn recorded_ids(exchanges: &[Exchange<StoredBody>]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut add = |id: Option<String>| {
        if let Some(id) = id.filter(|i| is_guid(i)) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    };
    for ex in exchanges {
        match ex.direction {
            Direction::Api => {
                add(api_call(ex));
                let resp = ex.response.as_ref();
                let found = ids_from_exchange(
                    &ex.request.method,
                    &ex.request.path,
                    resp.map(|r| r.status),
                    resp.and_then(|r| header(&r.headers, "location")),
                    &resp.map(|r| r.content()).unwrap_or_default(),
                );
                add(found.operation.map(|o| o.norm));
            }
            Direction::Callback => {
                for n in parse_notifications(&ex.request.content()).unwrap_or_default() {
                    add(n.call.map(|c| c.norm));
                    add(n.operation.map(|o| o.norm));
                }
            }
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = "57dab8b1894c409ab240bd8beae78896";
    const NEW: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn every_spelling_maps_to_the_same_spelling_and_back() {
        let map = IdMap::new([(REC.to_string(), NEW.to_string())]);
        let body = br#"{"resource":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896","x":"/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896"}"#;
        let live = map.to_live(body).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&live),
            r#"{"resource":"/app/calls/0123456789ABCDEF0123456789ABCDEF","x":"/communications/calls/01234567-89ab-cdef-0123-456789abcdef"}"#
        );
        assert_eq!(live.len(), body.len());
        assert_eq!(map.to_recorded(&live).unwrap(), body.to_vec());
        assert_eq!(map.to_live(b"nothing here"), None);
    }

    #[test]
    fn non_guid_ids_and_identities_are_left_out() {
        let map = IdMap::new([
            ("abc".to_string(), NEW.to_string()),
            (REC.to_string(), REC.to_string()),
        ]);
        assert!(map.is_empty());
    }

    #[test]
    fn headers_and_paths() {
        let map = IdMap::new([(REC.to_string(), NEW.to_string())]);
        let headers = vec![(
            "location".to_string(),
            b"https://graph.microsoft.com/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896".to_vec(),
        )];
        let live = map.headers_to_live(&headers);
        assert!(
            String::from_utf8_lossy(&live[0].1).ends_with("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(
            map.str_to_recorded(
                "/v1.0/communications/calls/01234567-89ab-cdef-0123-456789abcdef/answer"
            ),
            "/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/answer"
        );
    }
}
