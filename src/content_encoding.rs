//! `Content-Encoding`: bodies are stored exactly as they crossed the wire (often gzip,
//! since Graph SDKs ask for it), but everything that reads them (ids, notifications,
//! redaction, inspection, substitution) needs the content itself.
//!
//! A leaf: callers pass the `Content-Encoding` value, from whatever header type
//! they hold.

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::read::{GzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

/// Decoded bodies larger than this are not decoded (a compression bomb stays packed).
const MAX_DECODED: u64 = 64 << 20;

#[derive(Clone, Copy)]
enum Coding {
    Gzip,
    /// HTTP's `deflate` is the zlib format.
    Deflate,
}

fn coding(encoding: Option<&str>) -> Option<Coding> {
    match encoding?.trim().to_ascii_lowercase().as_str() {
        "gzip" | "x-gzip" => Some(Coding::Gzip),
        "deflate" => Some(Coding::Deflate),
        _ => None,
    }
}

/// The decoded content, if the body is gzip or deflate encoded (`encoding` is the
/// `Content-Encoding` value) and decodes cleanly.
pub fn decode(encoding: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let read = match coding(encoding)? {
        Coding::Gzip => GzDecoder::new(body)
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out),
        Coding::Deflate => ZlibDecoder::new(body)
            .take(MAX_DECODED + 1)
            .read_to_end(&mut out),
    };
    (read.is_ok() && out.len() as u64 <= MAX_DECODED).then_some(out)
}

/// The content of a body: decoded when it is encoded, else the bytes themselves.
pub fn content<'a>(encoding: Option<&str>, body: &'a [u8]) -> Cow<'a, [u8]> {
    match decode(encoding, body) {
        Some(decoded) => Cow::Owned(decoded),
        None => Cow::Borrowed(body),
    }
}

/// Applies `change` to the content of a body and encodes the result as the body was
/// encoded. None when `change` changes nothing (the original bytes stay as they are).
pub fn map_content(
    encoding: Option<&str>,
    body: &[u8],
    change: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let Some(coding) = coding(encoding) else {
        return change(body);
    };
    let decoded = decode(encoding, body)?;
    let changed = change(&decoded)?;
    let encoded = match coding {
        Coding::Gzip => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(&changed).and_then(|()| e.finish())
        }
        Coding::Deflate => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(&changed).and_then(|()| e.finish())
        }
    };
    encoded.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn headers(encoding: &str) -> Option<&str> {
        Some(encoding)
    }

    #[test]
    fn gzip_and_deflate_decode_identity_does_not() {
        let body = br#"{"id":"abc"}"#;
        assert_eq!(decode(headers("gzip"), &gzip(body)).unwrap(), body);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(body).unwrap();
        assert_eq!(
            decode(headers("Deflate"), &z.finish().unwrap()).unwrap(),
            body
        );
        assert_eq!(decode(None, body), None);
        assert_eq!(content(None, body).as_ref(), body);
        assert_eq!(decode(headers("br"), body), None, "unsupported: left alone");
        assert_eq!(
            decode(headers("gzip"), b"not gzip"),
            None,
            "broken: left alone"
        );
        assert_eq!(content(headers("gzip"), b"not gzip").as_ref(), b"not gzip");
    }

    #[test]
    fn map_content_re_encodes_only_when_changed() {
        let h = headers("gzip");
        let packed = gzip(b"secret-1");
        let changed = map_content(h, &packed, |c| Some(c.to_ascii_uppercase())).unwrap();
        assert_eq!(decode(h, &changed).unwrap(), b"SECRET-1");
        assert_eq!(map_content(h, &packed, |_| None), None);
        assert_eq!(
            map_content(None, b"x", |_| Some(b"y".to_vec())).unwrap(),
            b"y"
        );
    }

    #[test]
    fn bombs_stay_packed() {
        let big = vec![0u8; (MAX_DECODED + 10) as usize];
        assert_eq!(decode(headers("gzip"), &gzip(&big)), None);
    }
}
