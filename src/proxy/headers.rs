//! Header handling at the proxy boundary: what a reverse proxy must not pass on.

use http::header::{HeaderMap, HeaderName, CONNECTION, HOST};

use crate::exchange::Headers;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones clients still send.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Prepares a request's headers for the next hop: hop-by-hop removed, and `Host`
/// removed so the client sets the one for the target it actually connects to.
pub fn for_next_hop(mut headers: HeaderMap) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    headers
}

/// Recorded headers made ready to send again (replay): hop-by-hop and `Host` dropped,
/// `Content-Length` set for the body actually sent. Values HTTP would reject are
/// skipped.
pub fn resend(recorded: &Headers, body_len: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in recorded {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    strip_hop_by_hop(&mut headers);
    headers.remove(HOST);
    headers.insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(body_len),
    );
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("host", "127.0.0.1:7080".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        h.insert("client-request-id", "abc".parse().unwrap());
        let out = for_next_hop(h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["authorization", "client-request-id"]);
    }

    #[test]
    fn resend_drops_the_old_hop_and_fixes_the_length() {
        let recorded: Headers = vec![
            ("host".into(), b"old".to_vec()),
            ("connection".into(), b"close".to_vec()),
            ("content-length".into(), b"999".to_vec()),
            ("x-ms-skype-chain-id".into(), b"c1".to_vec()),
            ("bad".into(), b"a\nb".to_vec()),
        ];
        let out = resend(&recorded, 12);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["content-length", "x-ms-skype-chain-id"]);
        assert_eq!(out["content-length"], "12");
        assert_eq!(out.get_all("content-length").iter().count(), 1);
    }
}
