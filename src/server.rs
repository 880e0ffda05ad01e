//! The accept loop shared by graphtape's listeners: plain TCP or TLS, HTTP/1.1 and
//! HTTP/2 on the same port, limits against slow and idle clients, and a graceful stop
//! that lets in-flight exchanges finish, then cuts short (and has recorded) the rest.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerLimits;
use crate::proxy::reply;
use crate::workers::Workers;

/// How a listener is stopped, shared by all listeners of one command.
///
/// A stop first lets in-flight exchanges finish (up to the drain deadline); then, or at
/// once on a second signal, it *cuts short* what is left: the [`Arrival`] token that
/// every request carries is cancelled, so reads and forwards still waiting end with a
/// shutdown error and the exchange is recorded with what did arrive.
#[derive(Clone, Debug)]
pub struct Drain {
    timeout: Duration,
    cut: CancellationToken,
    cut_short: Arc<AtomicU64>,
}

impl Drain {
    /// A drain that waits up to `timeout` for in-flight exchanges.
    pub fn new(timeout: Duration) -> Drain {
        Drain {
            timeout,
            cut: CancellationToken::new(),
            cut_short: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Ends the drain now (the second Ctrl-C): whatever is still open is cut short.
    pub fn cut_now(&self) {
        self.cut.cancel();
    }

    /// How many exchanges the stop cut short (recorded with a shutdown error).
    pub fn cut_short(&self) -> u64 {
        self.cut_short.load(Ordering::Relaxed)
    }
}

tokio::task_local! {
    /// The [`Arrival`] of the request whose handler is running: set by [`serve_with`]
    /// around each handler (a task-local rather than a request extension, which would
    /// allocate a map per request).
    static ARRIVAL: Arrival;
}

/// What every request carries from its listener to the proxy: the body read timeout
/// and the stop that may cut the exchange short. Read with [`Arrival::current`].
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Longest wait for the next piece of the request body.
    pub body_timeout: Duration,
    drain: Drain,
    /// The listener's tasks: a stop waits for these too.
    tasks: TaskTracker,
}

impl Arrival {
    /// For requests that did not come through [`serve`] (tests, tools): defaults, and a
    /// stop that never comes.
    pub fn detached() -> Arrival {
        Arrival {
            body_timeout: ServerLimits::default().body_timeout,
            drain: Drain::new(Duration::MAX),
            tasks: TaskTracker::new(),
        }
    }

    /// [`Arrival::cut`] as an owned future, for bodies that poll it.
    pub fn cut_owned(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.drain.cut.clone().cancelled_owned()
    }

    /// Runs `task` (an exchange's last phase) as one of the listener's tasks, which a
    /// stop waits for.
    pub fn spawn<T>(&self, task: T)
    where
        T: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// The arrival of the request being handled, or [`Arrival::detached`] outside a
    /// listener.
    pub fn current() -> Arrival {
        ARRIVAL
            .try_with(Arrival::clone)
            .unwrap_or_else(|_| Arrival::detached())
    }

    /// Resolves when the stop cuts in-flight exchanges short.
    pub async fn cut(&self) {
        self.drain.cut.cancelled().await;
    }

