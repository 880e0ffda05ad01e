//! The store in trouble: a lock held by another process, a full disk, a read-only
//! directory, a damaged file, a crash under load, and processes racing on a new file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{
    client, graphtape, handler, request, respond, send, FakePeer, Graphtape, Seen, Setup,
};

fn echo_path() -> crate::util::Handler {
    handler(|seen: Seen| async move {
        respond(200, &[("content-type", "text/plain")], seen.uri.as_bytes())
    })
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Another process holds the write lock for six seconds (past SQLite's busy timeout):
/// with `fail`, graphtape refuses only while the store is locked and serves again the
/// moment a commit succeeds; nothing forwarded is lost.
#[tokio::test]
async fn a_long_lock_loses_nothing_and_fail_mode_serves_again_after_it() {
    let Setup {
        graph: _graph,
        db,
        mut gt,
        _dir,
    } = Setup::record(
        FakePeer::start(echo_path()).await,
        "s",
        &["--on-store-error", "fail"],
    )
    .await;
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    let c = client();
    let (first, _) = send(&c, request("GET", &format!("{}/one", gt.api), &[], b"")).await;
    assert_eq!(first.status, 200, "forwarded before the lock is noticed");
    gt.wait_stderr("locked by another process").await;
    let (second, body) = send(&c, request("GET", &format!("{}/two", gt.api), &[], b"")).await;
    assert_eq!(second.status, 503, "{}", String::from_utf8_lossy(&body));
    // The scenario is a six-second lock: hold it that long, then let go.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(locked_at.elapsed())).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    gt.wait_stderr("writable again").await;
    let (third, body) = send(&c, request("GET", &format!("{}/three", gt.api), &[], b"")).await;
    assert_eq!(
        third.status,
        200,
        "serves again once a write succeeded: {}",
        String::from_utf8_lossy(&body)
    );
    let stopped = gt.stop().await;
    let err = &stopped.stderr;
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "a request was refused: {err}"
    );
    assert!(err.contains("1 request refused"), "{err}");
    assert!(
        !err.contains("NOT recorded"),
        "nothing forwarded was lost: {err}"
    );
    let paths: Vec<String> = crate::util::exchanges(&db, "s")
        .into_iter()
        .map(|e| e.request.path)
        .collect();
    assert_eq!(
        paths,
        ["/one", "/two", "/three"],
        "all three stored, refusal too"
    );
    assert_eq!(count(&db, "SELECT unrecorded FROM sessions"), 0);
}

/// The same lock with the default `forward`: traffic flows, everything is stored once
/// the lock is gone, and the run ends well.
#[tokio::test]
async fn a_long_lock_with_forward_records_everything_afterwards() {
    let Setup {
        graph: _graph,
        db,
        mut gt,
        _dir,
    } = Setup::record(FakePeer::start(echo_path()).await, "s", &[]).await;
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    let c = client();
    for i in 0..5 {
        let (head, _) = send(&c, request("GET", &format!("{}/r{i}", gt.api), &[], b"")).await;
        assert_eq!(head.status, 200);
    }
    gt.wait_stderr("locked by another process").await;
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(locked_at.elapsed())).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    gt.wait_stderr("writable again").await;
    let stopped = gt.stop().await;
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("nothing was lost"),
        "{}",
        stopped.stderr
    );
    assert_eq!(crate::util::exchanges(&db, "s").len(), 5);
}

/// A small tmpfs mounted for the test: a real full disk. Unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk for real, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The disk fills up mid-session: one clear error (not one per exchange), the lost
/// exchanges counted, and recording resumes by itself when space returns.
#[tokio::test]
async fn a_full_disk_is_one_error_counted_and_recording_resumes_when_space_returns() {
    let graph = FakePeer::start(echo_path()).await;
    let disk = SmallDisk::mount("4m");
    let db = disk.path().join("g.db");
    let mut gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "s"]).await;
    // Fill the disk, then give back 256 KB so graphtape has a little room left.
    let filler = disk.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
    }
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(256 << 10))
        .unwrap();
    let c = client();
    let body = vec![b'x'; 100 << 10];
    let mut sent = 0;
    let mut full_seen = false;
    while sent < 200 {
        let (head, _) = send(
            &c,
            request("POST", &format!("{}/b{sent}", gt.api), &[], &body),
        )
        .await;
        assert_eq!(head.status, 200);
        sent += 1;
        if gt.stderr_now().contains("disk is full") {
            full_seen = true;
            break;
        }
    }
    assert!(full_seen, "the disk never filled");
    // Many more exchanges while full: still one error line.
    for i in 0..30 {
        let (head, _) = send(&c, request("POST", &format!("{}/f{i}", gt.api), &[], &body)).await;
        assert_eq!(head.status, 200, "forward keeps traffic flowing");
        sent += 1;
    }
    std::fs::remove_file(&filler).unwrap();
    // Recording resumes on the next commit after space returns.
    let (head, _) = send(&c, request("GET", &format!("{}/after", gt.api), &[], b"")).await;
    assert_eq!(head.status, 200);
    gt.wait_stderr("writable again").await;
    let (head, _) = send(&c, request("GET", &format!("{}/last", gt.api), &[], b"")).await;
    assert_eq!(head.status, 200);
    sent += 2;
    let stopped = gt.stop().await;
    let err = &stopped.stderr;
    assert_eq!(stopped.status.code(), Some(1), "{err}");
    assert_eq!(
        lines_with(err, "the disk is full:"),
        1,
        "one error, not one per batch: {err}"
    );
    let stored = crate::util::exchanges(&db, "s");
    let unrecorded = count(&db, "SELECT unrecorded FROM sessions") as usize;
    assert!(
        unrecorded >= 10,
        "the exchanges sent while full are counted: {unrecorded}"
    );
    assert_eq!(
        stored.len() + unrecorded,
        sent,
        "every exchange stored or counted"
    );
    assert!(
        err.contains(&format!(
            "{unrecorded} exchanges passed through but NOT recorded"
        )),
        "{err}"
    );
    let last = stored.last().unwrap();
    assert_eq!(last.request.path, "/last", "recording resumed");
}

