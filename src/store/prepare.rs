//! Turning a captured exchange into what is stored: secrets redacted, bodies capped.
//!
//! This runs on the writer thread, not on the proxy's hot path, and it is the only way
//! a captured exchange reaches SQLite, so nothing can bypass redaction.

use bytes::Bytes;

use crate::content_encoding::map_content;
use crate::exchange::{header, Exchange, Headers, RequestRecord, ResponseRecord, StoredBody};
use crate::redact::Redactor;

/// Redacts credentials (headers, query, token-bearing body fields) and keeps at most
/// `max_body` bytes of each body, with the full length and hash.
pub fn prepare(ex: Exchange<Bytes>, redactor: &Redactor, max_body: usize) -> Exchange<StoredBody> {
    let Exchange {
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
    let query = request.query.map(|q| redactor.query(&q).unwrap_or(q));
    let target = target.map(|t| redactor.url(&t).unwrap_or(t));
    let forwarded_body = forwarded_body.map(|b| body(redactor, &request.headers, &b, max_body));
    let request = RequestRecord {
        body: body(redactor, &request.headers, &request.body, max_body),
        headers: headers(redactor, request.headers),
        method: request.method,
        path: request.path,
        query,
        version: request.version,
    };
    let response = response.map(|r| ResponseRecord {
        status: r.status,
        body: body(redactor, &r.headers, &r.body, max_body),
        headers: headers(redactor, r.headers),
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
/// gzip response is caught too.
fn body(redactor: &Redactor, headers: &Headers, raw: &[u8], max_body: usize) -> StoredBody {
    let content_type = header(headers, "content-type");
    match map_content(headers, raw, |content| redactor.body(content_type, content)) {
        Some(redacted) => StoredBody::capture(&redacted, max_body),
        None => StoredBody::capture(raw, max_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Direction, Timing};

    fn captured() -> Exchange<Bytes> {
        Exchange {
            seq: 1,
            direction: Direction::Api,
            wall_start_us: 0,
            timing: Timing::default(),
            request: RequestRecord {
                method: "GET".into(),
                path: "/recording".into(),
                query: Some("a=1&access_token=SECRET1".into()),
                version: "HTTP/1.1".into(),
                headers: vec![
                    ("authorization".into(), b"Bearer SECRET2".to_vec()),
                    ("content-type".into(), b"application/json".to_vec()),
                ],
                body: Bytes::from_static(br#"{"recordingAccessToken":"SECRET3","n":1}"#),
            },
            target: Some("https://graph.example/recording?sig=SECRET4".into()),
            forwarded_body: Some(Bytes::from_static(br#"{"token":"SECRET5"}"#)),
            response: Some(ResponseRecord {
                status: 200,
                headers: vec![("content-type".into(), b"text/plain".to_vec())],
                body: Bytes::from_static(b"0123456789"),
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
        resp.headers = vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("content-encoding".into(), b"gzip".to_vec()),
        ];
        resp.body = Bytes::from(gz.finish().unwrap());
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
    fn keep_secrets_keeps_them() {
        let stored = prepare(captured(), &Redactor::disabled(), 1024);
        assert_eq!(
            stored.request.query.as_deref(),
            Some("a=1&access_token=SECRET1")
        );
        assert_eq!(stored.request.headers[0].1, b"Bearer SECRET2");
    }
}
