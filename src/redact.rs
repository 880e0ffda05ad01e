//! Secret redaction for recorded traffic.
//!
//! graphtape stores every request and response it proxies, and bearer tokens,
//! client secrets and similar must never reach the SQLite store or the logs in
//! clear. This module decides what counts as a secret and what replaces it; it
//! does no I/O so every caller (recorder, logger, exporter) applies the same rules.
//!
//! Placeholders are keyed hashes rather than a fixed `***` so a recording still
//! shows which requests shared a credential, and replay can match them up, while
//! the secret itself cannot be read back without the per-database key.

use std::fmt;
use std::sync::{Arc, Mutex};

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use ring::hmac;
use serde_json::Value;

use crate::jsonscan;

/// Marks a redacted value; replay and readers of the store look for it.
pub const PLACEHOLDER_PREFIX: &str = "graphtape-redacted:";

/// 48 bits: short enough to read in a log line, far more than enough to tell
/// the credentials of one recording apart.
const HASH_HEX_LEN: usize = 12;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Headers whose whole purpose is to carry a credential.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "ocp-apim-subscription-key",
    "x-functions-key",
];

/// Catches vendor headers nobody listed (`x-ms-token-aad-id-token`, ...).
const CREDENTIAL_HEADER_PARTS: &[&str] = &["token", "secret", "password", "apikey"];

const SECRET_PARAMS: &[&str] = &[
    "access_token",
    "code",
    "client_secret",
    "token",
    "id_token",
    "refresh_token",
    "sig",
    "signature",
    "password",
    "api_key",
    "apikey",
    "assertion",
    "client_assertion",
    "key",
    "secret",
];

const SECRET_JSON_KEYS: &[&str] = &[
    "recordingAccessToken",
    "accessToken",
    "access_token",
    "refreshToken",
    "refresh_token",
    "idToken",
    "id_token",
    "clientSecret",
    "client_secret",
    "password",
    "token",
    "secret",
    "clientAssertion",
    "client_assertion",
    "assertion",
    "apiKey",
    "api_key",
];

/// JWT segments are unpadded base64url, but some issuers pad them anyway.
const JWT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Deterministic placeholders: a keyed hash (HMAC-SHA256) of the secret, so
/// equal secrets map to equal placeholders and different ones differ, but the
/// secret cannot be read back, nor guessed offline without the key.
#[derive(Clone)]
pub struct Redactor {
    key: hmac::Key,
    enabled: bool,
    /// The last `Authorization` value redacted and what it became, shared by clones:
    /// a bot sends the same bearer token for an hour, and hashing it and decoding its
    /// claims costs more than the rest of an exchange's redaction.
    last_authorization: Arc<Mutex<Option<Redacted>>>,
}

/// A value as received and as redacted.
type Redacted = (Vec<u8>, Vec<u8>);

