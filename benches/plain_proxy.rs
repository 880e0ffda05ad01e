//! The floor under graphtape's hop: a reverse proxy on graphtape's own HTTP stack that
//! records nothing. `bench/run.sh` runs it as a row beside nginx, so the table shows how
//! much of graphtape's cost per request is the stack (hyper's server and pooled client,
//! one single-threaded runtime per core) and how much is recording.
//!
//! `plain_proxy UPSTREAM-PORT THREADS SECONDS` listens on 127.0.0.1 (an ephemeral port,
//! printed as `listening=ADDR`) and forwards every request to `127.0.0.1:UPSTREAM-PORT`,
//! reading each body whole as graphtape does; it stops by itself after SECONDS.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

type Pool = Client<HttpConnector, Full<Bytes>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [up, threads, seconds] = &args[..] else {
        eprintln!("usage: plain_proxy UPSTREAM-PORT THREADS SECONDS");
        std::process::exit(2);
    };
    let (Ok(up), Ok(threads), Ok(seconds)) = (
        up.parse::<u16>(),
        threads.parse::<usize>(),
        seconds.parse::<u64>(),
    ) else {
        eprintln!("plain_proxy: UPSTREAM-PORT, THREADS and SECONDS are numbers");
        std::process::exit(2);
    };
    let upstream: SocketAddr = ([127, 0, 0, 1], up).into();
    // One single-threaded runtime per worker, each with its own pool, as graphtape's
    // connection workers have.
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a worker runtime");
                tx.send(rt.handle().clone()).expect("main waits");
                rt.block_on(std::future::pending::<()>());
            });
            rx.recv().expect("a worker started")
        })
        .collect();
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the accept runtime");
    main.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening={}", listener.local_addr().expect("an address"));
        let accept = async {
            for i in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let stream = stream.into_std().expect("a std stream");
                workers[i % workers.len()].spawn(serve(stream, upstream));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(seconds), accept).await;
    });
}

async fn serve(stream: std::net::TcpStream, upstream: SocketAddr) {
    thread_local! {
        static POOL: Pool = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    }
    let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
        return;
    };
    let pool = POOL.with(Pool::clone);
    let service = hyper::service::service_fn(move |req| forward(pool.clone(), upstream, req));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn forward(
    pool: Pool,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (mut parts, body) = req.into_parts();
    let bad_gateway = || {
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::BAD_GATEWAY;
        Ok(resp)
    };
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return bad_gateway();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() else {
        return bad_gateway();
    };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let Ok(resp) = pool
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return bad_gateway();
    };
    let (parts, body) = resp.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return bad_gateway();
    };
    Ok(Response::from_parts(parts, Full::new(body)))
}
