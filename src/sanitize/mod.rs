//! Sanitising personal and tenant data beyond credentials: JSON keys (dotted paths),
//! headers, query parameters and regular expressions over text bodies, with ids that
//! matching relies on (users, tenants) replaced consistently everywhere they appear.
//!
//! Pure: a [`Sanitizer`] takes stored exchanges and returns them sanitised. It runs on
//! the store's writer thread when recording (after credential redaction) and over a
//! whole session at `export --sanitize`. Placeholders are keyed hashes with the
//! database's key (as `redact` makes them), so the same value gets the same
//! placeholder throughout a database; replacement ids are GUIDs, so a sanitised
//! recording still replays.

mod ids;
mod json;
mod rules;

use serde_json::Value;

pub use rules::{Rules, RulesFile};

use crate::content_encoding::map_content;
use crate::exchange::{header, Exchange, Headers, StoredBody};
use crate::jsonscan;
use crate::redact::{jwt_claims, parse_redacted, Redactor, PLACEHOLDER_PREFIX};
use ids::{guid_norm, IdMap};

/// Ids at id keys that are no GUID (phone numbers, ACS ids) are replaced as whole
/// strings elsewhere only from this length on, so "1" never rewrites every digit.
const MIN_WORD: usize = 8;

/// Applies [`Rules`] to exchanges, learning ids as it goes.
pub struct Sanitizer {
    rules: Rules,
    placeholders: Redactor,
    ids: IdMap,
    /// Non-GUID id values and their placeholders, replaced wherever they occur.
    words: Vec<(String, String)>,
    values_replaced: u64,
}

impl Sanitizer {
    /// `key` is the database's redaction key.
    pub fn new(rules: Rules, key: &[u8]) -> Sanitizer {
        Sanitizer {
            rules,
            placeholders: Redactor::new(key),
            ids: IdMap::new(key),
            words: Vec::new(),
            values_replaced: 0,
        }
    }

    /// Learns the ids `ex` names at id keys (and tenants in token claims), so that
    /// they are replaced in every exchange sanitised after this.
    pub fn learn(&mut self, ex: &Exchange<StoredBody>) {
        let mut bodies = vec![ex.request.content()];
        if let Some(f) = &ex.forwarded_body {
            bodies.push(crate::content_encoding::content(
                header(&ex.request.headers, "content-encoding"),
                &f.bytes,
            ));
        }
        if let Some(r) = &ex.response {
            bodies.push(r.content());
        }
        for body in bodies {
            if !looks_like_json(&body) {
                continue;
            }
            for s in json::strings(&body) {
                if self.rules.ids.iter().any(|p| p.is_at(&s.path)) {
                    self.learn_id(&s.text);
                }
            }
        }
        if !self.rules.claims.is_empty() {
            let headers = ex.request.headers.iter();
            for (name, value) in headers.chain(ex.response.iter().flat_map(|r| &r.headers)) {
                if name != "authorization" {
                    continue;
                }
                let Ok(value) = std::str::from_utf8(value) else {
                    continue;
                };
                let claims = parse_redacted(value).map(|c| c.claims).or_else(|| {
                    let token = value.trim().rsplit(' ').next().unwrap_or_default();
                    jwt_claims(token)
                });
                let Some(claims) = claims else { continue };
                for (name, id) in [("tid", claims.tid), ("aud", claims.aud)] {
                    // GUIDs only: an audience may be a URL, not an id to hunt for.
                    if let Some(id) = id.filter(|_| self.rules.claims.iter().any(|c| c == name)) {
                        self.ids.learn(&id);
                    }
                }
            }
        }
    }

    fn learn_id(&mut self, text: &str) {
        if self.ids.learn(text) || text.starts_with(PLACEHOLDER_PREFIX) {
            return;
        }
        if text.len() >= MIN_WORD && !self.words.iter().any(|(w, _)| w == text) {
            let placeholder = self.placeholders.placeholder(text.as_bytes());
            self.words.push((text.to_string(), placeholder));
        }
    }

