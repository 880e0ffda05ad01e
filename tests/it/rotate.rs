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
    // Another process holds the write lock through the sequential half: the writer falls
    // behind by up to all of it, which must not move where the sessions split.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
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
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    // Then concurrently: exchanges in flight across the boundaries.
    let mut tasks = tokio::task::JoinSet::new();
    for i in n..2 * n {
        let (client, url) = (client.clone(), format!("{}/v1.0/x", gt.api));
        let body = format!("{i:06}").repeat(2048 / 6);
        tasks
            .spawn(async move { send(&client, request("POST", &url, &[], body.as_bytes())).await });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().0.status, 200);
    }
    // The sequential half alone (80 KiB, 20 KiB to a session) rotates four times; how
    // often the concurrent half does depends on how many are in flight at each crossing.
    gt.wait_stdout_line(&format!("recording session=cap-5 db={}", db.display()))
        .await;
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    assert!(
        stopped
            .stderr
            .contains("session cap and its rotations recorded: 80 exchanges"),
        "{}",
        stopped.stderr
    );

    let all = sessions(&db);
    assert!(all.len() >= 5, "{all:?}");
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
        let started = {
            let conn = graphtape::store::open(&db, graphtape::store::Access::Existing).unwrap();
            graphtape::store::find_session(&conn, name)
                .unwrap()
                .started_unix_us
        };
        let mut sequential = true;
        for e in &exchanges {
            // Offsets count from this session's own start.
            assert_eq!(
                e.wall_start_us - started,
                e.timing.request_start_us,
                "{name} seq {}",
                e.seq
            );
            let id = String::from_utf8_lossy(&e.request.body.bytes[..6]).to_string();
            sequential &= id.parse::<usize>().unwrap() < n;
            seen.push(id);
        }
        // Rotated right after the exchange that crossed the threshold, however far the
        // writer lags behind: ten 2 KiB exchanges (request and response bodies) reach
        // 20 KiB exactly, so each session of the sequential half holds ten.
        if sequential && k + 1 < all.len() {
            let bytes: usize = exchanges
                .iter()
                .map(|e| e.request.body.bytes.len() + 2)
                .sum();
            assert_eq!((exchanges.len(), bytes), (10, 20 << 10), "{name}");
        }
    }
    let want: Vec<String> = (0..n).map(|i| format!("{i:06}")).collect();
    assert_eq!(
        seen[..n],
        want[..],
        "every sequential exchange once, in order"
    );
    seen.sort();
    let want: Vec<String> = (0..2 * n).map(|i| format!("{i:06}")).collect();
    assert_eq!(seen, want, "every exchange once");

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

#[tokio::test]
async fn an_exchange_in_flight_at_the_boundary_stays_whole_in_its_session() {
    let mut gated = Gated::start(b"{}").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("f.db");
    let mut gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &gated.peer.url,
            "--session",
            "held",
            "--rotate",
            "1s",
        ],
    )
    .await;
    let url = gt.api.clone();
    let a = tokio::spawn(async move {
        send(
            &client(),
            request("POST", &format!("{url}/v1.0/a"), &[], b"A"),
        )
        .await
    });
    gated.arrived.recv().await.unwrap();
    gt.wait_stdout_line(&format!("recording session=held-2 db={}", db.display()))
        .await;
    {
        let conn = graphtape::store::open(&db, graphtape::store::Access::Existing).unwrap();
        let held = graphtape::store::find_session(&conn, "held").unwrap();
        assert_eq!(held.ended_us, None, "ended with an exchange in flight");
        assert!(graphtape::store::is_recording(&db, &held).unwrap());
    }
    let url = gt.api.clone();
    let b = tokio::spawn(async move {
        send(
            &client(),
            request("POST", &format!("{url}/v1.0/b"), &[], b"B"),
        )
        .await
    });
    gated.arrived.recv().await.unwrap();
    gated.release.notify_one();
    gated.release.notify_one();
    assert_eq!(a.await.unwrap().0.status, 200);
    assert_eq!(b.await.unwrap().0.status, 200);
    // The old session ends on its own once its last exchange is stored.
    tokio::time::timeout(DEADLINE, async {
        loop {
            let conn = graphtape::store::open(&db, graphtape::store::Access::Existing).unwrap();
            let held = graphtape::store::find_session(&conn, "held").unwrap();
            if held.ended_us.is_some() && !graphtape::store::is_recording(&db, &held).unwrap() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the rotated-out session never ended");
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let held = exchanges(&db, "held");
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].seq, held[0].request.path.as_str()), (1, "/v1.0/a"));
    assert!(held[0].response.is_some(), "the exchange is whole");
    let later: Vec<_> = sessions(&db)
        .into_iter()
        .filter(|(n, _)| n != "held")
        .flat_map(|(n, _)| exchanges(&db, &n))
        .collect();
    assert_eq!(later.len(), 1, "B once, in a later session");
    assert_eq!(
        (later[0].seq, later[0].request.path.as_str()),
        (1, "/v1.0/b")
    );
}
