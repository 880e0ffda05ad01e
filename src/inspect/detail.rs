//! One exchange in full, for `show --seq` and any view that shows an exchange's
//! detail: request line and headers as stored (credentials are placeholders), bodies
//! decoded (gzip/deflate) and pretty-printed when JSON, what graphtape changed in the
//! forwarded body, the response, the four timing offsets, the error, and for a
//! notification POST each notification's changeType, resource and `resourceData`.
//!
//! Pure: from a stored exchange to lines of text (terminal-safe: control characters
//! are escaped) or to the event as the recording format has it, bodies decoded.

use serde_json::Value;

use super::view::{self, clean};
use crate::content_encoding;
use crate::exchange::{Direction, Exchange, Headers, StoredBody};
use crate::recording::event_doc;

/// Binary bodies show this many bytes as a hex dump.
const HEX_HEAD: usize = 256;
/// Bytes per hex dump line.
const HEX_LINE: usize = 16;

/// The exchange in full, one line per element; indentation shows nesting.
pub fn detail_lines(ex: &Exchange<StoredBody>) -> Vec<String> {
    let mut out = Vec::new();
    let (arrow, who) = match ex.direction {
        Direction::Api => ("→", "api: bot to Graph"),
        Direction::Callback => ("←", "callback: Graph to bot"),
    };
    out.push(format!("seq {} {arrow} {who}", ex.seq));
    out.push(format!(
        "{} {} {}",
        clean(&ex.request.method),
        clean(&view::full_path(ex)),
        clean(&ex.request.version)
    ));
    headers(&mut out, &ex.request.headers);
    body(
        &mut out,
        "request body",
        &ex.request.headers,
        &ex.request.body,
    );
    if let Some(forwarded) = &ex.forwarded_body {
        forwarded_change(&mut out, ex, forwarded);
    }
    match &ex.target {
        Some(target) => out.push(format!("target {}", clean(target))),
        None => out.push("target none (graphtape did not forward it)".into()),
    }
    match &ex.response {
        Some(resp) => {
            out.push(format!("response {}", resp.status));
            headers(&mut out, &resp.headers);
            body(&mut out, "response body", &resp.headers, &resp.body);
        }
        None => out.push("response none".into()),
    }
    out.push(timing(ex));
    if let Some(error) = &ex.error {
        out.push(format!("error {}", clean(error)));
    }
    notifications(&mut out, ex);
    out
}

fn headers(out: &mut Vec<String>, headers: &Headers) {
    for (name, value) in headers {
        out.push(format!(
            "  {}: {}",
            clean(name),
            clean(&String::from_utf8_lossy(value))
        ));
    }
}

/// A body's heading (length, encoding, truncation) and its content.
fn body(out: &mut Vec<String>, what: &str, headers: &Headers, stored: &StoredBody) {
    if stored.bytes.is_empty() && !stored.truncated {
        out.push(format!("{what}: empty"));
        return;
    }
    let decoded = content_encoding::decode(headers, &stored.bytes);
    let mut notes = vec![format!("{} bytes", stored.len)];
    if stored.truncated {
        notes.push(format!(
            "stored: the first {} bytes, sha256 {}",
            stored.bytes.len(),
            stored.sha256
        ));
    }
    let encoding = crate::exchange::header(headers, "content-encoding");
    if let (Some(encoding), Some(decoded)) = (encoding, &decoded) {
        notes.push(format!(
            "{} decoded to {} bytes",
            clean(encoding.trim()),
            decoded.len()
        ));
    }
    out.push(format!("{what} ({}):", notes.join(", ")));
    content(out, decoded.as_deref().unwrap_or(&stored.bytes));
}

/// Pretty JSON, else the text as it is (control characters escaped), else a hex dump
/// of the first bytes.
fn content(out: &mut Vec<String>, bytes: &[u8]) {
    if let Some(value) = json(bytes) {
        let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
        out.extend(pretty.lines().map(|l| format!("  {}", clean(l))));
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => out.extend(text.lines().map(|l| format!("  {}", clean(l)))),
        Err(_) => hex_dump(out, bytes),
    }
}

/// A JSON object or array (an optional BOM allowed), never a bare scalar: `"12"` in a
/// text body is text.
fn json(bytes: &[u8]) -> Option<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
}

fn hex_dump(out: &mut Vec<String>, bytes: &[u8]) {
    let head = &bytes[..bytes.len().min(HEX_HEAD)];
    for (i, chunk) in head.chunks(HEX_LINE).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push(format!(
            "  {:08x}  {:<width$}  |{ascii}|",
            i * HEX_LINE,
            hex.join(" "),
            width = HEX_LINE * 3 - 1
        ));
    }
    if bytes.len() > head.len() {
        out.push(format!("  ... {} more bytes", bytes.len() - head.len()));
    }
}

