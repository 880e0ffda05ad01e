//! A session as HAR 1.2 (HTTP Archive), so browser dev tools and HAR viewers can show
//! a recording: both directions, one entry per exchange, in sequence order.
//!
//! HAR has no notion of a callback direction, so each entry carries `_graphtape`
//! (custom fields start with `_`, as HAR 1.2 allows) with its seq and direction.
//! Bodies go in as text when they are UTF-8; response bodies that are not use the
//! `encoding: "base64"` HAR 1.2 defines, and request bodies (whose `postData` has no
//! encoding field) keep the bytes in `_text`/`_encoding` with a `comment`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::clock::format_unix_micros;
use crate::exchange::{header, Exchange, Headers, StoredBody};
use crate::store::SessionInfo;

/// The session as a HAR 1.2 document: one page (the session) and one entry per
/// exchange. Unknown sizes and timings are `-1`, as the format asks.
pub fn har(info: &SessionInfo, exchanges: &[Exchange<StoredBody>]) -> Value {
    let entries: Vec<Value> = exchanges.iter().map(|ex| entry(&info.name, ex)).collect();
    let mut comment = format!("graphtape session {}", info.name);
    if info.unrecorded > 0 {
        comment.push_str(&format!(
            "; {} lost by the store and missing",
            crate::plural::count(info.unrecorded, "exchange")
        ));
    }
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "graphtape", "version": env!("CARGO_PKG_VERSION") },
            "pages": [{
                "startedDateTime": format_unix_micros(info.started_unix_us),
                "id": info.name,
                "title": info.name,
                "pageTimings": { "onContentLoad": -1, "onLoad": -1 },
            }],
            "entries": entries,
            "comment": comment,
        }
    })
}

fn entry(page: &str, ex: &Exchange<StoredBody>) -> Value {
    let t = &ex.timing;
    let send = span_us(Some(t.request_start_us), t.request_end_us);
    let wait = span_us(t.request_end_us, t.response_start_us);
    let receive = span_us(t.response_start_us, t.response_end_us);
    // Summed in microseconds so `time` is exactly the sum of the parts HAR says it is.
    let total = [send, wait, receive]
        .iter()
        .flatten()
        .fold(0i64, |a, b| a.saturating_add(*b));
    let ms = |v: Option<i64>| v.map_or(json!(-1), |us| json!(millis(us)));
    json!({
        "pageref": page,
        "startedDateTime": format_unix_micros(ex.wall_start_us),
        "time": millis(total),
        "request": request(ex),
        "response": response(ex),
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "send": ms(send),
            "wait": ms(wait),
            "receive": ms(receive),
            "ssl": -1,
        },
        "_graphtape": { "seq": ex.seq, "direction": ex.direction.as_str() },
    })
}

/// Microseconds between two offsets, when both are known (never negative).
fn span_us(from_us: Option<i64>, to_us: Option<i64>) -> Option<i64> {
    Some(to_us?.saturating_sub(from_us?).max(0))
}

/// HAR times are milliseconds as numbers; microseconds give three exact decimals.
fn millis(us: i64) -> f64 {
    // Session offsets are far inside f64's exact integer range.
    us as f64 / 1000.0
}

fn request(ex: &Exchange<StoredBody>) -> Value {
    let req = &ex.request;
    let mut out = json!({
        "method": req.method,
        "url": url(ex),
        "httpVersion": req.version,
        "cookies": [],
        "headers": headers(&req.headers),
        "queryString": query_string(req.query.as_deref().unwrap_or("")),
        "headersSize": -1,
        "bodySize": req.body.len,
    });
    if req.body.len > 0 {
        if let Some(obj) = out.as_object_mut() {
            obj.insert("postData".into(), post_data(&req.headers, &req.body));
        }
    }
    out
}

