//! The exchange model shared by the proxy, the store and the recording format.
//!
//! An exchange is one HTTP request and what came back for it. The proxy captures it
//! as hyper handed it over ([`Captured`]: `http` heads, bodies whole up to
//! `--max-body` or, for a streamed body, the stored prefix with the length and
//! SHA-256 of all of it); the store keeps it redacted and with bodies capped
//! (`Exchange<StoredBody>`). Converting the heads to text happens in one testable step
//! on the writer thread (`store::prepare`), off the proxy's hot path.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

/// Which way the request travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The bot called Graph's API.
    Api,
    /// Graph called the bot back with notifications.
    Callback,
}

impl Direction {
    /// The name used in the database and the recording format.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Api => "api",
            Direction::Callback => "callback",
        }
    }

    /// Inverse of [`Direction::as_str`].
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "api" => Some(Direction::Api),
            "callback" => Some(Direction::Callback),
            _ => None,
        }
    }
}

/// Header names (lower-case, as HTTP/2 and hyper give them) with raw values; header
/// values are bytes because HTTP allows non-UTF-8 ones.
pub type Headers = Vec<(String, Vec<u8>)>;

/// Offsets in microseconds from the session start, on the session's monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Request head received.
    pub request_start_us: i64,
    /// Request body fully received (None if it never was).
    pub request_end_us: Option<i64>,
    /// Response head received from the peer.
    pub response_start_us: Option<i64>,
    /// Response body fully received from the peer.
    pub response_end_us: Option<i64>,
}

/// The request half of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord<B> {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    pub headers: Headers,
    pub body: B,
}

/// The response half, as the peer sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRecord<B> {
    pub status: u16,
    pub headers: Headers,
    pub body: B,
}

/// One request and its outcome. `error` is set when the exchange did not complete
/// normally (peer unreachable, timeout, reset, refused by graphtape); the response may
/// still be present, partially, in that case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange<B> {
    pub seq: u64,
    pub direction: Direction,
    /// Wall clock at request start, microseconds since the Unix epoch.
    pub wall_start_us: i64,
    pub timing: Timing,
    pub request: RequestRecord<B>,
    /// Where graphtape sent the request (None when it refused it).
    pub target: Option<String>,
    /// The request body as forwarded, when graphtape changed it (callbackUri rewriting).
    pub forwarded_body: Option<B>,
    pub response: Option<ResponseRecord<B>>,
    pub error: Option<String>,
}

impl RequestRecord<StoredBody> {
    /// The body's content, decoded if it was sent gzip- or deflate-encoded.
    pub fn content(&self) -> std::borrow::Cow<'_, [u8]> {
        crate::content_encoding::content(
            header(&self.headers, "content-encoding"),
            &self.body.bytes,
        )
    }
}

impl ResponseRecord<StoredBody> {
    /// The body's content, decoded if it was sent gzip- or deflate-encoded.
    pub fn content(&self) -> std::borrow::Cow<'_, [u8]> {
        crate::content_encoding::content(
            header(&self.headers, "content-encoding"),
            &self.body.bytes,
        )
    }
}

/// A body as stored: the first `--max-body` bytes (after redaction), with the full
/// length and SHA-256 so a truncated body can still be identified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredBody {
    pub bytes: Vec<u8>,
    pub len: u64,
    pub sha256: String,
    pub truncated: bool,
}

impl StoredBody {
    /// Stores `full`, keeping at most `max` bytes.
    pub fn capture(full: &[u8], max: usize) -> StoredBody {
        let keep = full.len().min(max);
        StoredBody {
            bytes: full[..keep].to_vec(),
            len: full.len() as u64,
            sha256: sha256_hex(full),
            truncated: keep < full.len(),
        }
    }

    /// [`StoredBody::capture`] of a whole buffer the caller owns: kept without a copy
    /// when it fits (and nothing else holds it).
    pub fn capture_owned(full: Bytes, max: usize) -> StoredBody {
        if full.len() > max {
            return StoredBody::capture(&full, max);
        }
        StoredBody {
            len: full.len() as u64,
            sha256: sha256_hex(&full),
            truncated: false,
            bytes: Vec::from(full),
        }
    }
}

/// A body as captured on the hot path.
///
/// A body up to `--max-body` is kept whole (`sha256` None: the writer hashes what it
/// stores). A larger one streamed through: `bytes` is its first `--max-body` bytes,
/// `len` and `sha256` describe everything that crossed (as far as it got).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapturedBody {
    pub bytes: Bytes,
    pub len: u64,
    pub sha256: Option<[u8; 32]>,
}

impl CapturedBody {
    /// A body held whole.
    pub fn whole(bytes: Bytes) -> CapturedBody {
        CapturedBody {
            len: bytes.len() as u64,
            bytes,
            sha256: None,
        }
    }

    /// A streamed body: its kept prefix, total length and digest.
    pub fn streamed(prefix: Bytes, len: u64, sha256: [u8; 32]) -> CapturedBody {
        CapturedBody {
            bytes: prefix,
            len,
            sha256: Some(sha256),
        }
    }

