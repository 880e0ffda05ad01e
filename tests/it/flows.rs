//! The seed's call flows as bot scripts, and recording them through graphtape with the
//! simulated Graph. The same script drives the bot when recording and when replaying.

use std::path::Path;

use bytes::Bytes;

use crate::bot::*;
use crate::graph_sim::*;
use crate::util::*;

pub fn join_body(callback: &str) -> Vec<u8> {
    format!(r##"{{"@odata.type":"#microsoft.graph.call","callbackUri":"{callback}","requestedModalities":[],"mediaConfig":{{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}},"chatInfo":{{"threadId":"19:meeting_x@thread.v2","messageId":"0"}},"meetingInfo":{{"@odata.type":"#microsoft.graph.organizerMeetingInfo","organizer":{{"user":{{"id":"90ED37DC-D8E3-4E11-9DE3-30A955DDA06F","tenantId":"49BFC225-8482-4AB8-94E7-76B48FDB9849"}}}}}}}}"##).into_bytes()
}

pub fn invite_body(client_context: &str, replaces: Option<&str>) -> Vec<u8> {
    let replaces = replaces
        .map(|id| format!(r#","replacesCallId":"/app/calls/{id}""#))
        .unwrap_or_default();
    format!(r##"{{"participants":[{{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{{"user":{{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698","displayName":"Heidi Steen"}}}}{replaces}}}],"clientContext":"{client_context}"}}"##).into_bytes()
}

/// A scripted flow.
#[derive(Clone, Copy, Debug)]
pub enum Flow {
    /// Answer an incoming VOIP call, then hang up.
    Incoming,
    /// Join a channel meeting without media, then hang up.
    Join,
    /// Join, invite a participant into the call, hang up.
    Invite,
    /// Answer an incoming P2P call, join a meeting, invite the caller into it with
    /// `replacesCallId` (the P2P call ends), hang up.
    InviteFromIncoming,
    /// Only listen for this many notification POSTs (for `--no-graph`).
    Listen(usize),
}

impl Flow {
    /// Whether Graph starts the flow with an incoming-call notification.
    pub fn starts_incoming(self) -> bool {
        matches!(self, Flow::Incoming | Flow::InviteFromIncoming)
    }
}

async fn hang_up(bot: &Bot, call: &str) {
    let (status, _) = bot
        .graph(
            "DELETE",
            &format!("/v1.0/communications/calls/{}", dashed(call)),
            b"",
        )
        .await;
    assert_eq!(status, 204);
}

async fn join(bot: &Bot) {
    let (status, body) = bot
        .graph(
            "POST",
            "/v1.0/communications/calls",
            &join_body(&bot.callback_uri()),
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
}

/// Invites; returns whether the completion had reached the bot when the response did.
async fn invite(bot: &Bot, client_context: &str, replaces: Option<&str>) -> bool {
    let (status, _) = bot
        .graph(
            "POST",
            &format!(
                "/v1.0/communications/calls/{}/participants/invite",
                dashed(JOINED)
            ),
            &invite_body(client_context, replaces),
        )
        .await;
    assert_eq!(status, 200);
    bot.bodies()
        .iter()
        .any(|b| String::from_utf8_lossy(b).contains("\"completed\""))
}

/// Runs the bot's side of `flow`. Returns whether an invite's completion beat its
/// response.
pub async fn run_script(bot: &Bot, flow: Flow, client_context: &str) -> bool {
    match flow {
        Flow::Incoming => {
            bot.peer.wait_for(3).await;
            hang_up(bot, INCOMING).await;
            bot.peer.wait_for(4).await;
            false
        }
        Flow::Join => {
            join(bot).await;
            bot.peer.wait_for(2).await;
            hang_up(bot, JOINED).await;
            bot.peer.wait_for(3).await;
            false
        }
        Flow::Invite => {
            join(bot).await;
            bot.peer.wait_for(2).await;
            let raced = invite(bot, client_context, None).await;
            bot.peer.wait_for(4).await;
            hang_up(bot, JOINED).await;
            bot.peer.wait_for(5).await;
            raced
        }
        Flow::InviteFromIncoming => {
            bot.peer.wait_for(3).await;
            join(bot).await;
            bot.peer.wait_for(5).await;
            let raced = invite(bot, client_context, Some(INCOMING)).await;
            bot.peer.wait_for(8).await;
            hang_up(bot, JOINED).await;
            bot.peer.wait_for(9).await;
            raced
        }
        Flow::Listen(n) => {
            bot.peer.wait_for(n).await;
            false
        }
    }
}

/// Records `flow` as session `name` in `db` through graphtape, with Graph simulated as
/// `options` say. Returns the notification bodies the bot received.
pub async fn record_flow(db: &Path, name: &str, flow: Flow, options: SimOptions) -> Vec<Bytes> {
    record_flow_as(db, name, flow, options, Script::default()).await
}

/// `graphtape record` between `graph` and `bot` (their URLs) as session `name`: the
/// callback listener on a free port, `callbackUri` rewritten to it, `extra` flags.
pub async fn record_between(
    db: &Path,
    name: &str,
    graph: &str,
    bot: &str,
    extra: &[&str],
) -> Graphtape {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        "--upstream",
        graph,
        "--session",
        name,
        "--callback-listen",
        &listen,
        "--public-url",
        &public,
        "--bot-url",
        bot,
    ];
    args.extend(extra);
    Graphtape::record(db, &args).await
}

/// Like [`record_flow`], with the bot behaving as `script` says.
pub async fn record_flow_as(
    db: &Path,
    name: &str,
    flow: Flow,
    options: SimOptions,
    script: Script,
) -> Vec<Bytes> {
    let sim = GraphSim::with_options(None, options);
    let graph = FakePeer::start(sim.handler()).await;
    let bot = Bot::start(script).await;
    let gt = record_between(db, name, &graph.url, &bot.peer.url, &[]).await;
    bot.use_api(&gt.api);
    if flow.starts_incoming() {
        let callback = gt.callback.clone().unwrap();
        let posted = sim
            .notify(&format!("{callback}{BOT_PATH}"), incoming_call())
            .await;
        assert_eq!(posted.status, 202);
    }
    run_script(&bot, flow, "ctx-recorded").await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    bot.bodies()
}
