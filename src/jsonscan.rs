//! One JSON tokenizer for every reader of raw bodies (redaction, callbackUri
//! rewriting, substitution, notification indexing, id extraction): it validates the
//! document and reports its strings and scalars with their byte ranges in one pass,
//! borrowing from the input (a literal is decoded, into a new `String`, only when it
//! has escapes and a caller asks for its text). Callers splice replacements into the
//! raw bytes, so every byte they do not replace stays exactly as it was.
//!
//! Iterative: nesting cannot overflow the stack (it is capped at [`MAX_DEPTH`]).

use std::borrow::Cow;
use std::ops::Range;

/// Deepest nesting accepted (serde_json stops at 128).
pub(crate) const MAX_DEPTH: usize = 1024;

/// A string literal of the document: where it is and what it says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str<'a> {
    /// Offset of the opening quote.
    start: usize,
    /// What is between the quotes, as written.
    inner: &'a str,
    escaped: bool,
}

impl<'a> Str<'a> {
    /// Byte range of the literal, quotes included.
    pub(crate) fn range(&self) -> Range<usize> {
        self.start..self.start + self.inner.len() + 2
    }

    /// The decoded text: borrowed from the input unless the literal has escapes.
    pub(crate) fn text(&self) -> Cow<'a, str> {
        if self.escaped {
            Cow::Owned(unescape(self.inner))
        } else {
            Cow::Borrowed(self.inner)
        }
    }

    /// Whether the decoded text is exactly `other`.
    pub(crate) fn is(&self, other: &str) -> bool {
        if self.escaped {
            unescape(self.inner) == other
        } else {
            self.inner == other
        }
    }
}

/// An open container, outermost first in the stack [`walk`] shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame<'a> {
    pub(crate) object: bool,
    /// In an object: the key of the member being read.
    pub(crate) key: Option<Str<'a>>,
    /// In an array: the position of the item being read.
    pub(crate) index: usize,
}

impl Frame<'_> {
    /// Whether this is an object whose current member's key is `key` (exactly).
    pub(crate) fn at_key(&self, key: &str) -> bool {
        self.object && self.key.is_some_and(|k| k.is(key))
    }
}

/// What [`walk`] reports, with the open containers (the last one holds the value).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event<'a> {
    /// A string value (a member's value, an array item, or the document).
    Str(Str<'a>),
    /// A number, `true`, `false` or `null`.
    Scalar,
    /// An object (true) or array opens; the stack is the one it sits in.
    Open(bool),
    /// The container closes; the stack is again the one it sits in.
    Close,
}

/// Why a document is not JSON: the byte offset and what was expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) at: usize,
    pub(crate) expected: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Value,
    /// After `[`: a value or `]`.
    ValueOrEnd,
    /// After `{`: a key or `}`.
    KeyOrEnd,
    /// After `,` in an object.
    Key,
    Colon,
    CommaOrEnd,
    Done,
}

