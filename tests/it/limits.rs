//! Slow, idle and too many clients: the listener limits (`--header-timeout`,
//! `--body-timeout`, `--idle-timeout`, `--max-connections`) and accept back-off.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

const REQUEST: &[u8] = b"GET /v1.0/me HTTP/1.1\r\nHost: x\r\n\r\n";

async fn graph() -> FakePeer {
    FakePeer::start(handler(|_| async { respond(200, &[], b"ok") })).await
}

fn addr(gt: &Graphtape) -> String {
    gt.api.trim_start_matches("http://").to_string()
}

/// Reads until the peer closes; returns everything read.
async fn read_to_close(sock: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, sock.read_to_end(&mut all))
        .await
        .expect("the connection was never closed")
        .ok();
    all
}

/// Reads one whole response head (and the 2-byte `ok` body the fake Graph sends).
async fn read_response(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).ends_with("\r\n\r\nok") {
        let n = tokio::time::timeout(DEADLINE, sock.read(&mut chunk))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn a_client_trickling_its_head_is_disconnected_after_the_header_timeout() {
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::record(graph().await, "slow-head", &["--header-timeout", "1"]).await;
    let mut sock = TcpStream::connect(addr(&gt)).await.unwrap();
    let started = Instant::now();
    // A head that never ends: one more byte of a header value every 100 ms.
    sock.write_all(b"GET /v1.0/me HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let trickle = async {
        while sock.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(DEADLINE, trickle)
        .await
        .expect("the trickling client was never disconnected");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A client that sends its head promptly is served.
    let mut ok = TcpStream::connect(addr(&gt)).await.unwrap();
    ok.write_all(REQUEST).await.unwrap();
    assert!(read_response(&mut ok).await.starts_with("HTTP/1.1 200"));
    drop(ok);
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert_eq!(
        exchanges(&db, "slow-head").len(),
        1,
        "only the prompt request"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let Setup {
        graph: _graph,
        db: _,
        gt,
        _dir,
    } = Setup::record(graph().await, "idle", &["--idle-timeout", "1"]).await;
    let mut sock = TcpStream::connect(addr(&gt)).await.unwrap();
    sock.write_all(REQUEST).await.unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let rest = read_to_close(&mut sock).await;
    assert!(rest.is_empty(), "nothing more was sent");
    assert!(idle_from.elapsed() >= Duration::from_millis(900));
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_is_recorded_with_what_arrived() {
    let Setup {
        graph,
        db,
        gt,
        _dir,
    } = Setup::record(graph().await, "stall", &["--body-timeout", "1"]).await;
    let mut sock = TcpStream::connect(addr(&gt)).await.unwrap();
    sock.write_all(b"POST /v1.0/communications/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"partial\":")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut sock).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("requestTimeout"), "{answer}");
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "stall");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.body.bytes, b"{\"partial\":");
    let error = ex[0].error.as_deref().unwrap();
    assert!(
        error.contains("stalled") && error.contains("after 11 bytes"),
        "{error}"
    );
    assert!(graph.seen().is_empty(), "a partial body is not forwarded");
}

#[tokio::test]
async fn beyond_max_connections_new_connections_wait_their_turn() {
    let Setup {
        graph: _graph,
        db,
        mut gt,
        _dir,
    } = Setup::record(graph().await, "cap", &["--max-connections", "1"]).await;
    let mut first = TcpStream::connect(addr(&gt)).await.unwrap();
    first.write_all(REQUEST).await.unwrap();
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    gt.wait_stderr("--max-connections reached").await;
    // The second connection is queued, not refused: its request waits...
    let mut second = TcpStream::connect(addr(&gt)).await.unwrap();
    second.write_all(REQUEST).await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the second connection was served while the first held the only slot"
    );
    // ...and is served once the first goes.
    drop(first);
    assert!(read_response(&mut second).await.starts_with("HTTP/1.1 200"));
    drop(second);
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert_eq!(exchanges(&db, "cap").len(), 2);
}

#[tokio::test]
async fn accept_errors_back_off_and_are_logged_once_per_burst() {
    let graph = graph().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let mut gt = Graphtape::record_with(
        &db,
        &["--upstream", &graph.url, "--session", "fds"],
        |cmd| {
            // SAFETY: setrlimit only, between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 64,
                        rlim_max: 64,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    )
    .await;
    // More connections than graphtape has descriptors for.
    let mut open = Vec::new();
    for _ in 0..80 {
        open.push(TcpStream::connect(addr(&gt)).await.unwrap());
    }
    gt.wait_stderr("accept failed").await;
    drop(open);
    gt.wait_stderr("accepting again").await;
    let mut sock = TcpStream::connect(addr(&gt)).await.unwrap();
    sock.write_all(REQUEST).await.unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));
    drop(sock);
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let failures = stopped.stderr.matches("accept failed").count();
    assert_eq!(failures, 1, "one line per burst: {}", stopped.stderr);
}
