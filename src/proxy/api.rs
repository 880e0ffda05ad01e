//! The API direction: the bot calls graphtape as if it were Graph, graphtape calls the
//! configured upstream and records both sides.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::capture::Inbound;
use super::headers::for_next_hop;
use super::relay::{Peer, Refusal, Relay};
use super::routes::CallbackRoutes;
use crate::config::Upstream;
use crate::exchange::Direction;

/// Handles the bot's requests to Graph.
pub struct ApiProxy {
    pub upstream: Upstream,
    pub relay: Relay,
    /// Rewrites `callbackUri` when `--public-url` is set.
    pub routes: Arc<CallbackRoutes>,
}

impl ApiProxy {
    /// One request, start to finish. Never fails: every problem becomes a response the
    /// bot can read and a recorded error.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let mut inbound =
            Inbound::receive_capped(&self.relay.clock, req, self.relay.max_body).await;
        if let Some(refusal) = self
            .refusal(&inbound)
            .or_else(|| self.relay.target_refusal(&inbound, false))
            .or_else(|| self.relay.check(&inbound))
        {
            return self.relay.refuse(inbound, Direction::Api, refusal).await;
        }
        let rewritten = self.rewrite_callbacks(&inbound).await;
        let upstream_req = self.upstream_request(&mut inbound, rewritten.clone());
        self.relay
            .forward(
                inbound,
                Direction::Api,
                Peer::Upstream,
                upstream_req,
                rewritten,
            )
            .await
    }

    /// graphtape is a reverse proxy for one upstream, not an open proxy.
    fn refusal(&self, inbound: &Inbound) -> Option<Refusal> {
        let parts = &inbound.parts;
        if parts.method == http::Method::CONNECT {
            return Some(Refusal::new(
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
                    return Some(Refusal::new(
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
        None
    }

    /// The body with `callbackUri` pointing at graphtape, when that changes anything.
    /// New routes are queued for the store before the upstream can call them back
    /// (and are live in memory at once).
    /// Bodies that stream through (over `--max-body`) are not rewritten.
    async fn rewrite_callbacks(&self, inbound: &Inbound) -> Option<Bytes> {
        if !self.routes.rewrites() || inbound.is_streamed() {
            return None;
        }
        let encoding = inbound
            .parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let (body, new_routes) = self.routes.rewrite(encoding, &inbound.body)?;
        for route in new_routes {
            self.relay.recorder.route(route).await;
        }
        Some(Bytes::from(body))
    }

    fn upstream_request(
        &self,
        inbound: &mut Inbound,
        rewritten: Option<Bytes>,
    ) -> Request<ProxyBody> {
        let mut headers = for_next_hop(inbound.parts.headers.clone());
        let body = match (rewritten, inbound.take_rest()) {
            (_, Some(rest)) => ProxyBody::Tee(rest),
            (Some(body), None) => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
                ProxyBody::Full(Full::new(body))
            }
            (None, None) => ProxyBody::Full(Full::new(inbound.body.clone())),
        };
        let mut req = Request::new(body);
        *req.method_mut() = inbound.parts.method.clone();
        *req.uri_mut() = self.upstream.join_uri(&inbound.parts.uri);
        *req.headers_mut() = headers;
        // The client picks HTTP/2 itself when the upstream offers it (ALPN).
        *req.version_mut() = Version::HTTP_11;
        req
    }
}