/// What graphtape changed before forwarding: each changed JSON value as
/// `path: before -> after`, or the whole forwarded body when it is not JSON.
fn forwarded_change(out: &mut Vec<String>, ex: &Exchange<StoredBody>, forwarded: &StoredBody) {
    let headers = &ex.request.headers;
    let before = json(&ex.request.content());
    let after = json(&content_encoding::content(headers, &forwarded.bytes));
    match (before, after) {
        (Some(before), Some(after)) => {
            let mut changes = Vec::new();
            changed(&before, &after, "", &mut changes);
            out.push("forwarded body (changed by graphtape):".into());
            if changes.is_empty() {
                out.push("  (same JSON, other bytes)".into());
            }
            out.extend(changes.into_iter().map(|c| format!("  {c}")));
        }
        _ => body(
            out,
            "forwarded body (changed by graphtape)",
            headers,
            forwarded,
        ),
    }
}

/// The differences between two JSON values, as `path: before -> after` with scalars
/// as written (strings unquoted) and anything else as compact JSON.
fn changed(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    let at = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, va) in a {
                match b.get(key) {
                    Some(vb) => changed(va, vb, &at(key), out),
                    None => out.push(clean(&format!("{}: {} -> (removed)", at(key), shown(va)))),
                }
            }
            for (key, vb) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                out.push(clean(&format!("{}: (added) -> {}", at(key), shown(vb))));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                changed(va, vb, &at(&i.to_string()), out);
            }
        }
        _ if before != after => {
            let path = if path.is_empty() { "(body)" } else { path };
            out.push(clean(&format!(
                "{path}: {} -> {}",
                shown(before),
                shown(after)
            )));
        }
        _ => {}
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn timing(ex: &Exchange<StoredBody>) -> String {
    let t = &ex.timing;
    let at =
        |us: Option<i64>| us.map_or_else(|| "-".to_owned(), |us| format!("{} ms", view::ms(us)));
    format!(
        "timing request start {}, request end {}, response start {}, response end {}",
        at(Some(t.request_start_us)),
        at(t.request_end_us),
        at(t.response_start_us),
        at(t.response_end_us)
    )
}

fn notifications(out: &mut Vec<String>, ex: &Exchange<StoredBody>) {
    let notes = view::notes(ex);
    if notes.is_empty() {
        return;
    }
    out.push(format!(
        "{} notification{}:",
        notes.len(),
        if notes.len() == 1 { "" } else { "s" }
    ));
    for note in notes {
        out.push(format!(
            "  [{}] {} {}",
            note.index.index,
            clean(note.index.change_type.as_deref().unwrap_or("?")),
            clean(note.index.resource.as_deref().unwrap_or("?"))
        ));
        match note.raw.get("resourceData") {
            Some(data) => {
                out.push("    resourceData:".into());
                let pretty = serde_json::to_string_pretty(data).unwrap_or_default();
                out.extend(pretty.lines().map(|l| format!("      {}", clean(l))));
            }
            None => out.push("    resourceData: none".into()),
        }
    }
}

/// The event as the recording format has it, with each encoded (gzip/deflate) body
/// that holds JSON given as `json` (and its `content_encoding`), and each JSON text
/// body as `json` too.
pub fn detail_json(ex: &Exchange<StoredBody>) -> Value {
    let mut doc = serde_json::to_value(event_doc(ex)).unwrap_or(Value::Null);
    let request = (&ex.request.headers, &ex.request.body);
    decode_body(&mut doc["request"], request.0, request.1);
    if let Some(forwarded) = &ex.forwarded_body {
        decode_slot(&mut doc, "forwarded_body", request.0, forwarded);
    }
    if let Some(resp) = &ex.response {
        decode_body(&mut doc["response"], &resp.headers, &resp.body);
    }
    doc
}

fn decode_body(parent: &mut Value, headers: &Headers, stored: &StoredBody) {
    decode_slot(parent, "body", headers, stored);
}

