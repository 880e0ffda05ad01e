//! The phases both directions share: common refusals, forwarding, recording, replying.
//!
//! `api` and `callback` only decide where a request goes (and, for the API, how its
//! body is rewritten); everything after that is here, so both directions record and
//! fail the same way.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use tokio::sync::oneshot;

use super::body::{BodyFailure, ProxyBody, TeeEnd};
use super::capture::{detach, finish_request, uri_text, Inbound};
use super::forward::{FailureKind, Forwarder};
use super::headers::strip_hop_by_hop;
use super::reply;
use super::StoreErrorPolicy;
use crate::clock::SessionClock;
use crate::exchange::{Captured, CapturedBody, CapturedResponse, Direction, Target};
use crate::store::Recorder;

/// A request graphtape answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    /// A refusal with a status, a stable code and a message for the caller.
    pub fn new(status: StatusCode, code: &'static str, message: String) -> Refusal {
        Refusal {
            status,
            code,
            message,
        }
    }
}

/// Who answers on the far side, which names the errors the caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Graph (or its stand-in): every failure is a 502, as a gateway's would be.
    Upstream,
    /// The bot's webhook: a timeout is a 504, so Graph's logs tell the two apart.
    Bot,
}

impl Peer {
    fn failure(self, kind: FailureKind) -> (StatusCode, &'static str) {
        let status = match (self, kind) {
            (Peer::Bot, FailureKind::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            (_, FailureKind::Shutdown) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        let code = match (self, kind) {
            (Peer::Upstream, FailureKind::Unreachable) => "upstreamUnreachable",
            (Peer::Upstream, FailureKind::Timeout) => "upstreamTimeout",
            (Peer::Upstream, FailureKind::Reset) => "upstreamReset",
            (Peer::Upstream, FailureKind::Other) => "upstreamError",
            (Peer::Bot, FailureKind::Unreachable) => "botUnreachable",
            (Peer::Bot, FailureKind::Timeout) => "botTimeout",
            (Peer::Bot, FailureKind::Reset) => "botReset",
            (Peer::Bot, FailureKind::Other) => "botError",
            (_, FailureKind::Shutdown) => "shuttingDown",
        };
        (status, code)
    }
}

/// What one direction needs to forward and record.
pub struct Relay {
    pub forwarder: Forwarder,
    pub clock: Arc<SessionClock>,
    pub recorder: Recorder,
    pub policy: StoreErrorPolicy,
    /// Bodies longer than this stream through; only this much of them is kept.
    pub max_body: usize,
}

impl Relay {
    /// Request targets neither listener forwards: `CONNECT` (a tunnel, which would
    /// make graphtape an open proxy) and anything but origin-form, such as
    /// asterisk-form `OPTIONS *`, which names no resource to forward to. With
    /// `one_slash` (notifications, which replay sends again) the path must not start
    /// with `//` either.
    pub fn target_refusal(&self, inbound: &Inbound, one_slash: bool) -> Option<Refusal> {
        let parts = &inbound.parts;
        if parts.method == http::Method::CONNECT {
            return Some(Refusal::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "CONNECT is refused: graphtape is a reverse proxy, not a tunnel".into(),
            ));
        }
        let path = parts.uri.path();
        if !path.starts_with('/') || one_slash && path.starts_with("//") {
            return Some(Refusal::new(
                StatusCode::BAD_REQUEST,
                "badRequest",
                format!(
                    "{} {path}: only origin-form request targets (a path starting with {}) are forwarded",
                    parts.method,
                    if one_slash { "one \"/\"" } else { "\"/\"" }
                ),
            ));
        }
        None
    }

    /// Refusals that do not depend on the direction: a request body that did not arrive
    /// whole is not passed on as if it had, and with `--on-store-error fail` nothing goes
    /// through unrecorded.
    pub fn check(&self, inbound: &Inbound) -> Option<Refusal> {
        match &inbound.body_error {
            Some(BodyFailure::Failed(reason)) => {
                return Some(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "badRequest",
                    format!("the request body did not arrive whole: {reason}"),
                ))
            }
            Some(BodyFailure::Stalled(reason)) => {
                return Some(Refusal::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "requestTimeout",
                    format!("the request body did not arrive whole: {reason} (--body-timeout)"),
                ))
            }
            Some(BodyFailure::Cut(reason)) => {
                return Some(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shuttingDown",
                    reason.clone(),
                ))
            }
            None => {}
        }
        if self.policy == StoreErrorPolicy::Fail {
            // Only while the store is failing: the next successful commit serves again.
            if let Some(error) = self.recorder.health().refusal() {
                return Some(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "recordingFailed",
                    format!(
                        "graphtape's store is failing, refusing traffic (--on-store-error fail): {error}"
                    ),
                ));
            }
        }
        None
    }

    /// Answers with the refusal and records it.
    pub async fn refuse(
        &self,
        inbound: Inbound,
        direction: Direction,
        refusal: Refusal,
    ) -> Response<ProxyBody> {
        tracing::warn!(seq = inbound.seq, message = %refusal.message, "refused");
        let reply = reply::error(refusal.status, refusal.code, &refusal.message);
        if matches!(inbound.body_error, Some(BodyFailure::Cut(_))) {
            inbound.arrival.count_cut_short();
        }
        let streamed = inbound.is_streamed();
        let mut ex = inbound.into_exchange(direction);
        ex.error = Some(match streamed {
            true => format!(
                "{} (the body was not read past --max-body)",
                refusal.message
            ),
            false => refusal.message,
        });
        self.recorder.record(ex).await;
        reply.map(ProxyBody::from)
    }

    /// Forwards `req` (built from `inbound`), records the exchange, and returns the
    /// peer's answer unchanged, or graphtape's error if there was none.
    /// `forwarded_body` is set when the body sent differs from the one received.
    ///
    /// An answer longer than `--max-body` streams to the caller; its exchange is
    /// recorded when it has ended, by a task of the listener's (which a stop waits for).
    pub async fn forward(
        &self,
        inbound: Inbound,
        direction: Direction,
        peer: Peer,
        req: Request<ProxyBody>,
        forwarded_body: Option<Bytes>,
    ) -> Response<ProxyBody> {
        // The record's copy, as text: the forwarded URI shares its path with the read
        // buffer.
        let target = uri_text(req.uri());
        let mut outcome = self
            .forwarder
            .exchange(req, &self.clock, self.max_body, &inbound.arrival)
            .await;
        let arrival = inbound.arrival.clone();
        let seq = inbound.seq;
        tracing::debug!(
            seq,
            direction = direction.as_str(),
            method = %inbound.parts.method,
            path = inbound.parts.uri.path(),
            "forwarded"
        );
        let (mut ex, request_end) = inbound.split(direction);
        ex.timing.response_start_us = outcome.response_start_us;
        ex.timing.response_end_us = outcome.response_end_us;
        ex.target = Some(Target::Uri(target));
        ex.forwarded_body = forwarded_body.map(CapturedBody::whole);
        ex.response = outcome.head.as_ref().map(|head| {
            let (headers, body) = detach(&head.headers, outcome.body.clone());
            CapturedResponse {
                status: head.status,
                headers,
                body: CapturedBody::whole(body),
            }
        });
        let mut cut = false;
        let reply = match (outcome.error.take(), outcome.head.take()) {
            (None, Some(mut head)) => {
                strip_hop_by_hop(&mut head.headers);
                head.version = Version::default();
                match outcome.rest.take() {
                    None => Response::from_parts(head, ProxyBody::Full(Full::new(outcome.body))),
                    Some((tee, response_end)) => {
                        // Streamed: the last phase runs once the body has gone through.
                        let recorder = self.recorder.clone();
                        arrival.clone().spawn(async move {
                            let request_end = wait(request_end).await;
                            let response_end = response_end.await.ok();
                            if finish(&mut ex, request_end, response_end, peer) {
                                arrival.count_cut_short();
                            }
                            recorder.record(ex).await;
                        });
                        return Response::from_parts(head, ProxyBody::Tee(tee));
                    }
                }
            }
            (error, _) => {
                let (kind, message) = match error {
                    Some(e) => (e.kind, e.message),
                    None => (
                        FailureKind::Other,
                        format!(
                            "{} gave no response",
                            ex.target
                                .as_ref()
                                .map(ToString::to_string)
                                .unwrap_or_default()
                        ),
                    ),
                };
                let (status, code) = peer.failure(kind);
                tracing::warn!(seq, %message, "forward failed");
                cut = kind == FailureKind::Shutdown;
                ex.error = Some(message);
                reply::error(status, code, ex.error.as_deref().unwrap_or_default())
                    .map(ProxyBody::from)
            }
        };
        let request_end = wait(request_end).await;
        if finish(&mut ex, request_end, None, peer) || cut {
            arrival.count_cut_short();
        }
        self.recorder.record(ex).await;
        reply
    }
}

