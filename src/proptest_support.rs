//! Strategies shared by the property tests of the parsers that read untrusted input:
//! JSON documents (with the keys graphtape looks for) written in many legal spellings,
//! and raw bytes that are almost JSON.
//!
//! Cases per property: proptest's default (256), or `PROPTEST_CASES` for a longer run.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the parsers care about, mixed with arbitrary ones.
pub(crate) fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "callbackUri", "callback", "clientContext", "token", "recordingAccessToken",
            "Token", "CALLBACKURI", "value", "resource", "resourceUrl", "changeType",
            "resourceData", "state", "status", "id", "@odata.type", "@odata.id",
        ])
        .prop_map(str::to_string),
        2 => "[a-zA-Z@._\\-]{0,8}",
        1 => any::<String>(),
    ]
}

/// Short strings, often ones that need escaping, sometimes URLs and ids.
pub(crate) fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ -~]{0,16}",
        2 => any::<String>().prop_map(|s| s.chars().take(16).collect()),
        1 => Just("https://u:p@bot.example/api?token=t&x=1".to_string()),
        1 => Just("57DAB8B1-894C-409A-B240-BD8BEAE78896".to_string()),
        1 => "[\"\\\\/\u{0}-\u{1f}\u{e9}\u{1f600}]{0,6}",
    ]
}

/// A JSON value up to a few levels deep.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Exact binary fractions: serde_json's default float parsing is not exact.
        (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 8.0)),
        json_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object (what bodies graphtape rewrites are).
pub(crate) fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((json_key(), json_value()), 0..6)
        .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>()))
}

/// `value` written as legal JSON in a spelling picked by `style`: whitespace between
/// tokens, and strings with optional `\/`, `\uXXXX` (surrogate pairs above the BMP)
/// escapes. What a parser must read the same as serde_json's compact output.
pub(crate) fn spell(value: &Value, style: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rng = style | 1;
    write_value(value, &mut rng, &mut out);
    out
}

fn next(rng: &mut u64) -> u64 {
    // xorshift64: cheap, deterministic per style.
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

fn space(rng: &mut u64, out: &mut Vec<u8>) {
    match next(rng) % 8 {
        0 => out.push(b' '),
        1 => out.extend_from_slice(b"\n  "),
        2 => out.push(b'\t'),
        3 => out.extend_from_slice(b"\r\n"),
        _ => {}
    }
}

fn write_value(value: &Value, rng: &mut u64, out: &mut Vec<u8>) {
    space(rng, out);
    match value {
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, rng, out);
            }
            space(rng, out);
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                space(rng, out);
                write_string(key, rng, out);
                space(rng, out);
                out.push(b':');
                write_value(item, rng, out);
            }
            space(rng, out);
            out.push(b'}');
        }
        Value::String(text) => write_string(text, rng, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
    space(rng, out);
}

fn write_string(text: &str, rng: &mut u64, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in text.chars() {
        let escape = next(rng).is_multiple_of(4);
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' if escape => out.extend_from_slice(b"\\/"),
            c if (c as u32) < 0x20 || escape => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Bytes that are often almost JSON: a spelled document, cut, with a byte changed.
pub(crate) fn near_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (
            json_value(),
            any::<u64>(),
            any::<usize>(),
            any::<u8>(),
            any::<usize>()
        )
            .prop_map(|(value, style, cut, byte, at)| {
                let mut bytes = spell(&value, style);
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                    bytes.truncate(cut % (bytes.len() + 1));
                }
                bytes
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest! {
        /// The spellings are legal JSON for the same value.
        #[test]
        fn spellings_parse_back(value in json_value(), style in any::<u64>()) {
            let spelled = spell(&value, style);
            let parsed: Value = serde_json::from_slice(&spelled).unwrap();
            prop_assert_eq!(parsed, value);
        }
    }
}
