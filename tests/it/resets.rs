//! A peer that hangs up before answering anything: `upstreamReset` / `botReset`.

use tokio::io::AsyncReadExt;

use crate::util::*;

/// A raw TCP peer that reads a request and closes the connection without a word.
async fn hang_up_peer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_reset_before_any_response_is_named_a_reset_both_ways() {
    let peer = hang_up_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &peer,
            "--session",
            "resets",
            "--callback-listen",
            "127.0.0.1:0",
            "--bot-url",
            &peer,
        ],
    )
    .await;
    let callback = gt.callback.clone().unwrap();
    for (url, code) in [
        (
            format!("{}/v1.0/communications/calls", gt.api),
            "upstreamReset",
        ),
        (format!("{callback}/api/calls"), "botReset"),
    ] {
        let (parts, body) = send(&client(), request("POST", &url, &[], b"{}")).await;
        assert_eq!(parts.status, 502);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "resets");
    assert_eq!(ex.len(), 2);
    assert!(ex.iter().all(|e| e.response.is_none() && e.error.is_some()));
}
