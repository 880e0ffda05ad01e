//! One exchange in full, for `show --seq`: request line and headers as stored
//! (credentials are placeholders), bodies decoded (gzip/deflate) and pretty-printed
//! when JSON, what graphtape changed in the forwarded body, the response, the four
//! timing offsets, the error, and for a notification POST each notification's
//! changeType, resource and `resourceData`.
//!
//! The text is drawn from the view model's [`ExchangeView`], the same one the HTML
//! timeline's side panel shows, so the terminal and the pictures cannot disagree.
//! Pure: lines of text (terminal-safe: control characters are escaped), or the event
//! as the recording format has it with its bodies decoded.

use serde_json::Value;

use super::model::{exchange_view, BodyView, ExchangeView};
use super::view::{self, clean};
use crate::content_encoding;
use crate::exchange::{Exchange, Headers, StoredBody};
use crate::recording::event_doc;

/// The exchange in full, one line per element; indentation shows nesting.
pub fn detail_lines(ex: &Exchange<StoredBody>) -> Vec<String> {
    render(&exchange_view(ex))
}

fn render(v: &ExchangeView) -> Vec<String> {
    let mut out = Vec::new();
    let (arrow, who) = match v.direction {
        "api" => ("→", "api: bot to Graph"),
        _ => ("←", "callback: Graph to bot"),
    };
    out.push(format!("seq {} {arrow} {who}", v.seq));
    let path = match &v.query {
        Some(q) => format!("{}?{q}", v.path),
        None => v.path.clone(),
    };
    out.push(clean(&format!("{} {path} {}", v.method, v.version)));
    headers(&mut out, &v.request_headers);
    body(&mut out, "request body", &v.request_body);
    if !v.forwarded.is_empty() {
        out.push("forwarded body (changed by graphtape):".into());
        for change in &v.forwarded {
            let path = if change.path.is_empty() {
                "(body)"
            } else {
                &change.path
            };
            out.push(clean(&format!(
                "  {path}: {} -> {}",
                change.from, change.to
            )));
        }
    }
    match &v.target {
        Some(target) => out.push(format!("target {}", clean(target))),
        None => out.push("target none (graphtape did not forward it)".into()),
    }
    match (v.status, &v.response_body) {
        (Some(status), Some(resp)) => {
            out.push(format!("response {status}"));
            headers(&mut out, &v.response_headers);
            body(&mut out, "response body", resp);
        }
        _ => out.push("response none".into()),
    }
    let at =
        |us: Option<i64>| us.map_or_else(|| "-".to_owned(), |us| format!("{} ms", view::ms(us)));
    out.push(format!(
        "timing request start {}, request end {}, response start {}, response end {}",
        at(Some(v.request_start_us)),
        at(v.request_end_us),
        at(v.response_start_us),
        at(v.response_end_us)
    ));
    if let Some(error) = &v.error {
        out.push(format!("error {}", clean(error)));
    }
    notifications(&mut out, v);
    out
}

fn headers(out: &mut Vec<String>, headers: &[(String, String)]) {
    out.extend(
        headers
            .iter()
            .map(|(name, value)| clean(&format!("  {name}: {value}"))),
    );
}

/// A body's heading (length, encoding, truncation), then its text indented.
fn body(out: &mut Vec<String>, what: &str, b: &BodyView) {
    if b.kind == "empty" && !b.truncated {
        out.push(format!("{what}: empty"));
        return;
    }
    let mut notes = vec![format!("{} bytes", b.length)];
    if b.truncated {
        notes.push("stored truncated (--max-body)".into());
    }
    if let Some(encoding) = &b.encoding {
        notes.push(format!("{} decoded", clean(encoding.trim())));
    }
    if b.kind == "binary" {
        notes.push("binary".into());
    }
    out.push(format!("{what} ({}):", notes.join(", ")));
    out.extend(b.text.lines().map(|l| format!("  {}", clean(l))));
}

fn notifications(out: &mut Vec<String>, v: &ExchangeView) {
    let n = v.notifications.len();
    if n == 0 {
        return;
    }
    out.push(format!(
        "{n} notification{}:",
        if n == 1 { "" } else { "s" }
    ));
    for (i, note) in v.notifications.iter().enumerate() {
        out.push(clean(&format!(
            "  [{i}] {} {}",
            note.change_type.as_deref().unwrap_or("?"),
            note.resource.as_deref().unwrap_or("?")
        )));
        if note.resource_data.is_null() {
            out.push("    resourceData: none".into());
            continue;
        }
        out.push("    resourceData:".into());
        let pretty = serde_json::to_string_pretty(&note.resource_data).unwrap_or_default();
        out.extend(pretty.lines().map(|l| format!("      {}", clean(l))));
    }
}

/// A JSON object or array (an optional BOM allowed), never a bare scalar: `"12"` in a
/// text body is text.
fn json(bytes: &[u8]) -> Option<Value> {
    let bytes = crate::jsonscan::strip_bom(bytes);
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
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
    let decoded = content_encoding::decode(
        crate::exchange::header(headers, "content-encoding"),
        &stored.bytes,
    );
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
        assert!(
            out.contains(
                "gzip decoded):\n  {\n    \"id\": \"abc\",\n    \"state\": \"established\"\n  }"
            ),
            "{out}"
        );
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
        assert!(
            text(&ex).contains("forwarded body (changed by graphtape):\n  (body): a=1 -> a=2\n")
        );
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
        assert!(out.contains("request body (264 bytes, binary):\n  00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................"), "{out}");
        assert!(
            out.contains(
                "  00000040  40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f  @ABCDEFGHIJKLMNO"
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
        assert!(
            out.contains("request body (10 bytes, stored truncated (--max-body)):\n  0123"),
            "{out}"
        );
        assert!(out.contains("target none (graphtape did not forward it)\nresponse none\ntiming request start 0.000 ms, request end 0.100 ms, response start -, response end -\nerror upstreamUnreachable: refused"), "{out}");
    }
}
