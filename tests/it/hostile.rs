//! Hostile recording files: each is refused by `import` and by `replay FILE` with exit
//! 2 and a message naming the field and the problem, never a panic, and nothing is
//! imported. Replay delivers only to `--bot-url`'s origin, whatever the store holds.

use std::path::Path;

use serde_json::{json, Value};

use crate::util::*;

/// A small valid recording: one API exchange and one notification.
fn base() -> Value {
    json!({
      "format": "graphtape/1",
      "session": {"name": "hostile", "started_at": "2026-11-27T16:53:45.000001Z",
                  "ended_us": 5000, "config": {}},
      "events": [
        {"seq": 1, "direction": "api", "wall_start": "2026-11-27T16:53:45.000100Z",
         "request": {"start_us": 100, "end_us": 110, "method": "POST",
                     "path": "/v1.0/communications/calls", "version": "HTTP/1.1",
                     "headers": [["content-type", "application/json"]],
                     "body": {"json": {"callbackUri": "https://bot.example/api/calls"}}},
         "target": "https://graph.microsoft.com/v1.0/communications/calls",
         "response": {"start_us": 200, "end_us": 210, "status": 201,
                      "headers": [["content-type", "application/json"]],
                      "body": {"json": {"id": "57dab8b1-894c-409a-b240-bd8beae78896"}}}},
        {"seq": 2, "direction": "callback", "wall_start": "2026-11-27T16:53:45.000300Z",
         "request": {"start_us": 300, "end_us": 310, "method": "POST",
                     "path": "/api/calls", "version": "HTTP/1.1",
                     "headers": [["content-type", "application/json"]],
                     "body": {"json": {"value": [{"changeType": "updated",
                       "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896",
                       "resourceData": {"state": "established"}}]}}},
         "target": "http://127.0.0.1:3978/api/calls",
         "response": {"start_us": 400, "end_us": 410, "status": 202, "headers": []}}
      ]
    })
}

/// `base()` with the value at `pointer` replaced (or added to its object).
fn with(pointer: &str, value: Value) -> Vec<u8> {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the base recording"));
    match parent {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{pointer}: not in a container"),
    }
    serde_json::to_vec_pretty(&doc).unwrap()
}

/// `base()` serialised, then `from` replaced by `to` in the text.
fn text_with(from: &str, to: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec_pretty(&base()).unwrap();
    let at = text
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the base recording"));
    [&text[..at], to, &text[at + from.len()..]].concat()
}

/// Arrays nested `depth` deep (built, not parsed: serde_json would refuse to parse it).
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |v, _| Value::Array(vec![v]))
}

