//! What graphtape adds to an exchange, in both directions: the same requests sent
//! straight to a peer and through graphtape (recording to a real SQLite file), all on
//! 127.0.0.1.
//!
//! `cargo bench --bench proxy_hop` prints latency percentiles for both paths and the
//! difference, then throughput at a fixed concurrency: first bot → Graph (API), then
//! Graph → bot (notifications). Bounded in count; stops by itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use graphtape::clock::SessionClock;
use graphtape::config::Upstream;
use graphtape::proxy::api::ApiProxy;
use graphtape::proxy::callback::CallbackProxy;
use graphtape::proxy::reply::Body;
use graphtape::proxy::{CallbackRoutes, Forwarder, Relay, StoreErrorPolicy};
use graphtape::redact::Redactor;
use graphtape::store::{self, Access, Recorder};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const SEQUENTIAL: usize = 3_000;
const CONCURRENT: usize = 10_000;
const IN_FLIGHT: usize = 32;

const CREATE_CALL: &[u8] = br##"{"callbackUri":"https://bot.contoso.com/api/calls","requestedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"},"source":{"identity":{"application":{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}}}"##;
const CALL_CREATED: &[u8] = br##"{"@odata.type":"#microsoft.graph.call","state":"establishing","id":"57dab8b1-894c-409a-b240-bd8beae78896"}"##;
const NOTIFICATION: &[u8] = br##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"updated","resource":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896","resourceUrl":"/communications/calls/57DAB8B1894C409AB240BD8BEAE78896","resourceData":{"@odata.type":"#microsoft.graph.call","state":"established"}}]}"##;

type BenchClient = Client<HttpConnector, Full<Bytes>>;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let (_never, never) = tokio::sync::watch::channel(());
    let upstream = spawn_server(never.clone(), |_req| async { canned(201, CALL_CREATED) }).await;
    let bot = spawn_server(never.clone(), |_req| async { canned(202, b"") }).await;

    let dir = std::env::temp_dir().join(format!("graphtape-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conn = store::open(&dir.join("bench.db"), Access::Create).unwrap();
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
    let routes = Arc::new(CallbackRoutes::new(&key, None, Vec::new()));
    let relay = |recorder: Recorder| Relay {
        forwarder: Forwarder::new(
            graphtape::tls::client_config(None).unwrap(),
            Duration::from_secs(30),
        ),
        clock: clock.clone(),
        recorder,
        policy: StoreErrorPolicy::Forward,
        max_body: 16 << 20,
    };
    let api = Arc::new(ApiProxy {
        upstream: Upstream::parse(&format!("http://{upstream}")).unwrap(),
        relay: relay(recorder.clone()),
        routes: routes.clone(),
    });
    let callback = Arc::new(CallbackProxy {
        bot: Some(Upstream::parse(&format!("http://{bot}")).unwrap()),
        relay: relay(recorder),
        routes,
    });
    let (stop, stopped) = tokio::sync::watch::channel(());
    let api_addr = spawn_server(stopped.clone(), move |req| api.clone().handle(req)).await;
    let callback_addr = spawn_server(stopped, move |req| callback.clone().handle(req)).await;

    let client: BenchClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    compare(
        &client,
        "bot -> Graph (API call)",
        &format!("http://{upstream}/v1.0/communications/calls"),
        &format!("http://{api_addr}/v1.0/communications/calls"),
        CREATE_CALL,
    )
    .await;
    compare(
        &client,
        "Graph -> bot (notification)",
        &format!("http://{bot}/api/calls"),
        &format!("http://{callback_addr}/api/calls"),
        NOTIFICATION,
    )
    .await;

    drop(stop);
    let ended = tokio::task::spawn_blocking(move || writer.finish(0))
        .await
        .unwrap();
    println!(
        "recorded {} exchanges, {} unrecorded",
        ended.recorded(),
        health.unrecorded()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn compare(
    client: &BenchClient,
    label: &str,
    direct: &str,
    proxied: &str,
    body: &'static [u8],
) {
    // Warm both paths (connections, allocator, page cache).
    latencies(client, direct, body, 200).await;
    latencies(client, proxied, body, 200).await;
    println!(
        "{label}: {SEQUENTIAL} sequential POSTs of {} bytes, keep-alive",
        body.len()
    );
    let d = latencies(client, direct, body, SEQUENTIAL).await;
    let p = latencies(client, proxied, body, SEQUENTIAL).await;
    print_row("direct", &d);
    print_row("via graphtape", &p);
    println!(
        "  added by the hop: p50 {:.1} us, p99 {:.1} us",
        pct(&p, 50.0) - pct(&d, 50.0),
        pct(&p, 99.0) - pct(&d, 99.0)
    );
    let direct_rps = throughput(client, direct, body).await;
    let proxied_rps = throughput(client, proxied, body).await;
    println!("  {CONCURRENT} POSTs, {IN_FLIGHT} in flight: direct {direct_rps:.0} req/s, via graphtape {proxied_rps:.0} req/s");
}

fn canned(status: u16, body: &'static [u8]) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

async fn spawn_server<H, F, B>(stop: tokio::sync::watch::Receiver<()>, handler: H) -> SocketAddr
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + From<Full<Bytes>> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(graphtape::server::serve(
        listener,
        None,
        handler,
        async move {
            let mut stop = stop;
            while stop.changed().await.is_ok() {}
        },
    ));
    addr
}

async fn one(client: &BenchClient, url: &str, body: &'static [u8]) {
    let req = Request::post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench-token")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    let resp = client.request(req).await.expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.into_body().collect().await.unwrap();
}

/// Sorted per-request latencies in microseconds.
async fn latencies(client: &BenchClient, url: &str, body: &'static [u8], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        one(client, url, body).await;
        out.push(start.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

async fn throughput(client: &BenchClient, url: &str, body: &'static [u8]) -> f64 {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let client = client.clone();
        let url = url.to_string();
        let next = next.clone();
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < CONCURRENT {
                one(&client, &url, body).await;
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
