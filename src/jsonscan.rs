//! Finding string values in raw JSON bytes by key, so callers can splice replacements
//! in without re-serialising: every byte they do not replace stays exactly as it was.

use std::ops::Range;

/// Per open container: what the next string in it is.
struct Frame {
    is_object: bool,
    expect_key: bool,
    value_matches: bool,
}

/// Byte ranges (quotes included) and decoded text of every string that is the direct
/// value of a key for which `wanted` is true, at any depth, in order. See
/// [`keyed_string_values`].
pub fn string_values(
    json: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Option<Vec<(Range<usize>, String)>> {
    let found = keyed_string_values(json, wanted)?;
    Some(
        found
            .into_iter()
            .map(|(range, _, text)| (range, text))
            .collect(),
    )
}

/// Byte ranges (quotes included), keys and decoded text of every string that is the
/// direct value of a key for which `wanted` is true, at any depth, in order. Iterative, so
/// nesting depth cannot overflow the stack; `None` on anything that is not valid JSON
/// (callers validate first; this also refuses unbalanced input).
pub fn keyed_string_values(
    json: &[u8],
    wanted: impl Fn(&str) -> bool,
) -> Option<Vec<(Range<usize>, String, String)>> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut key = String::new();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'{' | b'[' => {
                let is_object = b == b'{';
                stack.push(Frame {
                    is_object,
                    expect_key: is_object,
                    value_matches: false,
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop()?;
                i += 1;
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.expect_key = frame.is_object;
                }
                i += 1;
            }
            b'"' => {
                let end = string_end(json, i)?;
                let text: String = serde_json::from_slice(json.get(i..end)?).ok()?;
                match stack.last_mut() {
                    Some(frame) if frame.expect_key => {
                        frame.value_matches = wanted(&text);
                        frame.expect_key = false;
                        if frame.value_matches {
                            key = text;
                        }
                    }
                    Some(frame) if frame.is_object && frame.value_matches => {
                        found.push((i..end, key.clone(), text));
                    }
                    _ => {}
                }
                i = end;
            }
            // ':', whitespace and the bytes of numbers, true, false, null carry no
            // structure the scan needs.
            _ => i += 1,
        }
    }
    stack.is_empty().then_some(found)
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

/// Index just past the closing quote of the string literal opening at `start`.
pub fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match json.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
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
    fn unbalanced_input_is_refused() {
        assert!(string_values(b"{\"a\": \"x\"", |_| true).is_none());
        assert!(string_values(b"]", |_| true).is_none());
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

        #[test]
        fn no_input_panics(bytes in near_json()) {
            let _ = string_values(&bytes, |_| true);
            let _ = keyed_string_values(strip_bom(&bytes), |k| k.len() % 2 == 0);
        }
    }
}