/// Each hostile file and what its error must say: the location and the reason.
fn cases() -> Vec<(&'static str, Vec<u8>, &'static [&'static str])> {
    let mut seq_dup = base();
    seq_dup["events"][1]["seq"] = json!(1);
    let mut seq_down = base();
    seq_down["events"][0]["seq"] = json!(7);
    let full = serde_json::to_vec_pretty(&base()).unwrap();
    vec![
        (
            "authority in a callback path",
            with("/events/1/request/path", json!("@127.0.0.1:18099/evil")),
            &["at events[1].request.path", "not origin-form"],
        ),
        (
            "network-path reference",
            with("/events/1/request/path", json!("//127.0.0.1:18099/evil")),
            &["at events[1].request.path", "would name a host"],
        ),
        (
            "absolute URL as path",
            with("/events/0/request/path", json!("http://evil.example/x")),
            &["at events[0].request.path", "not origin-form"],
        ),
        (
            "space in a path",
            with("/events/0/request/path", json!("/v1.0/a b")),
            &["at events[0].request.path", "not allowed in a path"],
        ),
        (
            "CRLF in a path",
            with("/events/1/request/path", json!("/api\r\nHost: evil")),
            &["at events[1].request.path", "not allowed in a path"],
        ),
        (
            "fragment in a query",
            with("/events/0/request/query", json!("a=1#x")),
            &["at events[0].request.query", "not allowed in a query"],
        ),
        (
            "status 0",
            with("/events/0/response/status", json!(0)),
            &["at events[0].response.status", "not an HTTP status"],
        ),
        (
            "status 1000",
            with("/events/1/response/status", json!(1000)),
            &["at events[1].response.status", "not an HTTP status"],
        ),
        (
            "status 99",
            with("/events/0/response/status", json!(99)),
            &["at events[0].response.status", "100 to 599"],
        ),
        (
            "status 600",
            with("/events/0/response/status", json!(600)),
            &["at events[0].response.status", "100 to 599"],
        ),
        (
            "status beyond u16",
            with("/events/0/response/status", json!(70000)),
            &["at events[0].response.status", "expected u16"],
        ),
        (
            "negative status",
            with("/events/0/response/status", json!(-1)),
            &["at events[0].response.status", "expected u16"],
        ),
        (
            "CRLF in a header name",
            with("/events/0/request/headers/0/0", json!("x-a\r\nx-injected")),
            &["at events[0].request.headers[0][0]", "CR or LF"],
        ),
        (
            "CRLF in a header value",
            with(
                "/events/1/request/headers/0/1",
                json!("application/json\r\nx-injected: 1"),
            ),
            &["at events[1].request.headers[0][1]", "CR or LF"],
        ),
        (
            "LF in a base64 header value",
            with("/events/0/response/headers/0/1", json!({"base64": "YQpi"})),
            &["at events[0].response.headers[0][1]", "CR or LF"],
        ),
        (
            "NUL in a header value",
            with("/events/0/request/headers/0/1", json!("a\u{0}b")),
            &["at events[0].request.headers[0][1]", "NUL"],
        ),
        (
            "space in a header name",
            with("/events/0/request/headers/0/0", json!("x a")),
            &["at events[0].request.headers[0][0]", "not a header name"],
        ),
        (
            "empty header name",
            with("/events/0/request/headers/0/0", json!("")),
            &["at events[0].request.headers[0][0]", "1 to 1024 bytes"],
        ),
        (
            "negative offset",
            with("/events/0/request/start_us", json!(-5)),
            &["at events[0].request.start_us", "out of range"],
        ),
        (
            "request ends before it starts",
            with("/events/0/request/end_us", json!(50)),
            &["at events[0].request.end_us", "before request.start_us"],
        ),
        (
            "response ends before it starts",
            with("/events/1/response/end_us", json!(399)),
            &["at events[1].response.end_us", "before response.start_us"],
        ),
        (
            "response before its request",
            with("/events/0/response/start_us", json!(10)),
            &["at events[0].response.start_us", "before request.start_us"],
        ),
        (
            "absurdly large offset",
            with(
                "/events/1/request/start_us",
                json!(100_000_000_000_000_000i64),
            ),
            &["at events[1].request.start_us", "out of range"],
        ),
        (
            "negative session end",
            with("/session/ended_us", json!(-1)),
            &["at session.ended_us", "out of range"],
        ),
        (
            "truncated file",
            full[..full.len() / 2].to_vec(),
            &["EOF while parsing"],
        ),
        ("empty file", Vec::new(), &["line 1, column 0", "EOF"]),
        (
            "wrong format version",
            with("/format", json!("graphtape/2")),
            &["at format", "unsupported format \"graphtape/2\""],
        ),
        (
            "no format",
            serde_json::to_vec(&json!({"session": base()["session"], "events": []})).unwrap(),
            &["missing field `format`"],
        ),
        (
            "seq as a huge float",
            text_with("\"seq\": 2", b"\"seq\": 1e30"),
            &["at events[1].seq", "expected u64"],
        ),
        (
            "seq beyond i64",
            with("/events/1/seq", json!(u64::MAX)),
            &["at events[1].seq", "too large"],
        ),
        (
            "duplicate seq",
            serde_json::to_vec_pretty(&seq_dup).unwrap(),
            &["at events[1].seq", "must increase; 1 follows 1"],
        ),
        (
            "decreasing seq",
            serde_json::to_vec_pretty(&seq_down).unwrap(),
            &["at events[1].seq", "must increase; 2 follows 7"],
        ),
        (
            "non-UTF-8 bytes",
            text_with("hostile", b"host\xff\xfeile"),
            &["at session.name", "invalid unicode"],
        ),
        (
            "deep nesting in a body",
            with("/events/0/request/body/json", nested(2000)),
            &["at events[0].request.body.json", "recursion limit"],
        ),
        (
            "giant header value",
            with("/events/0/request/headers/0/1", json!("x".repeat(100_000))),
            &[
                "at events[0].request.headers[0][1]",
                "longer than 65536 bytes",
            ],
        ),
        (
            "giant method",
            with("/events/0/request/method", json!("P".repeat(10_000))),
            &["at events[0].request.method", "longer than 64 bytes"],
        ),
        (
            "bad base64 body",
            with("/events/0/response/body", json!({"base64": "!!!"})),
            &["at events[0].response.body", "invalid base64"],
        ),
        (
            "bad sha256 of a truncated body",
            with(
                "/events/0/response/body",
                json!({"text": "ab", "truncated": true, "length": 9, "sha256": "xyz"}),
            ),
            &["at events[0].response.body", "64 hex digits"],
        ),
        (
            "truncated body longer than its length",
            with(
                "/events/0/response/body",
                json!({"text": "abcdef", "truncated": true, "length": 2,
                       "sha256": "0".repeat(64)}),
            ),
            &[
                "at events[0].response.body",
                "shorter than the 6 bytes kept",
            ],
        ),
        (
            "unknown direction",
            with("/events/1/direction", json!("sideways")),
            &["at events[1].direction", "expected \"api\" or \"callback\""],
        ),
        (
            "not a method",
            with("/events/0/request/method", json!("G T")),
            &["at events[0].request.method", "not an HTTP method"],
        ),
        (
            "unknown HTTP version",
            with("/events/0/request/version", json!("HTTP/9")),
            &["at events[0].request.version", "expected HTTP/1.0"],
        ),
        (
            "control characters in the session name",
            with("/session/name", json!("a\nreplaying session=x")),
            &["at session.name", "control characters"],
        ),
        (
            "config not an object",
            with("/session/config", json!([1, 2])),
            &["at session.config", "expected an object"],
        ),
        (
            "a top-level string",
            b"\"hello\"".to_vec(),
            &["invalid type: string \"hello\", expected struct Recording"],
        ),
        (
            "headers as an object",
            with("/events/0/request/headers", json!({"evil": 1})),
            &["at events[0].request.headers", "invalid type: map"],
        ),
        (
            "an unknown field",
            text_with("\"start_us\": 100", b"\"evil\": 1, \"start_us\": 100"),
            &["at events[0].request", "unknown field `evil`"],
        ),
        (
            "two kinds of body",
            with(
                "/events/0/request/body",
                json!({"text": "a", "base64": "YQ=="}),
            ),
            &["at events[0].request.body", "exactly one"],
        ),
    ]
}

fn sessions(db: &Path) -> usize {
    let out = graphtape(&["sessions", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().count()
}

#[test]
fn hostile_recordings_are_refused_by_import_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let good = dir.path().join("good.json");
    std::fs::write(&good, serde_json::to_vec_pretty(&base()).unwrap()).unwrap();
    let out = graphtape(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = dir.path().join("fresh.db");
    let cases = cases();
    assert_eq!(cases.len(), 48, "the README counts them");
    for (i, (name, bytes, wants)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{i}.json"));
        std::fs::write(&file, bytes).unwrap();
        let file = file.to_str().unwrap();
        let runs = [
            (
                "import",
                vec!["import", "--db", db.to_str().unwrap(), file, "--as", "x"],
            ),
            (
                "import into a new database",
                vec!["import", "--db", fresh.to_str().unwrap(), file],
            ),
            (
                "replay",
                vec![
                    "replay",
                    file,
                    "--db",
                    fresh.to_str().unwrap(),
                    "--bot-url",
                    "http://127.0.0.1:9",
                    "--wait",
                    "0",
                ],
            ),
        ];
        for (what, args) in runs {
            let out = graphtape(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name} ({what}): {stderr}");
            assert!(!stderr.contains("panicked"), "{name} ({what}): {stderr}");
            assert!(
                stderr.contains(&format!("graphtape: error: {file}: ")),
                "{name} ({what}) names the file: {stderr}"
            );
            for want in *wants {
                assert!(
                    stderr.contains(want),
                    "{name} ({what}): want {want:?}: {stderr}"
                );
            }
            assert!(
                stderr.lines().count() <= 2,
                "{name} ({what}): one clear line: {stderr}"
            );
        }
        assert!(!fresh.exists(), "{name}: a refused file created a database");
    }
    // The name given with --as is held to the same rule as the file's.
    let out = graphtape(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        good.to_str().unwrap(),
        "--as",
        "a\nrecording session=x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--as") && stderr.contains("control characters"),
        "{stderr}"
    );
    assert_eq!(sessions(&db), 1, "nothing half-imported");
}

/// A store can hold a path no import would accept (an older graphtape, a hand-edited
/// database): replay still sends nothing anywhere but the bot's origin.
#[tokio::test]
async fn replay_never_leaves_the_bots_origin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let mut doc = base();
    doc["events"].as_array_mut().unwrap().remove(0);
    let file = dir.path().join("one.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = graphtape(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let evil = FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await;
    let bot = FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    for path in [
        format!("@{}/evil", evil.addr),
        format!("//{}/evil", evil.addr),
    ] {
        conn.execute("UPDATE exchanges SET path = ?1, target = NULL", [&path])
            .unwrap();
        let out = tokio::task::spawn_blocking({
            let db = db.clone();
            let bot = bot.url.clone();
            move || {
                graphtape(&[
                    "replay",
                    "hostile",
                    "--db",
                    db.to_str().unwrap(),
                    "--bot-url",
                    &bot,
                    "--no-graph",
                    "--fast",
                    "--wait",
                    "1",
                    "--settle",
                    "0",
                ])
            }
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{path}: {stdout}");
        assert!(
            stdout.contains("notification-failed") && stdout.contains("refusing to send it"),
            "{path}: {stdout}"
        );
    }
    assert!(evil.seen().is_empty(), "a delivery left the bot's origin");
    assert!(bot.seen().is_empty(), "a hostile path was sent to the bot");
}
