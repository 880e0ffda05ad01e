//! The accept loop shared by graphtape's listeners: plain TCP or TLS, HTTP/1.1 and
//! HTTP/2 on the same port, and a graceful stop that lets in-flight exchanges finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::proxy::reply::{self, Body};
use tokio_util::task::TaskTracker;

/// How long a stop waits for in-flight exchanges before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `shutdown` resolves, then stops accepting and
/// waits (up to [`DRAIN_TIMEOUT`]) for open connections to finish their exchanges.
///
/// Each request is handled in a task of its own, tracked until it ends: a client that
/// hangs up mid-exchange does not cancel the handler, so the exchange still completes
/// upstream and is recorded, and a stop waits for it too.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let handlers = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let handlers = handlers.clone();
                let service = service_fn(move |req| {
                    let task = handlers.spawn(handler(req));
                    async move {
                        let response = task.await.unwrap_or_else(|e| {
                            tracing::error!(error = %e, "request handler failed");
                            reply::error(
                                http::StatusCode::INTERNAL_SERVER_ERROR,
                                "internalError",
                                "graphtape failed while handling this request",
                            )
                        });
                        Ok::<_, Infallible>(response)
                    }
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let result = match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let conn = builder.serve_connection(TokioIo::new(stream), service);
                                watcher.watch(conn.into_owned()).await
                            }
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        },
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    handlers.close();
    let drained = async {
        graceful.shutdown().await;
        handlers.wait().await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("some exchanges did not finish within {DRAIN_TIMEOUT:?}");
    }
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
