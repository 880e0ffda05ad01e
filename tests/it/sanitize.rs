//! Sanitising personal and tenant data: the seed's meeting flow (join, invite a named
//! participant, hang up) recorded through graphtape, sanitised at export or at record
//! time; no name, id or e-mail address of the original is left in the file or the
//! database, and the sanitised recording still replays cleanly.

use std::path::Path;

use crate::bot::*;
use crate::flows::{join_body, record_between};
use crate::graph_sim::*;
use crate::replayer::replay_with;
use crate::util::*;

/// The seed's participant (also the roster's "Test User").
const USER: &str = "8A34A46B-3D17-4ADC-8DCE-DC4E7D572698";
/// The guest's home tenant.
const GUEST_TENANT: &str = "3F1B7A5E-2C4D-4E6F-8A9B-0C1D2E3F4A5B";
/// The organizer of the seed's meeting (the same GUID as the joined call's id).
const ORGANIZER: &str = "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F";
/// The meeting's tenant.
const TENANT: &str = "49BFC225-8482-4AB8-94E7-76B48FDB9849";
/// The tenant in Graph's callback tokens.
const TOKEN_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

const NAMES: &[&str] = &["Heidi", "Steen", "Test User", "contoso"];

fn invite_body(client_context: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "participants": [{
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "identity": {"user": {
                "@odata.type": "#microsoft.graph.identity",
                "id": USER,
                "displayName": "Heidi Steen",
                "userPrincipalName": "heidi.steen@contoso.com",
                "tenantId": GUEST_TENANT,
            }},
        }],
        "clientContext": client_context,
    }))
    .unwrap()
}

/// The bot's side, as a real bot does it: the call id comes from the join response.
async fn meeting(bot: &Bot) -> bool {
    let (status, body) = bot
        .graph(
            "POST",
            "/v1.0/communications/calls",
            &join_body(&bot.callback_uri()),
        )
        .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let call: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let call = call["id"].as_str().unwrap().to_string();
    bot.peer.wait_for(2).await;
    let invite = format!("/v1.0/communications/calls/{call}/participants/invite");
    assert_eq!(
        bot.graph("POST", &invite, &invite_body("ctx-1")).await.0,
        200
    );
    bot.peer.wait_for(4).await;
    let path = format!("/v1.0/communications/calls/{call}");
    assert_eq!(bot.graph("DELETE", &path, b"").await.0, 204);
    bot.peer.wait_for(5).await;
    false
}

/// Records the meeting as `name` through graphtape with `extra` record flags.
async fn record_meeting(db: &Path, name: &str, extra: &[&str]) {
    let sim = GraphSim::new(None);
    let graph = FakePeer::start(sim.handler()).await;
    let bot = Bot::start(Script::default()).await;
    let gt = record_between(db, name, &graph.url, &bot.peer.url, extra).await;
    bot.use_api(&gt.api);
    meeting(&bot).await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// The originals found in `bytes`: names and e-mail (any case), ids in any spelling.
fn leaks(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    let flat = text.replace('-', "");
    let mut found: Vec<String> = NAMES
        .iter()
        .filter(|n| text.contains(&n.to_lowercase()))
        .map(|n| n.to_string())
        .collect();
    for id in [USER, GUEST_TENANT, ORGANIZER, TENANT, TOKEN_TENANT] {
        if flat.contains(&id.to_lowercase().replace('-', "")) {
            found.push(id.to_string());
        }
    }
    found
}

fn run_ok(args: &[&str]) -> Vec<u8> {
    let out = graphtape(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn replays_cleanly(db: &Path, file: &Path) {
    let bot = Bot::start(Script::default()).await;
    let r = replay_with(db, file.to_str().unwrap(), &bot, &["--fast"], async |bot| {
        meeting(bot).await
    })
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    assert_eq!(r.report["passed"], true, "{}", r.report);
    assert_eq!(bot.bodies().len(), 5);
}

#[tokio::test]
async fn export_sanitize_leaves_no_name_id_or_address_and_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db_arg = db.to_str().unwrap();
    record_meeting(&db, "meeting", &[]).await;
    let plain = run_ok(&["export", "--db", db_arg, "meeting"]);
    assert_eq!(
        leaks(&plain).len(),
        NAMES.len() + 5,
        "the scan finds what is there"
    );

    let file = dir.path().join("meeting.json");
    run_ok(&[
        "export",
        "--db",
        db_arg,
        "meeting",
        "--sanitize",
        "-o",
        file.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(leaks(&bytes), Vec::<String>::new());
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let sanitized = &doc["provenance"]["sanitized"][0];
    assert_eq!(sanitized["pii"], true, "{sanitized}");
    assert!(
        sanitized["ids_replaced"].as_u64().unwrap() >= 5,
        "{sanitized}"
    );

    // Deterministic within the database: exporting again gives the same file.
    let again = run_ok(&["export", "--db", db_arg, "meeting", "--sanitize"]);
    assert_eq!(again, bytes);

    replays_cleanly(&dir.path().join("replay.db"), &file).await;
}

#[tokio::test]
async fn record_time_rules_keep_the_database_clean_and_placeholders_stable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db_arg = db.to_str().unwrap();
    let rules = dir.path().join("sanitizers.toml");
    std::fs::write(&rules, "pii = true\n").unwrap();
    let rules_arg = rules.to_str().unwrap();
    record_meeting(&db, "one", &["--sanitizers", rules_arg]).await;
    record_meeting(&db, "two", &["--redact-pii"]).await;

    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("g.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(leaks(&bytes), Vec::<String>::new(), "{}", path.display());
        }
    }

    // The same person gets the same placeholders in both sessions.
    let invite = |session: &str| {
        let text = run_ok(&["export", "--db", db_arg, session]);
        let doc: serde_json::Value = serde_json::from_slice(&text).unwrap();
        doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["request"]["path"]
                    .as_str()
                    .unwrap()
                    .ends_with("/participants/invite")
            })
            .map(|e| e["request"]["body"]["json"].clone())
            .unwrap()
    };
    let one = invite("one");
    assert_eq!(one, invite("two"));
    let user = &one["participants"][0]["identity"]["user"];
    assert!(
        user["displayName"]
            .as_str()
            .unwrap()
            .starts_with("graphtape-redacted:"),
        "{user}"
    );
    assert!(
        user["id"].as_str().unwrap().starts_with("00000000-"),
        "{user}"
    );

    let file = dir.path().join("one.json");
    run_ok(&[
        "export",
        "--db",
        db_arg,
        "one",
        "-o",
        file.to_str().unwrap(),
    ]);
    replays_cleanly(&dir.path().join("replay.db"), &file).await;
}

#[test]
fn bad_rules_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "pii = true\nnames = [1]\n").unwrap();
    let recording =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/invite-participants.json");
    let rec = recording.to_str().unwrap();
    for (args, want) in [
        (vec!["--sanitizers", rules.to_str().unwrap()], "rules.toml"),
        (vec!["--redact-regex", "("], "--redact-regex \"(\""),
        (vec!["--redact-json-key", "a..b"], "not a key path"),
    ] {
        let mut all = vec!["export", rec];
        all.extend(args.iter());
        let out = graphtape(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
