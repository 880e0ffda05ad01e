//! A scripted stand-in for Graph: answers the bot's API calls with the shapes of the
//! seed document (../shared/seeds) and POSTs the matching notifications to whatever
//! `callbackUri` it was given, as Graph does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;

use crate::util::*;

/// The incoming P2P call of the seed ("answer incoming VOIP call").
pub const INCOMING: &str = "57DAB8B1894C409AB240BD8BEAE78896";
/// The call the bot creates ("join channel meeting without media").
pub const JOINED: &str = "90ED37DCD8E34E119DE330A955DDA06F";
/// The invite operation.
pub const OPERATION: &str = "0FE0623FD62842EDB4BD8AC290072CC5";

/// The call id as Graph spells it in `Location` and response bodies.
pub fn dashed(id: &str) -> String {
    let l = id.to_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &l[..8],
        &l[8..12],
        &l[12..16],
        &l[16..20],
        &l[20..]
    )
}

fn notification(items: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": items,
    }))
    .unwrap()
}

fn call_state(change: &str, call: &str, state: &str) -> serde_json::Value {
    serde_json::json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change,
        "resource": format!("/app/calls/{call}"),
        "resourceUrl": format!("/communications/calls/{call}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": format!("/app/calls/{call}"),
            "@odata.etag": "W/\"5445\"",
            "state": state,
        }
    })
}

/// Graph's incoming-call notification (seed: "Notification - Incoming").
pub fn incoming_call() -> Vec<u8> {
    let mut n = call_state("created", INCOMING, "incoming");
    n["resourceData"]["direction"] = "incoming".into();
    n["resourceData"]["requestedModalities"] = serde_json::json!(["audio", "video"]);
    notification(&[n])
}

pub fn establishing(call: &str) -> Vec<u8> {
    notification(&[call_state("updated", call, "establishing")])
}

pub fn established(call: &str) -> Vec<u8> {
    notification(&[call_state("updated", call, "established")])
}

/// Hang-up: two notifications in one POST (seed: terminated, then deleted).
pub fn terminated_and_deleted(call: &str) -> Vec<u8> {
    let mut terminated = call_state("updated", call, "terminated");
    terminated["resourceData"]["terminationReason"] = "AppInitiated".into();
    let mut deleted = call_state("deleted", call, "terminated");
    deleted["resourceData"]
        .as_object_mut()
        .unwrap()
        .remove("state");
    notification(&[terminated, deleted])
}

pub fn operation_completed(call: &str, client_context: &str) -> Vec<u8> {
    notification(&[serde_json::json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resource": format!("/app/calls/{call}/operations/{OPERATION}"),
        "resourceUrl": format!("/communications/calls/{call}/operations/{OPERATION}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
            "@odata.id": format!("/app/calls/{call}/operations/{OPERATION}"),
            "@odata.etag": "W/\"51\"",
            "clientContext": client_context,
            "status": "completed",
        }
    })])
}

pub fn roster_updated(call: &str) -> Vec<u8> {
    notification(&[serde_json::json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "updated",
        "resource": format!("/app/calls/{call}/participants"),
        "resourceUrl": format!("/communications/calls/{call}/participants"),
        "resourceData": [{
            "@odata.type": "#microsoft.graph.participant",
            "@odata.id": format!("/app/calls/{call}/participants/8A34A46B3D174ADC8DCEDC4E7D572698"),
            "info": {"identity": {"user": {"displayName": "Test User", "id": "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}},
            "mediaStreams": [{"mediaType": "audio", "label": "main-audio", "sourceId": "1", "direction": "sendReceive"}]
        }]
    })])
}

/// A notification POST the simulator made, and what came back.
#[derive(Debug, Clone)]
pub struct Posted {
    pub status: u16,
    pub body: Bytes,
}

/// How the simulated Graph orders what it sends.
#[derive(Debug, Clone, Copy)]
pub struct SimOptions {
    /// The invite's operation-completed notification reaches the bot before the
    /// invite's response (the race graphtape exists for); else after it.
    pub invite_race: bool,
    /// `established` is sent before `establishing` (the docs warn this happens).
    pub swap_establishing: bool,
    /// Graph's processing time before notifications that follow a response, so they
    /// land after it as they usually do.
    pub latency: std::time::Duration,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            invite_race: true,
            swap_establishing: false,
            latency: std::time::Duration::ZERO,
        }
    }
}

/// The simulator's state: where each call's notifications go, and what it posted.
pub struct GraphSim {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    callbacks: Mutex<HashMap<String, String>>,
    pub posted: Mutex<Vec<Posted>>,
    options: SimOptions,
}

impl GraphSim {
    /// A simulator that can POST to plain HTTP, and to HTTPS signed by `ca`.
    pub fn new(ca: Option<&Path>) -> Arc<GraphSim> {
        Self::with_options(ca, SimOptions::default())
    }

    /// Likewise, ordering notifications as `options` say.
    pub fn with_options(ca: Option<&Path>, options: SimOptions) -> Arc<GraphSim> {
        Arc::new(GraphSim {
            client: tls_client(ca),
            callbacks: Mutex::new(HashMap::new()),
            posted: Mutex::new(Vec::new()),
            options,
        })
    }

    /// establishing then established, or the other way round.
    fn call_setup(&self, call: &str) -> Vec<Vec<u8>> {
        if self.options.swap_establishing {
            vec![established(call), establishing(call)]
        } else {
            vec![establishing(call), established(call)]
        }
    }

