//! `graphtape record` with the callback listener: the seed's flows end to end, with a
//! simulated Graph posting notifications and a test bot receiving them.

use std::path::Path;

use crate::graph_sim::*;
use crate::util::*;

const BOT_PATH: &str = "/api/calls";

/// A bot webhook that acknowledges every notification with 202.
async fn bot() -> FakePeer {
    FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await
}

/// graphtape between the simulator and the bot, rewriting callbackUri to its own
/// callback listener on a fixed port.
async fn start(db: &Path, graph: &FakePeer, bot: &FakePeer, extra: &[&str]) -> Graphtape {
    let port = free_port();
    let callback_listen = format!("127.0.0.1:{port}");
    let scheme = if extra.iter().any(|a| a.starts_with("--tls")) {
        "https"
    } else {
        "http"
    };
    let public = format!("{scheme}://127.0.0.1:{port}");
    let mut args = vec![
        "--upstream",
        &graph.url,
        "--session",
        "s",
        "--callback-listen",
        &callback_listen,
        "--public-url",
        &public,
        "--bot-url",
        &bot.url,
    ];
    args.extend_from_slice(extra);
    Graphtape::record(db, &args).await
}

/// The usual set-up: a simulated Graph, a bot, and graphtape between them recording
/// session "s" into a fresh database.
struct Rig {
    sim: std::sync::Arc<GraphSim>,
    graph: FakePeer,
    bot: FakePeer,
    dir: tempfile::TempDir,
    db: std::path::PathBuf,
    gt: Graphtape,
}

impl Rig {
    async fn start() -> Rig {
        let sim = GraphSim::new(None);
        let graph = FakePeer::start(sim.handler()).await;
        let bot = bot().await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("g.db");
        let gt = start(&db, &graph, &bot, &[]).await;
        Rig {
            sim,
            graph,
            bot,
            dir,
            db,
            gt,
        }
    }
}

