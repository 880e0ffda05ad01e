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

/// Runs `graphtape args` in `cwd` with temporary files under `tmp`, without blocking
/// the runtime the test's bot answers on.
async fn graphtape_async(cwd: &Path, tmp: &Path, args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
            .args(args)
            .current_dir(cwd)
            .env("TMPDIR", tmp)
            .env_remove("GRAPHTAPE_DB")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("graphtape did not finish")
    .unwrap()
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// A database holding the seed's incoming call as session "incoming".
async fn incoming(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("rec.db");
    crate::flows::record_flow(
        &db,
        "incoming",
        crate::flows::Flow::Incoming,
        crate::graph_sim::SimOptions::default(),
    )
    .await;
    db
}

async fn listening_bot() -> crate::bot::Bot {
    crate::bot::Bot::start(crate::bot::Script {
        answer_incoming: false,
        ..crate::bot::Script::default()
    })
    .await
}

#[tokio::test]
async fn replaying_a_file_without_db_needs_no_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = incoming(dir.path()).await;
    let file = dir.path().join("incoming.json");
    let out = graphtape(&[
        "export",
        "incoming",
        "--db",
        db.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let (cwd, tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let bot = listening_bot().await;
    let out = graphtape_async(
        cwd.path(),
        tmp.path(),
        &[
            "replay",
            file.to_str().unwrap(),
            "--bot-url",
            &bot.peer.url,
            "--no-graph",
            "--fast",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert!(stdout_of(&out).contains("PASS"), "{}", stdout_of(&out));
    assert_eq!(bot.bodies().len(), 4);
    assert!(
        stderr_of(&out).contains("the replay session is not kept"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        is_empty(cwd.path()),
        "nothing written to the working directory"
    );
    assert!(is_empty(tmp.path()), "the temporary database is removed");
}

#[tokio::test]
async fn no_record_keeps_no_replay_session_and_a_failed_start_leaves_no_stub() {
    let dir = tempfile::tempdir().unwrap();
    let db = incoming(dir.path()).await;
    let dbs = db.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bot = listening_bot().await;
    let out = graphtape_async(
        dir.path(),
        tmp.path(),
        &[
            "replay",
            "incoming",
            "--db",
            dbs,
            "--bot-url",
            &bot.peer.url,
            "--no-graph",
            "--fast",
            "--no-record",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    assert!(
        stdout_of(&out).starts_with("replaying session=incoming "),
        "{}",
        stdout_of(&out)
    );
    assert!(is_empty(tmp.path()));
    assert_eq!(names(dbs), vec!["incoming"]);
    // The signing key was made beside the database, and said so on stderr.
    assert!(
        stderr_of(&out).contains(&format!(
            "signing key={}",
            dir.path().join("rec-signing-key.pem").display()
        )),
        "{}",
        stderr_of(&out)
    );

    // A bot that never comes up: the replay fails before any traffic, and keeps nothing.
    let out = graphtape_async(
        dir.path(),
        tmp.path(),
        &[
            "replay",
            "incoming",
            "--db",
            dbs,
            "--bot-url",
            &format!("http://127.0.0.1:{}", free_port()),
            "--wait",
            "0.3",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("nothing accepts connections"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(names(dbs), vec!["incoming"]);
}

#[tokio::test]
async fn divergences_are_reported_once_not_also_logged_as_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let db = incoming(dir.path()).await;
    let bot = crate::bot::Bot::start(crate::bot::Script {
        answer: crate::bot::Answer::Status(500),
        answer_incoming: false,
        ..crate::bot::Script::default()
    })
    .await;
    let out = graphtape_async(
        dir.path(),
        dir.path(),
        &[
            "replay",
            "incoming",
            "--db",
            db.to_str().unwrap(),
            "--bot-url",
            &bot.peer.url,
            "--no-graph",
            "--fast",
            "--no-record",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report = stdout_of(&out);
    assert_eq!(
        report.matches("divergence notification-status").count(),
        4,
        "{report}"
    );
    let err = stderr_of(&out);
    assert!(
        !err.contains("WARN") && !err.contains("divergence"),
        "{err}"
    );
}

/// The incoming-call recording as a file whose last notification comes `gap_s` seconds
/// after the one before (the recorded clock stretched, as in a long real call).
async fn stretched(dir: &Path, gap_s: i64) -> String {
    let db = incoming(dir).await;
    let out = graphtape(&["export", "incoming", "--db", db.to_str().unwrap()]);
    assert!(out.status.success());
    let mut doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = doc["events"].as_array_mut().unwrap().last_mut().unwrap();
    assert_eq!(last["direction"], "callback");
    for side in ["request", "response"] {
        for key in ["start_us", "end_us"] {
            let v = last[side][key].as_i64().unwrap();
            last[side][key] = (v + gap_s * 1_000_000).into();
        }
    }
    let file = dir.join("stretched.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    file.to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_long_gap_gets_a_heartbeat_line_when_stderr_is_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = stretched(dir.path(), 11).await;
    let bot = listening_bot().await;
    let out = graphtape_async(
        dir.path(),
        dir.path(),
        &[
            "replay",
            &file,
            "--bot-url",
            &bot.peer.url,
            "--no-graph",
            "--wait",
            "15",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    let beats: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("graphtape: replay: "))
        .collect();
    assert_eq!(beats.len(), 1, "one heartbeat in 11 s: {err}");
    let beat = beats[0];
    assert!(
        beat.starts_with("graphtape: replay: 3/4 notifications, elapsed 00:1"),
        "{beat}"
    );
    assert!(beat.contains(", recorded clock 00:"), "{beat}");
    assert!(beat.contains(", next notification in "), "{beat}");
}

#[tokio::test]
async fn on_a_terminal_the_progress_line_counts_down_to_the_next_notification() {
    let dir = tempfile::tempdir().unwrap();
    let file = stretched(dir.path(), 2).await;
    let bot = listening_bot().await;
    let command = format!(
        "{} replay {file} --bot-url {} --no-graph --wait 5",
        env!("CARGO_BIN_EXE_graphtape"),
        bot.peer.url
    );
    // util-linux script(1): graphtape on a pseudo-terminal, as a person runs it.
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("replay on a pty did not finish")
    .unwrap();
    let text = stdout_of(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("\rreplay: 3/4 notifications, elapsed 00:0"),
        "{text}"
    );
    assert!(text.contains("next notification in 1."), "{text}");
    assert!(text.contains("PASS"), "{text}");
}
