//! Keeping the database tidy: `sessions delete`, `prune`, `vacuum`, and the refusal to
//! remove a session a running recorder is writing (a killed one does not count).

use std::path::Path;

use crate::util::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A database with `n` demo sessions (`demo`, `demo-2`, ...): real recordings.
fn demo_db(dir: &Path, n: usize) -> String {
    let db = dir.join("t.db").to_str().unwrap().to_string();
    for _ in 0..n {
        let out = graphtape(&["demo", "--db", &db]);
        assert!(out.status.success(), "{}", stderr_of(&out));
    }
    db
}

fn count(db: &str, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn names(db: &str) -> Vec<String> {
    let out = graphtape(&["sessions", "--db", db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn sessions_delete_removes_exchanges_and_index_rows_but_keeps_routes() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), 2);
    let routes = count(&db, "SELECT count(*) FROM callback_routes");
    assert!(routes > 0);
    let out = graphtape(&["sessions", "delete", "demo", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.starts_with("deleted session demo (started ")
            && text.trim_end().ends_with(", 8 exchanges)"),
        "{text}"
    );
    assert_eq!(names(&db), vec!["demo-2"]);
    assert_eq!(count(&db, "SELECT count(*) FROM exchanges"), 8);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT session_id) FROM notifications"),
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM notifications n WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = n.session_id)"),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM callback_routes"), routes);

    // All or nothing: one unknown name deletes none.
    let out = graphtape(&["sessions", "delete", "demo-2", "demo-9", "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("demo-9"), "{}", stderr_of(&out));
    assert_eq!(names(&db), vec!["demo-2"]);
}

#[test]
fn prune_by_age_and_count_with_a_dry_run_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), 3);
    // demo started thirty days ago, demo-2 eight days ago.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let day = 86_400_000_000i64;
    for (name, days) in [("demo", 30), ("demo-2", 8)] {
        conn.execute(
            "UPDATE sessions SET started_unix_us = started_unix_us - ?1 WHERE name = ?2",
            rusqlite::params![days * day, name],
        )
        .unwrap();
    }
    drop(conn);
    let out = graphtape(&["prune", "--older-than", "7d", "--dry-run", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("would delete session demo (started "),
        "{text}"
    );
    assert!(
        lines[1].starts_with("would delete session demo-2 (started "),
        "{text}"
    );
    assert_eq!(lines[2], "would delete 2 sessions, would keep 1", "{text}");
    assert_eq!(names(&db).len(), 3, "a dry run deletes nothing");

    let out = graphtape(&["prune", "--older-than", "7d", "--db", &db]);
    assert!(
        stdout_of(&out).contains("deleted 2 sessions, kept 1"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(names(&db), vec!["demo-3"]);
    let out = graphtape(&["prune", "--keep-last", "1", "--db", &db]);
    assert!(
        stdout_of(&out).starts_with("deleted 0 sessions, kept 1"),
        "{}",
        stdout_of(&out)
    );

    let out = graphtape(&["prune", "--db", &db]);
    assert_eq!(out.status.code(), Some(2), "a rule is required");
    let out = graphtape(&["prune", "--older-than", "7", "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("give a unit"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn vacuum_gives_the_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), 3);
    let out = graphtape(&["prune", "--keep-last", "0", "--db", &db]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&db) + size(&format!("{db}-wal"));
    let out = graphtape(&["vacuum", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stdout_of(&out).starts_with(&format!("vacuumed {db}: ")),
        "{}",
        stdout_of(&out)
    );
    let after = size(&db) + size(&format!("{db}-wal"));
    assert!(after < before, "{before} -> {after}");
    assert_eq!(size(&format!("{db}-wal")), 0, "the WAL is emptied");
}

#[tokio::test]
async fn a_session_being_recorded_is_not_removed_until_its_recorder_dies() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live.db");
    let dbs = db.to_str().unwrap().to_string();
    let recorder = Graphtape::record(&db, &["--session", "live"]).await;
    let locks = lock_files(dir.path());
    assert_eq!(locks.len(), 1, "the recorder holds a lock file: {locks:?}");
    assert!(locks[0].starts_with("live.db.recording-"), "{locks:?}");
    for args in [vec!["sessions", "delete", "live"], vec!["vacuum"]] {
        let mut full = args.clone();
        full.extend(["--db", &dbs]);
        let out = graphtape(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains("session \"live\" is being recorded by a running graphtape"),
            "{args:?}: {}",
            stderr_of(&out)
        );
    }
    let out = graphtape(&["prune", "--keep-last", "0", "--db", &dbs]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr_of(&out).contains("kept session live: it is being recorded"));
    assert_eq!(names(&dbs), vec!["live"]);

    // kill -9: no clean shutdown, no chance to release anything by hand.
    let killed = recorder.stop_with(libc::SIGKILL).await;
    assert!(!killed.status.success());
    let out = graphtape(&["sessions", "delete", "live", "--db", &dbs]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(names(&dbs).is_empty());
    // The recorder's lock file was the only trace of it, and it is gone.
    assert!(
        lock_files(dir.path()).is_empty(),
        "{:?}",
        lock_files(dir.path())
    );
}

fn lock_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.ends_with(".lock"))
        .collect()
}
