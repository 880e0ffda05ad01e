//! Percent-decoding (RFC 3986 §2.1), shared by everything that reads paths, queries
//! and form bodies. Lenient, as a recorder must be: a `%` not followed by two hex
//! digits is kept as it is.

use std::borrow::Cow;

/// `input` with `%XX` escapes decoded (and `+` read as a space when `plus_is_space`,
/// as in queries and form bodies). Borrowed when there is nothing to decode.
pub(crate) fn decode(input: &[u8], plus_is_space: bool) -> Cow<'_, [u8]> {
    if !input
        .iter()
        .any(|&b| b == b'%' || plus_is_space && b == b'+')
    {
        return Cow::Borrowed(input);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        if let [b'%', hi, lo, after @ ..] = rest {
            if let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) {
                out.push(hi << 4 | lo);
                rest = after;
                continue;
            }
        }
        out.push(if plus_is_space && first == b'+' {
            b' '
        } else {
            first
        });
        rest = tail;
    }
    Cow::Owned(out)
}

/// [`decode`] as text; bytes that are not UTF-8 become U+FFFD.
pub(crate) fn decode_lossy(text: &str, plus_is_space: bool) -> Cow<'_, str> {
    match decode(text.as_bytes(), plus_is_space) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_leniently() {
        assert_eq!(decode(b"a%2Fb%zz%4", false).as_ref(), b"a/b%zz%4");
        assert_eq!(decode(b"a+b%2B", true).as_ref(), b"a b+");
        assert_eq!(decode(b"a+b", false).as_ref(), b"a+b");
        assert!(matches!(decode(b"plain", true), Cow::Borrowed(_)));
        assert_eq!(decode_lossy("%e9%C3%A9", false), "\u{fffd}\u{e9}");
    }
}