    #[cfg(test)] // test support: only the unit tests use it
    /// Whether it streamed through (only a prefix is held).
    pub fn is_streamed(&self) -> bool {
        self.sha256.is_some()
    }
}

/// The request as captured: hyper's head (extensions cleared) and the body.
#[derive(Debug)]
pub struct CapturedRequest {
    pub parts: http::request::Parts,
    pub body: CapturedBody,
}

impl CapturedRequest {
    /// A request head from its pieces (for requests graphtape makes itself).
    pub fn new(method: http::Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Self {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        parts.headers = headers;
        CapturedRequest {
            parts,
            body: CapturedBody::whole(body),
        }
    }
}

/// The response as captured from the peer.
#[derive(Debug, Clone)]
pub struct CapturedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: CapturedBody,
}

/// Where graphtape sent a request: a URI as built for the client, or a label for what
/// graphtape answered itself (replay).
///
/// The URI is kept as text: that is all the record needs, and a `Uri` built from a
/// request shares the connection's read buffer, which a record waiting for the writer
/// would keep alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Uri(String),
    Label(String),
}

impl Target {
    /// The target as recorded.
    pub fn into_text(self) -> String {
        match self {
            Target::Uri(text) | Target::Label(text) => text,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Uri(text) | Target::Label(text) => f.write_str(text),
        }
    }
}

/// One exchange as the proxy captured it, on its way to the writer.
#[derive(Debug)]
pub struct Captured {
    pub seq: u64,
    pub direction: Direction,
    pub wall_start_us: i64,
    pub timing: Timing,
    pub request: CapturedRequest,
    pub target: Option<Target>,
    /// The request body as forwarded, when graphtape changed it (callbackUri rewriting).
    pub forwarded_body: Option<CapturedBody>,
    pub response: Option<CapturedResponse>,
    pub error: Option<String>,
}

impl Captured {
    /// About how many bytes this exchange holds while it waits for the writer (bodies
    /// plus headers plus a fixed overhead), for a queue bounded in bytes.
    pub fn size(&self) -> usize {
        const OVERHEAD: usize = 512;
        let headers = |h: &HeaderMap| {
            h.iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 16)
                .sum::<usize>()
        };
        OVERHEAD
            + self.request.body.bytes.len()
            + headers(&self.request.parts.headers)
            + self.forwarded_body.as_ref().map_or(0, |b| b.bytes.len())
            + self
                .response
                .as_ref()
                .map_or(0, |r| r.body.bytes.len() + headers(&r.headers))
            + self.error.as_ref().map_or(0, String::len)
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    hex(digest.as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Headers as recorded: names lower-case, values raw. `HeaderMap` groups the values
/// of one name together, so the pairs come grouped by name in order of each name's
/// first appearance, the values of one name in the order they arrived.
pub fn record_headers(headers: &HeaderMap) -> Headers {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect()
}

/// The first value of header `name` (lower-case), if it is UTF-8.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn capture_keeps_prefix_and_describes_whole() {
        let body = StoredBody::capture(b"hello world", 5);
        assert_eq!(body.bytes, b"hello");
        assert_eq!(body.len, 11);
        assert!(body.truncated);
        assert_eq!(body.sha256, sha256_hex(b"hello world"));
        for (full, max) in [(&b"hello world"[..], 5), (b"hi", 5)] {
            let owned = StoredBody::capture_owned(Bytes::copy_from_slice(full), max);
            assert_eq!(owned, StoredBody::capture(full, max));
        }
        let whole = StoredBody::capture(b"hi", 5);
        assert!(!whole.truncated);
        assert_eq!(whole.bytes, b"hi");
    }

    #[test]
    fn captured_size_counts_bodies_and_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        let request = CapturedRequest::new(
            http::Method::POST,
            Uri::from_static("/a"),
            headers,
            Bytes::from(vec![0; 1000]),
        );
        let ex = Captured {
            seq: 1,
            direction: Direction::Api,
            wall_start_us: 0,
            timing: Timing::default(),
            request,
            target: Some(Target::Uri("http://x/a".into())),
            forwarded_body: None,
            response: Some(CapturedResponse {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                body: CapturedBody::streamed(Bytes::from(vec![0; 300]), 1 << 30, [0; 32]),
            }),
            error: None,
        };
        let size = ex.size();
        assert!((1300..1300 + 1024).contains(&size), "{size}");
        assert!(ex.response.unwrap().body.is_streamed());
        assert!(!ex.request.body.is_streamed());
    }

    #[test]
    fn recorded_headers_group_values_by_name() {
        let mut h = HeaderMap::new();
        h.append("a", "1".parse().unwrap());
        h.append("b", "2".parse().unwrap());
        h.append("a", "3".parse().unwrap());
        let names: Vec<(String, Vec<u8>)> = record_headers(&h);
        assert_eq!(
            names,
            vec![
                ("a".to_string(), b"1".to_vec()),
                ("a".to_string(), b"3".to_vec()),
                ("b".to_string(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn sha256_of_empty_is_the_known_value() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn direction_round_trips() {
        for d in [Direction::Api, Direction::Callback] {
            assert_eq!(Direction::parse(d.as_str()), Some(d));
        }
        assert_eq!(Direction::parse("other"), None);
    }
}