/// Hand-written so that debug-printing a config never shows anything key-derived.
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// `key` is 32 random bytes kept per database by the caller, so placeholders
    /// are stable within one store and unlinkable across stores.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            enabled: true,
            last_authorization: Arc::default(),
        }
    }

    /// A redactor that changes nothing (user passed `--keep-secrets`).
    ///
    /// `placeholder` still works, with a fixed public key, so callers need no
    /// special case; such placeholders hide nothing from a determined guesser.
    pub fn disabled() -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &[0; 32]),
            enabled: false,
            last_authorization: Arc::default(),
        }
    }

    /// `graphtape-redacted:` followed by the first 12 lowercase hex digits of
    /// HMAC-SHA256(key, secret).
    pub fn placeholder(&self, secret: &[u8]) -> String {
        let tag = hmac::sign(&self.key, secret);
        let mut out = String::with_capacity(PLACEHOLDER_PREFIX.len() + HASH_HEX_LEN);
        out.push_str(PLACEHOLDER_PREFIX);
        for &b in tag.as_ref().iter().take(HASH_HEX_LEN / 2) {
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b));
        }
        out
    }

    /// Whether credentials are redacted (off with `--keep-secrets`).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// If `name` (any case) is a credential header, the value to store instead;
    /// `None` means keep `value` as is (not a credential header, nothing secret
    /// in it, already redacted, or redaction disabled).
    ///
    /// Authorization keeps its scheme and, for a JWT, the claims replay needs
    /// (see [`parse_redacted`]); Cookie and Set-Cookie keep names and attributes.
    pub fn header_value(&self, name: &str, value: &[u8]) -> Option<Vec<u8>> {
        if !self.enabled {
            return None;
        }
        // Recorded names are lower-case already; only others are copied to compare.
        let name = name.trim();
        let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
            true => std::borrow::Cow::Owned(name.to_ascii_lowercase()),
            false => std::borrow::Cow::Borrowed(name),
        };
        match name.as_ref() {
            "authorization" | "proxy-authorization" => self.authorization_cached(value),
            "cookie" => self.cookie(value),
            "set-cookie" => self.set_cookie(value),
            _ if is_credential_header(&name) => {
                let (_, secret, _) = split_ows(value);
                self.redact_secret(secret).map(String::into_bytes)
            }
            _ => None,
        }
    }

    /// Redacts secret parameters in a raw query string (without `?`); `None` if
    /// nothing changed.
    ///
    /// Everything but the secret values stays byte-exact (order, names,
    /// encoding, separators) so recorded URLs still match on replay. The
    /// placeholder hashes the raw, still percent-encoded value.
    pub fn query(&self, query: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.redact_pairs(query.as_bytes())
            .and_then(|out| String::from_utf8(out).ok())
    }

    /// Redacts secrets in a body; `None` if nothing changed or the body is not
    /// something this module understands.
    ///
    /// JSON (content type containing `json`, or no content type and a body
    /// starting with `{` or `[`): string values of secret keys, at any depth,
    /// become `"<placeholder>"` and every other byte stays as it was, so the
    /// stored body is the real one minus the secrets. The placeholder hashes the
    /// decoded string, so `"a\/b"` and `"a/b"` redact alike.
    /// `application/x-www-form-urlencoded`: as [`Redactor::query`].
    /// Anything else, JSON that does not parse, or non-UTF-8 JSON: `None`.
    pub fn body(&self, content_type: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
        if !self.enabled {
            return None;
        }
        match body_kind(content_type, body)? {
            BodyKind::Json => self.json(body),
            BodyKind::Form => self.redact_pairs(body),
        }
    }

    /// The placeholder for `secret`, or `None` when replacing it would hide
    /// nothing: it is empty, or already a placeholder (re-recording a replay
    /// must not hash hashes).
    fn redact_secret(&self, secret: &[u8]) -> Option<String> {
        if secret.is_empty() || is_placeholder(secret) {
            None
        } else {
            Some(self.placeholder(secret))
        }
    }

    /// [`Redactor::authorization`], answered from the last value when it repeats (the
    /// result depends only on the value and the key).
    fn authorization_cached(&self, value: &[u8]) -> Option<Vec<u8>> {
        let last = || {
            self.last_authorization
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if let Some((seen, redacted)) = last().as_ref() {
            if seen.as_slice() == value {
                return Some(redacted.clone());
            }
        }
        let redacted = self.authorization(value)?;
        *last() = Some((value.to_vec(), redacted.clone()));
        Some(redacted)
    }

    fn authorization(&self, value: &[u8]) -> Option<Vec<u8>> {
        let (_, value, _) = split_ows(value);
        if value.is_empty()
            || std::str::from_utf8(value)
                .ok()
                .and_then(parse_redacted)
                .is_some()
        {
            return None;
        }
        let (scheme, credentials) = split_scheme(value);
        let mut out = String::new();
        if let Some(scheme) = scheme {
            out.push_str(scheme);
            out.push(' ');
        }
        out.push_str(&self.placeholder(credentials));
        if let Some(claims) = std::str::from_utf8(credentials).ok().and_then(jwt_claims) {
            let fields = [
                ("iss", claims.iss),
                ("aud", claims.aud),
                ("tid", claims.tid),
                ("exp", claims.exp.map(|exp| exp.to_string())),
            ];
            for (name, claim) in fields {
                if let Some(claim) = claim {
                    out.push(';');
                    out.push_str(name);
                    out.push('=');
                    push_percent_encoded(&mut out, &claim);
                }
            }
        }
        Some(out.into_bytes())
    }

    fn cookie(&self, value: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(value.len());
        let mut changed = false;
        for (i, pair) in value.split(|&b| b == b';').enumerate() {
            if i > 0 {
                out.push(b';');
            }
            changed |= self.cookie_pair(pair, &mut out);
        }
        changed.then_some(out)
    }

    /// Only the first pair is the cookie; the rest are attributes the client
    /// needs and that hold nothing secret.
    fn set_cookie(&self, value: &[u8]) -> Option<Vec<u8>> {
        let split = value.iter().position(|&b| b == b';').unwrap_or(value.len());
        let (pair, attributes) = value.split_at(split);
        let mut out = Vec::with_capacity(value.len());
        let changed = self.cookie_pair(pair, &mut out);
        out.extend_from_slice(attributes);
        changed.then_some(out)
    }

    /// Appends `pair` to `out` with its value redacted and reports whether it
    /// changed. A pair without `=` is all value, as browsers read it.
    fn cookie_pair(&self, pair: &[u8], out: &mut Vec<u8>) -> bool {
        let value_start = pair.iter().position(|&b| b == b'=').map_or(0, |eq| eq + 1);
        let (name, value) = pair.split_at(value_start);
        let (lead, secret, trail) = split_ows(value);
        match self.redact_secret(secret) {
            Some(placeholder) => {
                out.extend_from_slice(name);
                out.extend_from_slice(lead);
                out.extend_from_slice(placeholder.as_bytes());
                out.extend_from_slice(trail);
                true
            }
            None => {
                out.extend_from_slice(pair);
                false
            }
        }
    }

    /// Shared by query strings and form bodies; works on bytes so a form body
    /// that is not UTF-8 is still redacted rather than stored in clear.
    fn redact_pairs(&self, input: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(input.len());
        let mut changed = false;
        for (i, pair) in input.split(|&b| b == b'&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let redacted = match (parts.next(), parts.next()) {
                (Some(name), Some(value)) if is_secret_param(name) => {
                    self.redact_secret(value).map(|p| (name, p))
                }
                _ => None,
            };
            match redacted {
                Some((name, placeholder)) => {
                    out.extend_from_slice(name);
                    out.push(b'=');
                    out.extend_from_slice(placeholder.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(pair),
            }
        }
        changed.then_some(out)
    }

    /// Redacts the credentials a URL can carry: its userinfo (`user:pass@`) and
    /// secret query parameters (as [`Redactor::query`]). Everything else stays, so
    /// the URL still says where it leads. `None` if nothing changed.
    pub fn url(&self, url: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let (before_fragment, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url, ""),
        };
        let (base, query) = match before_fragment.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (before_fragment, None),
        };
        let mut changed = false;
        let mut out = String::with_capacity(url.len());
        match userinfo_range(base) {
            Some((start, end)) => match self.redact_secret(&base.as_bytes()[start..end]) {
                Some(placeholder) => {
                    out.push_str(&base[..start]);
                    out.push_str(&placeholder);
                    out.push_str(&base[end..]);
                    changed = true;
                }
                None => out.push_str(base),
            },
            None => out.push_str(base),
        }
        if let Some(query) = query {
            out.push('?');
            match self.query(query) {
                Some(redacted) => {
                    out.push_str(&redacted);
                    changed = true;
                }
                None => out.push_str(query),
            }
        }
        out.push_str(fragment);
        changed.then_some(out)
    }

    fn json(&self, body: &[u8]) -> Option<Vec<u8>> {
        // Most bodies have no key that could be secret: a byte search settles that
        // before any parsing.
        if !might_hold_secret_keys(body) {
            return None;
        }
        let json = jsonscan::strip_bom(body);
        let offset = body.len() - json.len();
        // Collected during the walk, applied only if the whole body is JSON: half-
        // understood input is never "redacted" wrongly.
        let mut replacements = Vec::new();
        jsonscan::walk(json, |stack, event| {
            let (jsonscan::Event::Str(value), Some(frame)) = (event, stack.last()) else {
                return;
            };
            let Some(key) = frame.key.filter(|_| frame.object) else {
                return;
            };
            let key = key.text();
            // A callback URL keeps where it leads; only its credentials go.
            let replacement = if is_callback_url_key(&key) {
                self.url(&value.text())
            } else if is_secret_json_key(&key) {
                self.redact_secret(value.text().as_bytes())
            } else {
                None
            };
            if let Some(replacement) = replacement {
                let range = value.range();
                replacements.push((
                    range.start + offset..range.end + offset,
                    jsonscan::literal(&replacement),
                ));
            }
        })
        .ok()?;
        if replacements.is_empty() {
            return None;
        }
        jsonscan::splice(body, &replacements)
    }
}

