//! How precisely replay keeps the recorded clock: a synthetic recording of 1,500
//! notifications 2 ms apart is replayed at --speed 1 by the release binary to a bot on
//! 127.0.0.1, and the report's timing error (actual minus planned send time) is
//! printed: median, p99, max. Target: p99 <= 1 ms.
//!
//! `cargo bench --bench replay_timing`. Bounded (about 3 s of replay); stops by itself.

use std::process::Command;

use bytes::Bytes;
use graphtape::proxy::reply::Body;
use http::Response;
use http_body_util::Full;

const NOTIFICATIONS: usize = 1_500;
const GAP_US: i64 = 2_000;

fn recording() -> serde_json::Value {
    let events: Vec<serde_json::Value> = (0..NOTIFICATIONS)
        .map(|i| {
            let start = i as i64 * GAP_US;
            let body = serde_json::json!({
                "value": [{
                    "changeType": "updated",
                    "resource": "/app/calls/57DAB8B1894C409AB240BD8BEAE78896/participants",
                    "resourceData": [{"@odata.type": "#microsoft.graph.participant", "sequenceNumber": i}]
                }]
            });
            serde_json::json!({
                "seq": i + 1,
                "direction": "callback",
                "wall_start": "2026-11-27T17:00:00.000000Z",
                "request": {
                    "start_us": start, "end_us": start, "method": "POST", "path": "/api/calls",
                    "version": "HTTP/1.1", "headers": [["content-type", "application/json"]],
                    "body": {"json": body}
                },
                "response": {"start_us": start + 100, "end_us": start + 100, "status": 202, "headers": []}
            })
        })
        .collect();
    serde_json::json!({
        "format": "graphtape/1",
        "session": {"name": "timing", "started_at": "2026-11-27T17:00:00.000000Z", "config": {}},
        "events": events
    })
}

fn main() {
    let dir = std::env::temp_dir().join(format!("graphtape-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("timing.json");
    std::fs::write(&file, recording().to_string()).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let bot = listener.local_addr().unwrap();
    rt.spawn(graphtape::server::serve(
        listener,
        None,
        |_req| async {
            Response::builder()
                .status(202)
                .body(Full::new(Bytes::new()))
                .unwrap() as Response<Body>
        },
        async move {
            let _ = stopped.await;
        },
    ));

    let report = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .arg("replay")
        .arg(&file)
        .arg("--db")
        .arg(dir.join("timing.db"))
        .args([
            "--bot-url",
            &format!("http://{bot}"),
            "--no-graph",
            "--speed",
            "1",
            "--callback-auth",
            "none",
            "--settle",
            "0",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .expect("running graphtape replay");
    let _ = stop.send(());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let t = &report["timing_error"];
    println!(
        "replay_timing: {} notifications {} ms apart at --speed 1 (release binary, bot on loopback)",
        t["count"],
        GAP_US / 1000
    );
    println!(
        "  timing error: median {:.1} us, p99 {:.1} us, max {:.1} us (target p99 <= 1000 us)",
        t["median_us"].as_f64().unwrap_or(f64::NAN),
        t["p99_us"].as_f64().unwrap_or(f64::NAN),
        t["max_us"].as_f64().unwrap_or(f64::NAN)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
