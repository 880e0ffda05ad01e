//! A bot whose HTTP client gzips request bodies (as Kiota's compression handler does),
//! through `record` and `replay`: its callbackUri is still rewritten (and the body
//! encoded again, Content-Length right), and replay matches and substitutes on the
//! decoded content.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::util::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn create_call(callback: &str, client_context: &str) -> Vec<u8> {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.call",
        "callbackUri": callback,
        "clientContext": client_context,
        "requestedModalities": ["audio"],
    })
    .to_string()
    .into_bytes()
}

fn notification(client_context: &str) -> Vec<u8> {
    serde_json::json!({"value": [{
        "changeType": "updated",
        "resource": "/app/calls/5f1a",
        "resourceData": {"state": "established", "clientContext": client_context},
    }]})
    .to_string()
    .into_bytes()
}

/// Sends the bot's gzip-encoded create-call request to `api`; returns the status.
async fn bot_creates_call(api: &str, callback: &str, client_context: &str) -> u16 {
    let body = gzip(&create_call(callback, client_context));
    let (parts, answer) = send(
        &client(),
        request(
            "POST",
            &format!("{api}/v1.0/communications/calls"),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &body,
        ),
    )
    .await;
    if parts.status != 201 {
        eprintln!("{}", String::from_utf8_lossy(&answer));
    }
    parts.status.as_u16()
}

#[tokio::test]
async fn a_gzip_sending_bot_is_rewritten_recorded_and_replayed() {
    // Graph: decodes the body as real Graph does, and keeps the callbackUri it got.
    let given: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = given.clone();
    let graph = FakePeer::start(handler(move |seen: Seen| {
        let log = log.clone();
        async move {
            assert_eq!(seen.headers["content-encoding"], "gzip");
            assert_eq!(
                seen.headers["content-length"],
                seen.body.len().to_string().as_str(),
                "Content-Length fits the re-encoded body"
            );
            let body: serde_json::Value = serde_json::from_slice(&gunzip(&seen.body)).unwrap();
            log.lock()
                .unwrap()
                .push(body["callbackUri"].as_str().unwrap().to_string());
            respond(
                201,
                &[("content-type", "application/json")],
                br#"{"id":"5f1a"}"#,
            )
        }
    }))
    .await;
    let bot = FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "gz",
            "--callback-listen",
            &listen,
            "--public-url",
            &public,
            "--bot-url",
            &bot.url,
        ],
    )
    .await;
    let callback = format!("{}/api/calls", bot.url);
    assert_eq!(
        bot_creates_call(&gt.api, &callback, "ctx-recorded").await,
        201
    );
    let minted = given.lock().unwrap()[0].clone();
    assert!(
        minted.starts_with(&format!("{public}/callback/")),
        "the gzip body's callbackUri was rewritten: {minted}"
    );
    let (parts, _) = send(
        &client(),
        request(
            "POST",
            &minted,
            &[("content-type", "application/json")],
            &notification("ctx-recorded"),
        ),
    )
    .await;
    assert_eq!(parts.status, 202, "the notification went through graphtape");
    assert_eq!(bot.wait_for(1).await[0].uri, "/api/calls");
    assert!(gt.stop().await.status.success());
    let recorded = exchanges(&db, "gz");
    let forwarded = recorded[0]
        .forwarded_body
        .as_ref()
        .expect("a forwarded body");
    assert!(contains(&gunzip(&forwarded.bytes), minted.as_bytes()));
    assert_eq!(
        recorded[0].request.body.bytes,
        gzip(&create_call(&callback, "ctx-recorded")),
        "the bot's own bytes are stored as sent"
    );

    // Replay to another bot that gzips too, with its own callbackUri and clientContext.
    let bot2 = FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await;
    let api_port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args([
            "replay",
            "gz",
            "--db",
            db.to_str().unwrap(),
            "--bot-url",
            &bot2.url,
            "--api-listen",
            &format!("127.0.0.1:{api_port}"),
            "--fast",
            "--wait",
            "5",
            "--settle",
            "0.2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, async {
        while !out.contains("listening api=") {
            assert!(stdout.read_line(&mut out).await.unwrap() > 0, "{out}");
        }
    })
    .await
    .expect("replay did not listen");
    let api = format!("http://127.0.0.1:{api_port}");
    let live_callback = format!("{}/live/calls", bot2.url);
    assert_eq!(
        bot_creates_call(&api, &live_callback, "ctx-live").await,
        201,
        "the gzip request matched the recorded one"
    );
    let delivered = bot2.wait_for(1).await;
    assert_eq!(
        delivered[0].uri, "/live/calls",
        "delivered to the bot's new callbackUri"
    );
    assert!(
        contains(&delivered[0].body, b"ctx-live") && !contains(&delivered[0].body, b"ctx-recorded"),
        "clientContext learned from the decoded body: {:?}",
        delivered[0].body
    );
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
}
