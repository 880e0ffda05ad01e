//! Callback routes: graphtape rewrites the `callbackUri` the bot gives Graph to a URL on
//! its own callback listener, and remembers where that URL leads.
//!
//! Minted paths are `/callback/<token>`, the token a keyed hash of the bot's URL: the
//! same URL always mints the same path (stable across sessions), and nobody without
//! the database's key can mint a path that leads anywhere. Only URLs the bot itself
//! gave are ever routed to.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::RwLock;

use ring::hmac;

use super::callback_guard::{is_local_address, CallbackGuard};
use crate::content_encoding;
use crate::exchange::hex;
use crate::jsonscan;

/// The path segment that precedes a minted token.
const PREFIX: &str = "/callback/";
/// Hex characters in a token (128 bits).
const TOKEN_LEN: usize = 32;

pub use crate::store::NewRoute;

/// The known routes and the means to mint new ones.
pub struct CallbackRoutes {
    key: hmac::Key,
    /// graphtape's public base URL (no trailing slash); None disables rewriting.
    public_url: Option<String>,
    /// What a minted route may lead to.
    guard: CallbackGuard,
    map: RwLock<HashMap<String, String>>,
}

impl CallbackRoutes {
    /// Routes keyed with the database's key, seeded with the stored ones.
    pub fn new(key: &[u8], public_url: Option<&str>, stored: Vec<(String, String)>) -> Self {
        CallbackRoutes {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            guard: CallbackGuard::default(),
            map: RwLock::new(stored.into_iter().collect()),
        }
    }

    /// Restricts what new routes may lead to (graphtape's own listeners never, and
    /// only `--callback-allow` hosts when given).
    pub fn with_guard(mut self, guard: CallbackGuard) -> Self {
        self.guard = guard;
        self
    }

    /// Whether `--public-url` is set, i.e. request bodies are rewritten.
    pub fn rewrites(&self) -> bool {
        self.public_url.is_some()
    }

    /// The URL a minted path leads to.
    pub fn lookup(&self, token: &str) -> Option<String> {
        self.map.read().ok()?.get(token).cloned()
    }

    /// Rewrites every `callbackUri` (and legacy `callback`) string in a JSON body to a
    /// minted URL, leaving every other byte alone. Returns the new body and the routes
    /// that were not known before; None if nothing changed or the body is not JSON.
    /// A gzip or deflate body (`encoding`, the `Content-Encoding` value, as Kiota's
    /// compression handler sends) is decoded, rewritten and encoded again.
    pub fn rewrite(&self, encoding: Option<&str>, body: &[u8]) -> Option<(Vec<u8>, Vec<NewRoute>)> {
        let mut new_routes = Vec::new();
        let rewritten = content_encoding::map_content(encoding, body, |content| {
            let (out, routes) = self.rewrite_content(content)?;
            new_routes = routes;
            Some(out)
        });
        // Not silent: a callbackUri in a body graphtape cannot read would bypass it.
        if rewritten.is_none()
            && encoding.is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
            && !body.is_empty()
            && content_encoding::decode(encoding, body).is_none()
        {
            tracing::warn!(
                encoding,
                "request body in an encoding graphtape cannot decode: a callbackUri in it is not rewritten"
            );
        }
        Some((rewritten?, new_routes))
    }

    fn rewrite_content(&self, body: &[u8]) -> Option<(Vec<u8>, Vec<NewRoute>)> {
        let public = self.public_url.as_deref()?;
        let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        // One pass validates the body and finds the callback URLs.
        let found = jsonscan::string_values(body, crate::redact::is_callback_url_key)?;
        let mut replacements: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        let mut new_routes = Vec::new();
        for (range, url) in found {
            // Already ours (a bot configured with graphtape's URL): no loop.
            if url.is_empty() || starts_with_ignore_case(&url, public) {
                continue;
            }
            if let Err(why) = self.guard.check(&url, is_local_address) {
                // Left as the bot gave it. The log names no more than scheme and host:
                // a callback URL can carry a credential.
                tracing::warn!(
                    url = %super::callback_guard::origin(&url),
                    reason = why.reason(),
                    "callbackUri not routed through graphtape"
                );
                continue;
            }
            let (minted, new) = self.mint(public, &url);
            new_routes.extend(new);
            replacements.push((range, jsonscan::literal(&minted)));
        }
        if replacements.is_empty() {
            return None;
        }
        Some((jsonscan::splice(body, &replacements)?, new_routes))
    }

