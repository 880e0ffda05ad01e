//! From capture to fixture: record several concurrent calls through graphtape, cut one
//! out (`export --call`), and replay the cut to a bot that handles only that call.

use std::path::Path;

use crate::bot::*;
use crate::flows::{join_body, record_between};
use crate::graph_sim::*;
use crate::replayer::replay_with;
use crate::util::*;

/// One POST carrying a roster update for each of the two calls, as Graph batches.
fn rosters_of_both() -> Vec<u8> {
    let entry = |call: &str| {
        let v: serde_json::Value = serde_json::from_slice(&roster_updated(call)).unwrap();
        v["value"][0].clone()
    };
    serde_json::to_vec(&serde_json::json!({
        "@odata.type": "#microsoft.graph.commsNotifications",
        "value": [entry(JOINED), entry(INCOMING)],
    }))
    .unwrap()
}

pub async fn hang_up(bot: &Bot, call: &str) {
    let path = format!("/v1.0/communications/calls/{}", dashed(call));
    assert_eq!(bot.graph("DELETE", &path, b"").await.0, 204);
}

/// Records session `multi`: an incoming call is answered, the bot joins a meeting while
/// it is up, Graph posts one batch about both calls, then both are hung up.
pub async fn record_two_calls(db: &Path) {
    record_two_calls_as(db, "multi", &[]).await
}

/// Like [`record_two_calls`], as session `name` with more `record` flags.
pub async fn record_two_calls_as(db: &Path, name: &str, extra: &[&str]) {
    let sim = GraphSim::new(None);
    let graph = FakePeer::start(sim.handler()).await;
    let bot = Bot::start(Script::default()).await;
    let gt = record_between(db, name, &graph.url, &bot.peer.url, extra).await;
    bot.use_api(&gt.api);
    let callback = format!("{}{BOT_PATH}", gt.callback.clone().unwrap());
    assert_eq!(sim.notify(&callback, incoming_call()).await.status, 202);
    // incoming, then the answer's establishing and established.
    bot.peer.wait_for(3).await;
    let (status, body) = bot
        .graph(
            "POST",
            "/v1.0/communications/calls",
            &join_body(&bot.callback_uri()),
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    bot.peer.wait_for(5).await;
    assert_eq!(sim.notify(&callback, rosters_of_both()).await.status, 202);
    hang_up(&bot, JOINED).await;
    bot.peer.wait_for(7).await;
    hang_up(&bot, INCOMING).await;
    bot.peer.wait_for(8).await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

fn run_ok(args: &[&str]) -> String {
    let out = graphtape(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn mentions(text: &str, call: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains(&call.to_ascii_lowercase()) || text.contains(&dashed(call))
}

#[tokio::test]
async fn a_call_cut_from_concurrent_calls_replays_cleanly_to_a_one_call_bot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db_arg = db.to_str().unwrap();
    record_two_calls(&db).await;
    let calls = run_ok(&["calls", "--db", db_arg, "multi"]);
    assert!(
        mentions(&calls, INCOMING) && mentions(&calls, JOINED),
        "{calls}"
    );

    // Cut the incoming call (spelt as a Location header spells it).
    let cut = dir.path().join("incoming.json");
    let cut_arg = cut.to_str().unwrap();
    run_ok(&[
        "export",
        "--db",
        db_arg,
        "multi",
        "--call",
        &dashed(INCOMING),
        "-o",
        cut_arg,
    ]);
    let text = std::fs::read_to_string(&cut).unwrap();
    assert!(!mentions(&text, JOINED), "the other call leaked:\n{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let seqs: Vec<u64> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(doc["events"][0]["request"]["start_us"], 0);
    let p = &doc["provenance"];
    assert_eq!(p["source_session"], "multi");
    assert_eq!(p["calls"], serde_json::json!([INCOMING.to_lowercase()]));
    assert_eq!(p["original_seqs"].as_array().unwrap().len(), 7);
    let dropped = p["entries_dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1, "{p}");
    assert_eq!(dropped[0]["kept"], serde_json::json!([1]));
    assert_eq!(dropped[0]["dropped"], serde_json::json!([0]));

    // The reading commands take the file; import keeps the provenance.
    let calls = run_ok(&["calls", cut_arg]);
    assert!(
        mentions(&calls, INCOMING) && !mentions(&calls, JOINED),
        "{calls}"
    );
    let db2 = dir.path().join("other.db");
    let db2_arg = db2.to_str().unwrap();
    run_ok(&["import", "--db", db2_arg, cut_arg]);
    let again = run_ok(&["export", "--db", db2_arg, "multi-cut"]);
    assert_eq!(again, text, "export after import gives the same file");
    let diff = run_ok(&["diff", "--db", db2_arg, cut_arg, "multi-cut"]);
    assert!(diff.contains("no differences"), "{diff}");
    // Two files need no database at all.
    let nowhere = dir.path().join("none.db");
    let diff = run_ok(&["diff", "--db", nowhere.to_str().unwrap(), cut_arg, cut_arg]);
    assert!(diff.contains("no differences"), "{diff}");
    assert!(!nowhere.exists());

    // A bot that knows only this call: it answers it, and hangs up after the batch.
    let bot = Bot::start(Script::default()).await;
    let r = replay_with(&db2, cut_arg, &bot, &["--fast"], async |bot: &Bot| {
        bot.peer.wait_for(4).await;
        hang_up(bot, INCOMING).await;
        bot.peer.wait_for(5).await;
        false
    })
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert_eq!(r.report["passed"], true, "{}", r.report);
    let bodies = bot.bodies();
    assert_eq!(bodies.len(), 5);
    assert!(bodies
        .iter()
        .all(|b| mentions(&String::from_utf8_lossy(b), INCOMING)
            && !mentions(&String::from_utf8_lossy(b), JOINED)));
    let made: Vec<String> = bot
        .calls_made
        .lock()
        .unwrap()
        .iter()
        .map(|(what, _)| what.clone())
        .collect();
    assert_eq!(made.len(), 2, "{made:?}");
}

#[tokio::test]
async fn a_seq_range_cut_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db_arg = db.to_str().unwrap();
    record_two_calls(&db).await;
    let text = run_ok(&["export", "--db", db_arg, "multi", "--seq", "4..6"]);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["events"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["provenance"]["original_seqs"],
        serde_json::json!([4, 5, 6])
    );
    assert_eq!(
        doc["provenance"]["seq_range"],
        serde_json::json!({"first": 4, "last": 6})
    );

    for (args, want) in [
        (vec!["--call", "ffff"], "no such call"),
        (vec!["--seq", "9..3"], "the range is empty"),
        (vec!["--seq", "900.."], "keeps no events"),
    ] {
        let mut all = vec!["export", "--db", db_arg, "multi"];
        all.extend(args.iter());
        let out = graphtape(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
