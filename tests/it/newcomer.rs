//! A newcomer's first ten minutes: `graphtape demo` on a machine with no bot and no
//! Graph, and commands whose answers do not depend on the working directory.

use std::path::Path;
use std::process::{Command, Stdio};

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs graphtape in `cwd` with temporary files under `tmp`.
fn graphtape_in(cwd: &Path, tmp: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        .env_remove("GRAPHTAPE_DB")
        .stdin(Stdio::null())
        .output()
        .expect("running graphtape")
}

fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

#[test]
fn demo_records_a_call_through_record_then_shows_and_checks_it() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Settings meant for the user's own recordings do not leak into the demo's.
    let out = Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .arg("demo")
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .env_remove("GRAPHTAPE_DB")
        .env("GRAPHTAPE_API_TLS", "true")
        .env("GRAPHTAPE_SESSION", "not-the-demo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
    // The database is in a temporary directory it names, not the working directory.
    assert!(
        files_in(cwd.path()).is_empty(),
        "{:?}",
        files_in(cwd.path())
    );
    let db = text
        .lines()
        .find_map(|l| l.strip_prefix("recording session=demo db="))
        .unwrap_or_else(|| panic!("no recording line: {text}"));
    assert!(Path::new(db).starts_with(tmp.path()), "{db}");
    assert!(
        text.contains(&format!("$ graphtape show demo --db {db}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("$ graphtape check demo --db {db}")),
        "{text}"
    );
    // show: both directions, in order, the incoming call first and the hang-up last.
    let shown: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("$ graphtape show"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(shown.len(), 8, "{text}");
    assert!(shown[0].contains("[incoming]"), "{text}");
    assert!(shown[1].contains("POST /v1.0/communications/calls/") && shown[1].contains("/answer"));
    assert!(shown[7].contains("[terminated]"), "{text}");
    // check: the invite race the stand-in Graph plays.
    assert!(
        text.contains("notification-before-response seq 5,6"),
        "{text}"
    );

    // A real SQLite file with the session, ended, credentials redacted.
    let conn = rusqlite::Connection::open(db).unwrap();
    let (exchanges, ended): (i64, Option<i64>) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM exchanges e WHERE e.session_id = s.id), s.ended_us
             FROM sessions s WHERE s.name = 'demo'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(exchanges, 8);
    assert!(ended.is_some(), "record closed the session");
    let headers: Vec<String> = conn
        .prepare("SELECT request_headers FROM exchanges")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(headers
        .iter()
        .all(|h| !h.contains("bot-app-token") && !h.contains("graph-issued-token")));
}

#[test]
fn demo_with_db_adds_a_session_under_a_free_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mine.db");
    let db = db.to_str().unwrap();
    for want in ["demo", "demo-2"] {
        let out = graphtape_in(dir.path(), dir.path(), &["demo", "--db", db]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
        assert!(
            text.contains(&format!("recording session={want} db={db}")),
            "{text}"
        );
    }
}

#[test]
fn a_missing_recording_file_is_named_whatever_database_is_around() {
    // A ./graphtape.db with a session in it (as `record` leaves) must not change the
    // answer about a file that does not exist.
    let cwd = tempfile::tempdir().unwrap();
    let out = graphtape_in(cwd.path(), cwd.path(), &["demo", "--db", "graphtape.db"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    for args in [
        vec!["calls", "/nonexistent/x.json"],
        vec!["show", "missing.json"],
    ] {
        let out = graphtape_in(cwd.path(), cwd.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains("no such recording file"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A directory with a database holding the demo session, and that session's file.
fn demo_files() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db").to_str().unwrap().to_string();
    let file = dir.path().join("demo.json").to_str().unwrap().to_string();
    let out = graphtape_in(dir.path(), dir.path(), &["demo", "--db", &db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = graphtape_in(
        dir.path(),
        dir.path(),
        &["export", "demo", "--db", &db, "-o", &file],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    (dir, db, file)
}

/// Exit 2, and standard error is exactly this one line.
fn fails_saying(dir: &Path, args: &[&str], want: &str) {
    let out = graphtape_in(dir, dir, args);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out),
        format!("graphtape: error: {want}\n"),
        "{args:?}"
    );
}

#[test]
fn error_messages_say_each_thing_once_and_suggest_the_fix() {
    let (dir, db, file) = demo_files();
    let d = dir.path();
    fails_saying(
        d,
        &["import", "--db", &db, &file],
        &format!("{file}: session \"demo\" already exists in {db}; import it under another name with --as NAME (e.g. --as demo-2)"),
    );
    fails_saying(
        d,
        &["import", "--db", &db, "/nonexistent/x.json"],
        "cannot read /nonexistent/x.json: No such file or directory (os error 2)",
    );
    fails_saying(
        d,
        &["import", "--db", "/nonexistent/x.db", &file],
        "cannot create /nonexistent/x.db: No such file or directory (os error 2)",
    );
    fails_saying(
        d,
        &["show", "--db", &db, "dmeo"],
        "no session \"dmeo\" in this database; did you mean \"demo\"?",
    );
    fails_saying(
        d,
        &["replay", "demo", "--db", &db, "--bot-url", "127.0.0.1:3978"],
        "--bot-url \"127.0.0.1:3978\": give a full URL, e.g. http://127.0.0.1:3978",
    );
}

#[test]
fn output_reads_right_for_a_newcomer() {
    let (dir, db, file) = demo_files();
    let d = dir.path();
    // A fresh database is migrated silently; "1 finding", not "1 findings".
    let fresh = d.join("fresh.db").to_str().unwrap().to_string();
    let out = graphtape_in(
        d,
        d,
        &[
            "import",
            "--db",
            &fresh,
            &file,
            "--as",
            "a-session-with-a-name-longer-than-the-column",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "", "no INFO lines for routine work");
    assert_eq!(
        stdout_of(&out),
        format!("imported session a-session-with-a-name-longer-than-the-column (8 events) into {fresh}\n")
    );
    let out = graphtape_in(d, d, &["check", "--db", &db, "demo"]);
    assert!(
        stdout_of(&out).ends_with("1 finding in demo (1 at or above warning)\n"),
        "{}",
        stdout_of(&out)
    );

    // show --since past the end says so.
    let out = graphtape_in(d, d, &["show", "--db", &db, "demo", "--since", "99"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_of(&out), "");
    assert_eq!(
        stderr_of(&out),
        "graphtape: --since 99 is past the end: session demo ends at seq 8\n"
    );

    // sessions: by start time (the import kept its recorded start, older than the
    // second demo), columns aligned for a long name.
    let out = graphtape_in(
        d,
        d,
        &[
            "import",
            "--db",
            &db,
            &file,
            "--as",
            "a-session-with-a-name-longer-than-the-column",
        ],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = graphtape_in(d, d, &["demo", "--db", &db]);
    assert!(out.status.success());
    let out = graphtape_in(d, d, &["sessions", "--db", &db]);
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "demo",
            "a-session-with-a-name-longer-than-the-column",
            "demo-2"
        ],
        "{text}"
    );
    let column = lines[0].find("STARTED").unwrap();
    for line in &lines[1..] {
        assert_eq!(line.find("20"), Some(column), "{text}");
    }
}

#[test]
fn a_bot_url_with_a_path_is_warned_about() {
    let (dir, db, _) = demo_files();
    let out = graphtape_in(
        dir.path(),
        dir.path(),
        &[
            "replay",
            "demo",
            "--db",
            &db,
            "--no-graph",
            "--wait",
            "0.1",
            "--bot-url",
            "http://127.0.0.1:9/api/calls",
        ],
    );
    assert!(
        stderr_of(&out).contains("--bot-url http://127.0.0.1:9/api/calls has a path: each notification's path is appended to it (a notification to /api/calls goes to http://127.0.0.1:9/api/calls/api/calls)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn large_files_show_progress_on_a_terminal_and_nothing_in_a_log() {
    let (dir, db, file) = demo_files();
    // The demo recording with a 12 MiB response body: a large file.
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let response = &mut doc["events"][1]["response"];
    response["headers"] = serde_json::json!([["content-type", "text/plain"]]);
    response["body"] = serde_json::json!({"text": "x".repeat(12 << 20)});
    let big = dir.path().join("big.json");
    std::fs::write(&big, serde_json::to_vec(&doc).unwrap()).unwrap();
    let big = big.to_str().unwrap();

    let out = graphtape_in(
        dir.path(),
        dir.path(),
        &["import", "--db", &db, big, "--as", "big"],
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        stderr_of(&out),
        "",
        "no progress when stderr is not a terminal"
    );

    for args in [
        format!("import --db {db} {big} --as big-2"),
        format!("check {big}"),
    ] {
        let command = format!("{} {args}", env!("CARGO_BIN_EXE_graphtape"));
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("script(1) runs graphtape on a pty");
        let text = stdout_of(&out);
        assert!(text.contains(&format!("reading {big} [")), "{args}: {text}");
        assert!(text.contains("/12.01 MiB"), "{args}: {text}");
    }
    // export: a spinner while a session of a large database is turned into text.
    let command = format!(
        "{} export big --db {db} -o {}",
        env!("CARGO_BIN_EXE_graphtape"),
        dir.path().join("out.json").display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        stdout_of(&out).contains("exporting big ("),
        "{}",
        stdout_of(&out)
    );
}
