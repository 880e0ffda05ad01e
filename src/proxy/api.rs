//! The API direction: the bot calls graphtape as if it were Graph, graphtape calls the
//! configured upstream and records both sides.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;

use super::capture::Inbound;
use super::forward::Forwarder;
use super::headers::{for_next_hop, strip_hop_by_hop, to_record};
use super::reply::{self, Body};
use super::StoreErrorPolicy;
use crate::clock::SessionClock;
use crate::config::Upstream;
use crate::exchange::{Direction, ResponseRecord};
use crate::store::Recorder;

/// Handles the bot's requests to Graph.
pub struct ApiProxy {
    pub upstream: Upstream,
    pub forwarder: Forwarder,
    pub clock: Arc<SessionClock>,
    pub recorder: Recorder,
    pub policy: StoreErrorPolicy,
}

impl ApiProxy {
    /// One request, start to finish. Never fails: every problem becomes a response the
    /// bot can read and a recorded error.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let inbound = Inbound::receive(&self.clock, req).await;

        if let Some((status, code, message)) = self.refusal(&inbound) {
            tracing::warn!(seq = inbound.seq, %message, "refused");
            let reply = reply::error(status, code, &message);
            let mut ex = inbound.into_exchange(Direction::Api);
            ex.error = Some(message);
            self.recorder.record(ex).await;
            return reply;
        }

        let upstream_req = self.upstream_request(&inbound);
        let target = upstream_req.uri().to_string();
        let outcome = self.forwarder.send(upstream_req, &self.clock).await;
        let recorded_response = outcome.head.as_ref().map(|head| ResponseRecord {
            status: head.status.as_u16(),
            headers: to_record(&head.headers),
            body: outcome.body.clone(),
        });
        let (reply, error) = match (outcome.error, outcome.head) {
            (None, Some(mut head)) => {
                strip_hop_by_hop(&mut head.headers);
                head.version = Version::default();
                (Response::from_parts(head, Full::new(outcome.body)), None)
            }
            (error, _) => {
                let message = error.as_ref().map_or_else(
                    || "upstream gave no response".to_string(),
                    |e| e.message.clone(),
                );
                let code = error.as_ref().map_or("upstreamError", |e| e.code);
                tracing::warn!(seq = inbound.seq, %message, "upstream failed");
                (
                    reply::error(StatusCode::BAD_GATEWAY, code, &message),
                    Some(message),
                )
            }
        };
        tracing::debug!(
            seq = inbound.seq,
            method = %inbound.parts.method,
            path = inbound.parts.uri.path(),
            status = reply.status().as_u16(),
            "api"
        );
        let mut ex = inbound.into_exchange(Direction::Api);
        ex.timing.response_start_us = outcome.response_start_us;
        ex.timing.response_end_us = outcome.response_end_us;
        ex.target = Some(target);
        ex.response = recorded_response;
        ex.error = error;
        self.recorder.record(ex).await;
        reply
    }

    /// Requests graphtape will not forward: it is a reverse proxy for one upstream, not
    /// an open proxy; a partial body is not passed on as if whole; and with
    /// `--on-store-error fail` nothing goes through unrecorded.
    fn refusal(&self, inbound: &Inbound) -> Option<(StatusCode, &'static str, String)> {
        let parts = &inbound.parts;
        if parts.method == http::Method::CONNECT {
            return Some((
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "graphtape only forwards to {}; CONNECT is refused",
                    self.upstream
                ),
            ));
        }
        // HTTP/1 absolute-form names a target host; HTTP/2 always carries :authority,
        // which only names graphtape itself and is ignored.
        if parts.version < Version::HTTP_2 {
            if let Some(authority) = parts.uri.authority() {
                if !authority
                    .as_str()
                    .eq_ignore_ascii_case(&self.upstream.authority)
                {
                    return Some((
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!(
                            "graphtape only forwards to {}; refusing a request for {authority}",
                            self.upstream
                        ),
                    ));
                }
            }
        }
        if let Some(reason) = &inbound.body_error {
            return Some((
                StatusCode::BAD_REQUEST,
                "badRequest",
                format!("the request body did not arrive whole: {reason}"),
            ));
        }
        let health = self.recorder.health();
        if self.policy == StoreErrorPolicy::Fail && health.has_failed() {
            return Some((
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

    fn upstream_request(&self, inbound: &Inbound) -> Request<Full<Bytes>> {
        let path_and_query = inbound
            .parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        let uri = self.upstream.join(path_and_query);
        let mut req = Request::new(Full::new(inbound.body.clone()));
        *req.method_mut() = inbound.parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = for_next_hop(inbound.parts.headers.clone());
        // The client picks HTTP/2 itself when the upstream offers it (ALPN).
        *req.version_mut() = Version::HTTP_11;
        req
    }
}
