//! `graphtape replay` and `graphtape diff`: record the seed flows with a simulated Graph
//! and a scripted bot, then replay them to a fresh bot running the same script.

use std::path::Path;

use bytes::Bytes;

use crate::bot::*;
use crate::flows::*;
use crate::graph_sim::*;
use crate::replayer::*;
use crate::util::*;

/// The meeting flow of these tests: join, invite (the completion races the response),
/// hang up.
const MEETING: Flow = Flow::Invite;

async fn record(db: &Path, name: &str, flow: Flow) -> Vec<Bytes> {
    record_flow(db, name, flow, SimOptions::default()).await
}

/// Replays the "incoming" session's notifications only (`--no-graph`) to a bot that
/// answers them as `answer` says.
async fn notifications_to(db: &Path, answer: Answer) -> Replayed {
    let bot = Bot::start(Script {
        answer,
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    replay(
        db,
        "incoming",
        &bot,
        Flow::Listen(4),
        "",
        &["--fast", "--no-graph"],
    )
    .await
}

#[tokio::test]
async fn incoming_call_replays_exactly_and_repeatably() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let recorded = record(&db, "incoming", Flow::Incoming).await;
    assert_eq!(recorded.len(), 4);

    let mut deliveries = Vec::new();
    for run in 1..=2 {
        let bot = Bot::start(Script::default()).await;
        let r = replay(&db, "incoming", &bot, Flow::Incoming, "", &["--fast"]).await;
        assert_eq!(r.code, Some(0), "run {run}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains(&format!("record-as=incoming-replay-{run}")),
            "{}",
            r.stdout
        );
        assert_eq!(r.report["passed"], true);
        assert_eq!(r.report["calls"][0]["requests_matched"], 2);
        assert_eq!(r.report["calls"][0]["notifications_delivered"], 4);
        // Exactly once each, in recorded order, bytes unchanged.
        assert_eq!(bot.bodies(), recorded, "run {run}");
        assert!(bot.peer.seen().iter().all(|s| s.uri == BOT_PATH));
        deliveries.push(bot.bodies());
    }
    assert_eq!(
        deliveries[0], deliveries[1],
        "replaying twice gives identical deliveries"
    );

    // The replay is itself a session, and it matches the recording event by event.
    let out = graphtape(&[
        "diff",
        "--db",
        db.to_str().unwrap(),
        "incoming",
        "incoming-replay-1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no differences"), "{text}");
}

#[tokio::test]
async fn meeting_replay_reproduces_the_race_and_echoes_the_bots_client_context() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let recorded = record(&db, "meeting", MEETING).await;
    let file = dir.path().join("meeting.json");
    let out = graphtape(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "meeting",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());

    // Straight from the file, into a fresh database, at recorded speed.
    let fresh = dir.path().join("fresh.db");
    let bot = Bot::start(Script::default()).await;
    let r = replay(
        &fresh,
        file.to_str().unwrap(),
        &bot,
        MEETING,
        "ctx-live",
        &["--speed", "1"],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(
        r.raced,
        "the completion reached the bot before the invite's response, as recorded"
    );
    let expected: Vec<Bytes> = recorded
        .iter()
        .map(|b| Bytes::from(String::from_utf8_lossy(b).replace("ctx-recorded", "ctx-live")))
        .collect();
    assert_eq!(bot.bodies(), expected, "bytes equal after substitution");
    assert!(String::from_utf8_lossy(&bot.bodies()[2]).contains("ctx-live"));
    // The invite's recorded response echoes the bot's new clientContext too.
    let replayed = exchanges(&fresh, "meeting-replay-1");
    let invite = replayed
        .iter()
        .find(|e| e.request.path.ends_with("/invite"))
        .unwrap();
    let answer = String::from_utf8_lossy(&invite.response.as_ref().unwrap().body.bytes).to_string();
    assert!(
        answer.contains("\"clientContext\":\"ctx-live\""),
        "{answer}"
    );
    assert!(!answer.contains("ctx-recorded"), "{answer}");
    let t = &r.report["timing_error"];
    // Every notification was timed; how precisely is the replay_timing bench's to say
    // (a loaded test machine is no measure of it).
    assert_eq!(t["count"], 5);
    assert!(t["max_us"].as_f64().is_some_and(|us| us >= 0.0), "{t}");
}

#[tokio::test]
async fn a_bot_that_skips_a_request_fails_the_replay_naming_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    record(&db, "incoming", Flow::Incoming).await;
    // This bot acknowledges the incoming call but never answers it.
    let bot = Bot::start(Script {
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    let r = replay_with(
        &db,
        "incoming",
        &bot,
        &["--fast", "--wait", "0.5", "--settle", "0.1"],
        async |bot: &Bot| {
            bot.peer.wait_for(1).await;
            false
        },
    )
    .await;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let call = INCOMING.to_lowercase();
    assert!(
        r.stdout
            .contains(&format!("divergence missing-request [{call}]")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("divergence notification-undelivered"),
        "{}",
        r.stdout
    );
    assert_eq!(r.report["passed"], false);
    let kinds: Vec<&str> = r.report["divergences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"missing-request"), "{kinds:?}");
    // Only the incoming notification went out: the rest waited for the answer.
    assert_eq!(bot.bodies().len(), 1);
}

#[tokio::test]
async fn extra_requests_and_other_statuses_fail_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    record(&db, "incoming", Flow::Incoming).await;

    // A bot that answers notifications with 500.
    let r = notifications_to(&db, Answer::Status(500)).await;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("divergence notification-status"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("the bot answered 500, recorded 202"),
        "{}",
        r.stdout
    );

    // A bot that hangs up twice, then makes a request the recording never saw.
    let bot = Bot::start(Script::default()).await;
    let r = replay_with(
        &db,
        "incoming",
        &bot,
        &["--fast", "--settle", "0.3"],
        async |bot: &Bot| {
            run_script(bot, Flow::Incoming, "").await;
            let hang_up = format!("/v1.0/communications/calls/{}", dashed(INCOMING));
            let (status, _) = bot.graph("DELETE", &hang_up, b"").await;
            assert_eq!(
                status, 204,
                "an extra request is still answered as recorded"
            );
            let invite = format!(
                "/v1.0/communications/calls/{}/participants/invite",
                dashed(INCOMING)
            );
            let (status, body) = bot.graph("POST", &invite, &invite_body("x", None)).await;
            assert_eq!(status, 404);
            let diag: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(diag["error"]["code"], "replayUnmatched");
            assert!(
                diag["error"]["innerError"]["nearest"]["seq"].is_u64(),
                "{diag}"
            );
            false
        },
    )
    .await;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("divergence unmatched-request"),
        "{}",
        r.stdout
    );
    let extra = format!("divergence extra-request [{}]", INCOMING.to_lowercase());
    assert!(r.stdout.contains(&extra), "{}", r.stdout);

    // diff shows where this replay departed from the recording.
    let out = graphtape(&[
        "diff",
        "--db",
        db.to_str().unwrap(),
        "incoming",
        "incoming-replay-2",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("+ ") && l.contains("invite")),
        "{text}"
    );
}

#[tokio::test]
async fn signed_callback_tokens_verify_only_against_graphtapes_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    record(&db, "incoming", Flow::Incoming).await;
    // The bot's validator fetches the keys from the replay's API listener, whose port
    // it knows up front.
    let port = free_port();
    let trusting = Bot::start(Script {
        answer: Answer::Verify {
            jwks_url: format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        },
        ..Script::default()
    })
    .await;
    let listen = format!("127.0.0.1:{port}");
    let r = replay(
        &db,
        "incoming",
        &trusting,
        Flow::Incoming,
        "",
        &["--fast", "--api-listen", &listen],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(db.with_file_name("g-signing-key.pem").exists());
    // The token carries the recorded issuer and audience.
    let token = trusting.peer.seen()[0].headers["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "https://api.botframework.com");
    assert_eq!(claims["aud"], "8a34a46b-3d17-4adc-8dce-dc4e7d572698");

    // A bot that trusts other keys rejects every notification: the report shows 401s.
    let other_keys = dir.path().join("other.pem");
    let (other, _) = graphtape::replay::auth::Signer::load_or_create(&other_keys).unwrap();
    let jwks = other.jwks().to_string();
    let key_server = FakePeer::start(handler(move |_| {
        let jwks = jwks.clone();
        async move {
            respond(
                200,
                &[("content-type", "application/json")],
                jwks.as_bytes(),
            )
        }
    }))
    .await;
    let jwks_url = format!("{}/keys", key_server.url);
    let r = notifications_to(&db, Answer::Verify { jwks_url }).await;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("the bot answered 401, recorded 202"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn no_graph_delivers_notifications_on_the_recorded_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let recorded = record(&db, "incoming", Flow::Incoming).await;
    let bot = Bot::start(Script {
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    let r = replay(
        &db,
        "incoming",
        &bot,
        Flow::Listen(4),
        "",
        &["--no-graph", "--callback-auth", "none"],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("listening api="), "{}", r.stdout);
    assert_eq!(bot.bodies(), recorded);
    assert!(bot
        .peer
        .seen()
        .iter()
        .all(|s| !s.headers.contains_key("authorization")));
}

#[test]
fn replay_input_errors_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    for (args, want) in [
        (
            vec!["replay", "missing.json", "--bot-url", "http://127.0.0.1:9"],
            "no such recording file",
        ),
        (vec!["replay", "s", "--bot-url", "nowhere"], "--bot-url"),
        (
            vec![
                "replay",
                "s",
                "--bot-url",
                "http://127.0.0.1:9",
                "--speed",
                "0",
            ],
            "--speed",
        ),
        (
            vec![
                "replay",
                "s",
                "--bot-url",
                "http://127.0.0.1:9",
                "--callback-auth",
                "jwt",
            ],
            "--callback-auth",
        ),
        (
            vec!["replay", "s", "--bot-url", "http://127.0.0.1:9"],
            "no database at",
        ),
    ] {
        let mut full: Vec<&str> = args.clone();
        full.extend(["--db", db.to_str().unwrap()]);
        let out = graphtape(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn call_filter_replays_only_that_call() {
    let recording =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/invite-from-incoming-call.json");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let bot = Bot::start(Script {
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    // The P2P call's own notifications: incoming, establishing, established, ended.
    let r = replay(
        &db,
        recording.to_str().unwrap(),
        &bot,
        Flow::Listen(4),
        "",
        &["--no-graph", "--fast", "--call", &dashed(INCOMING)],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("notifications=4"), "{}", r.stdout);
    assert!(bot
        .bodies()
        .iter()
        .all(|b| String::from_utf8_lossy(b).contains(INCOMING)));

    let out = graphtape(&[
        "replay",
        recording.to_str().unwrap(),
        "--bot-url",
        &bot.peer.url,
        "--call",
        "ffff",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such call"));
}

#[tokio::test]
async fn an_interrupted_replay_still_reports_and_records_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    record(&db, "incoming", Flow::Incoming).await;
    let bot = Bot::start(Script {
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args([
            "replay",
            "incoming",
            "--db",
            db.to_str().unwrap(),
            "--bot-url",
            &bot.peer.url,
        ])
        .args(["--api-listen", "127.0.0.1:0", "--fast", "--wait", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The incoming call arrived; replay now waits (up to a minute) for the answer.
    bot.peer.wait_for(1).await;
    // SAFETY: kill(2) on a child we spawned and have not reaped.
    assert_eq!(
        unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) },
        0
    );
    let out = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("an interrupted replay stops promptly")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("divergence interrupted"), "{text}");
    let replayed = exchanges(&db, "incoming-replay-1");
    assert_eq!(
        replayed.len(),
        1,
        "the delivered notification is in the replay session"
    );
}

#[tokio::test]
async fn a_bot_that_gives_a_new_callback_url_gets_its_notifications_there() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let recorded_as = Script {
        callback_path: "/api/calls/run-1".into(),
        ..Script::default()
    };
    record_flow_as(&db, "join", Flow::Join, SimOptions::default(), recorded_as).await;
    let bot = Bot::start(Script {
        callback_path: "/api/calls/run-2?tenant=t2".into(),
        ..Script::default()
    })
    .await;
    let r = replay(&db, "join", &bot, Flow::Join, "", &["--fast"]).await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let paths: Vec<String> = bot.peer.seen().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(paths, vec!["/api/calls/run-2?tenant=t2"; 3]);
}

#[tokio::test]
async fn replay_serves_the_api_over_tls_for_bots_on_other_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    record(&db, "incoming", Flow::Incoming).await;
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let bot = Bot::start(Script {
        ca: Some(cert.clone()),
        ..Script::default()
    })
    .await;
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let r = replay(
        &db,
        "incoming",
        &bot,
        Flow::Incoming,
        "",
        &["--fast", "--tls-cert", cert, "--tls-key", key],
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("listening api=https://"), "{}", r.stdout);
    let made = bot.calls_made.lock().unwrap().clone();
    assert_eq!(made.len(), 2, "answer and hang-up over TLS: {made:?}");
    assert!(made.iter().all(|(_, status)| *status < 300), "{made:?}");
}