    /// `ex` sanitised (learning its ids first).
    pub fn apply(&mut self, ex: Exchange<StoredBody>) -> Exchange<StoredBody> {
        self.learn(&ex);
        let mut ex = ex;
        ex.request.path = self.text(&ex.request.path);
        ex.request.query = ex.request.query.take().map(|q| self.query(&q));
        ex.target = ex.target.take().map(|t| match t.split_once('?') {
            Some((base, q)) => format!("{}?{}", self.text(base), self.query(q)),
            None => self.text(&t),
        });
        ex.error = ex.error.take().map(|e| self.text(&e));
        if let Some(body) = self.body(&ex.request.headers, &ex.request.body) {
            set_length(&mut ex.request.headers, body.bytes.len());
            ex.request.body = body;
        }
        if let Some(forwarded) = &ex.forwarded_body {
            if let Some(body) = self.body(&ex.request.headers, forwarded) {
                ex.forwarded_body = Some(body);
            }
        }
        ex.request.headers = self.headers(std::mem::take(&mut ex.request.headers));
        if let Some(mut resp) = ex.response.take() {
            if let Some(body) = self.body(&resp.headers, &resp.body) {
                set_length(&mut resp.headers, body.bytes.len());
                resp.body = body;
            }
            resp.headers = self.headers(resp.headers);
            ex.response = Some(resp);
        }
        ex
    }

    /// What the provenance records about this sanitising.
    pub fn summary(&self) -> Value {
        let mut s = self.rules.summary();
        s["values_replaced"] = self.values_replaced.into();
        s["ids_replaced"] = (self.ids.len() + self.words.len()).into();
        s
    }

    /// Learned ids and non-GUID ids replaced in a path, URL or message.
    fn text(&mut self, text: &str) -> String {
        let mut out = self.ids.replace_str(text);
        for (word, placeholder) in &self.words {
            if out.contains(word.as_str()) {
                out = out.replace(word.as_str(), placeholder);
            }
        }
        out
    }