/// Whether a JSON body could hold a value redaction changes: a key containing `token`,
/// `secret`, `password`, `assertion`, `apikey` or `api_key` in any case (every secret
/// key does), a `callback` key whose string value has a `?`, `@` or escape (a callback
/// URL loses only its query's secrets and its userinfo), or a `\u` escape anywhere
/// (which could spell either). Strings are skipped with `memchr` (SIMD); only keys are
/// looked at byte by byte. A string with no end sends the body to the walk (which refuses it).
fn might_hold_secret_keys(body: &[u8]) -> bool {
    let mut rest = body;
    while let Some(open) = memchr::memchr(b'"', rest) {
        let Some((text, after)) = json_string_at(&rest[open + 1..]) else {
            return true;
        };
        rest = after;
        // A key when a colon follows; its value starts after that.
        let colon = jsonscan::skip_ws(after, 0);
        if after.get(colon) != Some(&b':') {
            continue;
        }
        let value = &after[jsonscan::skip_ws(after, colon + 1)..];
        match key_part(text) {
            Some(KeyPart::Secret) => return true,
            Some(KeyPart::Callback) if callback_value_may_hold_secrets(value) => return true,
            _ => {}
        }
    }
    false
}

enum KeyPart {
    /// `token`, `secret`, `password`, `assertion`, `apikey` or `api_key`, in any case:
    /// every secret JSON key contains one (a test checks).
    Secret,
    Callback,
}

/// What a key's raw text holds that redaction looks at; a part is compared only where
/// its first letter is.
fn key_part(key: &[u8]) -> Option<KeyPart> {
    let at = |i: usize, part: &[u8]| {
        key.get(i..i + part.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(part))
    };
    let mut found = None;
    for (i, &b) in key.iter().enumerate() {
        let secret = match b | 0x20 {
            b't' => at(i, b"token"),
            b's' => at(i, b"secret"),
            b'p' => at(i, b"password"),
            b'a' => at(i, b"assertion") || at(i, b"apikey") || at(i, b"api_key"),
            b'c' => {
                if at(i, b"callback") {
                    found = Some(KeyPart::Callback);
                }
                false
            }
            _ => false,
        };
        if secret {
            return Some(KeyPart::Secret);
        }
    }
    found
}

/// The raw text of the JSON string whose opening quote was just before `s`, and what
/// follows its closing quote; None if it has a `\u` escape or no end.
fn json_string_at(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut at = 0;
    loop {
        let found = at + memchr::memchr2(b'"', b'\\', s.get(at..)?)?;
        if s[found] == b'"' {
            return Some((&s[..found], &s[found + 1..]));
        }
        if s.get(found + 1) == Some(&b'u') {
            return None;
        }
        at = found + 2;
    }
}

/// For a `callback` key's value (from its first byte): false only when it is plainly
/// not a string with a query, userinfo or escape (`"https://host/path"`, or not a string
/// at all: the URL rule changes strings only).
fn callback_value_may_hold_secrets(value: &[u8]) -> bool {
    match value.split_first() {
        Some((b'"', text)) => match memchr::memchr(b'"', text) {
            Some(close) => text[..close]
                .iter()
                .any(|&b| matches!(b, b'?' | b'@' | b'\\')),
            None => true,
        },
        Some(_) => false,
        None => true,
    }
}

/// The non-secret claims replay needs, decoded from a JWT's payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JwtClaims {
    /// Issuer, e.g. `https://api.botframework.com`.
    pub iss: Option<String>,
    /// Audience; the first string when the token lists several.
    pub aud: Option<String>,
    /// Azure AD tenant id.
    pub tid: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: Option<i64>,
}

/// Decodes the claims of a JWT without checking its signature: graphtape only
/// needs to describe the token, never to trust it.
///
/// `None` if `token` is not three dot-separated parts whose second is
/// base64url of a JSON object. `aud` may be a string or an array (the first
/// string is taken).
pub fn jwt_claims(token: &str) -> Option<JwtClaims> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if header.is_empty() {
        return None;
    }
    let payload = JWT_BASE64.decode(payload).ok()?;
    let Value::Object(claims) = serde_json::from_slice(&payload).ok()? else {
        return None;
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let aud = match claims.get("aud") {
        Some(Value::Array(audiences)) => audiences.iter().find_map(Value::as_str),
        other => other.and_then(Value::as_str),
    };
    Some(JwtClaims {
        iss: text("iss"),
        aud: aud.map(str::to_owned),
        tid: text("tid"),
        exp: claims.get("exp").and_then(Value::as_i64),
    })
}