fn decode_slot(parent: &mut Value, key: &str, headers: &Headers, stored: &StoredBody) {
    let Some(slot) = parent.get_mut(key).and_then(Value::as_object_mut) else {
        return;
    };
    if slot.contains_key("json") {
        return;
    }
    let decoded = content_encoding::decode(headers, &stored.bytes);
    let Some(value) = json(decoded.as_deref().unwrap_or(&stored.bytes)) else {
        return;
    };
    slot.remove("text");
    slot.remove("base64");
    slot.insert("json".into(), value);
    if decoded.is_some() {
        let encoding = crate::exchange::header(headers, "content-encoding").unwrap_or_default();
        slot.insert("content_encoding".into(), encoding.trim().into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::inspect::testutil::{api, body as stored, callback, roster_body, seed_flow, CALL_A};

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn text(ex: &Exchange<StoredBody>) -> String {
        detail_lines(ex).join("\n")
    }

    #[test]
    fn gzip_bodies_are_decoded_and_pretty_printed() {
        let mut ex = api(3, 10, "GET", "/v1.0/communications/calls/x?$top=1")
            .header_req("authorization", "Bearer <redacted:1f2e>")
            .respond(200, "")
            .build();
        let resp = ex.response.as_mut().unwrap();
        resp.headers
            .push(("content-encoding".into(), b"gzip".to_vec()));
        resp.body = stored(&gzip(br#"{"id":"abc","state":"established"}"#));
        let out = text(&ex);
        assert!(out.starts_with("seq 3 → api: bot to Graph\nGET /v1.0/communications/calls/x?$top=1 HTTP/1.1\n  authorization: Bearer <redacted:1f2e>\nrequest body: empty\n"), "{out}");
        assert!(
            out.contains("response 200\n  content-encoding: gzip\nresponse body ("),
            "{out}"
        );
        assert!(out.contains("gzip decoded to 34 bytes):\n  {\n    \"id\": \"abc\",\n    \"state\": \"established\"\n  }"), "{out}");
        assert!(out.contains("timing request start 10.000 ms, request end 10.100 ms, response start 29.900 ms, response end 30.000 ms"), "{out}");
        let json = detail_json(&ex);
        assert_eq!(json["response"]["body"]["json"]["state"], "established");
        assert_eq!(json["response"]["body"]["content_encoding"], "gzip");
        assert!(json["response"]["body"].get("base64").is_none());
        assert_eq!(json["seq"], 3);
    }

    #[test]
    fn the_forwarded_change_is_shown_as_a_change() {
        let sent = r#"{"callbackUri":"https://bot.contoso.com/api/calls","subject":"x"}"#;
        let fwd = r#"{"callbackUri":"https://rec.example.com/callback/Zm9v","subject":"x"}"#;
        let mut ex = api(5, 0, "POST", "/v1.0/communications/calls")
            .body(sent)
            .target("https://graph.microsoft.com/v1.0/communications/calls")
            .respond(201, r#"{"id":"c"}"#)
            .build();
        ex.forwarded_body = Some(stored(fwd.as_bytes()));
        let out = text(&ex);
        assert!(out.contains("forwarded body (changed by graphtape):\n  callbackUri: https://bot.contoso.com/api/calls -> https://rec.example.com/callback/Zm9v\ntarget https://graph.microsoft.com/v1.0/communications/calls\n"), "{out}");
        assert!(!out.contains("subject: "), "{out}");
        // Not JSON: the forwarded body itself.
        ex.request.body = stored(b"a=1");
        ex.forwarded_body = Some(stored(b"a=2"));
        assert!(text(&ex).contains("forwarded body (changed by graphtape) (3 bytes):\n  a=2"));
    }

    #[test]
    fn notifications_show_their_resource_data() {
        let ex = callback(10, 550, &roster_body(CALL_A)).build();
        let out = text(&ex);
        assert!(out.contains(&format!("1 notification:\n  [0] updated /app/calls/{CALL_A}/participants\n    resourceData:\n      [\n        {{\n          \"@odata.type\": \"#microsoft.graph.participant\"")), "{out}");
        assert!(out.contains("\"displayName\": \"Test User\""), "{out}");
        let seed = seed_flow();
        let batch = text(&seed[0]);
        assert!(
            batch.starts_with("seq 1 ← callback: Graph to bot\nPOST /api/calls HTTP/1.1"),
            "{batch}"
        );
        assert!(batch.contains("\"state\": \"incoming\""), "{batch}");
    }

    #[test]
    fn binary_bodies_are_a_safe_hex_dump() {
        let mut ex = api(1, 0, "PUT", "/upload").build();
        let mut bytes: Vec<u8> = (0..=255u8).collect();
        bytes.extend_from_slice(b"\x1b[2Jtail");
        ex.request.body = stored(&bytes);
        let out = text(&ex);
        assert!(out.contains("request body (264 bytes):\n  00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  |................|"), "{out}");
        assert!(
            out.contains(
                "  00000040  40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f  |@ABCDEFGHIJKLMNO|"
            ),
            "{out}"
        );
        assert!(out.contains("  ... 8 more bytes"), "{out}");
        assert!(
            !out.contains('\u{1b}'),
            "no raw escape reaches the terminal"
        );
        // Hostile text is escaped, not interpreted.
        ex.request.body = stored(b"hi \x1b]0;pwned\x07 there");
        assert!(
            text(&ex).contains(r"  hi \u{1b}]0;pwned\u{7} there"),
            "{}",
            text(&ex)
        );
        // JSON mode keeps the recording's base64.
        ex.request.body = stored(&bytes);
        assert!(detail_json(&ex)["request"]["body"]["base64"].is_string());
    }

    #[test]
    fn failures_and_truncation_are_said() {
        let mut ex = api(2, 0, "GET", "/v1.0/me")
            .fail("upstreamUnreachable: refused")
            .build();
        ex.request.body = StoredBody::capture(b"0123456789", 4);
        let out = text(&ex);
        assert!(out.contains("request body (10 bytes, stored: the first 4 bytes, sha256 84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882):\n  0123"), "{out}");
        assert!(out.contains("target none (graphtape did not forward it)\nresponse none\ntiming request start 0.000 ms, request end 0.100 ms, response start -, response end -\nerror upstreamUnreachable: refused"), "{out}");
    }
}
