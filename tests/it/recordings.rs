//! The example recordings in `recordings/`: made by running the seed's flows through
//! graphtape against the simulated Graph (never written by hand), and checked here:
//! they import, `show` and `check` give the expected lines and findings, HAR export
//! passes a real HAR 1.2 validator, and each replays cleanly to a bot running the same
//! script.
//!
//! Regenerate with `cargo test --test it regenerate_recordings -- --ignored`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bot::*;
use crate::flows::*;
use crate::graph_sim::SimOptions;
use crate::replayer::replay_with;
use crate::util::*;

struct Example {
    name: &'static str,
    flow: Flow,
    /// Graph's behaviour when it was recorded.
    racy: bool,
    /// The rule ids `check` must report, in order.
    findings: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    Example {
        name: "answer-incoming-voip-call",
        flow: Flow::Incoming,
        racy: false,
        findings: &[],
    },
    Example {
        name: "join-channel-meeting",
        flow: Flow::Join,
        racy: false,
        findings: &[],
    },
    Example {
        name: "invite-participants",
        flow: Flow::Invite,
        racy: false,
        findings: &[],
    },
    Example {
        name: "invite-from-incoming-call",
        flow: Flow::InviteFromIncoming,
        racy: false,
        findings: &[],
    },
    Example {
        name: "racy-invite",
        flow: Flow::Invite,
        racy: true,
        findings: &["state-regression", "notification-before-response"],
    },
];

fn file(example: &Example) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(format!("{}.json", example.name))
}

fn options(example: &Example) -> SimOptions {
    SimOptions {
        invite_race: example.racy,
        swap_establishing: example.racy,
        latency: if example.racy {
            Duration::ZERO
        } else {
            Duration::from_millis(30)
        },
    }
}