    /// Counts an exchange the stop cut short.
    pub fn count_cut_short(&self) {
        self.drain.cut_short.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a stop cut an exchange short, as recorded in its `error`.
pub const CUT_SHORT: &str = "graphtape shut down before the exchange completed";

/// How long a stop waits for in-flight exchanges by default (`--drain-timeout`).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// [`serve_with`] under the default limits and drain.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + From<Full<Bytes>> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let drain = Drain::new(DRAIN_TIMEOUT);
    serve_with(
        listener,
        tls,
        ServerLimits::default(),
        drain,
        None,
        handler,
        shutdown,
    )
    .await;
}

/// Serves `handler` on `listener` until `shutdown` resolves, then stops accepting and
/// drains: open connections finish their exchanges until the drain deadline or a
/// [`Drain::cut_now`]; what is still open then is cut short, recorded, and counted.
///
/// The handler runs inside the connection's own task (no task per request). If the
/// client goes away mid-exchange and hyper drops the request's future, the future is
/// moved to a task of its own and finishes there, so the exchange still completes
/// upstream and is recorded (the always-run logging phase of a pingora-style proxy).
///
/// With `workers`, each connection runs on one of them (see [`Workers`]); without, on
/// the runtime this is called from.
#[allow(clippy::too_many_arguments)]
pub async fn serve_with<H, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: ServerLimits,
    drain: Drain,
    workers: Option<Arc<Workers>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + From<Full<Bytes>> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slow heads are timed by the connection watchdog, which also knows idle from busy;
    // hyper's own timer would also close keep-alive connections idle for 30 s.
    builder.http1().header_read_timeout(None);
    let graceful = GracefulShutdown::new();
    let handlers = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = AcceptErrors::default();
    let arrival = Arrival {
        body_timeout: limits.body_timeout,
        drain: drain.clone(),
        tasks: handlers.clone(),
    };
    tokio::pin!(shutdown);
    loop {
        // At --max-connections, new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        if slots.available_permits() == 0 {
            tracing::warn!(
                max = limits.max_connections,
                "--max-connections reached: new connections wait"
            );
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                accept_errors.recovered();
                conn
            }
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin, and
                // say so once per burst.
                let pause = accept_errors.failed(&e);
                drop(slot);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(ConnState::new());
        let service = {
            let conn = conn.clone();
            let handler = handler.clone();
            let handlers = handlers.clone();
            let arrival = arrival.clone();
            service_fn(move |req: Request<Incoming>| {
                let busy = conn.request_started(req.version());
                let task = handlers.track_future(ARRIVAL.scope(arrival.clone(), handler(req)));
                Detachable {
                    future: Some(Box::pin(task)),
                    _busy: busy,
                }
            })
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let served = async move |stream: TcpStream| {
            let _slot = slot;
            let io = Watched {
                inner: stream,
                conn: conn.clone(),
            };
            let result = match tls {
                None => {
                    let served = builder.serve_connection(TokioIo::new(io), service);
                    watchdog(&conn, &limits, watcher.watch(served.into_owned())).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_timeout, acceptor.accept(io));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let served = builder.serve_connection(TokioIo::new(stream), service);
                            watchdog(&conn, &limits, watcher.watch(served.into_owned())).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
                Err(why) => tracing::debug!(%peer, why, "connection closed"),
            }
        };
        match &workers {
            None => drop(tokio::spawn(served(stream))),
            Some(workers) => {
                if let Err(e) = workers.spawn_connection(stream, served) {
                    tracing::warn!(%peer, error = %e, "cannot hand a connection to a worker");
                }
            }
        }
    }
    drop(listener);
    handlers.close();
    let drained = async {
        graceful.shutdown().await;
        handlers.wait().await;
    };
    tokio::pin!(drained);
    tokio::select! {
        () = &mut drained => return,
        () = tokio::time::sleep(drain.timeout) => {
            tracing::warn!("some exchanges did not finish within the drain timeout ({:?}): cutting them short", drain.timeout);
        }
        () = drain.cut.cancelled() => {
            tracing::warn!("stopping now: cutting in-flight exchanges short");
        }
    }
    drain.cut_now();
    // Cut short, the handlers record what they have and answer at once.
    if tokio::time::timeout(CUT_GRACE, drained).await.is_err() {
        tracing::warn!("some exchanges were still open {CUT_GRACE:?} after being cut short");
    }
}

/// How long cut-short exchanges have to be recorded before the listener gives up.
const CUT_GRACE: Duration = Duration::from_secs(5);

/// Runs a connection under the listener's limits: closes it when it sits idle between
/// requests for `idle_timeout`, or takes longer than `header_timeout` to send a
/// request head (counted from its first byte, or from the connection's start).
async fn watchdog<C>(
    conn: &ConnState,
    limits: &ServerLimits,
    served: C,
) -> Result<C::Output, &'static str>
where
    C: Future,
{
    tokio::pin!(served);
    loop {
        let deadline = conn.deadline(limits);
        tokio::select! {
            out = &mut served => return Ok(out),
            () = tokio::time::sleep_until(deadline.into()) => {
                if let Some(why) = conn.expired(limits) {
                    return Err(why);
                }
            }
        }
    }
}

/// What the watchdog knows about one connection. Atomics, because the I/O wrapper,
/// the request futures and the watchdog all touch it from the connection's task (and,
/// for HTTP/2, from stream tasks), and none of it needs to be consistent as a whole.
struct ConnState {
    start: Instant,
    /// Last successful read or write, µs since `start`.
    last_io_us: AtomicU64,
    /// First byte read while no request was in flight (a head arriving), or NONE.
    head_from_us: AtomicU64,
    /// When the last request in flight finished (HTTP/2 pings do not count as use).
    idle_from_us: AtomicU64,
    in_flight: AtomicUsize,
    http2: std::sync::atomic::AtomicBool,
}

const NONE: u64 = u64::MAX;

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            start: Instant::now(),
            last_io_us: AtomicU64::new(0),
            // A new connection owes its first request head from the start.
            head_from_us: AtomicU64::new(0),
            idle_from_us: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http2: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(NONE - 1)
    }

    fn request_started(self: &Arc<Self>, version: Version) -> Busy {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_from_us.store(NONE, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn read(&self) {
        let now = self.now_us();
        self.last_io_us.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_from_us
                    .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_io_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// Which limit has run out, if one has.
    fn expired(&self, limits: &ServerLimits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.now_us();
        let head = self.head_from_us.load(Ordering::Relaxed);
        let http2 = self.http2.load(Ordering::Relaxed);
        if head != NONE && !http2 && now.saturating_sub(head) >= micros(limits.header_timeout) {
            return Some("request head not received within --header-timeout");
        }
        let idle_from = if http2 {
            self.idle_from_us.load(Ordering::Relaxed)
        } else {
            self.last_io_us.load(Ordering::Relaxed)
        };
        (now.saturating_sub(idle_from) >= micros(limits.idle_timeout))
            .then_some("idle for --idle-timeout")
    }

    /// The next moment a limit could run out.
    fn deadline(&self, limits: &ServerLimits) -> Instant {
        let idle_from = if self.http2.load(Ordering::Relaxed) {
            self.idle_from_us.load(Ordering::Relaxed)
        } else {
            self.last_io_us.load(Ordering::Relaxed)
        };
        let mut next = idle_from.saturating_add(micros(limits.idle_timeout));
        let head = self.head_from_us.load(Ordering::Relaxed);
        if head != NONE {
            next = next.min(head.saturating_add(micros(limits.header_timeout)));
        }
        // Check again at least every few seconds: a request in flight moves the marks.
        let next = next.max(self.now_us() + 1000);
        let next = next.min(self.now_us() + micros(Duration::from_secs(5)));
        self.start + Duration::from_micros(next)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(NONE - 1)
}

/// Held while a request is in flight on its connection.
struct Busy(Arc<ConnState>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            let now = self.0.now_us();
            self.0.idle_from_us.store(now, Ordering::Relaxed);
            self.0.last_io_us.store(now, Ordering::Relaxed);
        }
    }
}

/// The stream with its reads and writes noted for the watchdog.
struct Watched<S> {
    inner: S,
    conn: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request's future, run inline by its connection. Dropped before it finished (the
/// client went away), it moves to a task of its own and runs to the end there.
struct Detachable<T: Future + Send + 'static> {
    future: Option<Pin<Box<T>>>,
    _busy: Busy,
}

impl<T, B> Future for Detachable<T>
where
    T: Future<Output = Response<B>> + Send + 'static,
    B: From<Full<Bytes>>,
{
    type Output = Result<Response<B>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        // A bug in a handler answers 500 instead of taking the connection down.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(response)) => {
                self.future = None;
                Poll::Ready(Ok(response))
            }
            Err(_) => {
                self.future = None;
                tracing::error!("request handler failed");
                let r = reply::error(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internalError",
                    "graphtape failed while handling this request",
                );
                Poll::Ready(Ok(r.map(B::from)))
            }
        }
    }
}

