//! Turning a captured exchange into what is stored: secrets redacted, bodies capped.
//!
//! This runs on the writer thread, not on the proxy's hot path, and it is the only way
//! a captured exchange reaches SQLite, so nothing can bypass redaction.

use crate::content_encoding::map_content;
use crate::exchange::{
    header, hex, record_headers, Captured, CapturedBody, Exchange, Headers, RequestRecord,
    ResponseRecord, StoredBody,
};
use crate::redact::Redactor;

/// Redacts credentials (headers, query, token-bearing body fields) and keeps at most
/// `max_body` bytes of each body, with the full length and hash. The `http` heads the
/// proxy captured become text here, on the writer thread.
pub fn prepare(ex: Captured, redactor: &Redactor, max_body: usize) -> Exchange<StoredBody> {
    let Captured {
        seq,
        direction,
        wall_start_us,
        timing,
        request,
        target,
        forwarded_body,
        response,
        error,
    } = ex;
    let parts = request.parts;
    let request_headers = record_headers(&parts.headers);
    let query = parts
        .uri
        .query()
        .map(|q| redactor.query(q).unwrap_or_else(|| q.to_string()));
    let target = target.map(|t| {
        let t = t.into_text();
        redactor.url(&t).unwrap_or(t)
    });
    let forwarded_body = forwarded_body.map(|b| body(redactor, &request_headers, b, max_body));
    let request = RequestRecord {
        body: body(redactor, &request_headers, request.body, max_body),
        headers: headers(redactor, request_headers),
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query,
        version: version_text(parts.version),
    };
    let response = response.map(|r| {
        let response_headers = record_headers(&r.headers);
        ResponseRecord {
            status: r.status.as_u16(),
            body: body(redactor, &response_headers, r.body, max_body),
            headers: headers(redactor, response_headers),
        }
    });
    Exchange {
        seq,
        direction,
        wall_start_us,
        timing,
        request,
        target,
        forwarded_body,
        response,
        error,
    }
}

/// The version as recorded (`HTTP/1.1`), without going through `Debug` formatting.
fn version_text(version: http::Version) -> String {
    let text = match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        other => return format!("{other:?}"),
    };
    text.to_string()
}

fn headers(redactor: &Redactor, headers: Headers) -> Headers {
    headers
        .into_iter()
        .map(|(name, value)| {
            let value = redactor.header_value(&name, &value).unwrap_or(value);
            (name, value)
        })
        .collect()
}

/// An encoded body is redacted in its content and encoded again, so a token inside a
/// gzip response is caught too. A streamed body arrives as its prefix with the length
/// and digest of the whole, which are kept as they are.
fn body(
    redactor: &Redactor,
    headers: &Headers,
    captured: CapturedBody,
    max_body: usize,
) -> StoredBody {
    let raw: &[u8] = &captured.bytes;
    let content_type = header(headers, "content-type");
    let redacted = map_content(header(headers, "content-encoding"), raw, |content| {
        redactor.body(content_type, content)
    });
    match captured.sha256 {
        // Kept as received, the captured buffer becomes the stored one (no copy once
        // the proxy has replied and holds no other reference).
        None => match redacted {
            Some(redacted) => StoredBody::capture(&redacted, max_body),
            None => StoredBody::capture_owned(captured.bytes, max_body),
        },
        Some(digest) => {
            // A streamed body's prefix is cut mid-document: JSON (or anything encoded)
            // cannot be checked for secrets, so its bytes are withheld unless redaction
            // is off; the length and SHA-256 of the whole still identify it.
            let unchecked = redacted.is_none()
                && redactor.is_enabled()
                && (may_hide_secrets(content_type, raw)
                    || header(headers, "content-encoding").is_some());
            let kept = match unchecked {
                true => Vec::new(),
                false => redacted.unwrap_or_else(|| raw.to_vec()),
            };
            let keep = kept.len().min(max_body);
            StoredBody {
                truncated: (keep as u64) < captured.len,
                bytes: kept[..keep].to_vec(),
                len: captured.len,
                sha256: hex(&digest),
            }
        }
    }
}

