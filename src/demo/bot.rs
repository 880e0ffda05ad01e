//! The stand-in bot: a webhook that acknowledges every notification, and a script that
//! reacts to them by calling Graph through `record`'s API listener, as a calling bot
//! does: answer the incoming call, invite a participant once established, hang up once
//! the invite completed.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::http::{body, client, respond, send, HttpClient, Server};
use super::{dashed, DemoError, BOT_PATH, CALL};

/// How long the bot waits for any one notification before giving up.
const STEP: Duration = Duration::from_secs(10);

pub(crate) struct Bot {
    pub(crate) server: Server,
    /// Every notification received so far, in arrival order.
    seen: watch::Receiver<Vec<Value>>,
    client: HttpClient,
}

impl Bot {
    pub(crate) fn start() -> Result<Bot, DemoError> {
        // A watch channel: the script waits for a condition over everything seen, and
        // the webhook never blocks on a slow reader.
        let (tx, seen) = watch::channel(Vec::new());
        let server = Server::start(move |req| {
            let tx = tx.clone();
            async move {
                let v: Value = serde_json::from_slice(&body(req).await).unwrap_or(Value::Null);
                let items = v["value"].as_array().cloned().unwrap_or_default();
                tx.send_modify(|seen| seen.extend(items));
                respond(202, &[], None)
            }
        })?;
        Ok(Bot {
            server,
            seen,
            client: client(),
        })
    }

    /// Runs the bot's side of the flow against Graph at `api` (record's API listener).
    pub(crate) async fn run(&mut self, api: &str) -> Result<(), DemoError> {
        let call = format!("{api}/v1.0/communications/calls/{}", dashed(CALL));
        self.wait("the incoming call", |n| state(n) == Some("incoming"))
            .await?;
        let answer = json!({
            "callbackUri": format!("{}{BOT_PATH}", self.server.url),
            "acceptedModalities": ["audio"],
            "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
        });
        self.call("POST", &format!("{call}/answer"), Some(answer), 202)
            .await?;
        self.wait("established", |n| state(n) == Some("established"))
            .await?;
        let invite = json!({
            "participants": [{
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {"user": {"id": "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698", "displayName": "Heidi Steen"}},
            }],
            "clientContext": "demo-invite-1",
        });
        self.call(
            "POST",
            &format!("{call}/participants/invite"),
            Some(invite),
            200,
        )
        .await?;
        self.wait("the invite's completion", |n| {
            n["resourceData"]["status"] == "completed"
        })
        .await?;
        self.call("DELETE", &call, None, 204).await?;
        self.wait("the call's deletion", |n| {
            n["changeType"] == "deleted"
                && n["resourceData"]["@odata.type"] == "#microsoft.graph.call"
        })
        .await
    }

    async fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
        want: u16,
    ) -> Result<(), DemoError> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let (status, answer) = send(&self.client, method, url, "bot-app-token", body).await?;
        if status != want {
            return Err(DemoError(format!(
                "{method} {url}: Graph answered {status}, the bot expected {want}: {}",
                String::from_utf8_lossy(&answer)
            )));
        }
        Ok(())
    }

    async fn wait(&mut self, what: &str, found: impl Fn(&Value) -> bool) -> Result<(), DemoError> {
        let seen = tokio::time::timeout(STEP, self.seen.wait_for(|seen| seen.iter().any(&found)));
        match seen.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(DemoError(format!(
                "the bot waited {STEP:?} for the notification of {what}, in vain"
            ))),
        }
    }
}

fn state(n: &Value) -> Option<&str> {
    n["resourceData"]["state"].as_str()
}