impl<T: Future + Send + 'static> Drop for Detachable<T> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            // Still tracked (the future carries its tracker token), so a stop waits.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = future.await;
                });
            }
        }
    }
}

/// Accept failures come in bursts (descriptors exhausted): one line when a burst starts,
/// one when accepting works again, and an exponential pause in between. Failures that
/// resume within [`BURST_GAP`] of the last one belong to the same burst (freed
/// descriptors are often taken again by the backlog at once), so they are not logged
/// again.
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    failures: u32,
    last_failure: Option<Instant>,
    recovery_logged: bool,
}

/// Quiet time after which a failure starts a new burst.
const BURST_GAP: Duration = Duration::from_secs(2);

impl AcceptErrors {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.fail_at(Instant::now()) {
            tracing::warn!(error = %e, "accept failed; backing off until it works again");
        }
        accept_backoff(self.in_a_row)
    }

    fn recovered(&mut self) {
        if self.recover() {
            tracing::warn!(failures = self.failures, "accepting again");
        }
    }

    /// Counts a failure at `now`; true when it starts a burst (the line to log).
    fn fail_at(&mut self, now: Instant) -> bool {
        let new_burst = self
            .last_failure
            .is_none_or(|last| now.saturating_duration_since(last) >= BURST_GAP);
        if new_burst {
            self.failures = 0;
            self.recovery_logged = false;
        }
        self.last_failure = Some(now);
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.failures = self.failures.saturating_add(1);
        new_burst
    }

    /// Counts a success; true the first time accepting works in a burst.
    fn recover(&mut self) -> bool {
        let first = self.in_a_row > 0 && !self.recovery_logged;
        self.in_a_row = 0;
        self.recovery_logged |= first;
        first
    }
}