async fn wait(end: Option<oneshot::Receiver<TeeEnd>>) -> Option<Option<TeeEnd>> {
    match end {
        Some(rx) => Some(rx.await.ok()),
        None => None,
    }
}

/// Completes a recorded exchange from how its streamed bodies ended. A request body
/// that broke off explains the failure better than what the peer made of it. Returns
/// whether a stop cut a body short.
fn finish(
    ex: &mut Captured,
    request_end: Option<Option<TeeEnd>>,
    response_end: Option<TeeEnd>,
    peer: Peer,
) -> bool {
    let mut cut = false;
    if let Some(end) = request_end {
        if let Some(failure) = finish_request(ex, end) {
            cut |= note_failure(ex, "the request body", &failure);
        }
    }
    if let Some(end) = response_end {
        if let Some(resp) = ex.response.as_mut() {
            let prefix = std::mem::take(&mut resp.body.bytes);
            resp.body = CapturedBody::streamed(prefix, end.len, end.sha256);
        }
        ex.timing.response_end_us = end.end_us;
        if let Some(failure) = end.failure {
            let side = match peer {
                Peer::Upstream => "the upstream's response body",
                Peer::Bot => "the bot's response body",
            };
            cut |= note_failure(ex, side, &failure);
        }
    }
    cut
}

/// Puts a body's failure first in the exchange's error; says whether it was a stop.
fn note_failure(ex: &mut Captured, what: &str, failure: &BodyFailure) -> bool {
    let message = format!("{what} did not go through whole: {}", failure.message());
    ex.error = Some(match ex.error.take() {
        Some(earlier) => format!("{message}; {earlier}"),
        None => message,
    });
    matches!(failure, BodyFailure::Cut(_))
}