/// The API exchanges and notification POSTs of a session as (seq, direction, what).
fn timeline(db: &Path) -> Vec<(u64, String, String)> {
    exchanges(db, "s")
        .iter()
        .map(|e| {
            let what = match e.direction {
                graphtape::exchange::Direction::Api => {
                    format!("{} {}", e.request.method, e.request.path)
                }
                graphtape::exchange::Direction::Callback => {
                    graphtape::graph::parse_notifications(&e.request.body.bytes)
                        .unwrap()
                        .iter()
                        .map(|n| {
                            format!(
                                "{} {}",
                                n.change_type.clone().unwrap_or_default(),
                                n.state.clone().or(n.status.clone()).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(" + ")
                }
            };
            (e.seq, e.direction.as_str().to_string(), what)
        })
        .collect()
}

fn join_body(callback: &str) -> Vec<u8> {
    format!(
        r##"{{"@odata.type":"#microsoft.graph.call","callbackUri":"{callback}","requestedModalities":[],"mediaConfig":{{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}},"chatInfo":{{"threadId":"19:meeting_x@thread.v2","messageId":"0"}},"meetingInfo":{{"@odata.type":"#microsoft.graph.organizerMeetingInfo","organizer":{{"user":{{"id":"90ED37DC-D8E3-4E11-9DE3-30A955DDA06F","tenantId":"49BFC225-8482-4AB8-94E7-76B48FDB9849"}}}}}}}}"##
    )
    .into_bytes()
}

#[tokio::test]
async fn incoming_call_answered() {
    let Rig {
        sim,
        graph,
        bot,
        dir,
        db,
        gt,
    } = Rig::start().await;
    let callback = gt.callback.clone().unwrap();

    // Graph calls the bot registration's webhook, which points at graphtape.
    let posted = sim
        .notify(&format!("{callback}{BOT_PATH}"), incoming_call())
        .await;
    assert_eq!(posted.status, 202);
    let seen = bot.wait_for(1).await;
    assert_eq!(seen[0].uri, BOT_PATH);
    assert_eq!(seen[0].body, incoming_call());

    // The bot answers, giving its own callback URL; Graph must see graphtape's.
    let own_callback = format!("{}{BOT_PATH}", bot.url);
    let answer = format!(
        r##"{{"callbackUri":"{own_callback}","acceptedModalities":["audio"],"mediaConfig":{{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}}}"##
    );
    let (parts, _) = send(
        &client(),
        request(
            "POST",
            &format!(
                "{}/v1.0/communications/calls/{}/answer",
                gt.api,
                dashed(INCOMING)
            ),
            &[("content-type", "application/json")],
            answer.as_bytes(),
        ),
    )
    .await;
    assert_eq!(parts.status, 202);
    let upstream_body: serde_json::Value = serde_json::from_slice(&graph.seen()[0].body).unwrap();
    let rewritten = upstream_body["callbackUri"].as_str().unwrap();
    assert!(
        rewritten.starts_with(&format!("{callback}/callback/")),
        "{rewritten}"
    );

    let seen = bot.wait_for(3).await;
    assert_eq!(seen[1].body, establishing(INCOMING));
    assert_eq!(seen[2].body, established(INCOMING));
    assert!(seen.iter().all(|s| s.uri == BOT_PATH));
    // Graph's token reached the bot intact.
    assert_eq!(
        seen[1].headers["authorization"],
        format!("Bearer {}", graph_jwt()).as_str()
    );

    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert_eq!(
        timeline(&db),
        vec![
            (1, "callback".into(), "created incoming".into()),
            (
                2,
                "api".into(),
                format!(
                    "POST /v1.0/communications/calls/{}/answer",
                    dashed(INCOMING)
                )
            ),
            (3, "callback".into(), "updated establishing".into()),
            (4, "callback".into(), "updated established".into()),
        ]
    );
    let ex = exchanges(&db, "s");
    // The recording keeps what the bot sent and what was forwarded.
    assert_eq!(ex[1].request.body.bytes, answer.as_bytes());
    let forwarded = ex[1].forwarded_body.as_ref().unwrap();
    assert!(String::from_utf8_lossy(&forwarded.bytes).contains(rewritten));
    assert_eq!(ex[2].target.as_deref(), Some(own_callback.as_str()));
    // One call, seen from both directions.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let calls: Vec<String> = conn
        .prepare("SELECT DISTINCT call_id FROM exchanges ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(calls, vec![INCOMING.to_lowercase()]);
    // Graph's bearer token is not stored in clear; its claims are.
    let token = graph_jwt();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, token.as_bytes()));
    }
    let auth = ex[0]
        .request
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    assert!(String::from_utf8_lossy(&auth.1).contains("iss=https://api.botframework.com"));
}

/// Joins the meeting through graphtape and waits for establishing + established.
async fn join(gt: &Graphtape, bot: &FakePeer) {
    let (parts, body) = send(
        &client(),
        request(
            "POST",
            &format!("{}/v1.0/communications/calls", gt.api),
            &[("content-type", "application/json")],
            &join_body(&format!("{}{BOT_PATH}", bot.url)),
        ),
    )
    .await;
    assert_eq!(parts.status, 201, "{}", String::from_utf8_lossy(&body));
    let seen = bot.wait_for(2).await;
    assert_eq!(seen[0].body, establishing(JOINED));
    assert_eq!(seen[1].body, established(JOINED));
}

#[tokio::test]
async fn join_meeting_without_media() {
    let Rig {
        sim: _sim,
        graph: _graph,
        bot,
        dir: _dir,
        db,
        gt,
    } = Rig::start().await;
    join(&gt, &bot).await;
    assert!(gt.stop().await.status.success());
    assert_eq!(
        timeline(&db),
        vec![
            (1, "api".into(), "POST /v1.0/communications/calls".into()),
            (2, "callback".into(), "updated establishing".into()),
            (3, "callback".into(), "updated established".into()),
        ]
    );
    let out = graphtape(&["sessions", "--db", db.to_str().unwrap(), "--json"]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["calls"], 1);
    assert_eq!(summary["api_exchanges"], 1);
    assert_eq!(summary["notifications"], 2);
}

#[tokio::test]
async fn invite_notification_before_response_is_recorded_in_that_order() {
    let Rig {
        sim: _sim,
        graph: _graph,
        bot,
        dir: _dir,
        db,
        gt,
    } = Rig::start().await;
    join(&gt, &bot).await;

    let invite = br##"{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}},"replacesCallId":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896"}],"clientContext":"d45324c1-fcb5-430a-902c-f20af696537c"}"##;
    let (parts, body) = send(
        &client(),
        request(
            "POST",
            &format!(
                "{}/v1.0/communications/calls/{}/participants/invite",
                gt.api,
                dashed(JOINED)
            ),
            &[("content-type", "application/json")],
            invite,
        ),
    )
    .await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    // By the time the bot has the operation id, it already had the completion.
    assert_eq!(
        bot.seen()[2].body,
        operation_completed(JOINED, "d45324c1-fcb5-430a-902c-f20af696537c")
    );
    bot.wait_for(4).await;
    assert!(gt.stop().await.status.success());

    let ex = exchanges(&db, "s");
    let (invite_ex, completed) = invite_and_completion(&ex);
    assert!(completed.seq > invite_ex.seq, "the invite arrived first");
    assert!(
        completed.timing.request_start_us < invite_ex.timing.response_start_us.unwrap(),
        "the notification arrived before the invite's response"
    );
    assert!(
        completed.timing.response_end_us.unwrap() <= invite_ex.timing.response_start_us.unwrap()
    );
    // The operation id is found in both, whatever its spelling.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ops: Vec<(u64, String)> = conn
        .prepare(
            "SELECT seq, operation_id FROM exchanges WHERE operation_id IS NOT NULL ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ops,
        vec![
            (invite_ex.seq, OPERATION.to_lowercase()),
            (completed.seq, OPERATION.to_lowercase())
        ]
    );
}

#[tokio::test]
async fn a_post_with_two_notifications_is_indexed_as_two() {
    let Rig {
        sim: _sim,
        graph: _graph,
        bot,
        dir: _dir,
        db,
        gt,
    } = Rig::start().await;
    join(&gt, &bot).await;
    let (parts, _) = send(
        &client(),
        request(
            "DELETE",
            &format!("{}/v1.0/communications/calls/{}", gt.api, dashed(JOINED)),
            &[],
            b"",
        ),
    )
    .await;
    assert_eq!(parts.status, 204);
    let seen = bot.wait_for(3).await;
    assert_eq!(seen[2].body, terminated_and_deleted(JOINED));
    assert!(gt.stop().await.status.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(i64, String, Option<String>)> = conn
        .prepare(
            "SELECT position, change_type, state FROM notifications
             WHERE seq = (SELECT max(seq) FROM exchanges) ORDER BY position",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![
            (0, "updated".into(), Some("terminated".into())),
            (1, "deleted".into(), None)
        ]
    );
}

#[tokio::test]
async fn tls_callback_listener_with_a_self_signed_certificate() {
    let graph_slot = std::sync::Arc::new(std::sync::Mutex::new(None::<std::sync::Arc<GraphSim>>));
    // The simulator can only trust graphtape's certificate once graphtape made it, so
    // its API handler looks the simulator up when called.
    let slot = graph_slot.clone();
    let graph = FakePeer::start(handler(move |seen: Seen| {
        let sim = slot.lock().unwrap().clone().unwrap();
        async move { (sim.handler())(seen).await }
    }))
    .await;
    let bot = bot().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = start(&db, &graph, &bot, &["--tls-self-signed"]).await;
    let cert = gt.cert.clone().expect("the certificate path is printed");
    assert_eq!(cert, dir.path().join("g-cert.pem"));
    assert!(gt.callback.as_deref().unwrap().starts_with("https://"));
    *graph_slot.lock().unwrap() = Some(GraphSim::new(Some(&cert)));
    join(&gt, &bot).await;
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "s");
    assert_eq!(ex.len(), 3);
    // The simulator offered h2 by ALPN and graphtape accepted it.
    assert_eq!(ex[1].request.version, "HTTP/2.0");
}