    /// A raw query with the named parameters' values replaced, then ids.
    fn query(&mut self, query: &str) -> String {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if !value.is_empty()
                        && !value.starts_with(PLACEHOLDER_PREFIX)
                        && self
                            .rules
                            .query
                            .iter()
                            .any(|q| q.eq_ignore_ascii_case(name)) =>
                {
                    self.values_replaced += 1;
                    format!("{name}={}", self.placeholders.placeholder(value.as_bytes()))
                }
                _ => pair.to_string(),
            })
            .collect();
        self.text(&pairs.join("&"))
    }

    fn headers(&mut self, headers: Headers) -> Headers {
        headers
            .into_iter()
            .map(|(name, value)| {
                let named = self
                    .rules
                    .headers
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(&name));
                let value = if named
                    && !value.is_empty()
                    && !value.starts_with(PLACEHOLDER_PREFIX.as_bytes())
                {
                    self.values_replaced += 1;
                    self.placeholders.placeholder(&value).into_bytes()
                } else {
                    match std::str::from_utf8(&value) {
                        Ok(text) => self.text(text).into_bytes(),
                        Err(_) => self.ids.replace(&value).unwrap_or(value),
                    }
                };
                (name, value)
            })
            .collect()
    }

    /// A body sanitised in its content (decoded and encoded again if it was sent
    /// gzip- or deflate-encoded); None if nothing changed.
    fn body(&mut self, headers: &Headers, body: &StoredBody) -> Option<StoredBody> {
        let encoding = header(headers, "content-encoding");
        let new = map_content(encoding, &body.bytes, |content| self.content(content))?;
        Some(if body.truncated {
            // The stored prefix changed; length and hash still describe the whole.
            StoredBody {
                len: body.len.max(new.len() as u64),
                sha256: body.sha256.clone(),
                truncated: true,
                bytes: new,
            }
        } else {
            StoredBody::capture(&new, usize::MAX)
        })
    }

    fn content(&mut self, content: &[u8]) -> Option<Vec<u8>> {
        let mut out = content.to_vec();
        let mut changed = false;
        if looks_like_json(content) {
            let replacements: Vec<_> = json::strings(content)
                .into_iter()
                .filter(|s| {
                    !s.text.starts_with(PLACEHOLDER_PREFIX)
                        && guid_norm(&s.text)
                            .is_none_or(|_| !self.rules.ids.iter().any(|p| p.is_at(&s.path)))
                        && (self.rules.json_keys.iter().any(|p| p.covers(&s.path))
                            || self.rules.ids.iter().any(|p| p.is_at(&s.path)))
                })
                .map(|s| {
                    let placeholder = self.placeholders.placeholder(s.text.as_bytes());
                    (s.range, jsonscan::literal(&placeholder))
                })
                .collect();
            if let Some(spliced) = jsonscan::splice(content, &replacements) {
                changed |= !replacements.is_empty();
                self.values_replaced += replacements.len() as u64;
                out = spliced;
            }
        }
        if let Some(replaced) = self.ids.replace(&out) {
            out = replaced;
            changed = true;
        }
        if let Ok(text) = std::str::from_utf8(&out) {
            let mut text = text.to_string();
            for (word, placeholder) in &self.words {
                if text.contains(word.as_str()) {
                    text = text.replace(word.as_str(), placeholder);
                    changed = true;
                }
            }
            for re in &self.rules.regexes {
                let mut count = 0;
                let replaced = re.replace_all(&text, |c: &regex::Captures<'_>| {
                    let whole = c.get(0).map(|m| m.as_str()).unwrap_or_default();
                    let Some(group) = c.get(1) else {
                        count += 1;
                        return self.placeholders.placeholder(whole.as_bytes());
                    };
                    count += 1;
                    let start = group.start() - c.get(0).map_or(0, |m| m.start());
                    format!(
                        "{}{}{}",
                        &whole[..start],
                        self.placeholders.placeholder(group.as_str().as_bytes()),
                        &whole[start + group.len()..]
                    )
                });
                if count > 0 {
                    text = replaced.into_owned();
                    self.values_replaced += count;
                    changed = true;
                }
            }
            out = text.into_bytes();
        }
        changed.then_some(out)
    }
}

