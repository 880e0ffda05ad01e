//! The phases both directions share: common refusals, forwarding, recording, replying.
//!
//! `api` and `callback` only decide where a request goes (and, for the API, how its
//! body is rewritten); everything after that is here, so both directions record and
//! fail the same way.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;

use super::capture::Inbound;
use super::forward::{FailureKind, Forwarder};
use super::headers::strip_hop_by_hop;
use super::reply::{self, Body};
use super::StoreErrorPolicy;
use crate::clock::SessionClock;
use crate::exchange::{CapturedBody, CapturedResponse, Direction, Target};
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
}

impl Relay {
    /// Refusals that do not depend on the direction: a request body that did not arrive
    /// whole is not passed on as if it had, and with `--on-store-error fail` nothing goes
    /// through unrecorded.
    pub fn check(&self, inbound: &Inbound) -> Option<Refusal> {
        if let Some(reason) = &inbound.body_error {
            return Some(Refusal::new(
                StatusCode::BAD_REQUEST,
                "badRequest",
                format!("the request body did not arrive whole: {reason}"),
            ));
        }
        let health = self.recorder.health();
        if self.policy == StoreErrorPolicy::Fail && health.has_failed() {
            return Some(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "recordingFailed",
                format!(
                    "graphtape's store failed, refusing traffic (--on-store-error fail): {}",
                    health.last_error().unwrap_or_default()
                ),
            ));
        }
        None
    }

    /// Answers with the refusal and records it.
    pub async fn refuse(
        &self,
        inbound: Inbound,
        direction: Direction,
        refusal: Refusal,
    ) -> Response<Body> {
        tracing::warn!(seq = inbound.seq, message = %refusal.message, "refused");
        let reply = reply::error(refusal.status, refusal.code, &refusal.message);
        let mut ex = inbound.into_exchange(direction);
        ex.error = Some(refusal.message);
        self.recorder.record(ex).await;
        reply
    }

    /// Forwards `req` (built from `inbound`), records the exchange, and returns the
    /// peer's answer unchanged, or graphtape's error if there was none.
    /// `forwarded_body` is set when the body sent differs from the one received.
    pub async fn forward(
        &self,
        inbound: Inbound,
        direction: Direction,
        peer: Peer,
        req: Request<Full<Bytes>>,
        forwarded_body: Option<Bytes>,
    ) -> Response<Body> {
        let target = req.uri().clone();
        let outcome = self.forwarder.send(req, &self.clock).await;
        let recorded_response = outcome.head.as_ref().map(|head| CapturedResponse {
            status: head.status,
            headers: head.headers.clone(),
            body: CapturedBody::whole(outcome.body.clone()),
        });
        let (reply, error) = match (outcome.error, outcome.head) {
            (None, Some(mut head)) => {
                strip_hop_by_hop(&mut head.headers);
                head.version = Version::default();
                (Response::from_parts(head, Full::new(outcome.body)), None)
            }
            (error, _) => {
                let (kind, message) = match error {
                    Some(e) => (e.kind, e.message),
                    None => (FailureKind::Other, format!("{target} gave no response")),
                };
                let (status, code) = peer.failure(kind);
                tracing::warn!(seq = inbound.seq, %message, "forward failed");
                (reply::error(status, code, &message), Some(message))
            }
        };
        tracing::debug!(
            seq = inbound.seq,
            direction = direction.as_str(),
            method = %inbound.parts.method,
            path = inbound.parts.uri.path(),
            status = reply.status().as_u16(),
            "exchange"
        );
        let mut ex = inbound.into_exchange(direction);
        ex.timing.response_start_us = outcome.response_start_us;
        ex.timing.response_end_us = outcome.response_end_us;
        ex.target = Some(Target::Uri(target));
        ex.forwarded_body = forwarded_body.map(CapturedBody::whole);
        ex.response = recorded_response;
        ex.error = error;
        self.recorder.record(ex).await;
        reply
    }
}
