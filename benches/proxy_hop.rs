//! What the recording proxy adds to an exchange: the same requests sent straight to an
//! upstream and through graphtape (recording to a real SQLite file), all on 127.0.0.1.
//!
//! `cargo bench --bench proxy_hop` prints latency percentiles for both paths and the
//! difference, then throughput at a fixed concurrency. Bounded in count; stops by itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use graphtape::clock::SessionClock;
use graphtape::config::Upstream;
use graphtape::proxy::api::ApiProxy;
use graphtape::proxy::{CallbackRoutes, Forwarder, Relay, StoreErrorPolicy};
use graphtape::redact::Redactor;
use graphtape::store::{self, Access};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const SEQUENTIAL: usize = 3_000;
const CONCURRENT: usize = 10_000;
const IN_FLIGHT: usize = 32;

const BODY: &[u8] = br##"{"callbackUri":"https://bot.contoso.com/api/calls","requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"},"source":{"identity":{"application":{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}}}"##;
const REPLY: &[u8] = br##"{"@odata.type":"#microsoft.graph.call","state":"establishing","id":"57dab8b1-894c-409a-b240-bd8beae78896"}"##;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let (_never, never) = tokio::sync::oneshot::channel::<()>();
    let upstream_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream_listener.local_addr().unwrap();
    tokio::spawn(graphtape::server::serve(
        upstream_listener,
        None,
        |_req| async {
            Response::builder()
                .status(201)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(REPLY)))
                .unwrap()
        },
        async move {
            let _ = never.await;
        },
    ));

    let dir = std::env::temp_dir().join(format!("graphtape-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("bench.db");
    let conn = store::open(&db, Access::Create).unwrap();
    let key = store::redaction_key(&conn).unwrap();
    let clock = Arc::new(SessionClock::start());
    let session = store::create_session(
        &conn,
        "bench",
        clock.wall_start_us(),
        &serde_json::json!({}),
    )
    .unwrap();
    let (recorder, writer) = store::spawn_writer(conn, session, Redactor::new(&key), 16 << 20);
    let health = recorder.health().clone();
    let relay = Relay {
        forwarder: Forwarder::new(
            graphtape::tls::client_config(None).unwrap(),
            Duration::from_secs(30),
        ),
        clock,
        recorder,
        policy: StoreErrorPolicy::Forward,
    };
    let proxy = Arc::new(ApiProxy {
        upstream: Upstream::parse(&format!("http://{upstream_addr}")).unwrap(),
        relay,
        routes: Arc::new(CallbackRoutes::new(&key, None, Vec::new())),
    });
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy_listener.local_addr().unwrap();
    let (stop_proxy, proxy_stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_task = tokio::spawn(graphtape::server::serve(
        proxy_listener,
        None,
        move |req| proxy.clone().handle(req),
        async move {
            let _ = proxy_stopped.await;
        },
    ));

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let direct = format!("http://{upstream_addr}/v1.0/communications/calls");
    let proxied = format!("http://{proxy_addr}/v1.0/communications/calls");

    // Warm both paths (connections, allocator, page cache).
    latencies(&client, &direct, 200).await;
    latencies(&client, &proxied, 200).await;

    println!(
        "proxy_hop: {SEQUENTIAL} sequential POSTs of {} bytes, keep-alive",
        BODY.len()
    );
    let d = latencies(&client, &direct, SEQUENTIAL).await;
    let p = latencies(&client, &proxied, SEQUENTIAL).await;
    print_row("direct", &d);
    print_row("via graphtape", &p);
    println!(
        "  added by the hop: p50 {:.1} us, p99 {:.1} us",
        pct(&p, 50.0) - pct(&d, 50.0),
        pct(&p, 99.0) - pct(&d, 99.0)
    );

    println!("proxy_hop: {CONCURRENT} POSTs, {IN_FLIGHT} in flight");
    let direct_rps = throughput(&client, &direct).await;
    let proxied_rps = throughput(&client, &proxied).await;
    println!("  direct          {direct_rps:>9.0} req/s");
    println!("  via graphtape   {proxied_rps:>9.0} req/s");

    let _ = stop_proxy.send(());
    proxy_task.await.unwrap();
    let ended = tokio::task::spawn_blocking(move || writer.finish(0))
        .await
        .unwrap();
    println!(
        "  recorded {} exchanges, {} unrecorded",
        ended.recorded(),
        health.unrecorded()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn one(client: &Client<HttpConnector, Full<Bytes>>, url: &str) {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench-token")
        .body(Full::new(Bytes::from_static(BODY)))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    assert_eq!(resp.status(), 201);
    resp.into_body().collect().await.unwrap();
}

/// Sorted per-request latencies in microseconds.
async fn latencies(client: &Client<HttpConnector, Full<Bytes>>, url: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        one(client, url).await;
        out.push(start.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

async fn throughput(client: &Client<HttpConnector, Full<Bytes>>, url: &str) -> f64 {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let client = client.clone();
        let url = url.to_string();
        let next = next.clone();
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CONCURRENT {
                one(&client, &url).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    CONCURRENT as f64 / start.elapsed().as_secs_f64()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

fn print_row(label: &str, sorted: &[f64]) {
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    println!(
        "  {label:<15} p50 {:>7.1} us  p90 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  mean {:>7.1} us",
        pct(sorted, 50.0),
        pct(sorted, 90.0),
        pct(sorted, 99.0),
        sorted[sorted.len() - 1],
        mean
    );
}
