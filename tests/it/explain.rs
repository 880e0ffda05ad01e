//! The explaining and reporting commands as a user runs them: `show --seq` (exchanges in
//! full), `diff --json`, and the CI reports (`check --junit`, `replay --junit`,
//! `replay --report -`). JUnit files are checked by real readers: `xmllint --schema`
//! against the JUnit XSD in `tests/junit/`, junitparser (PyPI), and rendered with
//! junit2html (PyPI), both installed into a venv under target/ on first use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use base64::Engine;
use serde_json::Value;

use crate::bot::{Answer, Bot, Script};
use crate::graph_sim::INCOMING;
use crate::util::*;

fn recording(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(format!("{name}.json"))
        .to_string_lossy()
        .into_owned()
}

fn text(out: &std::process::Output) -> (Option<i32>, String, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn show_seq_prints_exchanges_in_full() {
    // The answer: what graphtape changed before forwarding, shown as the change.
    let (code, out, err) = text(&graphtape(&[
        "show",
        &recording("answer-incoming-voip-call"),
        "--seq",
        "2",
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("seq 2 → api: bot to Graph\nPOST /v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/answer HTTP/1.1\n"), "{out}");
    let change = out
        .lines()
        .skip_while(|l| *l != "forwarded body (changed by graphtape):")
        .nth(1)
        .unwrap_or_default();
    assert!(
        change.starts_with("  callbackUri: http://127.0.0.1:")
            && change.contains("/api/calls -> http://127.0.0.1:")
            && change.contains("/callback/6b1d1af5f82d6ffea4a45afe3eb5fd6e"),
        "{out}"
    );
    assert!(out.contains("\ntarget http://127.0.0.1:"), "{out}");
    assert!(out.contains("\nresponse 202\n"), "{out}");
    assert!(out.contains("\ntiming request start 3.471 ms, request end 3.475 ms, response start 4.300 ms, response end 4.302 ms"), "{out}");

    // A notification POST: each notification's resourceData; a range and a repeat.
    let (code, out, err) = text(&graphtape(&[
        "show",
        &recording("racy-invite"),
        "--seq",
        "5..6",
        "--seq",
        "1",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let heads: Vec<&str> = out.lines().filter(|l| l.starts_with("seq ")).collect();
    assert_eq!(heads.len(), 3, "{out}");
    assert!(heads[0].starts_with("seq 1 ") && heads[2].starts_with("seq 6 "));
    assert!(out.contains("1 notification:\n  [0] deleted /app/calls/90ED37DCD8E34E119DE330A955DDA06F/operations/0FE0623FD62842EDB4BD8AC290072CC5\n    resourceData:\n      {\n"), "{out}");
    assert!(out.contains("        \"status\": \"completed\""), "{out}");

    // --json: the recording format's event, one per line.
    let (code, out, _) = text(&graphtape(&[
        "show",
        &recording("racy-invite"),
        "--seq",
        "4..5",
        "--json",
    ]));
    assert_eq!(code, Some(0));
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["seq"], 4);
    assert_eq!(events[0]["response"]["body"]["json"]["status"], "running");
    assert_eq!(events[1]["direction"], "callback");

    // With --call: only the chosen exchanges about that call.
    let (_, all, _) = text(&graphtape(&[
        "show",
        &recording("invite-from-incoming-call"),
        "--seq",
        "1..20",
    ]));
    let (_, one, _) = text(&graphtape(&[
        "show",
        &recording("invite-from-incoming-call"),
        "--seq",
        "1..20",
        "--call",
        INCOMING,
    ]));
    let count = |t: &str| t.lines().filter(|l| l.starts_with("seq ")).count();
    assert!(count(&one) > 0 && count(&one) < count(&all), "{one}");
    assert!(!one.contains("/participants/invite HTTP/1.1"), "{one}");
    let (code, _, err) = text(&graphtape(&[
        "show",
        &recording("racy-invite"),
        "--seq",
        "1",
        "--call",
        "90ed37dc-d8e3-4e11-9de3-30a955dda06f",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = text(&graphtape(&[
        "show",
        &recording("invite-from-incoming-call"),
        "--seq",
        "1",
        "--call",
        "90ED37DCD8E34E119DE330A955DDA06F",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--seq 1: none of these events is about call"),
        "{err}"
    );

    // A seq the session does not have.
    let (code, _, err) = text(&graphtape(&[
        "show",
        &recording("racy-invite"),
        "--seq",
        "40",
    ]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--seq 40: no such event in session racy-invite (its events are seq 1..8)"),
        "{err}"
    );
}

/// A gzip-encoded response body, as Graph SDKs ask for, is shown decoded through
/// the real binary: stored bytes stay gzip (base64 in the file), `show` decodes.
#[test]
fn show_seq_decodes_gzip_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(recording("racy-invite")).unwrap()).unwrap();
    let plain = br#"{"id":"0fe0623f-d628-42ed-b4bd-8ac290072cc5","status":"running"}"#;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain).unwrap();
    let packed = gz.finish().unwrap();
    let response = &mut doc["events"][3]["response"];
    response["headers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(["content-encoding", "gzip"]));
    response["body"] =
        serde_json::json!({"base64": base64::engine::general_purpose::STANDARD.encode(&packed)});
    let file = dir.path().join("gzip.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let file = file.to_str().unwrap();

    let (code, out, err) = text(&graphtape(&["show", file, "--seq", "4"]));
    assert_eq!(code, Some(0), "{err}");
    let heading = format!("response body ({} bytes, gzip decoded):", packed.len());
    assert!(
        out.contains(&format!("{heading}\n  {{\n    \"id\": \"0fe0623f-d628-42ed-b4bd-8ac290072cc5\",\n    \"status\": \"running\"\n  }}")),
        "{out}"
    );
    let (_, out, _) = text(&graphtape(&["show", file, "--seq", "4", "--json"]));
    let event: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(event["response"]["body"]["json"]["status"], "running");
    assert_eq!(event["response"]["body"]["content_encoding"], "gzip");
}

#[test]
fn diff_json_compares_a_file_with_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let db = db.to_str().unwrap();
    let out = graphtape(&["import", "--db", db, &recording("racy-invite")]);
    assert!(out.status.success(), "{}", text(&out).2);

    let (code, out, err) = text(&graphtape(&[
        "diff",
        "--db",
        db,
        &recording("racy-invite"),
        "racy-invite",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let same: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(same["differences"], 0);
    assert_eq!(same["lines"].as_array().unwrap().len(), 8);
    assert!(same["lines"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["op"] == "same"));

    let (code, out, _) = text(&graphtape(&[
        "diff",
        "--db",
        db,
        "racy-invite",
        &recording("invite-participants"),
        "--json",
    ]));
    assert_eq!(code, Some(1));
    let other: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(other["a"], "racy-invite");
    assert_eq!(other["b"], "invite-participants");
    let lines = other["lines"].as_array().unwrap();
    let changed = lines.iter().filter(|l| l["op"] != "same").count();
    assert!(changed > 0);
    assert_eq!(other["differences"], changed);
    assert!(lines
        .iter()
        .any(|l| l["op"] == "only_a" && l["a_seq"].is_u64()));
}

/// junitparser and junit2html in a venv under target/, installed once.
fn junit_tools() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _once = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("junit-tools");
    let bin = venv.join("bin");
    if !bin.join("junit2html").exists() || !bin.join("python").exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 with venv is needed for the JUnit readers");
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(bin.join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "junitparser==5.0.3",
                "junit2html==31.1.4",
            ])
            .status()
            .expect("pip");
        assert!(
            status.success(),
            "pip install junitparser junit2html failed"
        );
    }
    bin
}

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit/junit.xsd")
}

/// `xmllint --schema` on `file`: (valid, its messages).
fn xmllint(file: &Path) -> (bool, String) {
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd())
        .arg(file)
        .output()
        .expect("xmllint (libxml2-utils) is needed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What junitparser read from `file`.
fn junitparser(file: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit/read_junit.py");
    let out = Command::new(junit_tools().join("python"))
        .arg(script)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junitparser: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// junit2html's page for `file`.
fn junit2html(file: &Path) -> String {
    let html = file.with_extension("html");
    let out = Command::new(junit_tools().join("junit2html"))
        .arg(file)
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "junit2html: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(html).unwrap()
}

#[test]
fn the_schema_rejects_what_is_not_junit() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bad) in [
        (
            "no-name",
            r#"<testsuites><testsuite tests="1" failures="0" errors="0"><testcase name="x"/></testsuite></testsuites>"#,
        ),
        (
            "bad-count",
            r#"<testsuites><testsuite name="s" tests="-1" failures="0" errors="0"/></testsuites>"#,
        ),
        (
            "stray",
            r#"<testsuites><testsuite name="s" tests="1" failures="0" errors="0"><testcase name="x"><oops/></testcase></testsuite></testsuites>"#,
        ),
    ] {
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, bad).unwrap();
        assert!(!xmllint(&file).0, "{name} must not validate");
    }
}

#[test]
fn check_junit_is_valid_junit_that_ci_tools_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("check.xml");
    let (code, _, err) = text(&graphtape(&[
        "check",
        &recording("racy-invite"),
        "--junit",
        file.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(1), "{err}");
    let (valid, messages) = xmllint(&file);
    assert!(valid, "{messages}");

    let read = junitparser(&file);
    assert_eq!(read[0]["name"], "check racy-invite");
    assert_eq!(read[0]["tests"], 1);
    assert_eq!(read[0]["failures"], 2);
    let case = &read[0]["cases"][0];
    assert_eq!(case["name"], "call 90ed37dcd8e34e119de330a955dda06f");
    let kinds: Vec<&str> = case["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["state-regression", "notification-before-response"]);
    assert!(case["failures"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("error state-regression seq 2,3: call 90ed37dc"));

    // The answer limit is validated like any number of seconds.
    let (code, _, err) = text(&graphtape(&[
        "check",
        &recording("racy-invite"),
        "--answer-limit",
        "0",
    ]));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--answer-limit 0: give a number of seconds above 0"),
        "{err}"
    );

    let html = junit2html(&file);
    assert!(html.contains("check racy-invite"), "{html}");
    assert!(html.contains("outcome-failed"), "{html}");
    assert!(html.contains("notification-before-response"), "{html}");

    // A clean session: one passing case per call.
    let clean = dir.path().join("clean.xml");
    let (code, _, _) = text(&graphtape(&[
        "check",
        &recording("invite-from-incoming-call"),
        "--junit",
        clean.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(0));
    assert!(xmllint(&clean).0);
    let read = junitparser(&clean);
    assert_eq!(read[0]["failures"], 0);
    assert_eq!(read[0]["tests"], 2, "{read}");
}

/// Replays the incoming call's notifications (`--no-graph`) to a bot answering
/// `status`, with `--report -` and `--junit`: (exit code, stdout, stderr).
async fn replay_reporting(
    dir: &Path,
    status: Option<u16>,
    junit: &Path,
) -> (Option<i32>, String, String) {
    let answer = status.map_or(Answer::Accept, Answer::Status);
    let bot = Bot::start(Script {
        answer,
        answer_incoming: false,
        ..Script::default()
    })
    .await;
    let db = dir.join("replay.db");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(["replay", &recording("answer-incoming-voip-call"), "--db"])
        .arg(&db)
        .args(["--bot-url", &bot.peer.url])
        .args([
            "--no-graph",
            "--fast",
            "--callback-auth",
            "none",
            "--wait",
            "2",
        ])
        .args(["--report", "-", "--junit"])
        .arg(junit)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, child)
        .await
        .expect("replay did not finish")
        .unwrap();
    text(&out)
}

#[tokio::test]
async fn replay_reports_junit_and_json_on_stdout() {
    let dir = tempfile::tempdir().unwrap();

    // The bot answers as recorded: a passing suite, the JSON report alone on stdout.
    let pass = dir.path().join("pass.xml");
    let (code, out, err) = replay_reporting(dir.path(), None, &pass).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report only");
    assert_eq!(report["passed"], true);
    assert!(
        err.contains("replaying session=answer-incoming-voip-call"),
        "{err}"
    );
    assert!(err.contains("replay of answer-incoming-voip-call"), "{err}");
    let (valid, messages) = xmllint(&pass);
    assert!(valid, "{messages}");
    let read = junitparser(&pass);
    assert_eq!(read[0]["name"], "replay answer-incoming-voip-call");
    assert_eq!(read[0]["failures"], 0);
    let call = format!("call {}", INCOMING.to_lowercase());
    assert_eq!(read[0]["cases"][0]["name"], call.as_str());

    // The bot now rejects every notification: each divergence a failure.
    let fail = dir.path().join("fail.xml");
    let (code, out, err) = replay_reporting(dir.path(), Some(500), &fail).await;
    assert_eq!(code, Some(1), "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("stdout is the JSON report only");
    assert_eq!(report["passed"], false);
    let divergences = report["divergences"].as_array().unwrap();
    assert!(!divergences.is_empty());
    assert!(xmllint(&fail).0);
    let read = junitparser(&fail);
    let failures: Vec<&Value> = read[0]["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["failures"].as_array().unwrap())
        .collect();
    assert_eq!(failures.len(), divergences.len(), "{read}");
    for (failure, divergence) in failures.iter().zip(divergences) {
        assert_eq!(failure["type"], divergence["kind"]);
        let message = failure["message"].as_str().unwrap();
        let recorded = divergence["recorded_seq"].as_u64().unwrap();
        assert!(
            message.contains(&format!("recorded seq {recorded}"))
                && message.contains(divergence["message"].as_str().unwrap()),
            "{message}"
        );
    }
    let html = junit2html(&fail);
    assert!(html.contains("replay answer-incoming-voip-call") && html.contains("outcome-failed"));
    std::fs::copy(
        fail.with_extension("html"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/replay-junit.html"),
    )
    .unwrap();
}

#[test]
fn verdict_commands_help_states_exit_codes_and_ends_with_an_example() {
    for command in ["replay", "diff", "check"] {
        let (code, out, err) = text(&graphtape(&[command, "--help"]));
        assert_eq!(code, Some(0), "{err}");
        let codes = out.find("Exit codes:\n  0  ").expect("exit codes");
        assert!(
            out[codes..].contains("\n  1  ")
                && out[codes..].contains("\n  2  usage or input error"),
            "{out}"
        );
        let example = out.rfind("Example:\n  graphtape ").expect("an example");
        assert!(example > codes, "{out}");
        // The example is the last thing: one command (continued with `\`), then nothing.
        let tail = &out[example..];
        assert!(tail.lines().skip(1).all(|l| l.starts_with("  ")), "{out}");
        assert!(tail.contains(&format!("graphtape {command} ")), "{out}");
    }
}
