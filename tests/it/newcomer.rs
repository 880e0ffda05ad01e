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
    let out = graphtape_in(cwd.path(), tmp.path(), &["demo"]);
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