/// Walks a whole JSON document (RFC 8259, UTF-8, no byte-order mark), calling `visit`
/// for each value in document order. Fails, having visited a prefix, on anything that
/// is not JSON; callers that act on the events collect them and act after success.
pub(crate) fn walk<'a>(
    json: &'a [u8],
    mut visit: impl FnMut(&[Frame<'a>], Event<'a>),
) -> Result<(), Invalid> {
    let text = std::str::from_utf8(json).map_err(|e| Invalid {
        at: e.valid_up_to(),
        expected: "UTF-8",
    })?;
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame<'a>> = Vec::new();
    let mut state = State::Value;
    let mut i = 0;
    let err = |at: usize, expected: &'static str| Invalid { at, expected };
    loop {
        i = skip_ws(bytes, i);
        let Some(&b) = bytes.get(i) else {
            return match state {
                State::Done => Ok(()),
                _ => Err(err(i, "more JSON")),
            };
        };
        match state {
            State::Done => return Err(err(i, "the end of the document")),
            State::Colon => {
                if b != b':' {
                    return Err(err(i, "':'"));
                }
                i += 1;
                state = State::Value;
            }
            State::CommaOrEnd => {
                let Some(top) = stack.last_mut() else {
                    return Err(err(i, "the end of the document"));
                };
                match (b, top.object) {
                    (b',', true) => state = State::Key,
                    (b',', false) => {
                        top.index += 1;
                        state = State::Value;
                    }
                    (b'}', true) | (b']', false) => {
                        stack.pop();
                        visit(&stack, Event::Close);
                        state = after_value(&stack);
                    }
                    _ => return Err(err(i, "',' or the container's end")),
                }
                i += 1;
            }
            State::KeyOrEnd | State::Key => {
                if b == b'}' && state == State::KeyOrEnd {
                    stack.pop();
                    visit(&stack, Event::Close);
                    state = after_value(&stack);
                    i += 1;
                    continue;
                }
                if b != b'"' {
                    return Err(err(i, "a key"));
                }
                let (key, end) = string(text, i)?;
                if let Some(top) = stack.last_mut() {
                    top.key = Some(key);
                }
                i = end;
                state = State::Colon;
            }
            State::Value | State::ValueOrEnd => {
                if b == b']' && state == State::ValueOrEnd {
                    stack.pop();
                    visit(&stack, Event::Close);
                    state = after_value(&stack);
                    i += 1;
                    continue;
                }
                match b {
                    b'{' | b'[' => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(err(i, "less nesting"));
                        }
                        let object = b == b'{';
                        visit(&stack, Event::Open(object));
                        stack.push(Frame {
                            object,
                            key: None,
                            index: 0,
                        });
                        state = if object {
                            State::KeyOrEnd
                        } else {
                            State::ValueOrEnd
                        };
                        i += 1;
                    }
                    b'"' => {
                        let (s, end) = string(text, i)?;
                        visit(&stack, Event::Str(s));
                        i = end;
                        state = after_value(&stack);
                    }
                    _ => {
                        let end = scalar(bytes, i)?;
                        visit(&stack, Event::Scalar);
                        i = end;
                        state = after_value(&stack);
                    }
                }
            }
        }
    }
}

fn after_value(stack: &[Frame<'_>]) -> State {
    if stack.is_empty() {
        State::Done
    } else {
        State::CommaOrEnd
    }
}

/// The offset of the first byte at or after `i` that is not JSON whitespace.
pub(crate) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string literal opening at `start`, and the offset just past it.
fn string(text: &str, start: usize) -> Result<(Str<'_>, usize), Invalid> {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    let mut escaped = false;
    loop {
        match bytes.get(i) {
            None => {
                return Err(Invalid {
                    at: i,
                    expected: "the string's closing quote",
                })
            }
            Some(b'"') => {
                let s = Str {
                    start,
                    inner: &text[start + 1..i],
                    escaped,
                };
                return Ok((s, i + 1));
            }
            Some(b'\\') => {
                escaped = true;
                i = escape(bytes, i)?;
            }
            Some(&b) if b < 0x20 => {
                return Err(Invalid {
                    at: i,
                    expected: "no control character in a string",
                })
            }
            Some(_) => i += 1,
        }
    }
}

/// Checks the escape at `i` (a backslash) and returns the offset after it. A lone
/// UTF-16 surrogate (`\ud800`) is grammatical JSON (RFC 8259 §8.2 leaves its meaning
/// open): accepted, and decoded as U+FFFD, so such a body is still redacted.
fn escape(bytes: &[u8], i: usize) -> Result<usize, Invalid> {
    match bytes.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 2),
        Some(b'u') if hex4(bytes, i + 2).is_some() => Ok(i + 6),
        _ => Err(Invalid {
            at: i,
            expected: "a valid escape",
        }),
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |n, &d| Some(n << 4 | char::from(d).to_digit(16)?))
}

/// A number, `true`, `false` or `null` at `i`: the offset just past it.
fn scalar(bytes: &[u8], i: usize) -> Result<usize, Invalid> {
    for word in [&b"true"[..], b"false", b"null"] {
        if bytes[i..].starts_with(word) {
            return Ok(i + word.len());
        }
    }
    let bad = |at: usize| Invalid {
        at,
        expected: "a value",
    };
    let digits = |mut j: usize| {
        let from = j;
        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        (j > from).then_some(j)
    };
    let mut j = i;
    if bytes.get(j) == Some(&b'-') {
        j += 1;
    }
    j = match bytes.get(j) {
        Some(b'0') => j + 1,
        Some(b'1'..=b'9') => digits(j).ok_or(bad(j))?,
        _ => return Err(bad(j)),
    };
    if bytes.get(j) == Some(&b'.') {
        j = digits(j + 1).ok_or(bad(j + 1))?;
    }
    if matches!(bytes.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        j = digits(j).ok_or(bad(j))?;
    }
    Ok(j)
}