/// Where the request went: the forwarding target when graphtape forwarded it, else
/// the path on a placeholder host (HAR wants an absolute URL).
fn url(ex: &Exchange<StoredBody>) -> String {
    let absolute = |t: &&String| {
        let lower = t.to_ascii_lowercase();
        lower.starts_with("http://") || lower.starts_with("https://")
    };
    if let Some(target) = ex.target.as_ref().filter(absolute) {
        return target.clone();
    }
    let req = &ex.request;
    let slash = if req.path.starts_with('/') { "" } else { "/" };
    match &req.query {
        Some(q) => format!("http://graphtape{slash}{}?{q}", req.path),
        None => format!("http://graphtape{slash}{}", req.path),
    }
}

fn headers(headers: &Headers) -> Vec<Value> {
    headers
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": String::from_utf8_lossy(value) }))
        .collect()
}

/// `a=1&b=x%20y` as HAR name/value pairs, decoded (`+` is a space, as in forms).
fn query_string(query: &str) -> Vec<Value> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            json!({ "name": crate::percent::decode_lossy(name, true), "value": crate::percent::decode_lossy(value, true) })
        })
        .collect()
}

fn mime_type(headers: &Headers) -> String {
    header(headers, "content-type")
        .unwrap_or_default()
        .to_owned()
}

/// A note for bodies stored as a prefix, so a viewer does not mistake them for whole.
fn truncation_note(body: &StoredBody) -> Option<String> {
    body.truncated.then(|| {
        format!(
            "truncated: {} of {} bytes stored (sha256 of the whole: {})",
            body.bytes.len(),
            body.len,
            body.sha256
        )
    })
}

fn post_data(headers: &Headers, body: &StoredBody) -> Value {
    let mut out = Map::new();
    let mime = mime_type(headers);
    out.insert(
        "mimeType".into(),
        json!(if mime.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            mime
        }),
    );
    let mut notes: Vec<String> = truncation_note(body).into_iter().collect();
    match std::str::from_utf8(&body.bytes) {
        Ok(text) => {
            out.insert("text".into(), json!(text));
        }
        Err(_) => {
            notes.push("not UTF-8: the bytes are in _text, base64-encoded".into());
            out.insert("_text".into(), json!(base64(&body.bytes)));
            out.insert("_encoding".into(), json!("base64"));
        }
    }
    if !notes.is_empty() {
        out.insert("comment".into(), json!(notes.join("; ")));
    }
    Value::Object(out)
}

/// HAR's `content` is the decoded body: a gzip response shows its JSON, with
/// `compression` saying how many bytes the encoding saved.
fn content(headers: &Headers, body: &StoredBody) -> Value {
    let mut out = Map::new();
    let decoded = (!body.truncated)
        .then(|| crate::content_encoding::decode(header(headers, "content-encoding"), &body.bytes))
        .flatten();
    let bytes: &[u8] = decoded.as_deref().unwrap_or(&body.bytes);
    match &decoded {
        Some(d) => {
            out.insert("size".into(), json!(d.len()));
            out.insert(
                "compression".into(),
                json!(d.len() as i64 - body.bytes.len() as i64),
            );
        }
        None => {
            out.insert("size".into(), json!(body.len));
        }
    }
    out.insert("mimeType".into(), json!(mime_type(headers)));
    if !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                out.insert("text".into(), json!(text));
            }
            Err(_) => {
                out.insert("text".into(), json!(base64(bytes)));
                out.insert("encoding".into(), json!("base64"));
            }
        }
    }
    if let Some(note) = truncation_note(body) {
        out.insert("comment".into(), json!(note));
    }
    Value::Object(out)
}

