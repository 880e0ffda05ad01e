//! A big synthetic recording, for the page's virtualised rendering (tests/it/views.rs)
//! and its load-time benchmark (benches/html_load.rs).

use std::path::{Path, PathBuf};

/// A recording of `pairs` invite requests, each followed by its operation's
/// completion notification: 2 exchanges (recorded events), 4 arrows each.
pub fn big_recording(dir: &Path, pairs: u64) -> PathBuf {
    let call = "57dab8b1-894c-409a-b240-bd8beae78896";
    let mut events = Vec::new();
    for i in 0..pairs {
        let t = i as i64 * 2_000;
        let op = format!("{:032x}", i + 1);
        events.push(serde_json::json!({
            "seq": 2 * i + 1, "direction": "api", "wall_start": "2026-11-27T17:04:48.467104Z",
            "target": format!("https://graph.microsoft.com/v1.0/communications/calls/{call}/participants/invite"),
            "request": {"start_us": t, "end_us": t + 10, "method": "POST",
                "path": format!("/v1.0/communications/calls/{call}/participants/invite"), "version": "HTTP/1.1",
                "headers": [["content-type", "application/json"]],
                "body": {"json": {"participants": [{"identity": {"user": {"id": "8a34a46b"}}}]}}},
            "response": {"start_us": t + 900, "end_us": t + 950, "status": 200,
                "headers": [["content-type", "application/json"],
                    ["location", format!("https://graph.microsoft.com/v1.0/communications/calls/{call}/operations/{op}")]],
                "body": {"json": {"id": op, "status": "running"}}}
        }));
        events.push(serde_json::json!({
            "seq": 2 * i + 2, "direction": "callback", "wall_start": "2026-11-27T17:04:48.467104Z",
            "target": "http://127.0.0.1:3978/api/calls",
            "request": {"start_us": t + 1_200, "end_us": t + 1_210, "method": "POST", "path": "/api/calls", "version": "HTTP/1.1",
                "headers": [["content-type", "application/json"]],
                "body": {"json": {"value": [{"changeType": "deleted",
                    "resource": format!("/app/calls/{call}/operations/{op}"),
                    "resourceData": {"@odata.type": "#microsoft.graph.inviteParticipantsOperation", "status": "completed"}}]}}},
            "response": {"start_us": t + 1_500, "end_us": t + 1_510, "status": 202, "headers": []}
        }));
    }
    let doc = serde_json::json!({
        "format": "graphtape/1",
        "session": {"name": "big", "started_at": "2026-11-27T17:04:47.742834Z", "ended_us": pairs as i64 * 2_000, "config": {}},
        "events": events,
    });
    let path = dir.join("big.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}
