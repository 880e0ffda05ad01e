//! The callback direction: Graph POSTs notifications to graphtape's callback listener,
//! graphtape passes them to the bot and Graph gets the bot's answer.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Full;
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::capture::Inbound;
use super::headers::for_next_hop;
use super::relay::{Peer, Refusal, Relay};
use super::routes::{parse_minted, CallbackRoutes};
use crate::config::Upstream;
use crate::exchange::Direction;

/// Handles Graph's notifications.
pub struct CallbackProxy {
    /// The bot's own webhook (`--bot-url`), for paths graphtape did not mint.
    pub bot: Option<Upstream>,
    pub relay: Relay,
    pub routes: Arc<CallbackRoutes>,
}

impl CallbackProxy {
    /// One notification POST, start to finish.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let mut inbound =
            Inbound::receive_capped(&self.relay.clock, req, self.relay.max_body).await;
        let routed = match self.relay.target_refusal(&inbound, true) {
            Some(refusal) => Err(refusal),
            None => self.route(&inbound),
        };
        let target = match routed {
            Ok(target) => target,
            Err(refusal) => {
                return self
                    .relay
                    .refuse(inbound, Direction::Callback, refusal)
                    .await
            }
        };
        if let Some(refusal) = self.relay.check(&inbound) {
            return self
                .relay
                .refuse(inbound, Direction::Callback, refusal)
                .await;
        }
        let body = match inbound.take_rest() {
            Some(rest) => ProxyBody::Tee(rest),
            None => ProxyBody::Full(Full::new(inbound.body.clone())),
        };
        let mut req = Request::new(body);
        *req.method_mut() = inbound.parts.method.clone();
        *req.uri_mut() = target;
        *req.headers_mut() = for_next_hop(inbound.parts.headers.clone());
        *req.version_mut() = Version::HTTP_11;
        self.relay
            .forward(inbound, Direction::Callback, Peer::Bot, req, None::<Bytes>)
            .await
    }

    /// Where a notification goes: a minted path to the URL the bot gave, any other path
    /// to `--bot-url` + path. Nothing else is reachable.
    fn route(&self, inbound: &Inbound) -> Result<Uri, Refusal> {
        let uri = &inbound.parts.uri;
        if let Some((token, rest)) = parse_minted(uri.path()) {
            let Some(target) = self.routes.lookup(token) else {
                return Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "notFound",
                    "graphtape did not mint this callback path".into(),
                ));
            };
            let mut url = format!("{}{rest}", target.trim_end_matches('/'));
            if rest.is_empty() {
                url = target;
            }
            if let Some(query) = uri.query() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(query);
            }
            return url.parse().map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_GATEWAY,
                    "botError",
                    format!("the bot's callback URL {url:?} is not usable: {e}"),
                )
            });
        }
        match &self.bot {
            Some(bot) => Ok(bot.join_uri(uri)),
            None => Err(Refusal::new(
                StatusCode::NOT_FOUND,
                "notFound",
                "not a callback path graphtape minted, and no --bot-url is set".into(),
            )),
        }
    }
}