/// Read-only commands in a read-only directory: no migration, no files created.
#[tokio::test]
async fn reading_commands_work_in_a_read_only_directory() {
    let graph = FakePeer::start(echo_path()).await;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let db = ro.join("g.db");
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "s"]).await;
    let c = client();
    send(&c, request("GET", &format!("{}/hello", gt.api), &[], b"")).await;
    assert!(gt.stop().await.status.success());
    let before = listing(&ro);
    let as_reader = ReadOnlyDir::make(&ro, &db);
    let db_arg = db.to_str().unwrap();
    for args in [
        vec!["sessions", "--db", db_arg],
        vec!["show", "s", "--db", db_arg, "--no-pager"],
        vec!["export", "s", "--db", db_arg],
        vec!["calls", "s", "--db", db_arg],
        vec!["check", "s", "--db", db_arg],
    ] {
        let out = as_reader.run(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "sessions" {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("s ") && text.contains("ended"), "{text}");
        }
    }
    drop(as_reader);
    assert_eq!(listing(&ro), before, "nothing created beside the database");
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

/// A directory nobody running the command may write to. Root ignores permissions, so
/// as root the command runs as `nobody` over files handed to `nobody`.
struct ReadOnlyDir {
    dir: PathBuf,
    as_nobody: bool,
}

const NOBODY: u32 = 65534;

impl ReadOnlyDir {
    fn make(dir: &Path, db: &Path) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid has no preconditions.
        let as_nobody = unsafe { libc::geteuid() } == 0;
        if as_nobody {
            for p in [dir.parent().unwrap(), dir, db] {
                std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        ReadOnlyDir {
            dir: dir.to_path_buf(),
            as_nobody,
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_graphtape"));
        cmd.args(args).stdin(std::process::Stdio::null());
        if self.as_nobody {
            cmd.uid(NOBODY).gid(NOBODY);
        }
        cmd.output().expect("running graphtape")
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755));
    }
}

/// A database with damaged middle pages: `record` refuses it with the reason instead of
/// appending to it.
#[test]
fn record_refuses_a_damaged_database_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    {
        let conn = graphtape::store::open(&db, graphtape::store::Access::Create).unwrap();
        let sid =
            graphtape::store::create_session(&conn, "old", 0, &serde_json::json!({})).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for seq in 1..=400 {
            conn.execute(
                "INSERT INTO exchanges (session_id, seq, direction, wall_start_unix_us,
                   request_start_us, method, path, http_version, request_headers,
                   request_body, request_body_len, request_body_sha256, request_body_truncated)
                 VALUES (?1, ?2, 'api', 0, 0, 'GET', '/x', 'HTTP/1.1', '[]', ?3, 1000, '', 0)",
                rusqlite::params![sid, seq, vec![b'a'; 1000]],
            )
            .unwrap();
        }
        conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    // Overwrite a whole page in the middle of the file, its B-tree header included (the
    // file's header stays intact). The page size is the file header's bytes 16-17.
    {
        use std::io::{Seek, SeekFrom, Write};
        let header = std::fs::read(&db).unwrap();
        let page = u64::from(u16::from_be_bytes([header[16], header[17]]));
        let pages = header.len() as u64 / page;
        assert!(
            pages >= 4,
            "{pages} pages: too few to damage one in the middle"
        );
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        f.seek(SeekFrom::Start(pages / 2 * page)).unwrap();
        f.write_all(&vec![0xA5; page as usize]).unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let out = graphtape(&[
        "record",
        "--upstream",
        "http://127.0.0.1:9",
        "--api-listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is damaged") && err.contains("refusing to record"),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "nothing appended");
}