#[tokio::test]
#[ignore = "writes recordings/; run with --ignored to regenerate them"]
async fn regenerate_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("examples.db");
    for example in EXAMPLES {
        record_flow(&db, example.name, example.flow, options(example)).await;
        let out = graphtape(&[
            "export",
            "--db",
            db.to_str().unwrap(),
            example.name,
            "-o",
            file(example).to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn stdout(args: &[&str]) -> (Option<i32>, String) {
    let out = graphtape(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() != Some(2), "{args:?}: {err}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn examples_import_and_show_check_and_list_calls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db = db.to_str().unwrap();
    for example in EXAMPLES {
        let path = file(example);
        let path = path.to_str().unwrap();
        let (code, _) = stdout(&["import", "--db", db, path]);
        assert_eq!(code, Some(0));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let events = doc["events"].as_array().unwrap().len();

        // show: one line per event, in order; the same from the file and the database.
        let (_, shown) = stdout(&["show", "--db", db, example.name]);
        assert_eq!(shown.lines().count(), events, "{}", example.name);
        assert!(!shown.contains('\x1b'), "no colour when piped");
        let (_, from_file) = stdout(&["show", path]);
        assert_eq!(shown, from_file);
        let (_, json) = stdout(&["show", "--db", db, example.name, "--json"]);
        let seqs: Vec<u64> = json
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(seqs, (1..=events as u64).collect::<Vec<_>>());

        // check: exactly the expected findings, and the exit code follows --fail-on.
        let (code, findings) = stdout(&["check", "--db", db, example.name, "--json"]);
        let rules: Vec<String> = findings
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(rules, example.findings, "{}: {findings}", example.name);
        assert_eq!(code, Some(if example.findings.is_empty() { 0 } else { 1 }));

        // calls: every call reached terminated.
        let (_, calls) = stdout(&["calls", "--db", db, example.name, "--json"]);
        for line in calls.lines() {
            let call: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(call["last_state"], "terminated", "{}: {line}", example.name);
        }
    }
    // Filters, and clear errors for what does not exist.
    let (_, one_call) = stdout(&[
        "show",
        "--db",
        db,
        "invite-from-incoming-call",
        "--call",
        "57dab8b1-894c-409a-b240-bd8beae78896",
    ]);
    assert!(!one_call.is_empty());
    assert!(
        one_call
            .lines()
            .all(|l| l.to_lowercase().contains("57dab8b1")),
        "{one_call}"
    );
    let (_, since) = stdout(&["show", "--db", db, "join-channel-meeting", "--since", "3"]);
    assert!(
        since.lines().next().unwrap().trim_start().starts_with('3'),
        "{since}"
    );
    let (_, rules) = stdout(&["check", "--rules"]);
    assert_eq!(rules.lines().count(), 15, "{rules}");
    assert!(rules.lines().all(|l| !l.starts_with(' ')), "{rules}");
    // `check --help` shows the same table, from the same list.
    let (_, help) = stdout(&["check", "--help"]);
    assert!(help.contains(rules.trim_end()), "{help}");
    let (code, _) = stdout(&["check", "--db", db, "racy-invite", "--fail-on", "error"]);
    assert_eq!(code, Some(1), "state-regression is an error");
    for (args, want) in [
        (vec!["show", "--db", db, "nope"], "no session \"nope\""),
        (
            vec!["show", "--db", db, "racy-invite", "--call", "ffff"],
            "no such call",
        ),
        (vec!["check", "--db", db, "missing.json"], "no session"),
        (
            vec!["calls", "/nonexistent/x.json"],
            "no such recording file",
        ),
        (
            vec!["check", "--db", db, "racy-invite", "--fail-on", "fatal"],
            "unknown severity",
        ),
    ] {
        let out = graphtape(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A real HAR consumer: the `har-validator` npm package (JSON Schema of HAR 1.2),
/// installed into target/ on first use.
fn har_validator() -> PathBuf {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("har-validator");
    let module = prefix.join("node_modules").join("har-validator");
    if !module.exists() {
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&prefix)
            .arg("har-validator@5.1.5")
            .status()
            .expect("npm is needed to fetch the HAR validator");
        assert!(status.success(), "npm install har-validator failed");
    }
    module
}

#[test]
fn har_export_passes_a_har_1_2_validator() {
    let validator = har_validator();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    for example in EXAMPLES {
        let out = graphtape(&[
            "import",
            "--db",
            db.to_str().unwrap(),
            file(example).to_str().unwrap(),
        ]);
        assert!(out.status.success());
        let har = dir.path().join(format!("{}.har", example.name));
        let out = graphtape(&[
            "export",
            "--db",
            db.to_str().unwrap(),
            example.name,
            "--format",
            "har",
            "-o",
            har.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let script = format!(
            "const v = require({:?}); const har = JSON.parse(require('fs').readFileSync({:?}, 'utf8'));
             v.har(har).then(() => console.log('valid ' + har.log.entries.length))
               .catch(e => {{ console.error(JSON.stringify(e.errors || e.message)); process.exit(1); }});",
            validator.to_str().unwrap(),
            har.to_str().unwrap()
        );
        let out = std::process::Command::new("node")
            .args(["-e", &script])
            .output()
            .expect("node is needed for the HAR validator");
        assert!(
            out.status.success(),
            "{}: {}",
            example.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).unwrap()).unwrap();
        let events =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(file(example)).unwrap())
                .unwrap()["events"]
                .as_array()
                .unwrap()
                .len();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("valid {events}")
        );
        assert_eq!(doc["log"]["version"], "1.2");
    }
}

#[tokio::test]
async fn examples_replay_cleanly_to_a_bot_running_the_same_script() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    for example in EXAMPLES {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file(example)).unwrap()).unwrap();
        let notifications = doc["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["direction"] == "callback")
            .count();
        let bot = Bot::start(Script::default()).await;
        let r = replay_with(
            &db,
            file(example).to_str().unwrap(),
            &bot,
            &["--fast"],
            async |bot: &Bot| run_script(bot, example.flow, "ctx-replay").await,
        )
        .await;
        assert_eq!(
            r.code,
            Some(0),
            "{}: {}{}",
            example.name,
            r.stdout,
            r.stderr
        );
        if example.racy {
            assert!(
                r.raced,
                "{}: the completion beat the invite's response again",
                example.name
            );
        }
        assert_eq!(bot.bodies().len(), notifications, "{}", example.name);
        if matches!(example.flow, Flow::Invite | Flow::InviteFromIncoming) && !example.racy {
            // Recorded after the invite's response, so sent after it in the replay too
            // (even with --fast), as the replay session shows.
            let ex = exchanges(&db, &format!("{}-replay-1", example.name));
            let (invite, completed) = invite_and_completion(&ex);
            assert!(
                completed.timing.request_start_us >= invite.timing.response_start_us.unwrap(),
                "{}: the completion overtook the invite's response",
                example.name
            );
        }
    }
}

/// Runs `graphtape args` on a pseudo-terminal (util-linux `script`), as a person would.
fn on_terminal(args: &str, env: &[(&str, &str)]) -> String {
    let command = format!("{} {args}", env!("CARGO_BIN_EXE_graphtape"));
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    for (k, v) in env {
        script.env(k, v);
    }
    let out = script
        .output()
        .expect("script(1) from util-linux runs graphtape on a pty");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn show_on_a_terminal_pages_and_colours_like_git() {
    let racy = file(&EXAMPLES[4]);
    let racy = racy.to_str().unwrap();
    // A pager that numbers lines proves the output went through it.
    let paged = on_terminal(&format!("show {racy}"), &[("GRAPHTAPE_PAGER", "cat -n")]);
    let first = paged.lines().next().unwrap();
    assert!(first.trim_start().starts_with("1\t"), "{paged}");
    assert!(paged.contains("\x1b["), "colour on a terminal: {paged}");
    let plain = on_terminal(&format!("show --no-pager {racy}"), &[("NO_COLOR", "1")]);
    assert!(!plain.contains("\x1b["), "NO_COLOR is honoured: {plain}");
    assert!(
        !plain.lines().next().unwrap().contains('\t'),
        "--no-pager: {plain}"
    );
    assert_eq!(plain.lines().count(), 8);
}
