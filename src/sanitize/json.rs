//! Every string value in raw JSON bytes with the object keys that enclose it, so
//! rules can name keys by path and replacements are spliced in byte-exact.

use std::ops::Range;

/// A string value: its bytes (quotes included), decoded text and enclosing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StringAt {
    pub range: Range<usize>,
    pub text: String,
    /// Object keys from the root down to the value's own key; arrays add nothing.
    pub path: Vec<String>,
}

struct Frame {
    is_object: bool,
    expect_key: bool,
    /// The key of the member being read (objects only).
    key: Option<String>,
}

/// The string values of `json`, in order. Lenient about an end cut short (a stored
/// prefix of a larger body): what was seen is returned, and a string cut off at the
/// end runs to the end. Iterative, so depth cannot overflow the stack.
pub(crate) fn strings(json: &[u8]) -> Vec<StringAt> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'{' | b'[' => {
                let is_object = b == b'{';
                stack.push(Frame {
                    is_object,
                    expect_key: is_object,
                    key: None,
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                if let Some(frame) = stack.last_mut() {
                    frame.expect_key = frame.is_object;
                }
                i += 1;
            }
            b'"' => {
                let (end, text) = match string_end(json, i) {
                    Some(end) => (
                        end,
                        serde_json::from_slice::<String>(&json[i..end])
                            .unwrap_or_else(|_| String::from_utf8_lossy(&json[i..end]).into()),
                    ),
                    None => (
                        json.len(),
                        String::from_utf8_lossy(&json[i + 1..]).into_owned(),
                    ),
                };
                match stack.last_mut() {
                    Some(frame) if frame.expect_key => {
                        frame.key = Some(text);
                        frame.expect_key = false;
                    }
                    _ => found.push(StringAt {
                        range: i..end,
                        text,
                        path: stack.iter().filter_map(|f| f.key.clone()).collect(),
                    }),
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    found
}

/// The end (one past the closing quote) of the string literal opening at `start`;
/// `None` when the body ends inside it (a stored prefix).
fn string_end(json: &[u8], start: usize) -> Option<usize> {
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
    fn values_come_with_their_key_paths() {
        let json =
            br#"{"a": {"user": {"id": "U", "n": 1}}, "list": [{"x": "X"}, "Y"], "k\u0021": "Z"}"#;
        let found = strings(json);
        let got: Vec<(String, Vec<String>)> = found
            .iter()
            .map(|s| (s.text.clone(), s.path.clone()))
            .collect();
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                ("U".to_string(), p(&["a", "user", "id"])),
                ("X".to_string(), p(&["list", "x"])),
                ("Y".to_string(), p(&["list"])),
                ("Z".to_string(), p(&["k!"])),
            ]
        );
        assert_eq!(&json[found[0].range.clone()], br#""U""#);
    }

    #[test]
    fn a_prefix_cut_inside_a_string_runs_to_the_end() {
        let found = strings(br#"{"name": "Heidi St"#);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].text, "Heidi St");
        assert_eq!(found[0].range, 9..18);
        for junk in [&b"\"\\"[..], b"}}]]", b"{\"a\":", b"\xff\xfe"] {
            let _ = strings(junk);
        }
    }
}