    fn mint(&self, public: &str, target: &str) -> (String, Option<NewRoute>) {
        let tag = hmac::sign(&self.key, format!("callback-route:{target}").as_bytes());
        let token: String = hex(tag.as_ref()).chars().take(TOKEN_LEN).collect();
        let minted = format!("{public}{PREFIX}{token}");
        let mut map = match self.map.write() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let new = map.insert(token.clone(), target.to_string()).is_none();
        let route = new.then(|| NewRoute {
            token,
            target: target.to_string(),
        });
        (minted, route)
    }
}

/// Splits a request path into a minted token and what follows it, if it is one.
/// `/prefix/callback/<token>/rest` gives `(token, "/rest")`.
pub fn parse_minted(path: &str) -> Option<(&str, &str)> {
    let start = path.find(PREFIX)? + PREFIX.len();
    let rest = &path[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    let token = &rest[..end];
    (token.len() == TOKEN_LEN && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((token, &rest[end..]))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> CallbackRoutes {
        CallbackRoutes::new(&[1; 32], Some("https://rec.example.com:8443/"), vec![])
    }

    #[test]
    fn rewrites_callback_uri_in_place_and_routes_back() {
        let r = routes();
        let body = b"{\n  \"callbackUri\" : \"https://bot.contoso.com/api/calls\",\n  \"x\": 1\n}";
        let (out, new) = r.rewrite(None, body).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(new.len(), 1);
        let minted = format!("https://rec.example.com:8443/callback/{}", new[0].token);
        assert_eq!(
            text,
            format!("{{\n  \"callbackUri\" : \"{minted}\",\n  \"x\": 1\n}}")
        );
        let path = minted.trim_start_matches("https://rec.example.com:8443");
        let (token, rest) = parse_minted(path).unwrap();
        assert_eq!(rest, "");
        assert_eq!(
            r.lookup(token).as_deref(),
            Some("https://bot.contoso.com/api/calls")
        );
    }

    #[test]
    fn gzip_bodies_are_decoded_rewritten_and_encoded_again() {
        use std::io::Write;
        let r = routes();
        let plain = br#"{"callbackUri":"https://bot.contoso.com/api/calls","n":1}"#;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(plain).unwrap();
        let packed = gz.finish().unwrap();
        let (out, new) = r.rewrite(Some("gzip"), &packed).unwrap();
        let content = content_encoding::decode(Some("gzip"), &out).unwrap();
        let expected = r.rewrite(None, plain).unwrap().0;
        assert_eq!(content, expected);
        assert_eq!(new.len(), 1);
        assert!(
            r.rewrite(Some("gzip"), plain).is_none(),
            "not gzip: left alone"
        );
        assert!(
            r.rewrite(Some("br"), &packed).is_none(),
            "unsupported: left alone"
        );
    }

    #[test]
    fn the_same_url_mints_the_same_path_once() {
        let r = routes();
        let body = br#"{"callback":"https://bot/a","nested":{"callbackUri":"https://bot/a"}}"#;
        let (out, new) = r.rewrite(None, body).unwrap();
        assert_eq!(new.len(), 1, "one new route for one URL");
        let again = r.rewrite(None, body).unwrap();
        assert_eq!(again.0, out);
        assert!(again.1.is_empty(), "known routes are not new");
        // Another key mints another path.
        let other = CallbackRoutes::new(&[2; 32], Some("https://rec.example.com:8443"), vec![]);
        assert_ne!(other.rewrite(None, body).unwrap().0, out);
    }

    #[test]
    fn own_urls_non_json_and_disabled_are_left_alone() {
        let r = routes();
        assert!(r
            .rewrite(
                None,
                br#"{"callbackUri":"https://REC.example.com:8443/callback/x"}"#
            )
            .is_none());
        assert!(r.rewrite(None, b"callbackUri=https://bot").is_none());
        assert!(r.rewrite(None, br#"{"callbackUri": 5}"#).is_none());
        assert!(r
            .rewrite(None, br#"{"callbackUri":"https://bot""#)
            .is_none());
        let off = CallbackRoutes::new(&[1; 32], None, vec![]);
        assert!(!off.rewrites());
        assert!(off
            .rewrite(None, br#"{"callbackUri":"https://bot"}"#)
            .is_none());
    }

    #[test]
    fn minted_paths_are_recognised_strictly() {
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse_minted(&format!("/callback/{token}")),
            Some((token, ""))
        );
        assert_eq!(
            parse_minted(&format!("/rec/callback/{token}/x")),
            Some((token, "/x"))
        );
        assert_eq!(parse_minted("/callback/short"), None);
        assert_eq!(parse_minted("/api/calls"), None);
        let stored = CallbackRoutes::new(&[1; 32], None, vec![(token.into(), "http://b".into())]);
        assert_eq!(stored.lookup(token).as_deref(), Some("http://b"));
        assert_eq!(stored.lookup("0000"), None);
    }
}
