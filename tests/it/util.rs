//! Test harness: the graphtape binary as a child process, fake peers on 127.0.0.1:0,
//! and HTTP clients. Everything talks real HTTP over loopback.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// Upper bound for anything a test waits on, so a broken build fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running `graphtape record`.
pub struct Graphtape {
    child: Child,
    pub api: String,
    /// The callback listener's URL, when `--callback-listen` was given.
    pub callback: Option<String>,
    /// The self-signed certificate's PEM path, when `--tls-self-signed` was given.
    pub cert: Option<std::path::PathBuf>,
    /// The inspector's URL, when `--ui` was given.
    pub ui: Option<String>,
    /// Everything written to stderr so far; the sender side closes at EOF.
    stderr: tokio::sync::watch::Receiver<(String, bool)>,
    /// Stdout after the listening lines, and whether it has closed.
    stdout: tokio::sync::watch::Receiver<(String, bool)>,
}

/// How a stopped graphtape ended.
pub struct Stopped {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Graphtape {
    /// Starts `graphtape record` with `args` plus `--db` and an ephemeral API port, and
    /// waits for its `listening api=` line.
    pub async fn record(db: &Path, args: &[&str]) -> Graphtape {
        Self::record_with(db, args, |_| {}).await
    }

    /// [`Graphtape::record`], with the command adjusted first (environment, limits).
    pub async fn record_with(
        db: &Path,
        args: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Graphtape {
        let mut command = Command::new(env!("CARGO_BIN_EXE_graphtape"));
        command
            .arg("record")
            .args(["--api-listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(args);
        adjust(&mut command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning graphtape");
        let (err_tx, stderr) = tokio::sync::watch::channel((String::new(), false));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                err_tx.send_modify(|(text, _)| {
                    text.push_str(&line);
                    text.push('\n');
                });
            }
            err_tx.send_modify(|(_, eof)| *eof = true);
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wants_callback = args.contains(&"--callback-listen");
        let wants_ui = args.contains(&"--ui");
        let (mut api, mut callback, mut cert, mut ui) = (None, None, None, None);
        tokio::time::timeout(DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("listening api=") {
                    api = Some(url.to_string());
                } else if let Some(url) = line.strip_prefix("listening callback=") {
                    callback = Some(url.to_string());
                } else if let Some(path) = line.strip_prefix("tls cert=") {
                    cert = Some(std::path::PathBuf::from(path));
                } else if let Some(url) = line.strip_prefix("listening ui=") {
                    ui = Some(url.to_string());
                }
                if api.is_some()
                    && (callback.is_some() || !wants_callback)
                    && (ui.is_some() || !wants_ui)
                {
                    return;
                }
            }
            panic!("graphtape exited before listening");
        })
        .await
        .expect("graphtape did not print its listening lines");
        let api = api.unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        let (out_tx, stdout) = tokio::sync::watch::channel((String::new(), false));
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                out_tx.send_modify(|(text, _)| {
                    text.push_str(&line);
                    text.push('\n');
                });
            }
            out_tx.send_modify(|(_, eof)| *eof = true);
        });
        Graphtape {
            child,
            api,
            callback,
            cert,
            ui,
            stderr,
            stdout,
        }
    }

    /// Waits until graphtape's stdout (after its listening lines) has a line equal to
    /// `line` (an event, not a delay).
    pub async fn wait_stdout_line(&mut self, line: &str) {
        let found = tokio::time::timeout(
            DEADLINE,
            self.stdout
                .wait_for(|(text, eof)| *eof || text.lines().any(|l| l == line)),
        )
        .await
        .expect("timed out waiting for stdout")
        .map(|v| v.0.lines().any(|l| l == line))
        .unwrap_or(false);
        assert!(
            found,
            "stdout never said {line:?}: {}",
            self.stdout.borrow().0
        );
    }

    /// The child's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("graphtape still running")
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id().expect("graphtape still running") as i32;
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits until graphtape's stderr contains `needle` (an event, not a delay).
    pub async fn wait_stderr(&mut self, needle: &str) {
        let found = tokio::time::timeout(
            DEADLINE,
            self.stderr
                .wait_for(|(text, eof)| *eof || text.contains(needle)),
        )
        .await
        .expect("timed out waiting for stderr")
        .map(|v| v.0.contains(needle))
        .unwrap_or(false);
        assert!(
            found,
            "stderr never said {needle:?}: {}",
            self.stderr.borrow().0
        );
    }

    /// What graphtape has written to stderr so far.
    pub fn stderr_now(&self) -> String {
        self.stderr.borrow().0.clone()
    }

    /// Sends `signal` and waits for the process to exit and its stderr to close.
    pub async fn stop_with(mut self, signal: i32) -> Stopped {
        self.signal(signal);
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("graphtape did not stop")
            .unwrap();
        let stderr = tokio::time::timeout(DEADLINE, self.stderr.wait_for(|(_, eof)| *eof))
            .await
            .expect("stderr did not close")
            .map(|v| v.0.clone())
            .unwrap_or_default();
        Stopped { status, stderr }
    }

    /// SIGTERM, then wait.
    pub async fn stop(self) -> Stopped {
        self.stop_with(libc::SIGTERM).await
    }
}
/// `graphtape record` into `g.db` in a fresh temporary folder, forwarding to `graph`:
/// the set-up most recording tests share.
pub struct Setup {
    pub graph: FakePeer,
    pub db: std::path::PathBuf,
    pub gt: Graphtape,
    /// Keeps the database's folder alive for the test.
    pub _dir: tempfile::TempDir,
}

