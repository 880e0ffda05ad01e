//! A scripted test bot: a webhook that logs every notification and reacts to some of
//! them by calling Graph (through whatever API base it is given), as a calling bot
//! would. The same script runs against `record` and against `replay`.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::graph_sim::dashed;
use crate::util::*;

/// How the bot answers notifications.
#[derive(Clone)]
pub enum Answer {
    /// 202 to everything.
    Accept,
    /// This status to everything.
    Status(u16),
    /// 202 if the bearer token verifies against the JWKS at this URL, else 401.
    Verify { jwks_url: String },
}

/// The bot's behaviour.
#[derive(Clone)]
pub struct Script {
    pub answer: Answer,
    /// Answer incoming calls.
    pub answer_incoming: bool,
    /// The path of the callbackUri the bot gives Graph.
    pub callback_path: String,
    /// Certificates the bot's Graph client trusts (for an HTTPS API base).
    pub ca: Option<std::path::PathBuf>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            answer: Answer::Accept,
            answer_incoming: true,
            callback_path: BOT_PATH.to_string(),
            ca: None,
        }
    }
}

pub struct Bot {
    pub peer: FakePeer,
    callback_path: String,
    ca: Option<std::path::PathBuf>,
    api: Arc<OnceLock<String>>,
    /// Requests the bot made to Graph and the statuses it got, in order.
    pub calls_made: Arc<Mutex<Vec<(String, u16)>>>,
}

pub const BOT_PATH: &str = "/api/calls";

impl Bot {
    pub async fn start(script: Script) -> Bot {
        let api: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let own: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let calls_made = Arc::new(Mutex::new(Vec::new()));
        let (api2, own2, made) = (api.clone(), own.clone(), calls_made.clone());
        let callback_path = script.callback_path.clone();
        let ca = script.ca.clone();
        let peer = FakePeer::start(handler(move |seen: Seen| {
            let (api, own, made, script) =
                (api2.clone(), own2.clone(), made.clone(), script.clone());
            async move { react(seen, script, api, own, made).await }
        }))
        .await;
        own.set(peer.url.clone()).unwrap();
        Bot {
            peer,
            callback_path,
            ca,
            api,
            calls_made,
        }
    }

    /// Points the bot's Graph client at `api` (graphtape's API listener).
    pub fn use_api(&self, api: &str) {
        self.api.set(api.to_string()).unwrap();
    }

    fn api(&self) -> &str {
        self.api.get().expect("use_api first")
    }

    /// The notification bodies received so far.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.peer.seen().into_iter().map(|s| s.body).collect()
    }

    /// Calls Graph as the bot: returns status and body.
    pub async fn graph(&self, method: &str, path: &str, body: &[u8]) -> (u16, Bytes) {
        let (parts, body) = send(
            &tls_client(self.ca.as_deref()),
            request(
                method,
                &format!("{}{path}", self.api()),
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer bot-app-token"),
                ],
                body,
            ),
        )
        .await;
        self.calls_made
            .lock()
            .unwrap()
            .push((format!("{method} {path}"), parts.status.as_u16()));
        (parts.status.as_u16(), body)
    }

    pub fn callback_uri(&self) -> String {
        format!("{}{}", self.peer.url, self.callback_path)
    }
}

async fn react(
    seen: Seen,
    script: Script,
    api: Arc<OnceLock<String>>,
    own: Arc<OnceLock<String>>,
    made: Arc<Mutex<Vec<(String, u16)>>>,
) -> Response<Full<Bytes>> {
    let status = match &script.answer {
        Answer::Accept => 202,
        Answer::Status(s) => *s,
        Answer::Verify { jwks_url } => {
            let token = seen
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string();
            let (_, jwks) = send(&client(), request("GET", jwks_url, &[], b"")).await;
            let jwks: serde_json::Value = serde_json::from_slice(&jwks).unwrap_or_default();
            if graphtape::replay::auth::verify_es256(&token, &jwks) {
                202
            } else {
                401
            }
        }
    };
    if status == 202 && script.answer_incoming {
        let v: serde_json::Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        for n in v["value"].as_array().cloned().unwrap_or_default() {
            if n["resourceData"]["state"] == "incoming" {
                let id = n["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let api = api.get().cloned().expect("the bot has an API base");
                let own = own.get().cloned().unwrap();
                let made = made.clone();
                let callback_path = script.callback_path.clone();
                let ca = script.ca.clone();
                // Answer after acknowledging, as real bots do.
                tokio::spawn(async move {
                    let body = format!(
                        r#"{{"callbackUri":"{own}{callback_path}","acceptedModalities":["audio"]}}"#
                    );
                    let path = format!("/v1.0/communications/calls/{}/answer", dashed(&id));
                    let (parts, _) = send(
                        &tls_client(ca.as_deref()),
                        request(
                            "POST",
                            &format!("{api}{path}"),
                            &[("content-type", "application/json")],
                            body.as_bytes(),
                        ),
                    )
                    .await;
                    made.lock()
                        .unwrap()
                        .push((format!("POST {path}"), parts.status.as_u16()));
                });
            }
        }
    }
    respond(status, &[], b"")
}