/// Whether a body is JSON enough to scan: an object or array, possibly cut short.
fn looks_like_json(body: &[u8]) -> bool {
    let body = crate::jsonscan::strip_bom(body);
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Keeps a recorded `content-length` true to the sanitised body.
fn set_length(headers: &mut Headers, len: usize) {
    for (name, value) in headers.iter_mut() {
        if name.eq_ignore_ascii_case("content-length") {
            *value = len.to_string().into_bytes();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{api, callback, roster_body, CALL_B};

    const USER: &str = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698";
    const TENANT: &str = "49BFC225-8482-4AB8-94E7-76B48FDB9849";

    fn pii() -> Sanitizer {
        let rules = Rules::build(RulesFile {
            pii: true,
            ..RulesFile::default()
        })
        .unwrap();
        Sanitizer::new(rules, &[9; 32])
    }

    fn dump(ex: &Exchange<StoredBody>) -> String {
        let mut s = format!("{} {:?} {:?}", ex.request.path, ex.request.query, ex.target);
        for (n, v) in &ex.request.headers {
            s.push_str(&format!(" {n}={}", String::from_utf8_lossy(v)));
        }
        s.push_str(&String::from_utf8_lossy(&ex.request.body.bytes));
        if let Some(r) = &ex.response {
            s.push_str(&String::from_utf8_lossy(&r.body.bytes));
        }
        s
    }

    #[test]
    fn names_ids_and_mail_go_and_the_rest_stays() {
        let mut s = pii();
        let body = format!(
            r#"{{"participants":[{{"identity":{{"user":{{"id":"{USER}","displayName":"Heidi Steen","tenantId":"{TENANT}"}}}}}}],"note":"write to heidi@contoso.com","subject":"Standup"}}"#
        );
        let ex = api(
            1,
            0,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_B}/participants/invite"),
        )
        .body(&body)
        .header_req("content-type", "application/json")
        .header_req(
            "authorization",
            &format!(
                "Bearer graphtape-redacted:0123456789ab;tid={}",
                TENANT.to_lowercase()
            ),
        )
        .build();
        let out = s.apply(ex);
        let text = dump(&out);
        for gone in [
            "Heidi",
            "heidi@contoso.com",
            "8A34A46B",
            "49BFC225",
            "49bfc225",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(text.contains("Standup") && text.contains(CALL_B), "{text}");
        let v: Value = serde_json::from_slice(&out.request.body.bytes).unwrap();
        let user = &v["participants"][0]["identity"]["user"];
        let new_id = user["id"].as_str().unwrap();
        assert!(
            new_id.starts_with("00000000-") && new_id.len() == 36,
            "{new_id}"
        );
        assert!(user["displayName"]
            .as_str()
            .unwrap()
            .starts_with(PLACEHOLDER_PREFIX));
        assert_eq!(out.request.body.len, out.request.body.bytes.len() as u64);

        // The same user later, spelt differently (a roster path), gets the same id.
        let later = s.apply(
            api(
                2,
                5,
                "GET",
                &format!(
                    "/v1.0/communications/calls/{CALL_B}/participants/{}",
                    USER.replace('-', "")
                ),
            )
            .build(),
        );
        assert!(
            later
                .request
                .path
                .ends_with(&new_id.replace('-', "").to_uppercase()),
            "{}",
            later.request.path
        );
        let summary = s.summary();
        assert_eq!(summary["ids_replaced"], 2);
        assert!(summary["values_replaced"].as_u64().unwrap() >= 2);
    }

    #[test]
    fn sanitising_twice_changes_nothing_more() {
        let mut s = pii();
        let once = s.apply(callback(1, 0, &roster_body(CALL_B)).build());
        assert!(!dump(&once).contains("Test User"));
        let mut again = pii();
        let twice = again.apply(once.clone());
        assert_eq!(twice, once);
    }

    #[test]
    fn custom_keys_headers_query_and_regex_groups() {
        let rules = Rules::build(RulesFile {
            json_keys: vec!["meta.owner".into()],
            headers: vec!["X-Tenant".into()],
            query: vec!["upn".into()],
            regex: vec![r"ticket-(\d+)".into()],
            ..RulesFile::default()
        })
        .unwrap();
        let mut s = Sanitizer::new(rules, &[3; 32]);
        let ex = api(1, 0, "GET", "/v1.0/x?upn=heidi%40contoso.com&top=5")
            .body(r#"{"meta":{"owner":{"name":"Ann"}},"owner":"Bob","text":"see ticket-4711"}"#)
            .header_req("x-tenant", "contoso")
            .build();
        let out = s.apply(ex);
        let text = dump(&out);
        for gone in ["Ann", "heidi", "contoso", "4711"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(
            text.contains("Bob")
                && text.contains("&top=5")
                && text.contains("see ticket-graphtape-redacted:"),
            "{text}"
        );
    }

    #[test]
    fn inside_gzip_bodies_too() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(roster_body(CALL_B).as_bytes()).unwrap();
        let mut ex = callback(1, 0, "").build();
        ex.request
            .headers
            .push(("content-encoding".into(), b"gzip".to_vec()));
        ex.request.body = StoredBody::capture(&gz.finish().unwrap(), usize::MAX);
        let out = pii().apply(ex);
        let content = String::from_utf8(out.request.content().into_owned()).unwrap();
        assert!(
            !content.contains("Test User") && !content.contains("8A34A46B"),
            "{content}"
        );
        assert!(content.contains(CALL_B), "{content}");
    }
}