impl Setup {
    /// Records session `session` with no other flags, `graph` started from `handler`.
    pub async fn start(handler: Handler, session: &str) -> Setup {
        Setup::record(FakePeer::start(handler).await, session, &[]).await
    }

    /// Records session `session` forwarding to `graph`, with `extra` flags.
    pub async fn record(graph: FakePeer, session: &str, extra: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        let mut args = vec!["--upstream", &graph.url, "--session", session];
        args.extend_from_slice(extra);
        let gt = Graphtape::record(&db, &args).await;
        Setup {
            graph,
            db,
            gt,
            _dir: dir,
        }
    }
}

/// Runs a graphtape subcommand to completion.
///
/// Bounded: a command that should exit but keeps running (a `record` that accepted a
/// database it should have refused, say) is killed after two minutes and fails the test
/// by name instead of hanging the suite.
pub fn graphtape(args: &[&str]) -> std::process::Output {
    const LIMIT: Duration = Duration::from_secs(120);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running graphtape");
    let pid = child.id() as libc::pid_t;
    let (exited, exit) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let overdue = exit.recv_timeout(LIMIT).is_err();
        if overdue {
            // SAFETY: kill(2) on our own child: wait_with_output has not returned, so it
            // is not reaped (short of exiting at the deadline's very instant).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        overdue
    });
    let out = child.wait_with_output().expect("waiting for graphtape");
    let _ = exited.send(());
    let overdue = watchdog.join().expect("the watchdog");
    assert!(
        !overdue,
        "graphtape {args:?} did not exit within {LIMIT:?} and was killed; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A request as a fake peer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A fake HTTP peer (Graph, or a bot) on 127.0.0.1:0 that logs what it receives.
pub struct FakePeer {
    pub addr: SocketAddr,
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    count: tokio::sync::watch::Receiver<usize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A handler for a fake peer: gets the request (body read) and answers.
pub type Handler = Arc<dyn Fn(Seen) -> BoxFuture + Send + Sync>;
pub type BoxFuture = std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    Arc::new(move |seen| Box::pin(f(seen)))
}

impl FakePeer {
    /// Plain HTTP.
    pub async fn start(handler: Handler) -> FakePeer {
        Self::start_inner(handler, None, "127.0.0.1:0").await
    }

    /// Plain HTTP on a given address (a bot whose URL is fixed up front).
    pub async fn start_at(handler: Handler, addr: &str) -> FakePeer {
        Self::start_inner(handler, None, addr).await
    }

    /// HTTPS with the given server config.
    pub async fn start_tls(handler: Handler, tls: rustls::ServerConfig) -> FakePeer {
        Self::start_inner(
            handler,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
            "127.0.0.1:0",
        )
        .await
    }

    async fn start_inner(
        handler: Handler,
        tls: Option<tokio_rustls::TlsAcceptor>,
        bind: &str,
    ) -> FakePeer {
        let listener = bind_listener(bind).await;
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = tokio::sync::watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => r.unwrap(),
                    _ = &mut stop_rx => return,
                };
                let handler = handler.clone();
                let log = log.clone();
                let tls = tls.clone();
                let count_tx = count_tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let handler = handler.clone();
                        let log = log.clone();
                        let count_tx = count_tx.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            let n = {
                                let mut log = log.lock().unwrap();
                                log.push(seen.clone());
                                log.len()
                            };
                            count_tx.send_replace(n);
                            Ok::<_, Infallible>(handler(seen).await)
                        }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        FakePeer {
            addr,
            url: format!("{scheme}://{addr}"),
            seen,
            count,
            _stop: stop_tx,
        }
    }

    /// Waits until at least `n` requests have arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let mut count = self.count.clone();
        tokio::time::timeout(DEADLINE, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("expected {n} requests, got {}", self.seen().len()))
            .unwrap();
        self.seen()
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A response with a status, headers and body.
pub fn respond(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

/// A self-signed certificate for 127.0.0.1 and localhost: (server config, cert PEM).
pub fn self_signed() -> (rustls::ServerConfig, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let mut config = config;
    // Offer HTTP/2 like Graph's front doors do.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, pem)
}

/// An HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/2 (prior knowledge, cleartext) client.
pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(HttpConnector::new())
}