#[tokio::test]
async fn tls_callback_listener_with_a_given_certificate_and_tls_on_the_api_side() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let sim = GraphSim::new(Some(&cert));
    let graph = FakePeer::start(sim.handler()).await;
    let bot = bot().await;
    let db = dir.path().join("g.db");
    let gt = start(
        &db,
        &graph,
        &bot,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--api-tls",
        ],
    )
    .await;
    assert!(gt.api.starts_with("https://"));
    let posted = sim
        .notify(
            &format!("{}{BOT_PATH}", gt.callback.clone().unwrap()),
            incoming_call(),
        )
        .await;
    assert_eq!(posted.status, 202);
    // The bot's Graph client over TLS too.
    let resp = tls_client(Some(&cert))
        .request(request(
            "POST",
            &format!(
                "{}/v1.0/communications/calls/{}/answer",
                gt.api,
                dashed(INCOMING)
            ),
            &[("content-type", "application/json")],
            format!(r#"{{"callbackUri":"{}{BOT_PATH}"}}"#, bot.url).as_bytes(),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    bot.wait_for(3).await;
    assert!(gt.stop().await.status.success());
    assert_eq!(exchanges(&db, "s").len(), 4);
}

#[tokio::test]
async fn bot_down_graph_gets_an_error_and_it_is_recorded() {
    let sim = GraphSim::new(None);
    let graph = FakePeer::start(sim.handler()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let closed = format!("http://127.0.0.1:{}", free_port());
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "s",
            "--callback-listen",
            "127.0.0.1:0",
            "--bot-url",
            &closed,
        ],
    )
    .await;
    let posted = sim
        .notify(
            &format!("{}{BOT_PATH}", gt.callback.clone().unwrap()),
            incoming_call(),
        )
        .await;
    assert_eq!(posted.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&posted.body).unwrap();
    assert_eq!(v["error"]["code"], "botUnreachable");
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "s");
    assert_eq!(ex.len(), 1);
    assert!(ex[0].error.as_deref().unwrap().contains("refused"));
    assert_eq!(
        ex[0].target.as_deref(),
        Some(format!("{closed}{BOT_PATH}").as_str())
    );
}

