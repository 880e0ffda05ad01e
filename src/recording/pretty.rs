//! The recording file's layout: pretty JSON, but short arrays of scalars (a header's
//! `[name, value]`, a list of modalities) stay on one line, so a recording reads like
//! the traffic it holds and a one-header change is a one-line diff.

use serde_json::Value;

/// Widest array kept on one line.
const INLINE_WIDTH: usize = 100;

/// Renders `value` with two-space indentation and a final newline.
pub fn to_pretty(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, v)) in map.iter().enumerate() {
                indent(out, depth + 1);
                out.push_str(&scalar(&Value::String(key.clone())));
                out.push_str(": ");
                write_value(out, v, depth + 1);
                if i + 1 < map.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            if let Some(line) = inline(items) {
                out.push_str(&line);
                return;
            }
            out.push_str("[\n");
            for (i, v) in items.iter().enumerate() {
                indent(out, depth + 1);
                write_value(out, v, depth + 1);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, depth);
            out.push(']');
        }
        other => out.push_str(&scalar(other)),
    }
}

/// `[a, b]` when every item is a scalar and the line stays short.
fn inline(items: &[Value]) -> Option<String> {
    if items.iter().any(|v| v.is_object() || v.is_array()) {
        return None;
    }
    let parts: Vec<String> = items.iter().map(scalar).collect();
    let line = format!("[{}]", parts.join(", "));
    (line.len() <= INLINE_WIDTH).then_some(line)
}

fn scalar(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_scalar_arrays_inline_the_rest_nest() {
        let v = serde_json::json!({
            "headers": [["content-type", "application/json"], ["x", "y"]],
            "empty": [], "obj": {}, "n": 1.5, "s": "a\"b"
        });
        let text = to_pretty(&v);
        assert_eq!(
            text,
            "{\n  \"headers\": [\n    [\"content-type\", \"application/json\"],\n    [\"x\", \"y\"]\n  ],\n  \"empty\": [],\n  \"obj\": {},\n  \"n\": 1.5,\n  \"s\": \"a\\\"b\"\n}\n"
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn long_arrays_break() {
        let long = "x".repeat(120);
        let v = serde_json::json!([long, "y"]);
        assert!(to_pretty(&v).starts_with("[\n"));
    }
}
