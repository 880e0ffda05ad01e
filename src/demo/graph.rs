//! The stand-in Graph: answers the bot's calling API with the seed's shapes and POSTs
//! notifications to the `callbackUri` it was given (which `record` rewrote to route
//! through itself), as Graph does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::http::{body, client, respond, send, HttpClient, Server};
use super::{dashed, DemoError, CALL, OPERATION};
use crate::proxy::reply::Body;

/// Graph's processing time before the notifications that follow a response, so they
/// arrive after it as they usually do (the invite's completion deliberately does not).
const LATENCY: Duration = Duration::from_millis(100);

/// The stand-in's state.
pub(crate) struct Graph {
    client: HttpClient,
    /// Where the bot registration's calling webhook points (incoming calls).
    webhook: String,
    /// The call's `callbackUri`, from the answer request.
    callback: Mutex<Option<String>>,
    /// Notifications that did not get a 2xx, reported at the end instead of lost.
    pub(crate) problems: Mutex<Vec<String>>,
}

impl Graph {
    /// Starts the stand-in; incoming calls will be notified to `webhook`.
    pub(crate) fn start(webhook: String) -> Result<(Server, Arc<Graph>), DemoError> {
        let graph = Arc::new(Graph {
            client: client(),
            webhook,
            callback: Mutex::new(None),
            problems: Mutex::new(Vec::new()),
        });
        let g = graph.clone();
        let server = Server::start(move |req| g.clone().handle(req))?;
        Ok((server, graph))
    }

    /// Notifies the incoming call, as Graph does when someone calls the bot.
    pub(crate) async fn ring(&self) -> Result<(), DemoError> {
        let mut n = call_state("created", "incoming");
        n["resourceData"]["direction"] = "incoming".into();
        n["resourceData"]["requestedModalities"] = json!(["audio"]);
        self.notify(&self.webhook, &[n]).await
    }

    async fn notify(&self, url: &str, items: &[Value]) -> Result<(), DemoError> {
        let body = json!({"@odata.type": "#microsoft.graph.commsNotifications", "value": items});
        let (status, _) = send(
            &self.client,
            "POST",
            url,
            "graph-issued-token",
            body.to_string().into_bytes(),
        )
        .await?;
        if !(200..300).contains(&status) {
            return Err(DemoError(format!(
                "notification to {url}: answered {status}"
            )));
        }
        Ok(())
    }

    /// Sends notification POSTs (each a list of notifications) later, in order, from a
    /// task of their own; a failure is kept.
    fn notify_later(self: &Arc<Self>, posts: Vec<Vec<Value>>) {
        let graph = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LATENCY).await;
            let Some(url) = graph.callback.lock().ok().and_then(|c| c.clone()) else {
                graph.problem("no callbackUri to notify".into());
                return;
            };
            for items in posts {
                if let Err(e) = graph.notify(&url, &items).await {
                    graph.problem(e.0);
                }
            }
        });
    }

    fn problem(&self, what: String) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(what);
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let rest = path
            .strip_prefix("/v1.0")
            .or_else(|| path.strip_prefix("/beta"))
            .unwrap_or(&path)
            .to_string();
        let body: Value = serde_json::from_slice(&body(req).await).unwrap_or(Value::Null);
        let call = format!("/communications/calls/{}", dashed(CALL));
        match (method, rest.as_str()) {
            (Method::POST, p) if p == format!("{call}/answer") => {
                let uri = body["callbackUri"].as_str().map(str::to_string);
                if let Ok(mut c) = self.callback.lock() {
                    *c = uri;
                }
                self.notify_later(vec![
                    vec![call_state("updated", "establishing")],
                    vec![call_state("updated", "established")],
                ]);
                respond(202, &[], None)
            }
            (Method::POST, p) if p == format!("{call}/participants/invite") => {
                let context = body["clientContext"].clone();
                // The completion first, then the response: the race of the seed.
                let url = self.callback.lock().ok().and_then(|c| c.clone());
                if let Some(url) = url {
                    if let Err(e) = self.notify(&url, &[completed(&context)]).await {
                        self.problem(e.0);
                    }
                }
                let op = format!("{call}/operations/{}", dashed(OPERATION));
                respond(
                    200,
                    &[("location", format!("https://graph.microsoft.com/v1.0{op}"))],
                    Some(json!({
                        "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
                        "id": dashed(OPERATION),
                        "status": "running",
                        "clientContext": context,
                    })),
                )
            }
            (Method::DELETE, p) if p == call => {
                let mut terminated = call_state("updated", "terminated");
                terminated["resourceData"]["terminationReason"] = "AppInitiated".into();
                let mut deleted = call_state("deleted", "terminated");
                if let Some(data) = deleted["resourceData"].as_object_mut() {
                    data.remove("state");
                }
                self.notify_later(vec![vec![terminated, deleted]]);
                respond(204, &[], None)
            }
            (method, _) => respond(
                404,
                &[],
                Some(crate::proxy::reply::error_json(
                    "itemNotFound",
                    &format!("the demo's Graph does not serve {method} {path}"),
                )),
            ),
        }
    }
}

fn call_state(change: &str, state: &str) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": change,
        "resource": format!("/app/calls/{CALL}"),
        "resourceUrl": format!("/communications/calls/{CALL}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.call",
            "@odata.id": format!("/app/calls/{CALL}"),
            "state": state,
        }
    })
}

fn completed(client_context: &Value) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.commsNotification",
        "changeType": "deleted",
        "resource": format!("/app/calls/{CALL}/operations/{OPERATION}"),
        "resourceUrl": format!("/communications/calls/{CALL}/operations/{OPERATION}"),
        "resourceData": {
            "@odata.type": "#microsoft.graph.inviteParticipantsOperation",
            "@odata.id": format!("/app/calls/{CALL}/operations/{OPERATION}"),
            "clientContext": client_context,
            "status": "completed",
        }
    })
}
