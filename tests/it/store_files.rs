//! Databases and recording files: export/import fidelity and clear errors on bad input.

use crate::util::*;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Records a session with varied bodies: compact JSON, pretty JSON, binary, empty,
/// a failure.
async fn varied_session(db: &std::path::Path) {
    let graph = FakePeer::start(handler(|seen: Seen| async move {
        match seen.uri.as_str() {
            "/json" => respond(
                200,
                &[("content-type", "application/json")],
                br#"{"id":"1","status":"running"}"#,
            ),
            "/pretty" => respond(
                200,
                &[("content-type", "application/json")],
                b"{\n  \"a\": [1, 2]\n}\n",
            ),
            "/binary" => respond(
                200,
                &[("content-type", "audio/wav")],
                &[0x52, 0x49, 0xff, 0x00, 0xfe],
            ),
            _ => respond(204, &[], b""),
        }
    }))
    .await;
    let gt = Graphtape::record(db, &["--upstream", &graph.url, "--session", "varied"]).await;
    let c = client();
    for path in ["/json", "/pretty", "/binary", "/empty"] {
        send(
            &c,
            request(
                "POST",
                &format!("{}{path}", gt.api),
                &[("x-odd", "caf\u{e9}")],
                b"{\"k\":\"v\"}",
            ),
        )
        .await;
    }
    drop(graph);
    assert!(gt.stop().await.status.success());
}

#[tokio::test]
async fn export_import_export_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    varied_session(&db).await;
    let first = dir.path().join("first.json");
    let out = graphtape(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "varied",
        "-o",
        first.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));

    let other = dir.path().join("b.db");
    let out = graphtape(&[
        "import",
        "--db",
        other.to_str().unwrap(),
        first.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported session varied (4 events)"));
    let out = graphtape(&["export", "--db", other.to_str().unwrap(), "varied"]);
    assert!(out.status.success());
    let first_bytes = std::fs::read(&first).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&first_bytes)
    );

    // Bodies are byte-exact after the round trip, whatever their kind.
    let a = exchanges(&db, "varied");
    let b = exchanges(&other, "varied");
    assert_eq!(a, b);
    let doc: serde_json::Value = serde_json::from_slice(&first_bytes).unwrap();
    assert_eq!(doc["format"], "graphtape/1");
    let bodies: Vec<&serde_json::Value> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["response"]["body"])
        .collect();
    assert!(bodies[0]["json"].is_object(), "compact JSON is inline");
    assert!(
        bodies[1]["text"].is_string(),
        "pretty JSON is kept as exact text"
    );
    assert!(bodies[2]["base64"].is_string(), "binary is base64");
    assert!(bodies[3].is_null(), "an empty body is omitted");

    // Importing the same session again is refused by name, and --as renames.
    let out = graphtape(&[
        "import",
        "--db",
        other.to_str().unwrap(),
        first.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("already exists"));
    let out = graphtape(&[
        "import",
        "--db",
        other.to_str().unwrap(),
        first.to_str().unwrap(),
        "--as",
        "copy",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = graphtape(&["sessions", "--db", other.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("varied") && table.contains("copy"),
        "{table}"
    );
}

#[tokio::test]
async fn malformed_recording_is_rejected_with_position_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    varied_session(&db).await;
    let good = dir.path().join("good.json");
    assert!(graphtape(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "varied",
        "-o",
        good.to_str().unwrap()
    ])
    .status
    .success());
    let text = std::fs::read_to_string(&good).unwrap();

    let bad_syntax = dir.path().join("syntax.json");
    std::fs::write(&bad_syntax, text.replacen("\"seq\": 2,", "\"seq\": 2", 1)).unwrap();
    let bad_field = dir.path().join("field.json");
    std::fs::write(
        &bad_field,
        text.replacen("\"seq\": 3", "\"seq\": \"three\"", 1),
    )
    .unwrap();
    let not_utf8 = dir.path().join("bytes.json");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    let target = dir.path().join("target.db");
    for (file, want) in [
        (&bad_syntax, "syntax.json: line "),
        (&bad_field, "at events[2].seq"),
        (&not_utf8, "bytes.json: line 1"),
    ] {
        let out = graphtape(&[
            "import",
            "--db",
            target.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr_of(&out);
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!target.exists(), "a failed import created the database");
    let out = graphtape(&[
        "import",
        "--db",
        target.to_str().unwrap(),
        "/nonexistent/x.json",
    ]);
    assert!(stderr_of(&out).contains("cannot read /nonexistent/x.json"));
}

#[test]
fn corrupt_and_foreign_databases_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![0x42u8; 8192]).unwrap();
    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER);")
        .unwrap();
    drop(conn);
    for (db, want) in [
        (&corrupt, "is not a SQLite database"),
        (&foreign, "not a graphtape one"),
    ] {
        for args in [
            vec!["sessions", "--db", db.to_str().unwrap()],
            vec![
                "record",
                "--api-listen",
                "127.0.0.1:0",
                "--db",
                db.to_str().unwrap(),
            ],
        ] {
            let out = graphtape(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = stderr_of(&out);
            assert!(err.contains(want), "{args:?}: {err}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
        }
    }
    // The foreign database was not touched.
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
}

#[test]
fn unknown_session_and_missing_database_say_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let out = graphtape(&["export", "--db", missing.to_str().unwrap(), "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("no database at"));
    assert!(!missing.exists());
}

#[test]
fn bad_flags_name_the_flag() {
    for (args, want) in [
        (vec!["record", "--max-body", "lots"], "--max-body"),
        (vec!["record", "--upstream", "ftp://x"], "--upstream"),
        (
            vec!["record", "--upstream-timeout", "0"],
            "--upstream-timeout",
        ),
        (vec!["record", "--api-listen", "nowhere"], "--api-listen"),
        (
            vec!["record", "--on-store-error", "maybe"],
            "--on-store-error",
        ),
        (
            vec!["record", "--bot-url", "http://127.0.0.1:9"],
            "--bot-url needs --callback-listen",
        ),
        (
            vec!["record", "--public-url", "https://x"],
            "--public-url needs --callback-listen",
        ),
        (vec!["record", "--api-tls"], "--api-tls needs a certificate"),
        (vec!["record", "--tls-self-signed"], "no listener uses it"),
        (vec!["record", "--tls-cert", "c.pem"], "--tls-key"),
    ] {
        let out = graphtape(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