fn response(ex: &Exchange<StoredBody>) -> Value {
    let version = &ex.request.version;
    let mut out = match &ex.response {
        Some(r) => {
            let redirect = if (300..400).contains(&r.status) {
                header(&r.headers, "location").unwrap_or_default()
            } else {
                ""
            };
            json!({
                "status": r.status,
                "statusText": status_text(r.status),
                "httpVersion": version,
                "cookies": [],
                "headers": headers(&r.headers),
                "content": content(&r.headers, &r.body),
                "redirectURL": redirect,
                "headersSize": -1,
                "bodySize": r.body.len,
            })
        }
        // HAR has no "no response": status 0 is what browsers write for that.
        None => json!({
            "status": 0,
            "statusText": "",
            "httpVersion": version,
            "cookies": [],
            "headers": [],
            "content": { "size": 0, "mimeType": "" },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_error": ex.error.as_deref().unwrap_or("no response"),
        }),
    };
    if let (Some(error), Some(obj)) = (&ex.error, out.as_object_mut()) {
        obj.insert("_error".into(), json!(error));
    }
    out
}

fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{api, callback, seed_flow, session, CALL_A_DASHED};

    /// The fields HAR 1.2 marks required, checked on every entry.
    fn assert_required(entry: &Value) {
        for key in [
            "startedDateTime",
            "time",
            "request",
            "response",
            "cache",
            "timings",
        ] {
            assert!(entry.get(key).is_some(), "entry lacks {key}: {entry}");
        }
        let req = &entry["request"];
        for key in [
            "method",
            "url",
            "httpVersion",
            "cookies",
            "headers",
            "queryString",
            "headersSize",
            "bodySize",
        ] {
            assert!(req.get(key).is_some(), "request lacks {key}: {req}");
        }
        if let Some(post) = req.get("postData") {
            assert!(post["mimeType"].is_string(), "{post}");
        }
        let resp = &entry["response"];
        for key in [
            "status",
            "statusText",
            "httpVersion",
            "cookies",
            "headers",
            "content",
            "redirectURL",
            "headersSize",
            "bodySize",
        ] {
            assert!(resp.get(key).is_some(), "response lacks {key}: {resp}");
        }
        assert!(resp["content"]["size"].is_number() && resp["content"]["mimeType"].is_string());
        for key in ["send", "wait", "receive"] {
            assert!(entry["timings"][key].is_number(), "timings lack {key}");
        }
        for list in [&req["headers"], &req["queryString"], &resp["headers"]] {
            for pair in list.as_array().into_iter().flatten() {
                assert!(
                    pair["name"].is_string() && pair["value"].is_string(),
                    "{pair}"
                );
            }
        }
        assert!(entry["_graphtape"]["seq"].is_u64());
    }

    #[test]
    fn seed_flow_has_every_required_field() {
        let doc = har(&session(), &seed_flow());
        let log = &doc["log"];
        assert_eq!(log["version"], "1.2");
        assert_eq!(log["creator"]["name"], "graphtape");
        assert_eq!(log["creator"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(log["pages"][0]["id"], "seed-flow");
        assert_eq!(
            log["pages"][0]["startedDateTime"],
            "2026-11-18T11:06:40.000000Z"
        );
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        assert_eq!(entries.len(), 14);
        entries.iter().for_each(assert_required);

        let answer = &entries[1];
        assert_eq!(answer["startedDateTime"], "2026-11-18T11:06:40.010000Z");
        assert_eq!(
            answer["request"]["url"],
            format!("https://graph.microsoft.com/v1.0/communications/calls/{CALL_A_DASHED}/answer")
        );
        assert_eq!(
            answer["request"]["postData"]["mimeType"],
            "application/json"
        );
        assert!(answer["request"]["postData"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("acceptModalities")));
        assert_eq!(answer["response"]["status"], 202);
        assert_eq!(answer["response"]["statusText"], "Accepted");
        assert_eq!(answer["timings"]["send"], 0.1);
        assert_eq!(answer["timings"]["wait"], 19.8);
        assert_eq!(answer["timings"]["receive"], 0.1);
        assert_eq!(answer["time"], 20.0);
        assert_eq!(answer["_graphtape"], json!({"seq": 2, "direction": "api"}));

        let incoming = &entries[0];
        assert_eq!(incoming["request"]["url"], "http://graphtape/api/calls");
        assert_eq!(incoming["_graphtape"]["direction"], "callback");
        assert_eq!(
            incoming["response"]["content"],
            json!({"size": 0, "mimeType": ""})
        );
        let invite = &entries[7];
        assert!(invite["response"]["content"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Running")));
        assert_eq!(invite["response"]["redirectURL"], "");
    }

    #[test]
    fn failures_binary_bodies_and_queries() {
        let failed = api(
            1,
            0,
            "GET",
            "/v1.0/communications/calls?$top=2&x=a%20b+c&flag",
        )
        .fail("upstreamTimeout: no answer within 30s")
        .build();
        let binary = callback(2, 5, "").respond(500, "").build();
        let mut binary = binary;
        binary.request.body = crate::inspect::testutil::body(b"\xff\x00\xfe");
        if let Some(r) = binary.response.as_mut() {
            r.body = crate::inspect::testutil::body(b"\x80\x81");
            r.headers
                .push(("location".into(), b"https://elsewhere".to_vec()));
        }
        let redirect = callback(3, 6, "{}")
            .respond(307, "")
            .location("https://bot2/api/calls")
            .build();
        let doc = har(&session(), &[failed, binary, redirect]);
        let entries = doc["log"]["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        entries.iter().for_each(assert_required);

        let failed = &entries[0];
        assert_eq!(
            failed["request"]["url"],
            "http://graphtape/v1.0/communications/calls?$top=2&x=a%20b+c&flag"
        );
        assert_eq!(
            failed["request"]["queryString"],
            json!([
                {"name": "$top", "value": "2"},
                {"name": "x", "value": "a b c"},
                {"name": "flag", "value": ""}
            ])
        );
        assert!(failed["request"].get("postData").is_none());
        assert_eq!(failed["response"]["status"], 0);
        assert_eq!(
            failed["response"]["_error"],
            "upstreamTimeout: no answer within 30s"
        );
        assert_eq!(failed["timings"]["wait"], -1);
        assert_eq!(failed["timings"]["send"], 0.1);
        assert_eq!(failed["time"], 0.1);

        let binary = &entries[1];
        let post = &binary["request"]["postData"];
        assert!(post.get("text").is_none());
        assert_eq!(post["_text"], "/wD+");
        assert!(post["comment"]
            .as_str()
            .is_some_and(|c| c.contains("base64")));
        assert_eq!(binary["response"]["content"]["encoding"], "base64");
        assert_eq!(binary["response"]["content"]["text"], "gIE=");
        assert_eq!(binary["response"]["redirectURL"], "");
        assert_eq!(
            entries[2]["response"]["redirectURL"],
            "https://bot2/api/calls"
        );
        assert_eq!(entries[2]["response"]["statusText"], "Temporary Redirect");
    }

    #[test]
    fn truncated_bodies_and_lost_exchanges_are_noted() {
        let mut ex = api(1, 0, "POST", "/x").body("abcdef").build();
        ex.request.body = StoredBody::capture(b"abcdef", 3);
        let mut info = session();
        info.unrecorded = 2;
        let doc = har(&info, &[ex]);
        let post = &doc["log"]["entries"][0]["request"]["postData"];
        assert_eq!(post["text"], "abc");
        assert!(post["comment"]
            .as_str()
            .is_some_and(|c| c.starts_with("truncated: 3 of 6 bytes")));
        assert_eq!(doc["log"]["entries"][0]["request"]["bodySize"], 6);
        assert!(doc["log"]["comment"]
            .as_str()
            .is_some_and(|c| c.contains("2 exchanges")));
    }

    #[test]
    fn decoding_never_panics() {
        for text in ["%", "%4", "%zz", "%e2%82", "+%2B", "é%C3%A9"] {
            let _ = crate::percent::decode_lossy(text, true);
        }
        assert_eq!(crate::percent::decode_lossy("%C3%A9+%2B", true), "é +");
    }
}
