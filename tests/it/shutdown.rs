//! Stopping with exchanges still open: nothing lost silently.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::util::*;

/// graphtape in front of a fake Graph, logging arrivals (the event the tests wait on),
/// with a request whose body never completes already in.
async fn stuck(
    session: &str,
    extra: &[&str],
) -> (
    Graphtape,
    TcpStream,
    std::path::PathBuf,
    tempfile::TempDir,
    FakePeer,
) {
    let graph = FakePeer::start(handler(|_| async { respond(200, &[], b"ok") })).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let mut args = vec!["--upstream", graph.url.as_str(), "--session", session];
    args.extend_from_slice(extra);
    let mut gt = Graphtape::record_with(&db, &args, |cmd| {
        cmd.env(
            "GRAPHTAPE_LOG",
            "info,graphtape::proxy::capture=debug,graphtape::proxy::body=trace",
        );
    })
    .await;
    let addr = gt.api.trim_start_matches("http://").to_string();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"POST /v1.0/communications/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"never\":",
    )
    .await
    .unwrap();
    // The partial body has been read: what a cut must keep.
    gt.wait_stderr("request body so far").await;
    (gt, sock, db, dir, graph)
}

fn assert_cut_short(db: &std::path::Path, session: &str, stopped: &Stopped) {
    assert_eq!(stopped.status.code(), Some(1), "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .contains("1 exchanges were still open at shutdown"),
        "{}",
        stopped.stderr
    );
    let ex = exchanges(db, session);
    assert_eq!(ex.len(), 1, "the open exchange is recorded");
    assert_eq!(ex[0].request.body.bytes, b"{\"never\":");
    let error = ex[0].error.as_deref().unwrap();
    assert!(
        error.contains("graphtape shut down before the exchange completed"),
        "{error}"
    );
    assert!(error.contains("9 bytes"), "{error}");
}

#[tokio::test]
async fn an_exchange_still_open_at_the_drain_deadline_is_recorded_and_counted() {
    let (gt, _sock, db, _dir, graph) = stuck("deadline", &["--drain-timeout", "1"]).await;
    let stopped = gt.stop().await;
    assert_cut_short(&db, "deadline", &stopped);
    assert!(graph.seen().is_empty());
}

#[tokio::test]
async fn a_second_signal_ends_the_drain_at_once() {
    // The default drain (30 s) is longer than the test's deadline: only the second
    // signal can end it in time.
    let (mut gt, _sock, db, _dir, _graph) = stuck("twice", &[]).await;
    gt.signal(libc::SIGTERM);
    gt.wait_stderr("stopping").await;
    let stopped = gt.stop_with(libc::SIGINT).await;
    assert_cut_short(&db, "twice", &stopped);
}
