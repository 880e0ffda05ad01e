//! Header handling at the proxy boundary: what a reverse proxy must not pass on.

use http::header::{
    HeaderMap, HeaderName, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};

use crate::exchange::Headers;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones clients still send;
/// `Connection` first (its values name more).
static HOP_BY_HOP: [HeaderName; HOPS] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];
const HOPS: usize = 9;

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// It runs on every request and every answer: one pass over the names (comparisons of
/// parsed names, no lookups by string) finds which are there, and only those are
/// removed. Most requests carry none; an HTTP/1.1 answer often has `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = [false; HOPS];
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        }
    }
    let connection = present[0];
    if connection {
        // Names `Connection` lists, other than the hop-by-hop ones removed below.
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|token| {
                !HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_str().eq_ignore_ascii_case(token))
            })
            .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(name);
        }
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
    fn each_hop_by_hop_header_goes_alone_and_other_headers_stay_as_they_were() {
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ] {
            let mut h = HeaderMap::new();
            h.append("x-a", "1".parse().unwrap());
            h.append(name, "v".parse().unwrap());
            h.append("x-a", "2".parse().unwrap());
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name} is removed");
            let values: Vec<_> = h.get_all("x-a").iter().collect();
            assert_eq!(values, ["1", "2"], "with {name}");
        }
        let mut h = HeaderMap::new();
        h.append("content-type", "application/json".parse().unwrap());
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before, "nothing hop-by-hop: nothing changes");
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
