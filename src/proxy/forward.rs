//! Sending a request on to its next hop (Graph, or the bot) and capturing the answer.
//!
//! The whole answer is read before anything is returned: the recording needs it, and it
//! lets a peer that fails mid-body be reported as a clean 502 instead of a truncated
//! success.

use std::time::Duration;

use bytes::Bytes;
use http::response::Parts;
use http::Request;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::clock::SessionClock;
use crate::proxy::capture::read_body;
use crate::proxy::error_chain;

/// How a forward failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection (refused, DNS, TLS handshake).
    Unreachable,
    /// No complete answer within the deadline.
    Timeout,
    /// The answer broke off midway.
    Reset,
    /// Anything else the client reported.
    Other,
}

impl FailureKind {
    /// The suffix of the error code in graphtape's error body (`upstreamTimeout`).
    pub fn suffix(self) -> &'static str {
        match self {
            FailureKind::Unreachable => "Unreachable",
            FailureKind::Timeout => "Timeout",
            FailureKind::Reset => "Reset",
            FailureKind::Other => "Error",
        }
    }
}

/// Why a forward did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardError {
    pub kind: FailureKind,
    /// What happened, with the underlying cause.
    pub message: String,
}

/// The peer's answer, as far as it got.
#[derive(Debug, Default)]
pub struct Outcome {
    pub head: Option<Parts>,
    pub body: Bytes,
    pub response_start_us: Option<i64>,
    pub response_end_us: Option<i64>,
    pub error: Option<ForwardError>,
}

/// A pooled HTTP/1.1 + HTTP/2 client over plain TCP or rustls, with a deadline per
/// exchange.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Forwarder {
    /// A client trusting the roots in `tls`; `timeout` bounds each whole exchange.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Forwarder {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Forwarder { client, timeout }
    }

    /// Sends `req` and reads the full answer, timing its head and end on `clock`.
    pub async fn send(&self, req: Request<Full<Bytes>>, clock: &SessionClock) -> Outcome {
        let target = format!(
            "{}://{}",
            req.uri().scheme_str().unwrap_or("http"),
            req.uri().authority().map(|a| a.as_str()).unwrap_or("")
        );
        let mut out = Outcome::default();
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| request_error(&target, &e))?;
            out.response_start_us = Some(clock.now_us());
            let (parts, body) = resp.into_parts();
            out.head = Some(parts);
            let (bytes, failure) = read_body(body).await;
            out.body = bytes;
            match failure {
                None => {
                    out.response_end_us = Some(clock.now_us());
                    Ok(())
                }
                Some(reason) => Err(ForwardError {
                    kind: FailureKind::Reset,
                    message: format!("{target} failed mid-response: {reason}"),
                }),
            }
        };
        let result = tokio::time::timeout(self.timeout, exchange).await;
        out.error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(ForwardError {
                kind: FailureKind::Timeout,
                message: format!(
                    "{target} did not answer within {}s",
                    self.timeout.as_secs_f64()
                ),
            }),
        };
        out
    }
}

fn request_error(target: &str, e: &hyper_util::client::legacy::Error) -> ForwardError {
    let kind = if e.is_connect() {
        FailureKind::Unreachable
    } else {
        FailureKind::Other
    };
    ForwardError {
        kind,
        message: format!("{target}: {}", error_chain(e)),
    }
}
