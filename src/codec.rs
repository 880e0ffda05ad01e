//! JSON encodings of headers and bodies, shared by the store's header columns and the
//! recording file format so both say the same thing the same way.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::exchange::Headers;

/// A header value: text when it is UTF-8 (nearly always), base64 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValue {
    Text(String),
    Binary { base64: String },
}

/// One header as `[name, value]`.
pub type HeaderPair = (String, HeaderValue);

/// Headers as the `[name, value]` pairs used on disk.
pub fn encode_headers(headers: &Headers) -> Vec<HeaderPair> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = match std::str::from_utf8(value) {
                Ok(text) => HeaderValue::Text(text.to_string()),
                Err(_) => HeaderValue::Binary {
                    base64: B64.encode(value),
                },
            };
            (name.clone(), value)
        })
        .collect()
}

/// [`encode_headers`] as JSON text, appended to `out` (the writer does this for every
/// exchange, so no intermediate pairs are built). Only JSON text and base64 are written:
/// what is appended is always UTF-8.
pub(crate) fn write_headers_json(out: &mut Vec<u8>, headers: &Headers) {
    out.push(b'[');
    for (i, (name, value)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        json_string(out, name);
        out.push(b',');
        match std::str::from_utf8(value) {
            Ok(text) => json_string(out, text),
            Err(_) => {
                out.extend_from_slice(br#"{"base64":""#);
                let mut encoded = String::new();
                B64.encode_string(value, &mut encoded);
                out.extend_from_slice(encoded.as_bytes());
                out.extend_from_slice(br#""}"#);
            }
        }
        out.push(b']');
    }
    out.push(b']');
}

/// `text` as a JSON string literal, escaped as serde_json escapes it.
fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Inverse of [`encode_headers`]; fails on invalid base64.
pub fn decode_headers(pairs: Vec<HeaderPair>) -> Result<Headers, String> {
    pairs
        .into_iter()
        .map(|(name, value)| {
            let bytes = match value {
                HeaderValue::Text(text) => text.into_bytes(),
                HeaderValue::Binary { base64 } => B64
                    .decode(base64.as_bytes())
                    .map_err(|e| format!("header {name:?}: invalid base64: {e}"))?,
            };
            Ok((name, bytes))
        })
        .collect()
}

/// A body in the recording format: inline JSON when re-serialising it gives back the
/// exact bytes, otherwise exact text, otherwise base64. The choice is made per body so
/// a recording stays readable without ever losing a byte.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyContent {
    Json(Value),
    Text(String),
    Base64(String),
}

impl BodyContent {
    /// Picks the most readable lossless form for `bytes`.
    pub fn encode(bytes: &[u8]) -> BodyContent {
        if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
            // Only objects and arrays: a bare `null` would read back as "no body".
            let structured = value.is_object() || value.is_array();
            if structured && serde_json::to_vec(&value).ok().as_deref() == Some(bytes) {
                return BodyContent::Json(value);
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => BodyContent::Text(text.to_string()),
            Err(_) => BodyContent::Base64(B64.encode(bytes)),
        }
    }

    /// The exact bytes this content stands for.
    pub fn decode(&self) -> Result<Vec<u8>, String> {
        match self {
            BodyContent::Json(value) => serde_json::to_vec(value).map_err(|e| e.to_string()),
            BodyContent::Text(text) => Ok(text.as_bytes().to_vec()),
            BodyContent::Base64(data) => B64
                .decode(data.as_bytes())
                .map_err(|e| format!("invalid base64: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_json_is_the_serde_encoding() {
        let headers: Headers = vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("x-quote".into(), b"a \"b\" \\ c\x01".to_vec()),
            ("x-binary".into(), vec![0xff, 0x00, 0x80]),
            ("x-unicode".into(), "caf\u{e9} \u{2028}".as_bytes().to_vec()),
            ("x-empty".into(), Vec::new()),
        ];
        for headers in [headers, Vec::new()] {
            let serde = serde_json::to_string(&encode_headers(&headers)).unwrap();
            let mut out = b"prefix".to_vec();
            write_headers_json(&mut out, &headers);
            assert_eq!(out, [&b"prefix"[..], serde.as_bytes()].concat());
        }
    }

    fn round_trip(bytes: &[u8]) -> BodyContent {
        let content = BodyContent::encode(bytes);
        assert_eq!(content.decode().unwrap(), bytes);
        content
    }

    #[test]
    fn compact_json_is_inline() {
        let c = round_trip(br#"{"b":1,"a":[true,null,"x"]}"#);
        assert!(matches!(c, BodyContent::Json(_)));
    }

    #[test]
    fn json_that_would_change_is_text() {
        // Whitespace, key order kept but spacing differs, and float spelling.
        for body in [
            &b"{ \"a\": 1 }"[..],
            br#"{"a":1.0e3}"#,
            br#"{"a":"\u00e9"}"#,
            b"null",
        ] {
            assert!(matches!(round_trip(body), BodyContent::Text(_)));
        }
    }

    #[test]
    fn binary_is_base64() {
        assert!(matches!(
            round_trip(&[0xff, 0x00, 0xfe]),
            BodyContent::Base64(_)
        ));
    }

    #[test]
    fn headers_round_trip_including_non_utf8() {
        let headers: Headers = vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("x-odd".into(), vec![0xff, b'a']),
        ];
        let encoded = encode_headers(&headers);
        let json = serde_json::to_string(&encoded).unwrap();
        assert_eq!(
            json,
            r#"[["content-type","application/json"],["x-odd",{"base64":"/2E="}]]"#
        );
        let back: Vec<HeaderPair> = serde_json::from_str(&json).unwrap();
        assert_eq!(decode_headers(back).unwrap(), headers);
    }
}