/// 10 ms after the first failure in a row, doubling, at most 1 s.
fn accept_backoff(in_a_row: u32) -> Duration {
    Duration::from_millis(10u64 << in_a_row.saturating_sub(1).min(7)).min(Duration::from_secs(1))
}

/// Binds a listener for `flag` (named in the error), non-blocking for tokio, and
/// returns it with the address it got (port 0 picks one).
pub fn bind(addr: SocketAddr, flag: &str) -> std::io::Result<(std::net::TcpListener, SocketAddr)> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{flag} {addr}: cannot listen: {e}")))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The URL a listener can be reached at, as printed in `listening` lines.
pub fn listen_url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{}", if tls { "https" } else { "http" }, addr)
}

/// One thread per core, the default for `--threads`.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The async runtime a command serves on: `threads` workers (default: one per core).
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads.filter(|n| *n > 0) {
        builder.worker_threads(n);
    }
    builder.enable_all().build()
}

/// SIGINT and SIGTERM, listened to from creation on, so a second signal that comes
/// while the first is being handled is not missed.
pub struct StopSignals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts listening.
    pub fn new() -> std::io::Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignals {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: how graphtape is asked to stop.
pub async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_logged_once_per_burst() {
        let mut errors = AcceptErrors::default();
        let t = Instant::now();
        assert!(errors.fail_at(t), "the first failure starts a burst");
        assert!(!errors.fail_at(t + Duration::from_millis(10)));
        assert!(errors.recover(), "working again is said once");
        // Descriptors taken again at once: the same burst, not a new line.
        assert!(!errors.fail_at(t + Duration::from_millis(50)));
        assert!(!errors.recover());
        assert_eq!(errors.failures, 3);
        // After a quiet spell, a new burst.
        assert!(errors.fail_at(t + Duration::from_millis(50) + BURST_GAP));
        assert_eq!((errors.failures, errors.in_a_row), (1, 1));
        assert!(errors.recover());
    }

    #[test]
    fn accept_backoff_doubles_to_a_second() {
        let pauses: Vec<u64> = (1..=9)
            .map(|n| accept_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(pauses, vec![10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    }

    fn limits() -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            ..ServerLimits::default()
        }
    }

    #[test]
    fn a_head_owes_its_end_within_the_header_timeout() {
        let conn = ConnState::new();
        assert_eq!(conn.expired(&limits()), None);
        // Pretend the head started 31 s ago.
        conn.head_from_us.store(0, Ordering::Relaxed);
        let later = ConnState {
            start: Instant::now() - Duration::from_secs(31),
            ..ConnState::new()
        };
        later
            .last_io_us
            .store(micros(Duration::from_secs(30)), Ordering::Relaxed);
        assert_eq!(
            later.expired(&limits()),
            Some("request head not received within --header-timeout")
        );
    }

    #[test]
    fn busy_connections_never_expire_and_idle_ones_do() {
        let conn = Arc::new(ConnState {
            start: Instant::now() - Duration::from_secs(100),
            ..ConnState::new()
        });
        let busy = conn.request_started(Version::HTTP_11);
        assert_eq!(conn.expired(&limits()), None);
        drop(busy);
        // Just finished: neither the head nor the idle limit has run out.
        assert_eq!(conn.expired(&limits()), None);
        conn.last_io_us
            .store(micros(Duration::from_secs(20)), Ordering::Relaxed);
        assert_eq!(conn.expired(&limits()), Some("idle for --idle-timeout"));
    }
}