    /// POSTs a notification as Graph would (with a bot-framework JWT) and waits for the
    /// answer.
    pub async fn notify(&self, url: &str, body: Vec<u8>) -> Posted {
        let req = Request::post(url)
            .header("content-type", "application/json; charset=utf-8")
            .header("authorization", format!("Bearer {}", graph_jwt()))
            .header("user-agent", "Microsoft-Skype/3.0,(Calling/1.0)")
            .header(
                "x-microsoft-skype-chain-id",
                "c3ac2d3e-aaaa-4bbb-8ccc-1d2e3f4a5b6c",
            )
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let (status, body) = match self.client.request(req).await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                (status, resp.into_body().collect().await.unwrap().to_bytes())
            }
            Err(e) => panic!("Graph could not reach {url}: {e:?}"),
        };
        let posted = Posted { status, body };
        self.posted.lock().unwrap().push(posted.clone());
        posted
    }

    fn callback_for(&self, call: &str) -> String {
        self.callbacks
            .lock()
            .unwrap()
            .get(call)
            .cloned()
            .unwrap_or_else(|| panic!("no callbackUri registered for {call}"))
    }

    fn register(&self, call: &str, body: &[u8]) {
        let v: serde_json::Value = serde_json::from_slice(body).expect("JSON request body");
        let uri = v["callbackUri"]
            .as_str()
            .or(v["callback"].as_str())
            .expect("a callbackUri")
            .to_string();
        self.callbacks.lock().unwrap().insert(call.to_string(), uri);
    }

    /// Sends notifications one after another, as Graph does for one call.
    fn notify_later(self: &Arc<Self>, call: &str, bodies: Vec<Vec<u8>>) {
        let sim = self.clone();
        let url = self.callback_for(call);
        let latency = self.options.latency;
        tokio::spawn(async move {
            tokio::time::sleep(latency).await;
            for body in bodies {
                sim.notify(&url, body).await;
            }
        });
    }

    /// The handler that plays Graph's API.
    pub fn handler(self: &Arc<Self>) -> Handler {
        let sim = self.clone();
        handler(move |seen: Seen| {
            let sim = sim.clone();
            async move { sim.answer(seen).await }
        })
    }

    async fn answer(self: Arc<Self>, seen: Seen) -> http::Response<Full<Bytes>> {
        let path = seen.uri.split('?').next().unwrap_or_default().to_string();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let call_arg = segments
            .iter()
            .position(|s| *s == "calls")
            .and_then(|i| segments.get(i + 1))
            .map(|s| s.replace('-', "").to_uppercase());
        let last = segments.last().copied().unwrap_or_default();
        match (seen.method.as_str(), call_arg, last) {
            ("POST", None, "calls") => {
                self.register(JOINED, &seen.body);
                self.notify_later(JOINED, self.call_setup(JOINED));
                let body = serde_json::json!({
                    "@odata.type": "#microsoft.graph.call",
                    "id": dashed(JOINED),
                    "state": "establishing",
                    "direction": "outgoing",
                    "callbackUri": serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap()["callbackUri"],
                });
                respond(
                    201,
                    &[
                        ("content-type", "application/json"),
                        (
                            "location",
                            &format!(
                                "https://graph.microsoft.com/v1.0/communications/calls/{}",
                                dashed(JOINED)
                            ),
                        ),
                    ],
                    body.to_string().as_bytes(),
                )
            }
            ("POST", Some(call), "answer") => {
                self.register(&call, &seen.body);
                self.notify_later(&call, self.call_setup(&call));
                respond(202, &[], b"")
            }
            ("POST", Some(call), "invite") => {
                // The race this tool exists for: the completion reaches the bot before
                // the response that names the operation.
                let ctx = serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap()
                    ["clientContext"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut later = vec![roster_updated(&call)];
                if self.options.invite_race {
                    let url = self.callback_for(&call);
                    self.notify(&url, operation_completed(&call, &ctx)).await;
                } else {
                    later.insert(0, operation_completed(&call, &ctx));
                }
                self.notify_later(&call, later);
                // Inviting with replacesCallId moves the peer over: the original P2P
                // call ends (seed: "terminated the original P2P call").
                let replaced = serde_json::from_slice::<serde_json::Value>(&seen.body).unwrap()
                    ["participants"][0]["replacesCallId"]
                    .as_str()
                    .map(|r| {
                        r.rsplit('/')
                            .next()
                            .unwrap_or_default()
                            .replace('-', "")
                            .to_uppercase()
                    });
                if let Some(replaced) = replaced {
                    if self.callbacks.lock().unwrap().contains_key(&replaced) {
                        self.notify_later(&replaced, vec![terminated_and_deleted(&replaced)]);
                    }
                }
                let body = serde_json::json!({
                    "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
                    "id": dashed(OPERATION),
                    "status": "running",
                    "clientContext": ctx,
                });
                respond(
                    200,
                    &[
                        ("content-type", "application/json"),
                        ("location", &format!("https://graph.microsoft.com/v1.0/communications/calls/{}/operations/{}", dashed(&call), dashed(OPERATION))),
                    ],
                    body.to_string().as_bytes(),
                )
            }
            ("DELETE", Some(call), _) => {
                self.notify_later(&call, vec![terminated_and_deleted(&call)]);
                respond(204, &[], b"")
            }
            _ => respond(
                404,
                &[("content-type", "application/json")],
                br#"{"error":{"code":"itemNotFound","message":"not simulated"}}"#,
            ),
        }
    }
}

/// A token shaped like the bot framework's: three base64url parts, realistic claims.
pub fn graph_jwt() -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"RS256","kid":"abc","typ":"JWT"}"#),
        b64(br#"{"iss":"https://api.botframework.com","aud":"8a34a46b-3d17-4adc-8dce-dc4e7d572698","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","exp":1795000000}"#),
        "GRAPHxSIGNATUREx0123456789"
    )
}