/// JSON, by its media type or, without one, by its first byte (the same test redaction
/// applies to whole bodies).
fn may_hide_secrets(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(ct) => ct.to_ascii_lowercase().contains("json"),
        None => matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'{' | b'[')
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exchange::{CapturedRequest, CapturedResponse, Direction, Target, Timing};
    use bytes::Bytes;
    use http::{HeaderMap, Method, StatusCode, Uri};

    #[test]
    fn versions_are_recorded_as_http_formats_them() {
        for v in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(version_text(v), format!("{v:?}"));
        }
    }

    pub(crate) fn captured() -> Captured {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer SECRET2".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        let mut response_headers = HeaderMap::new();
        response_headers.insert("content-type", "text/plain".parse().unwrap());
        Captured {
            seq: 1,
            direction: Direction::Api,
            wall_start_us: 0,
            timing: Timing::default(),
            request: CapturedRequest::new(
                Method::GET,
                Uri::from_static("/recording?a=1&access_token=SECRET1"),
                headers,
                Bytes::from_static(br#"{"recordingAccessToken":"SECRET3","n":1}"#),
            ),
            target: Some(Target::Uri(
                "https://graph.example/recording?sig=SECRET4".into(),
            )),
            forwarded_body: Some(CapturedBody::whole(Bytes::from_static(
                br#"{"token":"SECRET5"}"#,
            ))),
            response: Some(CapturedResponse {
                status: StatusCode::OK,
                headers: response_headers,
                body: CapturedBody::whole(Bytes::from_static(b"0123456789")),
            }),
            error: None,
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn secrets_are_gone_and_the_rest_is_kept() {
        let stored = prepare(captured(), &Redactor::new(&[7; 32]), 64);
        let dump = format!("{stored:?}");
        for secret in ["SECRET1", "SECRET2", "SECRET3", "SECRET4", "SECRET5"] {
            assert!(!dump.contains(secret), "{secret} leaked: {dump}");
        }
        assert!(stored
            .request
            .query
            .as_deref()
            .unwrap()
            .starts_with("a=1&access_token="));
        assert!(contains(&stored.request.body.bytes, br#""n":1}"#));
        assert!(!stored.request.body.truncated);
    }

    #[test]
    fn bodies_over_the_cap_keep_a_prefix() {
        let stored = prepare(captured(), &Redactor::new(&[7; 32]), 4);
        let resp = stored.response.unwrap();
        assert_eq!(resp.body.bytes, b"0123");
        assert!(resp.body.truncated);
        assert_eq!(resp.body.len, 10);
    }

    #[test]
    fn secrets_inside_gzip_bodies_are_redacted_too() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(br#"{"recordingAccessToken":"SECRET6","x":1}"#)
            .unwrap();
        let mut ex = captured();
        let resp = ex.response.as_mut().unwrap();
        resp.headers
            .insert("content-type", "application/json".parse().unwrap());
        resp.headers
            .insert("content-encoding", "gzip".parse().unwrap());
        resp.body = CapturedBody::whole(Bytes::from(gz.finish().unwrap()));
        let stored = prepare(ex, &Redactor::new(&[7; 32]), 1 << 20);
        let content = stored.response.unwrap().content().into_owned();
        let text = String::from_utf8(content).unwrap();
        assert!(!text.contains("SECRET6"), "{text}");
        assert!(
            text.contains("graphtape-redacted:") && text.contains(r#""x":1"#),
            "{text}"
        );
    }

    #[test]
    fn a_streamed_body_keeps_its_prefix_length_and_digest() {
        let mut ex = captured();
        ex.response.as_mut().unwrap().body =
            CapturedBody::streamed(Bytes::from_static(b"0123"), 1 << 30, [0xab; 32]);
        let stored = prepare(ex, &Redactor::new(&[7; 32]), 4);
        let body = stored.response.unwrap().body;
        assert_eq!(body.bytes, b"0123");
        assert_eq!(body.len, 1 << 30);
        assert!(body.truncated);
        assert_eq!(body.sha256, "ab".repeat(32));
    }

    #[test]
    fn a_streamed_json_prefix_that_cannot_be_checked_is_withheld() {
        let mut ex = captured();
        ex.request.body = CapturedBody::streamed(
            Bytes::from_static(br#"{"recordingAccessToken":"SECRET7","more":"#),
            1 << 30,
            [1; 32],
        );
        let stored = prepare(ex, &Redactor::new(&[7; 32]), 1 << 20);
        assert!(stored.request.body.bytes.is_empty());
        assert_eq!(stored.request.body.len, 1 << 30);
        assert!(stored.request.body.truncated);
        let mut ex = captured();
        ex.request.body =
            CapturedBody::streamed(Bytes::from_static(br#"{"token":"SECRET8""#), 99, [1; 32]);
        let kept = prepare(ex, &Redactor::disabled(), 1 << 20);
        assert_eq!(kept.request.body.bytes, br#"{"token":"SECRET8""#);
    }

    #[test]
    fn keep_secrets_keeps_them() {
        let stored = prepare(captured(), &Redactor::disabled(), 1024);
        assert_eq!(
            stored.request.query.as_deref(),
            Some("a=1&access_token=SECRET1")
        );
        assert_eq!(stored.request.headers[0].1, b"Bearer SECRET2");
    }
}
