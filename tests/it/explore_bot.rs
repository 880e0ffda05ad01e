//! A reactive scripted bot for `explore`: it drives its calls from the notifications
//! alone (no test driver per run), as a long-running bot does, and can carry a planted
//! ordering bug.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;

use crate::flows::{invite_body, join_body};
use crate::graph_sim::dashed;
use crate::util::*;

/// What the bot does with its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plot {
    /// Answer an incoming call; hang up once it is established.
    Hangup,
    /// Answer an incoming call; once established, join a meeting; once that is
    /// established, invite the caller into it (replacing the P2P call); hang up the
    /// meeting once the invite completed.
    Invite,
    /// Join a meeting at start; hang up once established.
    Join,
}

/// The bot's behaviour, bugs included.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    pub plot: Plot,
    /// A strict state machine: 500 to `establishing` after `established`.
    pub strict: bool,
    /// Looks for an operation's completion only after the invite's response: a
    /// completion that came first is forgotten.
    pub late_completion: bool,
}

impl Behaviour {
    pub fn correct(plot: Plot) -> Behaviour {
        Behaviour {
            plot,
            strict: false,
            late_completion: false,
        }
    }
}

#[derive(Default)]
struct State {
    /// Per call (lookup form): states seen.
    states: HashMap<String, Vec<String>>,
    answered: HashSet<String>,
    hung_up: HashSet<String>,
    /// Incoming calls a meeting was joined for.
    joined_for: HashSet<String>,
    invited: HashSet<String>,
    completed: HashSet<String>,
    /// Operation → the call to hang up when it completes.
    waiting: HashMap<String, String>,
    /// Every call id an incoming-call notification named, in order.
    incoming_ids: Vec<String>,
}

/// The bot: a webhook plus the Graph client it reacts with.
pub struct ExploreBot {
    pub peer: FakePeer,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct Ctx {
    api: String,
    own: String,
    behaviour: Behaviour,
    state: Arc<Mutex<State>>,
}

impl ExploreBot {
    /// Starts the bot on `addr` ("127.0.0.1:0" for any port); its Graph client uses
    /// `api` (graphtape's API listener).
    pub async fn start(behaviour: Behaviour, api: &str, addr: &str) -> ExploreBot {
        let state = Arc::new(Mutex::new(State::default()));
        let own = Arc::new(std::sync::OnceLock::<String>::new());
        let (s, o, api2) = (state.clone(), own.clone(), api.to_string());
        let peer = FakePeer::start_at(
            handler(move |seen: Seen| {
                let ctx = Ctx {
                    api: api2.clone(),
                    own: o.get().cloned().unwrap_or_default(),
                    behaviour,
                    state: s.clone(),
                };
                async move { ctx.webhook(seen) }
            }),
            addr,
        )
        .await;
        own.set(peer.url.clone()).unwrap();
        let bot = ExploreBot { peer, state };
        if behaviour.plot == Plot::Join {
            bot.ctx(api, behaviour).join();
        }
        bot
    }

    fn ctx(&self, api: &str, behaviour: Behaviour) -> Ctx {
        Ctx {
            api: api.to_string(),
            own: self.peer.url.clone(),
            behaviour,
            state: self.state.clone(),
        }
    }

    /// Every call id the incoming-call notifications named, in order.
    pub fn incoming_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().incoming_ids.clone()
    }
}

/// The call and operation a notification's resource names (lookup form).
fn ids(resource: &str) -> (String, Option<String>) {
    let parts: Vec<&str> = resource.split('/').collect();
    let at = |name: &str| {
        parts
            .iter()
            .position(|p| *p == name)
            .and_then(|i| parts.get(i + 1))
            .map(|s| s.replace('-', "").to_lowercase())
    };
    (at("calls").unwrap_or_default(), at("operations"))
}