/// Decodes a validated literal's inside.
fn unescape(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let esc = &rest[at + 1..];
        let (c, used) = match esc.as_bytes().first() {
            Some(b'b') => ('\u{8}', 1),
            Some(b'f') => ('\u{c}', 1),
            Some(b'n') => ('\n', 1),
            Some(b'r') => ('\r', 1),
            Some(b't') => ('\t', 1),
            Some(b'u') => {
                let unit = hex4(esc.as_bytes(), 1).unwrap_or(0xFFFD);
                let low = (esc.as_bytes().get(5..7) == Some(b"\\u"))
                    .then(|| hex4(esc.as_bytes(), 7))
                    .flatten()
                    .filter(|low| (0xDC00..0xE000).contains(low));
                match (unit, low) {
                    (0xD800..=0xDBFF, Some(low)) => {
                        let c = char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
                        (c.unwrap_or('\u{FFFD}'), 11)
                    }
                    _ => (char::from_u32(unit).unwrap_or('\u{FFFD}'), 5),
                }
            }
            Some(&other) => (char::from(other), 1),
            None => break,
        };
        out.push(c);
        rest = esc.get(used..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Whether `json` is one JSON document.
#[cfg(test)]
pub(crate) fn is_json(json: &[u8]) -> bool {
    walk(json, |_, _| {}).is_ok()
}

/// Byte ranges (quotes included) and decoded text of every string that is the direct
/// value of a key for which `wanted` is true, at any depth, in order. `None` if `json`
/// is not JSON.
pub fn string_values(
    json: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Option<Vec<(Range<usize>, String)>> {
    let mut found = Vec::new();
    walk(json, |stack, event| {
        if let (
            Event::Str(s),
            Some(Frame {
                object: true,
                key: Some(key),
                ..
            }),
        ) = (event, stack.last())
        {
            if wanted(&key.text()) {
                found.push((s.range(), s.text().into_owned()));
            }
        }
    })
    .ok()?;
    Some(found)
}

/// The bytes after a UTF-8 byte-order mark, if there is one: not JSON, but some HTTP
/// stacks and editors prepend one.
pub fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Replaces each range (in increasing order, not overlapping) with its bytes.
pub fn splice(json: &[u8], replacements: &[(Range<usize>, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    let mut copied = 0;
    for (range, bytes) in replacements {
        out.extend_from_slice(json.get(copied..range.start)?);
        out.extend_from_slice(bytes);
        copied = range.end;
    }
    out.extend_from_slice(json.get(copied..)?);
    Some(out)
}

/// A JSON string literal for `text`, quotes included.
pub fn literal(text: &str) -> Vec<u8> {
    serde_json::to_vec(text).unwrap_or_else(|_| b"\"\"".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_of_wanted_keys_at_any_depth() {
        let json = br#"{ "a" : "x", "b": [ {"a":"y\/z"}, "a" ], "c": {"a": 1} }"#;
        let found = string_values(json, |k| k == "a").unwrap();
        let texts: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, vec!["x", "y/z"]);
        assert_eq!(&json[found[1].0.clone()], br#""y\/z""#);
    }

    #[test]
    fn splice_keeps_every_other_byte() {
        let json = b"{ \"k\" :\t\"old\" , \"n\": 1 }";
        let found = string_values(json, |k| k == "k").unwrap();
        let out = splice(json, &[(found[0].0.clone(), literal("new"))]).unwrap();
        assert_eq!(out, b"{ \"k\" :\t\"new\" , \"n\": 1 }");
    }

    #[test]
    fn not_json_is_refused() {
        for bad in [
            &b"{\"a\": \"x\""[..],
            b"]",
            b"",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"[1,]",
            b"[01]",
            b"[1.]",
            b"[-]",
            b"[1e]",
            b"[tru]",
            b"\"\\x\"",
            b"\"a\nb\"",
            b"\xef\xbb\xbf{}",
            b"{} {}",
            b"\"\xff\"",
        ] {
            assert!(!is_json(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [
            &b"{}"[..],
            b" [1, -0.5e+3, true, null, \"\\ud83d\\ude00\"] ",
            b"\"x\"",
            b"0",
            b"\"\\ud800\\udc00\\udc00\"",
        ] {
            assert!(is_json(good), "{:?}", String::from_utf8_lossy(good));
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(!is_json(deep.as_bytes()));
    }

    #[test]
    fn literals_decode_only_when_escaped() {
        let json = br#"["plain", "a\u00e9\ud83d\ude00\n\/"]"#;
        let mut texts = Vec::new();
        walk(json, |_, e| {
            if let Event::Str(s) = e {
                texts.push((matches!(s.text(), Cow::Borrowed(_)), s.text().into_owned()));
            }
        })
        .unwrap();
        assert_eq!(
            texts,
            vec![
                (true, "plain".into()),
                (false, "a\u{e9}\u{1f600}\n/".into())
            ]
        );
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::proptest_support::{json_key, json_text, json_value, near_json, spell};
    use proptest::prelude::*;
    use serde_json::Value;

    /// The string values directly under `key`, in document order.
    fn expected(value: &Value, key: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                for (k, v) in members {
                    if let (true, Value::String(s)) = (k == key, v) {
                        out.push(s.clone());
                    }
                    expected(v, key, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| expected(v, key, out)),
            _ => {}
        }
    }

    fn replaced(value: &Value, key: &str, with: &str) -> Value {
        match value {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(_) if k == key => Value::String(with.to_string()),
                            v => replaced(v, key, with),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| replaced(v, key, with)).collect())
            }
            v => v.clone(),
        }
    }

    proptest! {
        #[test]
        fn finds_exactly_the_string_values_of_a_key(
            value in json_value(), style in any::<u64>(), key in json_key()
        ) {
            let text = spell(&value, style);
            let found = string_values(&text, |k| k == key).unwrap();
            let mut want = Vec::new();
            expected(&value, &key, &mut want);
            let texts: Vec<String> = found.iter().map(|(_, t)| t.clone()).collect();
            prop_assert_eq!(&texts, &want);
            for (range, t) in &found {
                let literal: String = serde_json::from_slice(&text[range.clone()]).unwrap();
                prop_assert_eq!(&literal, t);
            }
        }

        #[test]
        fn splicing_changes_only_those_values(
            value in json_value(), style in any::<u64>(), key in json_key(), with in json_text()
        ) {
            let text = spell(&value, style);
            let found = string_values(&text, |k| k == key).unwrap();
            let replacements: Vec<_> = found.into_iter().map(|(r, _)| (r, literal(&with))).collect();
            let out = splice(&text, &replacements).unwrap();
            let parsed: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(parsed, replaced(&value, &key, &with));
        }

        /// The tokenizer accepts exactly what serde_json accepts (beyond serde_json's
        /// nesting and float-range limits, which it does not share).
        #[test]
        fn accepts_what_serde_json_accepts(bytes in near_json(), value in json_value(), style in any::<u64>()) {
            for doc in [bytes, spell(&value, style)] {
                let ours = is_json(&doc);
                match serde_json::from_slice::<Value>(&doc) {
                    Ok(_) => prop_assert!(ours, "refused {:?}", String::from_utf8_lossy(&doc)),
                    Err(e) => {
                        let m = e.to_string();
                        // serde_json's own limits, and lone surrogates (accepted here).
                        if !m.contains("recursion limit") && !m.contains("out of range") && !m.contains("surrogate") {
                            prop_assert!(!ours, "accepted {:?}: {}", String::from_utf8_lossy(&doc), m);
                        }
                    }
                }
            }
        }

        /// Every string value is reported, in order, decoded as serde_json decodes it.
        #[test]
        fn reports_string_values_as_serde_json_reads_them(value in json_value(), style in any::<u64>()) {
            fn strings(v: &Value, out: &mut Vec<String>) {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
                    Value::Object(members) => members.values().for_each(|v| strings(v, out)),
                    _ => {}
                }
            }
            let spelled = spell(&value, style);
            let mut ours = Vec::new();
            walk(&spelled, |_, e| {
                if let Event::Str(s) = e {
                    ours.push(s.text().into_owned());
                }
            })
            .unwrap();
            let mut theirs = Vec::new();
            strings(&value, &mut theirs);
            prop_assert_eq!(ours, theirs);
        }

        #[test]
        fn no_input_panics(bytes in near_json()) {
            let _ = string_values(&bytes, |_| true);
            let _ = string_values(strip_bom(&bytes), |k| k.len() % 2 == 0);
        }
    }
}