#[tokio::test]
async fn a_slow_bot_gives_graph_a_504() {
    let sim = GraphSim::new(None);
    let bot = FakePeer::start(handler(|_| std::future::pending())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(
        &db,
        &[
            "--session",
            "s",
            "--callback-listen",
            "127.0.0.1:0",
            "--bot-url",
            &bot.url,
            "--bot-timeout",
            "0.2",
        ],
    )
    .await;
    let posted = sim
        .notify(
            &format!("{}{BOT_PATH}", gt.callback.clone().unwrap()),
            incoming_call(),
        )
        .await;
    assert_eq!(posted.status, 504);
    assert!(gt.stop().await.status.success());
    assert!(exchanges(&db, "s")[0]
        .error
        .as_deref()
        .unwrap()
        .contains("did not answer"));
}

#[tokio::test]
async fn paths_graphtape_did_not_mint_are_refused() {
    let sim = GraphSim::new(None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    // No --bot-url: only minted paths lead anywhere.
    let gt = Graphtape::record(&db, &["--session", "s", "--callback-listen", "127.0.0.1:0"]).await;
    let callback = gt.callback.clone().unwrap();
    for path in ["/callback/0123456789abcdef0123456789abcdef", BOT_PATH] {
        let posted = sim
            .notify(&format!("{callback}{path}"), incoming_call())
            .await;
        assert_eq!(posted.status, 404, "{path}");
    }
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "s");
    assert_eq!(ex.len(), 2, "refusals are recorded too");
    assert!(ex[0].error.as_deref().unwrap().contains("did not mint"));
}

#[tokio::test]
async fn callback_routes_survive_a_restart() {
    let sim = GraphSim::new(None);
    let graph = FakePeer::start(sim.handler()).await;
    let bot = bot().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let args = |session| {
        vec![
            "--upstream".to_string(),
            graph.url.clone(),
            "--session".into(),
            session,
            "--callback-listen".into(),
            listen.clone(),
            "--public-url".into(),
            public.clone(),
        ]
    };
    let first = args("one".into());
    let gt = Graphtape::record(&db, &first.iter().map(String::as_str).collect::<Vec<_>>()).await;
    join(&gt, &bot).await;
    assert!(gt.stop().await.status.success());
    let minted: serde_json::Value = serde_json::from_slice(&graph.seen()[0].body).unwrap();
    let minted = minted["callbackUri"].as_str().unwrap().to_string();
    assert!(
        minted.starts_with(&format!("{public}/callback/")),
        "{minted}"
    );

    // A new process, a new session, the same database: Graph's late notification for
    // the old call still finds the bot.
    let second = args("two".into());
    let gt = Graphtape::record(&db, &second.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let posted = sim.notify(&minted, terminated_and_deleted(JOINED)).await;
    assert_eq!(posted.status, 202);
    let seen = bot.wait_for(3).await;
    assert_eq!(seen[2].uri, BOT_PATH);
    assert_eq!(seen[2].body, terminated_and_deleted(JOINED));
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "two");
    assert_eq!(ex.len(), 1, "the late notification went through graphtape");
    assert_eq!(
        ex[0].target.as_deref(),
        Some(format!("{}{BOT_PATH}", bot.url).as_str())
    );
}