/// What a redacted credential header value says, parsed back for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactedCredential {
    /// Authorization scheme as sent (`Bearer`, `Basic`, ...), if there was one.
    pub scheme: Option<String>,
    /// The 12 hex digits after [`PLACEHOLDER_PREFIX`].
    pub hash: String,
    /// Claims recorded alongside when the credential was a JWT.
    pub claims: JwtClaims,
}

/// Parses a value produced by [`Redactor::header_value`] for Authorization;
/// `None` if it is not such a placeholder.
///
/// Unknown `name=value` fields are skipped so tapes written by a newer
/// graphtape still replay.
pub fn parse_redacted(value: &str) -> Option<RedactedCredential> {
    let value = value.trim();
    let (scheme, rest) = match value.split_once(' ') {
        Some((scheme, rest)) => (Some(scheme), rest.trim_start()),
        None => (None, value),
    };
    let mut fields = rest.split(';');
    let hash = fields.next()?.strip_prefix(PLACEHOLDER_PREFIX)?;
    if !is_hash(hash.as_bytes()) {
        return None;
    }
    let mut claims = JwtClaims::default();
    for field in fields {
        let (name, raw) = field.split_once('=')?;
        let decoded =
            String::from_utf8(crate::percent::decode(raw.as_bytes(), false).into_owned()).ok()?;
        match name {
            "iss" => claims.iss = Some(decoded),
            "aud" => claims.aud = Some(decoded),
            "tid" => claims.tid = Some(decoded),
            "exp" => claims.exp = Some(decoded.parse().ok()?),
            _ => {}
        }
    }
    Some(RedactedCredential {
        scheme: scheme.map(str::to_owned),
        hash: hash.to_owned(),
        claims,
    })
}

enum BodyKind {
    Json,
    Form,
}

/// Trusts the content type when there is one: sniffing a declared
/// `text/plain` body as JSON would change what the server really sent.
fn body_kind(content_type: Option<&str>, body: &[u8]) -> Option<BodyKind> {
    match content_type {
        Some(content_type) => {
            let content_type = content_type.to_ascii_lowercase();
            let media_type = content_type.split(';').next().map(str::trim);
            if contains_any(content_type.as_bytes(), &["json"]) {
                Some(BodyKind::Json)
            } else if media_type == Some("application/x-www-form-urlencoded") {
                Some(BodyKind::Form)
            } else {
                None
            }
        }
        None => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            matches!(first, Some(b'{' | b'[')).then_some(BodyKind::Json)
        }
    }
}

fn is_credential_header(lowercase_name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&lowercase_name)
        || contains_any(lowercase_name.as_bytes(), CREDENTIAL_HEADER_PARTS)
}

/// Whether `haystack` contains one of `needles`. For short haystacks (header names,
/// content types), where setting up a substring searcher per needle, as `str::contains`
/// does, costs more than this one pass: it ran for every header of every exchange.
fn contains_any(haystack: &[u8], needles: &[&str]) -> bool {
    (0..haystack.len()).any(|i| {
        needles
            .iter()
            .any(|needle| haystack[i..].starts_with(needle.as_bytes()))
    })
}

/// Names are compared decoded so `access%5Ftoken=` cannot slip through.
/// Whether a query or form parameter (raw, possibly percent-encoded name) carries a
/// credential.
pub fn is_secret_param(raw_name: &[u8]) -> bool {
    let name = crate::percent::decode(raw_name, false);
    SECRET_PARAMS
        .iter()
        .any(|secret| secret.as_bytes().eq_ignore_ascii_case(&name))
}

/// Whether a JSON object key holds a callback URL (`callbackUri`, legacy `callback`),
/// whose query or userinfo may carry a credential.
pub fn is_callback_url_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("callbackUri") || key.eq_ignore_ascii_case("callback")
}

/// Byte range of the userinfo in `scheme://userinfo@host/...`, if there is one.
fn userinfo_range(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let at = url[start..authority_end].rfind('@')?;
    Some((start, start + at))
}

/// Whether a JSON object key names a credential field.
pub fn is_secret_json_key(key: &str) -> bool {
    SECRET_JSON_KEYS
        .iter()
        .any(|secret| secret.eq_ignore_ascii_case(key))
}