/// kill -9 under load with 200 KB bodies both ways: the exchanges answered but not
/// stored are bounded by the writer's queue budget, whatever the body size, and the
/// session shows as interrupted.
#[tokio::test]
async fn a_crash_under_load_with_large_bodies_loses_at_most_the_queue_budget() {
    const BODY: usize = 200 << 10;
    let big: &'static [u8] = Box::leak(vec![b'r'; BODY].into_boxed_slice());
    let graph = FakePeer::start(handler(move |_seen: Seen| async move {
        respond(200, &[("content-type", "application/octet-stream")], big)
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "crash"]).await;
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (answered, stop, url) = (answered.clone(), stop.clone(), gt.api.clone());
        clients.push(tokio::spawn(async move {
            let c = client();
            let body = vec![b'q'; BODY];
            while !stop.load(Ordering::Relaxed) {
                let req = request("POST", &format!("{url}/v1.0/upload"), &[], &body);
                match c.request(req).await {
                    Ok(resp) => {
                        use http_body_util::BodyExt;
                        let (head, body) = resp.into_parts();
                        if head.status == 200 && body.collect().await.is_ok() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Under load for a while: until 400 answered (an event, whatever the machine's speed).
    tokio::time::timeout(Duration::from_secs(60), async {
        while answered.load(Ordering::Relaxed) < 400 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("load never reached 400 answered exchanges");
    let elapsed = started.elapsed();
    let stopped = gt.stop_with(libc::SIGKILL).await;
    assert_eq!(stopped.status.code(), None, "killed by a signal");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answered = answered.load(Ordering::Relaxed) as i64;
    let stored = count(&db, "SELECT count(*) FROM exchanges");
    let missing = answered - stored;
    let per_exchange = (2 * BODY + graphtape::store::QUEUE_OVERHEAD_PER_EXCHANGE) as i64;
    let budget = graphtape::store::QUEUE_BYTES as i64 / per_exchange + 1;
    let rate = answered as f64 / elapsed.as_secs_f64();
    eprintln!(
        "crash bound: answered {answered}, stored {stored}, missing {missing} (budget {budget}), \
         {rate:.0} exchanges/s, about {:.0} ms of traffic",
        missing.max(0) as f64 / rate * 1000.0
    );
    assert!(
        missing >= 0,
        "stored more than answered? {stored} > {answered}"
    );
    assert!(
        missing <= budget,
        "a crash lost {missing} answered exchanges; the queue budget allows {budget}"
    );
    // The database is whole, the session shows as interrupted, and recording goes on.
    let out = graphtape(&["sessions", "--db", db.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("crash "))
        .unwrap_or_default();
    assert!(line.ends_with("interrupted"), "{text}");
    let again = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "after"]).await;
    assert!(again.stop().await.status.success());
}

/// Eight processes start at once on the same new database: four replays of one
/// recording file (each records its own `NAME-replay-N`) and four imports. All succeed:
/// creation, migration, the redaction and signing keys and session names are each
/// decided once, under SQLite's write lock or an exclusive file creation.
#[tokio::test]
async fn eight_replays_and_imports_started_at_once_on_a_new_database_all_succeed() {
    use crate::bot::{Bot, Script};
    use crate::flows::Flow;
    use crate::graph_sim::{dashed, INCOMING};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings");
    let recording = root.join("invite-from-incoming-call.json");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let mut bots = Vec::new();
    for _ in 0..4 {
        bots.push(
            Bot::start(Script {
                answer_incoming: false,
                ..Script::default()
            })
            .await,
        );
    }
    let call = dashed(INCOMING);
    let extra = ["--no-graph", "--fast", "--call", &call];
    let replays = bots.iter().map(|bot| {
        crate::replayer::replay(
            &db,
            recording.to_str().unwrap(),
            bot,
            Flow::Listen(4),
            "",
            &extra,
        )
    });
    let imports = (0..4).map(|i| {
        let (db, file) = (db.clone(), recording.clone());
        tokio::task::spawn_blocking(move || {
            graphtape(&[
                "import",
                file.to_str().unwrap(),
                "--as",
                &format!("imported-{i}"),
                "--db",
                db.to_str().unwrap(),
            ])
        })
    });
    let (replayed, imported) = tokio::join!(
        futures_join_all(replays.collect()),
        futures_join_all(imports.collect())
    );
    for r in &replayed {
        assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    }
    for out in imported {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = graphtape(&["sessions", "--db", db.to_str().unwrap(), "--json"]);
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .map(|n| n.trim_matches('"').to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..4).map(|i| format!("imported-{i}")).collect();
    want.extend((1..=4).map(|n| format!("invite-from-incoming-call-replay-{n}")));
    want.sort();
    assert_eq!(names, want);
}

/// Awaits every future, started together (no extra crate for one join).
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.unwrap()).collect()
}
