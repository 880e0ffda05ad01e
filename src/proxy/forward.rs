//! Sending a request on to its next hop (Graph, or the bot) and capturing the answer.
//!
//! An answer up to `--max-body` is read whole before anything is returned: the
//! recording needs it, and it lets a peer that fails mid-body be reported as a clean
//! 502 instead of a truncated success. A longer one is returned with its head and
//! prefix, the rest left to stream through to the caller.

use std::time::Duration;

use bytes::Bytes;
use http::response::Parts;
use http::{Request, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;

use super::body::{read_prefix, BodyFailure, Prefix, ProxyBody, ReadLimits, Tee, TeeEnd};
use crate::clock::SessionClock;
use crate::proxy::error_chain;
use crate::server::{Arrival, CUT_SHORT};

/// How a forward failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection (refused, DNS, TLS handshake).
    Unreachable,
    /// No complete answer within the deadline.
    Timeout,
    /// The connection broke off: before the answer, or midway.
    Reset,
    /// graphtape was stopping and cut the exchange short.
    Shutdown,
    /// Anything else the client reported (an answer that is not HTTP, say).
    Other,
}

/// Why a forward did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardError {
    pub kind: FailureKind,
    /// What happened, with the underlying cause.
    pub message: String,
}

/// The peer's answer, as far as it got.
#[derive(Default)]
pub struct Outcome {
    pub head: Option<Parts>,
    /// The whole body, or the first `--max-body` bytes of a streamed one.
    pub body: Bytes,
    /// The rest of a body longer than `--max-body`, and how it will have ended.
    pub rest: Option<(Box<Tee<Incoming>>, oneshot::Receiver<TeeEnd>)>,
    pub response_start_us: Option<i64>,
    pub response_end_us: Option<i64>,
    pub error: Option<ForwardError>,
}

/// A pooled HTTP/1.1 + HTTP/2 client over plain TCP or rustls, with a deadline per
/// exchange.
///
/// One pool per connection worker (see [`crate::workers`]): an upstream connection is
/// then driven by the thread whose requests use it.
#[derive(Clone)]
pub struct Forwarder {
    clients: std::sync::Arc<[Client<HttpsConnector<HttpConnector>, ProxyBody>]>,
    timeout: Duration,
}

impl Forwarder {
    /// A client trusting the roots in `tls`; `timeout` bounds each whole exchange.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Forwarder {
        Forwarder::per_worker(tls, timeout, 1)
    }

    /// [`Forwarder::new`] with a pool for each of `workers` connection workers.
    pub fn per_worker(tls: rustls::ClientConfig, timeout: Duration, workers: usize) -> Forwarder {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let clients = (0..workers.max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector.clone())
            })
            .collect();
        Forwarder { clients, timeout }
    }

    /// The pool of the worker this runs on (the first one when not on a worker).
    fn client(&self) -> &Client<HttpsConnector<HttpConnector>, ProxyBody> {
        let worker = crate::workers::current().unwrap_or(0);
        &self.clients[worker % self.clients.len()]
    }

    /// Sends `req` and reads the full answer, timing its head and end on `clock`.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        clock: &std::sync::Arc<SessionClock>,
    ) -> Outcome {
        self.exchange(
            req.map(ProxyBody::Full),
            clock,
            usize::MAX,
            &Arrival::detached(),
        )
        .await
    }

    /// Sends `req` and reads the answer up to `max_body` bytes (the rest is left to
    /// stream), timing its head and end on `clock`. The deadline covers the head and
    /// the buffered part; a streamed rest may pause at most that long between pieces.
    /// A stop (`arrival`) cuts it short.
    pub async fn exchange(
        &self,
        req: Request<ProxyBody>,
        clock: &std::sync::Arc<SessionClock>,
        max_body: usize,
        arrival: &Arrival,
    ) -> Outcome {
        let uri = req.uri().clone();
        let mut out = Outcome::default();
        let exchange = async {
            let resp = self
                .client()
                .request(req)
                .await
                .map_err(|e| request_error(&uri, &e))?;
            out.response_start_us = Some(clock.now_us());
            let (parts, body) = resp.into_parts();
            out.head = Some(parts);
            let limits = ReadLimits {
                max: max_body,
                stall: self.timeout,
                arrival,
                clock,
            };
            match read_prefix(body, limits).await {
                Prefix::Whole(bytes) => {
                    out.body = bytes;
                    out.response_end_us = Some(clock.now_us());
                    Ok(())
                }
                Prefix::Over { kept, tee, end } => {
                    out.body = kept;
                    out.rest = Some((tee, end));
                    Ok(())
                }
                Prefix::Broken(bytes, failure) => {
                    out.body = bytes;
                    Err(body_error(&uri, &failure))
                }
            }
        };
        let result = tokio::select! {
            result = tokio::time::timeout(self.timeout, exchange) => result,
            () = arrival.cut() => Ok(Err(ForwardError {
                kind: FailureKind::Shutdown,
                message: format!("{CUT_SHORT} (waiting for {})", origin(&uri)),
            })),
        };
        out.error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(ForwardError {
                kind: FailureKind::Timeout,
                message: format!(
                    "{} did not answer within {}s",
                    origin(&uri),
                    self.timeout.as_secs_f64()
                ),
            }),
        };
        out
    }
}

/// `scheme://authority`, for messages (built only when there is an error to report).
fn origin(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    )
}

/// A response body that failed before it passed `--max-body`.
pub fn body_error(uri: &Uri, failure: &BodyFailure) -> ForwardError {
    let kind = match failure {
        BodyFailure::Failed(_) => FailureKind::Reset,
        BodyFailure::Stalled(_) => FailureKind::Timeout,
        BodyFailure::Cut(_) => FailureKind::Shutdown,
    };
    ForwardError {
        kind,
        message: format!("{} failed mid-response: {}", origin(uri), failure.message()),
    }
}

fn request_error(uri: &Uri, e: &hyper_util::client::legacy::Error) -> ForwardError {
    let kind = if e.is_connect() {
        FailureKind::Unreachable
    } else if is_reset(e) {
        FailureKind::Reset
    } else {
        FailureKind::Other
    };
    ForwardError {
        kind,
        message: format!("{}: {}", origin(uri), error_chain(e)),
    }
}

/// Whether the connection broke off (closed or reset before a whole answer head), as
/// opposed to the peer answering something that is not HTTP.
fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        source = err.source();
    }
    false
}