fn is_hash(hex: &[u8]) -> bool {
    hex.len() == HASH_HEX_LEN && hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_placeholder(value: &[u8]) -> bool {
    value
        .strip_prefix(PLACEHOLDER_PREFIX.as_bytes())
        .is_some_and(is_hash)
}

/// Splits `Scheme credentials`. A first word that could not be a scheme
/// (control or non-ASCII bytes) is treated as part of the credential, so the
/// stored value stays visible ASCII.
fn split_scheme(value: &[u8]) -> (Option<&str>, &[u8]) {
    if let Some(space) = value.iter().position(|&b| b == b' ') {
        let (scheme, rest) = value.split_at(space);
        if !scheme.is_empty() && scheme.iter().all(|&b| is_visible_ascii(b)) {
            if let Ok(scheme) = std::str::from_utf8(scheme) {
                let (_, credentials, _) = split_ows(rest);
                return (Some(scheme), credentials);
            }
        }
    }
    (None, value)
}

/// Splits optional whitespace (space, tab) off both ends, keeping it so the
/// caller can put it back byte-exact.
fn split_ows(value: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let is_ows = |b: &u8| matches!(b, b' ' | b'\t');
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let (lead, rest) = value.split_at(start);
    let end = rest
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(0, |last| last + 1);
    let (inner, trail) = rest.split_at(end);
    (lead, inner, trail)
}

fn is_visible_ascii(b: u8) -> bool {
    (0x21..=0x7E).contains(&b)
}

fn hex_digit(nibble: u8) -> char {
    char::from(HEX[usize::from(nibble & 0x0F)])
}

/// Keeps a claim inside one `;name=value` field of one visible-ASCII header line.
fn push_percent_encoded(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        if is_visible_ascii(b) && !matches!(b, b';' | b'%' | b'=') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4).to_ascii_uppercase());
            out.push(hex_digit(b).to_ascii_uppercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    fn redactor() -> Redactor {
        Redactor::new(KEY)
    }

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(b"not-a-real-signature")
        )
    }

    fn bot_jwt() -> String {
        jwt(
            r#"{"iss":"https://api.botframework.com","aud":["app-1234","other"],"tid":"tenant-42","exp":1700000000,"serviceurl":"https://smba.example"}"#,
        )
    }

    fn text(bytes: Option<Vec<u8>>) -> Option<String> {
        bytes.map(|b| String::from_utf8(b).expect("redacted output is UTF-8"))
    }

    #[test]
    fn placeholders_are_deterministic_and_keyed() {
        let r = redactor();
        let a = r.placeholder(b"secret-a");
        assert_eq!(a, r.placeholder(b"secret-a"));
        assert_ne!(a, r.placeholder(b"secret-b"));
        assert_ne!(
            a,
            Redactor::new(b"another key, 32 bytes long......").placeholder(b"secret-a")
        );
        let hash = a.strip_prefix(PLACEHOLDER_PREFIX).expect("prefix");
        assert!(is_hash(hash.as_bytes()), "{a}");
    }

    #[test]
    fn bearer_jwt_keeps_claims_and_hides_token() {
        let r = redactor();
        let token = bot_jwt();
        let out = text(r.header_value("Authorization", format!("Bearer {token}").as_bytes()))
            .expect("redacted");
        assert_eq!(
            out,
            format!(
                "Bearer {};iss=https://api.botframework.com;aud=app-1234;tid=tenant-42;exp=1700000000",
                r.placeholder(token.as_bytes())
            )
        );
        for part in token.split('.') {
            assert!(!out.contains(part), "{part} leaked into {out}");
        }
    }

    #[test]
    fn a_repeated_authorization_is_answered_as_the_first_time_and_a_new_one_anew() {
        let r = redactor();
        let a = format!("Bearer {}", bot_jwt());
        let b = format!(
            "Bearer {}",
            jwt(r#"{"iss":"https://sts.windows.net/t/","exp":5}"#)
        );
        // Computed without the cache, as the reference.
        let (first_a, first_b) = (r.authorization(a.as_bytes()), r.authorization(b.as_bytes()));
        assert!(first_a.is_some() && first_b.is_some() && first_a != first_b);
        for value in [&a, &a, &b, &a, &b, &b] {
            let expected = if value == &a { &first_a } else { &first_b };
            assert_eq!(&r.header_value("authorization", value.as_bytes()), expected);
        }
        // A clone shares what was seen; what was redacted is still left alone.
        let clone = r.clone();
        assert_eq!(clone.header_value("authorization", b.as_bytes()), first_b);
        let redacted = first_b.expect("redacted");
        assert_eq!(clone.header_value("authorization", &redacted), None);
    }

    #[test]
    fn parse_redacted_round_trips() {
        let r = redactor();
        let token =
            jwt(r#"{"iss":"https://sts.windows.net/t;x=1%/","aud":"api://bot é","exp":-5}"#);
        let out = text(r.header_value("proxy-authorization", format!("Bearer {token}").as_bytes()))
            .expect("redacted");
        assert!(out.bytes().all(is_visible_ascii_or_space), "{out}");
        assert_eq!(out.matches(';').count(), 3, "{out}");
        let parsed = parse_redacted(&out).expect("parses");
        assert_eq!(parsed.scheme.as_deref(), Some("Bearer"));
        assert_eq!(
            format!("{PLACEHOLDER_PREFIX}{}", parsed.hash),
            r.placeholder(token.as_bytes())
        );
        assert_eq!(parsed.claims, jwt_claims(&token).expect("claims"));
        assert_eq!(parsed.claims.aud.as_deref(), Some("api://bot é"));

        let bare = text(r.header_value("authorization", b"opaque")).expect("redacted");
        let parsed = parse_redacted(&bare).expect("parses");
        assert_eq!(parsed.scheme, None);
        assert_eq!(parsed.claims, JwtClaims::default());

        assert_eq!(parse_redacted("Bearer abc"), None);
        assert_eq!(parse_redacted("Bearer graphtape-redacted:XYZ"), None);
        assert_eq!(
            parse_redacted("graphtape-redacted:0123456789ab;exp=soon"),
            None
        );
    }

    fn is_visible_ascii_or_space(b: u8) -> bool {
        b == b' ' || is_visible_ascii(b)
    }

    #[test]
    fn non_jwt_credentials_keep_only_the_scheme() {
        let r = redactor();
        assert_eq!(
            text(r.header_value("AUTHORIZATION", b"Bearer opaque.token")),
            Some(format!("Bearer {}", r.placeholder(b"opaque.token")))
        );
        assert_eq!(
            text(r.header_value("Authorization", b"Basic dXNlcjpwYXNz")),
            Some(format!("Basic {}", r.placeholder(b"dXNlcjpwYXNz")))
        );
        assert_eq!(
            text(r.header_value("Authorization", b"rawkey")),
            Some(r.placeholder(b"rawkey"))
        );
        // Non-ASCII first word is no scheme: nothing of it may survive.
        let out =
            text(r.header_value("Authorization", "sécret value".as_bytes())).expect("redacted");
        assert_eq!(out, r.placeholder("sécret value".as_bytes()));
    }

    #[test]
    fn already_redacted_values_are_kept() {
        let r = redactor();
        let once = r
            .header_value("Authorization", format!("Bearer {}", bot_jwt()).as_bytes())
            .expect("redacted");
        assert_eq!(r.header_value("Authorization", &once), None);
        let cookie = r.header_value("Cookie", b"a=1; b=2").expect("redacted");
        assert_eq!(r.header_value("Cookie", &cookie), None);
        let query = r.query("code=abc&x=1").expect("redacted");
        assert_eq!(r.query(&query), None);
        let body = r.body(None, br#"{"token":"t"}"#).expect("redacted");
        assert_eq!(r.body(None, &body), None);
    }

    #[test]
    fn cookies_keep_names_and_attributes() {
        let r = redactor();
        assert_eq!(
            text(r.header_value("Cookie", b"a=1; b=two;c=")),
            Some(format!(
                "a={}; b={};c=",
                r.placeholder(b"1"),
                r.placeholder(b"two")
            ))
        );
        assert_eq!(
            text(r.header_value("set-cookie", b"session=xyz; Path=/; HttpOnly; Secure")),
            Some(format!(
                "session={}; Path=/; HttpOnly; Secure",
                r.placeholder(b"xyz")
            ))
        );
        assert_eq!(
            text(r.header_value("Set-Cookie", b"bare")),
            Some(r.placeholder(b"bare"))
        );
    }

    #[test]
    fn other_credential_headers_are_replaced_whole() {
        let r = redactor();
        for name in [
            "x-api-key",
            "Ocp-Apim-Subscription-Key",
            "X-MS-TOKEN-AAD-ID-TOKEN",
            "x-client-Secret",
            "x-my-apikey",
        ] {
            assert_eq!(
                text(r.header_value(name, b" s3cr3t ")),
                Some(r.placeholder(b"s3cr3t")),
                "{name}"
            );
        }
        assert_eq!(r.header_value("content-type", b"application/json"), None);
        assert_eq!(r.header_value("x-api-key", b""), None);
    }

    #[test]
    fn query_replaces_only_secret_values() {
        let r = redactor();
        let query = "api-version=1.0&access_token=abc%2Fdef&$select=id,name&&SIG=xyz&code=&flag&Key=k=v&access%5Ftoken=q";
        assert_eq!(
            r.query(query),
            Some(format!(
                "api-version=1.0&access_token={}&$select=id,name&&SIG={}&code=&flag&Key={}&access%5Ftoken={}",
                r.placeholder(b"abc%2Fdef"),
                r.placeholder(b"xyz"),
                r.placeholder(b"k=v"),
                r.placeholder(b"q"),
            ))
        );
        assert_eq!(r.query("a=1&b=2&tokens=3"), None);
        assert_eq!(r.query(""), None);
    }

    #[test]
    fn form_body_is_redacted_like_a_query() {
        let r = redactor();
        let body = b"grant_type=client_credentials&client_id=app&client_secret=s%3D%3D&scope=x";
        assert_eq!(
            text(r.body(
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                body
            )),
            Some(format!(
                "grant_type=client_credentials&client_id=app&client_secret={}&scope=x",
                r.placeholder(b"s%3D%3D")
            ))
        );
        let latin1 = b"password=\xe9t\xe9&user=\xff";
        assert_eq!(
            r.body(Some("application/x-www-form-urlencoded"), latin1),
            Some(
                [
                    b"password=",
                    r.placeholder(b"\xe9t\xe9").as_bytes(),
                    b"&user=\xff"
                ]
                .concat()
            )
        );
        assert_eq!(r.body(None, body), None);
    }

    #[test]
    fn the_byte_prefilter_knows_every_key() {
        for key in SECRET_JSON_KEYS {
            let body = format!("{{\"{}\":\"x\"}}", key.to_uppercase());
            assert!(might_hold_secret_keys(body.as_bytes()), "{key}");
        }
        for key in ["callbackUri", "callback"] {
            let body = format!("{{\"{}\" : \"https://x/?s=1\"}}", key.to_uppercase());
            assert!(might_hold_secret_keys(body.as_bytes()), "{key}");
        }
        assert!(might_hold_secret_keys(br#"{"\u0074oken":"x"}"#));
        assert!(!might_hold_secret_keys(
            br#"{"id":"abc","state":"established","etag":"W/\"1\""}"#
        ));
    }

    #[test]
    fn a_callback_url_is_walked_only_when_it_could_carry_a_credential() {
        let r = redactor();
        // No query, no userinfo: nothing in it to redact, and no walk (an `@odata.type`
        // elsewhere, as every Graph body has, does not count).
        for plain in [
            r##"{"@odata.type":"#x","callbackUri" : "https://bot.contoso.com/api/calls"}"##,
            r#"{"callbackUri":null,"n":"?@"}"#,
            r#"{"note":"a callback? no","x":"@"}"#,
        ] {
            assert!(!might_hold_secret_keys(plain.as_bytes()), "{plain}");
            assert_eq!(r.body(Some("application/json"), plain.as_bytes()), None);
        }
        for body in [
            r#"{"callbackUri":"https://bot.contoso.com/api/calls?code=s3cret"}"#,
            r#"{"callbackUri":"https://bot:s3cret@bot.contoso.com/api/calls"}"#,
            r#"{"callbackUri":"https://bot.contoso.com/api/calls\u003fcode=s3cret"}"#,
            r#"{"callbackUri":"https:\/\/bot.contoso.com\/api?code=s3cret"}"#,
            r#"{"call\u0062ackUri":"https://bot.contoso.com/api?code=s3cret"}"#,
        ] {
            assert!(might_hold_secret_keys(body.as_bytes()), "{body}");
            let redacted = r.body(Some("application/json"), body.as_bytes()).unwrap();
            let redacted = String::from_utf8(redacted).unwrap();
            assert!(!redacted.contains("s3cret"), "{redacted}");
            assert!(redacted.contains("bot.contoso.com"), "{redacted}");
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn odd_but_grammatical_json_is_still_redacted() {
        let r = redactor();
        // A lone surrogate escape (serde_json refuses it) or a byte-order mark must not
        // let a secret through in clear.
        for body in [
            &br#"{"x":"\ud800","token":"SECRET"}"#[..],
            b"\xEF\xBB\xBF{\"token\":\"SECRET\"}",
            br#"{"n":1e400,"token":"SECRET"}"#,
        ] {
            let out = r.body(Some("application/json"), body).expect("redacted");
            assert!(
                !contains(&out, b"SECRET"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn callback_urls_lose_only_their_credentials() {
        let r = redactor();
        assert_eq!(
            r.url("https://bot.example/api/calls?tenant=1&token=SECRET1#f"),
            Some(format!(
                "https://bot.example/api/calls?tenant=1&token={}#f",
                r.placeholder(b"SECRET1")
            ))
        );
        assert_eq!(
            r.url("https://user:SECRET2@bot.example:8443/api?x=@"),
            Some(format!(
                "https://{}@bot.example:8443/api?x=@",
                r.placeholder(b"user:SECRET2")
            ))
        );
        assert_eq!(r.url("https://bot.example/a@b?webInstanceId=3"), None);
        assert_eq!(Redactor::disabled().url("https://u:p@bot/?token=t"), None);
        let body = br#"{"callbackUri":"https://u:SECRET3@bot/cb?code=SECRET4&i=2","Callback":"http://bot/?sig=SECRET5","other":"https://u:p@x/"}"#;
        let out = text(r.body(Some("application/json"), body)).unwrap();
        for secret in ["SECRET3", "SECRET4", "SECRET5"] {
            assert!(!out.contains(secret), "{out}");
        }
        assert!(
            out.contains("@bot/cb?code=graphtape-redacted:") && out.contains("&i=2"),
            "{out}"
        );
        assert!(
            out.contains(r#""other":"https://u:p@x/""#),
            "only callback keys: {out}"
        );
    }

    #[test]
    fn json_body_changes_only_secret_literals() {
        let r = redactor();
        let secret_literal = r#""eyJ0\/x\u0041\"q\\""#;
        let body = format!(
            "\r\n{{ \"value\" :[\n\t{{\"resourceData\": {{ \"id\":\"1\\u00e9\",\n   \"recordingAccessToken\"  :\t{secret_literal} ,\"n\":[1, 2.5e3,true,null] }} }} ,\n {{\"RECORDINGACCESSTOKEN\":\"second\"}},\"recordingAccessToken\"\n  ]  }}\n"
        );
        let expected = body
            .replacen(
                secret_literal,
                &format!("\"{}\"", r.placeholder(br#"eyJ0/xA"q\"#)),
                1,
            )
            .replacen(
                "\"second\"",
                &format!("\"{}\"", r.placeholder(b"second")),
                1,
            );
        assert_ne!(expected, body);
        assert_eq!(
            text(r.body(Some("application/json; charset=utf-8"), body.as_bytes())),
            Some(expected.clone())
        );
        assert_eq!(text(r.body(None, body.as_bytes())), Some(expected));
    }

    #[test]
    fn json_placeholder_hashes_the_decoded_string() {
        let r = redactor();
        let escaped = text(r.body(None, br#"{"secret":"a\/b"}"#)).expect("redacted");
        let plain = text(r.body(None, br#"{"secret":"a/b"}"#)).expect("redacted");
        assert_eq!(escaped, plain);
        assert_eq!(
            plain,
            format!(r#"{{"secret":"{}"}}"#, r.placeholder(b"a/b"))
        );
    }

    #[test]
    fn json_leaves_non_string_secret_values_alone() {
        let r = redactor();
        for body in [
            r#"{"token":{"value":"x","expires":3}}"#,
            r#"{"password":null,"accessToken":42,"secret":["a"],"idToken":""}"#,
            r#"["token","password"]"#,
            r#"{"tokenType":"Bearer","a":{"b":"token"}}"#,
        ] {
            assert_eq!(
                r.body(Some("application/json"), body.as_bytes()),
                None,
                "{body}"
            );
        }
    }

    #[test]
    fn unusable_bodies_are_not_touched() {
        let r = redactor();
        assert_eq!(r.body(Some("application/json"), br#"{"token":"x""#), None);
        assert_eq!(r.body(None, br#"{"token":"x"} trailing"#), None);
        assert_eq!(
            r.body(Some("application/json"), b"{\"token\":\"\xff\xfe\"}"),
            None
        );
        assert_eq!(r.body(None, b"\xff{\"token\":\"x\"}"), None);
        assert_eq!(r.body(Some("text/plain"), br#"{"token":"x"}"#), None);
        assert_eq!(r.body(None, b"token=x"), None);
        assert_eq!(r.body(Some("application/json"), b""), None);
    }

    #[test]
    fn disabled_changes_nothing() {
        let r = Redactor::disabled();
        assert!(r.placeholder(b"x").starts_with(PLACEHOLDER_PREFIX));
        let bearer = format!("Bearer {}", bot_jwt());
        assert_eq!(r.header_value("Authorization", bearer.as_bytes()), None);
        assert_eq!(r.header_value("Cookie", b"a=1"), None);
        assert_eq!(r.header_value("x-api-key", b"k"), None);
        assert_eq!(r.query("access_token=x"), None);
        assert_eq!(r.body(None, br#"{"token":"x"}"#), None);
        assert_eq!(
            r.body(Some("application/x-www-form-urlencoded"), b"code=x"),
            None
        );
        assert!(!format!("{r:?}").contains("Key"));
    }

    #[test]
    fn jwt_claims_requires_a_jwt() {
        assert_eq!(
            jwt_claims(&bot_jwt()),
            Some(JwtClaims {
                iss: Some("https://api.botframework.com".into()),
                aud: Some("app-1234".into()),
                tid: Some("tenant-42".into()),
                exp: Some(1_700_000_000),
            })
        );
        let padded = format!(
            "e30.{}.",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"aud":"a"}"#)
        );
        assert_eq!(
            jwt_claims(&padded).and_then(|c| c.aud).as_deref(),
            Some("a")
        );
        assert_eq!(
            jwt_claims(&jwt(r#"{"aud":[1,"b"],"exp":"soon"}"#)).map(|c| (c.aud, c.exp)),
            Some((Some("b".into()), None))
        );
        assert_eq!(jwt_claims("a.b"), None);
        assert_eq!(jwt_claims(&format!("{}.x", bot_jwt())), None);
        assert_eq!(jwt_claims(&jwt("[1,2]")), None);
        assert_eq!(jwt_claims(&jwt("not json")), None);
        assert_eq!(jwt_claims("e30.!!!.sig"), None);
        assert_eq!(jwt_claims(""), None);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let r = redactor();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet = b"{}[]\":,\\ \t\n=&;%tokenTOKEN0a9\xff\xc3Bearer .-_u";
        for len in 0..200usize {
            let input: Vec<u8> = (0..len % 40)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[usize::try_from(state % alphabet.len() as u64).unwrap_or(0)]
                })
                .collect();
            let as_text = String::from_utf8_lossy(&input);
            for name in ["authorization", "cookie", "set-cookie", "x-api-key"] {
                let _ = r.header_value(name, &input);
            }
            let _ = r.query(&as_text);
            let _ = r.body(None, &input);
            let _ = r.body(Some("application/json"), &input);
            let _ = r.body(Some("application/x-www-form-urlencoded"), &input);
            let _ = jwt_claims(&as_text);
            let _ = parse_redacted(&as_text);
        }
        for json in [
            r#"{"token":"a\"#,
            r#"{"token":"\u12"}"#,
            "[[[[[[",
            "]]]",
            r#""\"#,
        ] {
            assert_eq!(r.body(None, json.as_bytes()), None, "{json}");
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::proptest_support::{json_object, json_value, near_json, spell};
    use proptest::prelude::*;

    /// What redaction must make of a document, worked out on the parsed value.
    fn expected(r: &Redactor, value: &Value) -> Value {
        match value {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) if is_secret_json_key(k) => {
                                Value::String(r.redact_secret(s.as_bytes()).unwrap_or(s.clone()))
                            }
                            Value::String(s) if is_callback_url_key(k) => {
                                Value::String(r.url(s).unwrap_or(s.clone()))
                            }
                            v => expected(r, v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| expected(r, v)).collect()),
            v => v.clone(),
        }
    }

    proptest! {
        /// The one-pass search finds what `str::contains` would, for any of the needles.
        #[test]
        fn contains_any_agrees_with_str_contains(
            haystack in "[a-z-]{0,24}(token|secret|json)?[a-z-]{0,8}",
            needles in proptest::collection::vec("[a-z]{1,6}|token|json", 0..4),
        ) {
            let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
            prop_assert_eq!(
                contains_any(haystack.as_bytes(), &needles),
                needles.iter().any(|n| haystack.contains(n))
            );
        }
    }

    proptest! {
        #[test]
        fn json_bodies_lose_their_secrets_and_nothing_else(
            mut value in json_object(),
            style in any::<u64>(),
            secret in "SECRET-[a-z0-9]{8}",
            nested in json_value(),
        ) {
            let r = Redactor::new(b"0123456789abcdef0123456789abcdef");
            let map = value.as_object_mut().unwrap();
            map.insert("token".into(), Value::String(secret.clone()));
            map.insert("callbackUri".into(), Value::String(format!("https://u:{secret}@bot/x?sig={secret}&a=1")));
            map.insert("n".into(), serde_json::json!([{"clientSecret": secret}, nested]));
            let text = spell(&value, style);
            let out = r.body(Some("application/json"), &text).expect("secrets to redact");
            let parsed: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(parsed, expected(&r, &value));
            prop_assert!(!String::from_utf8_lossy(&out).contains(&secret));
        }

        /// The byte prefilter never skips a body the walk would change.
        #[test]
        fn callback_urls_are_redacted_exactly_as_the_walk_would(
            mut value in json_object(),
            style in any::<u64>(),
            key in "(callbackUri|CALLBACKURI|callback)",
            url in "https://(u:p@)?bot\\.contoso\\.com/api(/[a-z@]{1,4})?(\\?sig=[a-z]{3})?",
            nested in json_value(),
        ) {
            let r = Redactor::new(&[9; 32]);
            let map = value.as_object_mut().unwrap();
            map.insert(key, Value::String(url));
            map.insert("n".into(), nested);
            // Compact (few escapes, the prefilter decides) and spelled (escapes, walked).
            for text in [serde_json::to_vec(&value).unwrap(), spell(&value, style)] {
                let out = r.body(Some("application/json"), &text).unwrap_or(text);
                let parsed: Value = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(parsed, expected(&r, &value));
            }
        }

        #[test]
        fn no_input_panics(bytes in near_json(), text in any::<String>()) {
            let r = Redactor::new(&[9; 32]);
            for content_type in [None, Some("application/json"), Some("application/x-www-form-urlencoded")] {
                let _ = r.body(content_type, &bytes);
            }
            let _ = r.query(&text);
            let _ = r.url(&text);
            let _ = r.header_value("authorization", text.as_bytes());
            let _ = r.header_value("cookie", &bytes);
            let _ = r.header_value("set-cookie", &bytes);
            let _ = parse_redacted(&text);
            let _ = jwt_claims(&text);
        }

        #[test]
        fn query_redaction_keeps_names_and_order(
            pairs in prop::collection::vec(("(token|code|a|b|sig|x%5Fy)", "[a-zA-Z0-9%]{0,8}"), 0..6)
        ) {
            let r = Redactor::new(&[9; 32]);
            let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let query = query.join("&");
            let out = r.query(&query).unwrap_or(query.clone());
            let names = |q: &str| q.split('&').map(|p| p.split('=').next().unwrap_or("").to_string()).collect::<Vec<_>>();
            prop_assert_eq!(names(&out), names(&query));
            for (k, v) in &pairs {
                if is_secret_param(k.as_bytes()) && !v.is_empty() {
                    prop_assert!(!out.split('&').any(|p| p == format!("{k}={v}")), "{} kept in {}", v, out);
                }
            }
        }
    }
}
