//! Bodies over `--max-body` stream through: memory stays bounded by the cap, the stored
//! rows hold the prefix with the length and SHA-256 of the whole, and a body that
//! breaks off midway is recorded with what did arrive.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

const MIB: u64 = 1 << 20;

/// `len` bytes of a repeating pattern, produced without holding more than one chunk.
struct Pattern {
    chunk: Bytes,
    left: u64,
}

impl Pattern {
    fn new(len: u64) -> Pattern {
        let chunk: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
        Pattern {
            chunk: Bytes::from(chunk),
            left: len,
        }
    }

    /// SHA-256 (hex) of what a pattern of `len` bytes produces.
    fn sha256(len: u64) -> String {
        let mut p = Pattern::new(len);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        while let Some(chunk) = p.next_chunk() {
            ctx.update(&chunk);
        }
        graphtape::exchange::hex(ctx.finish().as_ref())
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let n = self.left.min(self.chunk.len() as u64);
        self.left -= n;
        Some(self.chunk.slice(..n as usize))
    }
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }
}

/// An upstream that counts uploads without keeping them (`PUT`, answers the length)
/// and serves `GET /download/N` as N bytes of the pattern.
async fn sink_and_source() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let path = req.uri().path().to_string();
                    let mut body = req.into_body();
                    let mut len = 0u64;
                    while let Some(Ok(frame)) = body.frame().await {
                        len += frame.data_ref().map_or(0, |d| d.len() as u64);
                    }
                    let out = match path.strip_prefix("/download/") {
                        Some(n) => Pattern::new(n.parse().unwrap()),
                        None => {
                            let text = format!("{{\"received\":{len}}}");
                            Pattern {
                                left: text.len() as u64,
                                chunk: Bytes::from(text),
                            }
                        }
                    };
                    Ok::<_, std::convert::Infallible>(Response::new(out))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn eight_200_mb_uploads_and_a_1_gb_download_stay_within_the_memory_bound() {
    const UPLOAD: u64 = 200 * MIB;
    const DOWNLOAD: u64 = 1024 * MIB;
    const MAX_BODY: u64 = 4 * MIB;
    let upstream = sink_and_source().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &upstream,
            "--session",
            "huge",
            "--max-body",
            "4MiB",
        ],
    )
    .await;
    let client: Client<HttpConnector, Pattern> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let api = gt.api.clone();
    let run = async {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (client, url) = (client.clone(), format!("{api}/upload/{i}"));
            tasks.push(tokio::spawn(async move {
                let req = Request::put(url).body(Pattern::new(UPLOAD)).unwrap();
                let resp = client.request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(&body[..], format!("{{\"received\":{UPLOAD}}}").as_bytes());
            }));
        }
        let (client, url) = (client.clone(), format!("{api}/download/{DOWNLOAD}"));
        tasks.push(tokio::spawn(async move {
            let req = Request::get(url).body(Pattern::new(0)).unwrap();
            let resp = client.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut body = resp.into_body();
            let mut len = 0u64;
            while let Some(frame) = body.frame().await {
                len += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
            }
            assert_eq!(len, DOWNLOAD);
        }));
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the transfers did not finish");
    let peak = peak_rss(gt.pid());
    let bound = 8 * MAX_BODY + 100 * MIB;
    println!(
        "graphtape peak RSS: {} MiB (bound {} MiB)",
        peak / MIB,
        bound / MIB
    );
    assert!(peak < bound, "peak RSS {peak} bytes over the bound {bound}");
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);

    let ex = exchanges(&db, "huge");
    assert_eq!(ex.len(), 9);
    let upload_sha = Pattern::sha256(UPLOAD);
    let download_sha = Pattern::sha256(DOWNLOAD);
    let prefix = Pattern::new(MAX_BODY)
        .chunk
        .repeat((MAX_BODY / (64 * 1024)) as usize);
    for e in &ex {
        assert!(e.error.is_none(), "{:?}", e.error);
        let (stored, len, sha) = if e.request.path.starts_with("/upload") {
            (&e.request.body, UPLOAD, &upload_sha)
        } else {
            (&e.response.as_ref().unwrap().body, DOWNLOAD, &download_sha)
        };
        assert_eq!(stored.len, len);
        assert!(stored.truncated);
        assert_eq!(&stored.sha256, sha);
        assert_eq!(stored.bytes.len() as u64, MAX_BODY);
        assert_eq!(
            stored.bytes, prefix,
            "the stored prefix is the body's start"
        );
        assert!(e.timing.request_end_us.is_some() && e.timing.response_end_us.is_some());
    }
}

#[tokio::test]
async fn a_streamed_response_that_breaks_off_is_recorded_with_what_arrived() {
    // A raw upstream that promises 100,000 bytes, sends 5,000 and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await
            .unwrap();
        sock.write_all(&[b'x'; 5000]).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let upstream = format!("http://{addr}");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &upstream,
            "--session",
            "broken",
            "--max-body",
            "1k",
        ],
    )
    .await;
    // The caller gets a body that breaks off too (or, when the break comes before
    // graphtape has flushed the head, a connection closed early).
    if let Ok(resp) = client()
        .request(request("GET", &format!("{}/x", gt.api), &[], b""))
        .await
    {
        assert_eq!(resp.status(), 200);
        assert!(resp.into_body().collect().await.is_err());
    }
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "broken");
    let body = &ex[0].response.as_ref().unwrap().body;
    assert_eq!(body.bytes, vec![b'x'; 1024]);
    assert_eq!(body.len, 5000);
    assert_eq!(body.sha256, graphtape::exchange::sha256_hex(&[b'x'; 5000]));
    let error = ex[0].error.as_deref().unwrap();
    assert!(
        error.contains("the upstream's response body did not go through whole")
            && error.contains("after 5000 bytes"),
        "{error}"
    );
    assert_eq!(ex[0].timing.response_end_us, None);
}

#[tokio::test]
async fn a_streamed_request_that_breaks_off_is_recorded_with_what_arrived() {
    let upstream = sink_and_source().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &upstream,
            "--session",
            "cut",
            "--max-body",
            "1k",
        ],
    )
    .await;
    let addr = gt.api.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    sock.write_all(&[b'y'; 5000]).await.unwrap();
    sock.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, sock.read_to_end(&mut answer)).await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "cut");
    assert_eq!(ex.len(), 1);
    let body = &ex[0].request.body;
    assert_eq!(body.bytes, vec![b'y'; 1024]);
    assert_eq!(body.len, 5000);
    assert!(body.truncated);
    let error = ex[0].error.as_deref().unwrap();
    assert!(
        error.contains("the request body did not go through whole")
            && error.contains("after 5000 bytes"),
        "{error}"
    );
    assert_eq!(ex[0].timing.request_end_us, None);
}
