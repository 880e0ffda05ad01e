//! Callback routes and their secrets: graphtape mints routes only to http(s) URLs that
//! are not itself (and are allowed), keeps credentials in callback URLs out of the
//! recording while forwarding them, and refuses CONNECT and `OPTIONS *` on both
//! listeners.

use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// Graph stand-in: answers every request 201 with a call.
async fn graph() -> FakePeer {
    FakePeer::start(handler(|_| async {
        respond(
            201,
            &[("content-type", "application/json")],
            br#"{"id":"c1"}"#,
        )
    }))
    .await
}

async fn bot() -> FakePeer {
    FakePeer::start(handler(|_| async { respond(202, &[], b"") })).await
}

/// graphtape recording session "s" with a callback listener on a known port.
async fn start(db: &Path, graph: &FakePeer, bot: &FakePeer, extra: &[&str]) -> (Graphtape, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        "--upstream",
        &graph.url,
        "--session",
        "s",
        "--callback-listen",
        &listen,
        "--public-url",
        &public,
        "--bot-url",
        &bot.url,
    ];
    args.extend_from_slice(extra);
    (Graphtape::record(db, &args).await, port)
}

/// POSTs a create-call body with `callback_uri` and returns the callbackUri Graph got.
async fn create_call(gt: &Graphtape, graph: &FakePeer, callback_uri: &str) -> String {
    let before = graph.seen().len();
    let body = serde_json::json!({"callbackUri": callback_uri, "requestedModalities": ["audio"]});
    let (parts, _) = send(
        &client(),
        request(
            "POST",
            &format!("{}/v1.0/communications/calls", gt.api),
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        ),
    )
    .await;
    assert_eq!(parts.status, 201);
    let seen = graph.wait_for(before + 1).await;
    let sent: Value = serde_json::from_slice(&seen[before].body).unwrap();
    sent["callbackUri"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn routes_are_minted_only_for_http_urls_that_are_not_graphtape() {
    let (graph, bot) = (graph().await, bot().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let (gt, port) = start(&db, &graph, &bot, &[]).await;
    let api_port = gt.api.rsplit(':').next().unwrap().to_string();
    let minted_prefix = format!("http://127.0.0.1:{port}/callback/");

    let good = format!("{}/api/calls", bot.url);
    assert!(create_call(&gt, &graph, &good)
        .await
        .starts_with(&minted_prefix));
    for refused in [
        "file:///etc/passwd".to_string(),
        "gopher://bot.example/x".to_string(),
        "https:///no-host".to_string(),
        format!("http://localhost:{port}/api/calls"),
        format!("HTTP://LOCALHOST.:{port}/api/calls"),
        format!("http://0.0.0.0:{port}/x"),
        format!("http://127.1:{port}/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
        format!("http://127.0.0.1:{api_port}/v1.0/x"),
        format!("http://2130706433:{api_port}/x"),
    ] {
        assert_eq!(
            create_call(&gt, &graph, &refused).await,
            refused,
            "{refused} must be left as the bot gave it"
        );
    }
    let stopped = gt.stop().await;
    assert!(stopped.status.success());
    assert!(
        stopped
            .stderr
            .contains("callbackUri not routed through graphtape"),
        "{}",
        stopped.stderr
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let routes: i64 = conn
        .query_row("SELECT count(*) FROM callback_routes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(routes, 1, "one route, to the bot");
}

#[tokio::test]
async fn callback_allow_restricts_route_targets() {
    let (graph, bot) = (graph().await, bot().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let allowed = bot.url.trim_start_matches("http://").to_string();
    let (gt, port) = start(
        &db,
        &graph,
        &bot,
        &[
            "--callback-allow",
            "bot.example",
            "--callback-allow",
            &allowed,
        ],
    )
    .await;
    let minted_prefix = format!("http://127.0.0.1:{port}/callback/");
    for ok in [
        format!("{}/api/calls", bot.url),
        "https://BOT.example./cb".into(),
    ] {
        assert!(
            create_call(&gt, &graph, &ok)
                .await
                .starts_with(&minted_prefix),
            "{ok}"
        );
    }
    for refused in [
        "https://evil.example/cb",
        "https://bot.example.evil.example/cb",
    ] {
        assert_eq!(create_call(&gt, &graph, refused).await, refused);
    }
    let other_port = format!("http://127.0.0.1:{}/cb", bot.addr.port() ^ 1);
    assert_eq!(create_call(&gt, &graph, &other_port).await, other_port);
    let stopped = gt.stop().await;
    assert!(stopped.status.success());
    assert!(
        stopped.stderr.contains("not in --callback-allow"),
        "{}",
        stopped.stderr
    );
}

#[tokio::test]
async fn credentials_in_callback_urls_are_forwarded_but_never_recorded() {
    let (graph, bot) = (graph().await, bot().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let (gt, _) = start(&db, &graph, &bot, &[]).await;
    let host = bot.url.trim_start_matches("http://");
    let given = format!("http://hook:SECRET-USERINFO@{host}/api/calls?token=SECRET-QUERY&i=7");
    let minted = create_call(&gt, &graph, &given).await;
    assert!(!minted.contains("SECRET"), "{minted}");
    let notification = br#"{"value":[{"changeType":"updated","resource":"/app/calls/c1","resourceData":{"state":"established"}}]}"#;
    let (parts, _) = send(
        &client(),
        request(
            "POST",
            &minted,
            &[("content-type", "application/json")],
            notification,
        ),
    )
    .await;
    assert_eq!(parts.status, 202);
    let seen = bot.wait_for(1).await;
    assert_eq!(
        seen[0].uri, "/api/calls?token=SECRET-QUERY&i=7",
        "forwarding keeps the bot's token"
    );
    assert!(gt.stop().await.status.success());

    let stored = format!("{:?}", exchanges(&db, "s"));
    assert!(stored.contains("token=graphtape-redacted:"), "{stored}");
    assert!(
        stored.contains("&i=7"),
        "the rest of the URL stays: {stored}"
    );
    let db_arg = db.to_str().unwrap();
    let export = graphtape(&["export", "--db", db_arg, "s"]);
    let har = graphtape(&["export", "--db", db_arg, "s", "--format", "har"]);
    for (what, text) in [
        ("store", stored.into_bytes()),
        ("export", export.stdout),
        ("HAR", har.stdout),
    ] {
        for secret in ["SECRET-USERINFO", "SECRET-QUERY"] {
            assert!(
                !contains(&text, secret.as_bytes()),
                "{secret} in the {what}"
            );
        }
    }
}

#[tokio::test]
async fn connect_and_asterisk_form_are_refused_on_both_listeners() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (graph, bot) = (graph().await, bot().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let (gt, _) = start(&db, &graph, &bot, &[]).await;
    let listeners = [gt.api.clone(), gt.callback.clone().unwrap()];
    for listener in &listeners {
        let addr = listener.trim_start_matches("http://");
        for (raw, status) in [
            (
                "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
                "403",
            ),
            (
                "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                "400",
            ),
        ] {
            let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
            sock.write_all(raw.as_bytes()).await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            let head = String::from_utf8_lossy(&buf[..n]);
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}")),
                "{listener}: {head}"
            );
        }
    }
    // A notification path must start with exactly one "/" (replay sends it again).
    let addr = listeners[1].trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"POST //evil.example/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut head = String::new();
    tokio::time::timeout(DEADLINE, sock.read_to_string(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(
        graph.seen().is_empty() && bot.seen().is_empty(),
        "nothing was forwarded"
    );
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "s");
    assert_eq!(ex.len(), 5, "every refusal is recorded");
    for e in &ex {
        let error = e.error.as_deref().unwrap();
        assert!(
            error.contains("CONNECT is refused") || error.contains("only origin-form"),
            "{error}"
        );
        assert!(e.target.is_none());
    }
    // The recording of refusals exports and imports again.
    let file = dir.path().join("s.json");
    let db_arg = db.to_str().unwrap();
    let out = graphtape(&["export", "--db", db_arg, "s", "-o", file.to_str().unwrap()]);
    assert!(out.status.success());
    let out = graphtape(&[
        "import",
        "--db",
        db_arg,
        file.to_str().unwrap(),
        "--as",
        "again",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
