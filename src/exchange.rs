//! The exchange model shared by the proxy, the store and the recording format.
//!
//! An exchange is one HTTP request and what came back for it. The proxy captures it
//! with the full bodies as they crossed the wire (`Exchange<Bytes>`); the store keeps
//! it redacted and with bodies capped (`Exchange<StoredBody>`). One generic shape for
//! both keeps the conversion a single, testable step (`store::prepare`).

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
        crate::content_encoding::content(&self.headers, &self.body.bytes)
    }
}

impl ResponseRecord<StoredBody> {
    /// The body's content, decoded if it was sent gzip- or deflate-encoded.
    pub fn content(&self) -> std::borrow::Cow<'_, [u8]> {
        crate::content_encoding::content(&self.headers, &self.body.bytes)
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
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    hex(digest.as_ref())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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
    fn capture_keeps_prefix_and_describes_whole() {
        let body = StoredBody::capture(b"hello world", 5);
        assert_eq!(body.bytes, b"hello");
        assert_eq!(body.len, 11);
        assert!(body.truncated);
        assert_eq!(body.sha256, sha256_hex(b"hello world"));
        let whole = StoredBody::capture(b"hi", 5);
        assert!(!whole.truncated);
        assert_eq!(whole.bytes, b"hi");
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
