//! `record --rotate` and `--retain`: a long capture split into sessions NAME, NAME-2, ...
//! with nothing lost or duplicated, and old rotated sessions pruned as it goes.

use crate::util::*;

/// The sessions of a database as (name, ended) pairs, in start order.
fn sessions(db: &std::path::Path) -> Vec<(String, bool)> {
    let conn = graphtape::store::open(db, graphtape::store::Access::Existing).unwrap();
    let mut all = graphtape::store::list_sessions(&conn).unwrap();
    all.sort_by_key(|s| (s.info.started_unix_us, s.info.id));
    all.into_iter()
        .map(|s| (s.info.name, s.info.ended_us.is_some()))
        .collect()
}

#[tokio::test]
async fn size_rotation_keeps_every_exchange_once_and_numbers_each_session_from_one() {
    let graph = FakePeer::start(handler(|_| async { respond(200, &[], b"{}") })).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "cap",
            "--rotate",
            "20KB",
        ],
    )
    .await;
    let n = 40;
    let client = client();
    for i in 0..n {
        // 2 KiB each: about ten to a session.
        let body = format!("{i:06}").repeat(2048 / 6);
        let (parts, _) = send(
            &client,
            request("POST", &format!("{}/v1.0/x", gt.api), &[], body.as_bytes()),
        )
        .await;
        assert_eq!(parts.status, 200);
    }
    gt.wait_stdout_line(&format!("recording session=cap-3 db={}", db.display()))
        .await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);

    let all = sessions(&db);
    assert!(all.len() >= 3, "{all:?}");
    let mut seen = Vec::new();
    for (k, (name, ended)) in all.iter().enumerate() {
        let want = if k == 0 {
            "cap".to_string()
        } else {
            format!("cap-{}", k + 1)
        };
        assert_eq!(name, &want);
        assert!(ended, "{name} was not ended");
        let exchanges = exchanges(&db, name);
        let seqs: Vec<u64> = exchanges.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{name}");
        let mut last = 0;
        for e in &exchanges {
            assert!(e.timing.request_start_us >= last, "{name}: offsets go back");
            last = e.timing.request_start_us;
            let body = &e.request.body.bytes;
            seen.push(String::from_utf8_lossy(&body[..6]).to_string());
        }
        // Rotated once the threshold was crossed; exchanges that had already arrived
        // finish in the session they started in.
        if k + 1 < all.len() {
            let bytes: usize = exchanges
                .iter()
                .map(|e| e.request.body.bytes.len() + 2)
                .sum();
            assert!((20 << 10..40 << 10).contains(&bytes), "{name}: {bytes}");
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("{i:06}")).collect();
    assert_eq!(seen, want, "every exchange once, in order");

    let out = graphtape(&["sessions", "--db", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, _) in &all {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{text}"
        );
    }
}

#[tokio::test]
async fn retain_prunes_old_rotated_sessions_of_this_recording_only() {
    let graph = FakePeer::start(handler(|_| async { respond(200, &[], b"{}") })).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    // Someone else's old session: not this recording's, so never pruned.
    let out = graphtape(&["demo", "--db", db.to_str().unwrap()]);
    assert!(out.status.success());
    let mut gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "tick",
            "--rotate",
            "1s",
            "--retain",
            "1s",
        ],
    )
    .await;
    let (parts, _) = send(
        &client(),
        request("GET", &format!("{}/v1.0/a", gt.api), &[], b""),
    )
    .await;
    assert_eq!(parts.status, 200);
    let dbs = db.display().to_string();
    gt.wait_stdout_line(&format!("recording session=tick-2 db={dbs}"))
        .await;
    gt.wait_stdout_line("pruned session=tick").await;
    gt.wait_stdout_line(&format!("recording session=tick-4 db={dbs}"))
        .await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let names: Vec<String> = sessions(&db).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"demo".to_string()), "{names:?}");
    assert!(!names.contains(&"tick".to_string()), "{names:?}");
    assert!(!names.contains(&"tick-2".to_string()), "{names:?}");
    assert_eq!(names[0], "demo");
    assert!(
        names.len() >= 2,
        "the session current at the stop stays: {names:?}"
    );
    // No lock file outlives the recording.
    let locks = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".lock")
        })
        .count();
    assert_eq!(locks, 0);
}

#[test]
fn a_bad_rotate_value_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let out = graphtape(&[
        "record",
        "--db",
        db.to_str().unwrap(),
        "--upstream",
        "http://127.0.0.1:9",
        "--api-listen",
        "127.0.0.1:0",
        "--rotate",
        "often",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rotate \"often\""), "{err}");
}