/// Sends a request and reads the whole response.
pub async fn send<C>(
    client: &Client<C, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let resp = tokio::time::timeout(DEADLINE, client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts, body)
}

/// Builds a request.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

/// The exchanges of a session, read through graphtape's own store API.
pub fn exchanges(
    db: &Path,
    session: &str,
) -> Vec<graphtape::exchange::Exchange<graphtape::exchange::StoredBody>> {
    let conn = graphtape::store::open(db, graphtape::store::Access::Existing).unwrap();
    let info = graphtape::store::find_session(&conn, session).unwrap();
    graphtape::store::load_exchanges(&conn, info.id).unwrap()
}

/// True if `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A port that was free a moment ago (for flags that must name the port up front,
/// like `--public-url`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP and HTTPS client trusting only the PEM certificates in `ca`, offering
/// HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_client(
    ca: Option<&Path>,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca
        .into_iter()
        .flat_map(|ca| rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap())
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// A peer that reports each request's arrival and answers only when released: for
/// tests about what happens while an exchange is in flight.
pub struct Gated {
    pub peer: FakePeer,
    /// One message per request that arrived.
    pub arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// `notify_one` lets one held request answer with the body.
    pub release: Arc<tokio::sync::Notify>,
}

impl Gated {
    pub async fn start(body: &'static [u8]) -> Gated {
        let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let peer = FakePeer::start(handler(move |_| {
            let arrived = arrived_tx.clone();
            let gate = gate.clone();
            async move {
                let _ = arrived.send(());
                gate.notified().await;
                respond(200, &[], body)
            }
        }))
        .await;
        Gated {
            peer,
            arrived,
            release,
        }
    }
}

/// The invite of a session and the notification that completed its operation.
pub fn invite_and_completion(
    ex: &[graphtape::exchange::Exchange<graphtape::exchange::StoredBody>],
) -> (
    &graphtape::exchange::Exchange<graphtape::exchange::StoredBody>,
    &graphtape::exchange::Exchange<graphtape::exchange::StoredBody>,
) {
    let invite = ex
        .iter()
        .find(|e| e.request.path.ends_with("/invite"))
        .expect("an invite");
    let completed = ex
        .iter()
        .find(|e| String::from_utf8_lossy(&e.request.body.bytes).contains("\"completed\""))
        .expect("an operation-completed notification");
    (invite, completed)
}

/// Binds `addr`. A fixed port (the explore bot's, bound afresh for every run) that is
/// briefly in use is retried for up to two seconds, then the bind fails with the error.
/// In a full-suite run the explore bot's bind was once refused with the previous run's
/// bot already gone; the holder was not found, and nothing offers an event to wait on.
async fn bind_listener(addr: &str) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && !addr.ends_with(":0")
                    && tokio::time::Instant::now() < deadline =>
            {
                eprintln!("{addr} is in use ({e}); trying again");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}