impl Ctx {
    fn webhook(&self, seen: Seen) -> Response<Full<Bytes>> {
        let v: serde_json::Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        let mut status = 202;
        for n in v["value"].as_array().cloned().unwrap_or_default() {
            let (call, op) = ids(n["resource"].as_str().unwrap_or_default());
            let data = &n["resourceData"];
            if let Some(op) = op {
                if data["status"] == "completed" {
                    self.completed(&op);
                }
                continue;
            }
            let Some(state) = data["state"].as_str() else {
                continue;
            };
            let mut s = self.state.lock().unwrap();
            let history = s.states.entry(call.clone()).or_default();
            if self.behaviour.strict
                && state == "establishing"
                && history.iter().any(|h| h == "established")
            {
                status = 500;
            }
            history.push(state.to_string());
            let incoming = s.answered.contains(&call);
            match (state, self.behaviour.plot) {
                ("incoming", _) if s.answered.insert(call.clone()) => {
                    s.incoming_ids.push(call.clone());
                    drop(s);
                    self.answer(&call);
                }
                ("established", Plot::Hangup | Plot::Join) if s.hung_up.insert(call.clone()) => {
                    drop(s);
                    self.hang_up(&call);
                }
                ("established", Plot::Invite) if incoming && s.joined_for.insert(call.clone()) => {
                    drop(s);
                    self.join();
                }
                ("established", Plot::Invite) if !incoming && s.invited.insert(call.clone()) => {
                    let replaces = s.incoming_ids.last().cloned();
                    drop(s);
                    self.invite(&call, replaces);
                }
                _ => {}
            }
        }
        respond(status, &[], b"")
    }

    fn completed(&self, op: &str) {
        let mut s = self.state.lock().unwrap();
        match s.waiting.remove(op) {
            Some(call) => {
                drop(s);
                self.hang_up_once(&call);
            }
            // The planted bug: a completion before the response is forgotten.
            None if self.behaviour.late_completion => {}
            None => {
                s.completed.insert(op.to_string());
            }
        }
    }

    fn hang_up_once(&self, call: &str) {
        if self.state.lock().unwrap().hung_up.insert(call.to_string()) {
            self.hang_up(call);
        }
    }

    fn post(
        &self,
        method: &'static str,
        path: String,
        body: Vec<u8>,
    ) -> tokio::task::JoinHandle<Bytes> {
        let url = format!("{}{path}", self.api);
        tokio::spawn(async move {
            let (_, body) = send(
                &client(),
                request(method, &url, &[("content-type", "application/json")], &body),
            )
            .await;
            body
        })
    }

    fn answer(&self, call: &str) {
        let body = format!(
            r#"{{"callbackUri":"{}{}","acceptedModalities":["audio"]}}"#,
            self.own,
            crate::bot::BOT_PATH
        );
        self.post(
            "POST",
            format!("/v1.0/communications/calls/{}/answer", dashed(call)),
            body.into_bytes(),
        );
    }

    fn hang_up(&self, call: &str) {
        self.post(
            "DELETE",
            format!("/v1.0/communications/calls/{}", dashed(call)),
            Vec::new(),
        );
    }

    fn join(&self) {
        let callback = format!("{}{}", self.own, crate::bot::BOT_PATH);
        self.post(
            "POST",
            "/v1.0/communications/calls".into(),
            join_body(&callback),
        );
    }

    fn invite(&self, call: &str, replaces: Option<String>) {
        let replaces = replaces.map(|r| r.to_uppercase());
        let sent = self.post(
            "POST",
            format!(
                "/v1.0/communications/calls/{}/participants/invite",
                dashed(call)
            ),
            invite_body("ctx-explore", replaces.as_deref()),
        );
        let ctx = self.clone();
        let call = call.to_string();
        tokio::spawn(async move {
            let Ok(body) = sent.await else { return };
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let op = v["id"]
                .as_str()
                .unwrap_or_default()
                .replace('-', "")
                .to_lowercase();
            let mut s = ctx.state.lock().unwrap();
            if !ctx.behaviour.late_completion && s.completed.remove(&op) {
                drop(s);
                ctx.hang_up_once(&call);
            } else {
                s.waiting.insert(op, call);
            }
        });
    }
}
