//! `graphtape record`, API direction: fidelity, concurrency, failures, secrets, TLS.

use crate::util::*;

const CREATE_CALL: &[u8] = br##"{
  "@odata.type": "#microsoft.graph.call",
  "callbackUri": "https://bot.contoso.com/api/calls",
  "requestedModalities": [],
  "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
  "chatInfo": {"threadId": "19:meeting_x@thread.v2", "messageId": "0"},
  "meetingInfo": {"@odata.type": "#microsoft.graph.organizerMeetingInfo"},
  "tenantId":   "72f988bf-86f1-41af-91ab-2d7cd011db47"
}"##;

const CALL_CREATED: &[u8] = br##"{"@odata.type":"#microsoft.graph.call","state":"establishing","direction":"outgoing","id":"90ED37DC-D8E3-4E11-9DE3-30A955DDA06F","myParticipantId":"05491616-385f-44a8-9b6d-b6d9b9b3c9a7"}"##;

fn graph_like() -> Handler {
    handler(|seen: Seen| async move {
        let path = seen.uri.split('?').next().unwrap_or_default().to_string();
        if seen.method == "POST" && path.ends_with("/communications/calls") {
            respond(
                201,
                &[
                    ("content-type", "application/json"),
                    ("location", "https://graph.microsoft.com/v1.0/communications/calls/90ed37dc-d8e3-4e11-9de3-30a955dda06f"),
                    ("request-id", "a9d1e6b4-0000-4000-8000-000000000001"),
                    ("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"West US"}}"#),
                ],
                CALL_CREATED,
            )
        } else {
            respond(200, &[("content-type", "text/plain")], path.as_bytes())
        }
    })
}

#[tokio::test]
async fn bodies_and_headers_pass_byte_exact_both_ways() {
    let Setup {
        graph,
        db,
        gt,
        _dir,
    } = Setup::start(graph_like(), "s").await;

    let (parts, body) = send(
        &client(),
        request(
            "POST",
            &format!("{}/v1.0/communications/calls?x=1", gt.api),
            &[
                ("content-type", "application/json"),
                ("client-request-id", "11111111-2222-3333-4444-555555555555"),
                ("scenario-id", "abc"),
                ("connection", "keep-alive"),
            ],
            CREATE_CALL,
        ),
    )
    .await;
    assert_eq!(parts.status, 201);
    assert_eq!(&body[..], CALL_CREATED);
    assert_eq!(
        parts.headers["location"],
        "https://graph.microsoft.com/v1.0/communications/calls/90ed37dc-d8e3-4e11-9de3-30a955dda06f"
    );
    assert_eq!(
        parts.headers["request-id"],
        "a9d1e6b4-0000-4000-8000-000000000001"
    );

    let upstream_saw = graph.seen();
    assert_eq!(upstream_saw.len(), 1);
    let up = &upstream_saw[0];
    assert_eq!(up.uri, "/v1.0/communications/calls?x=1");
    assert_eq!(&up.body[..], CREATE_CALL);
    assert_eq!(
        up.headers["client-request-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(up.headers["scenario-id"], "abc");
    assert_eq!(up.headers["host"], graph.addr.to_string().as_str());
    assert!(!up.headers.contains_key("connection"));

    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "s");
    assert_eq!(ex.len(), 1);
    let e = &ex[0];
    assert_eq!(e.seq, 1);
    assert_eq!(e.request.body.bytes, CREATE_CALL);
    assert_eq!(e.request.query.as_deref(), Some("x=1"));
    let resp = e.response.as_ref().unwrap();
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body.bytes, CALL_CREATED);
    let t = e.timing;
    assert!(t.request_start_us <= t.request_end_us.unwrap());
    assert!(t.request_end_us <= t.response_start_us);
    assert!(t.response_start_us <= t.response_end_us);
    // The call id is indexed in its lookup form, the raw spelling kept.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (norm, raw): (String, String) = conn
        .query_row("SELECT call_id, call_id_raw FROM exchanges", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(norm, "90ed37dcd8e34e119de330a955dda06f");
    assert_eq!(raw, "90ED37DC-D8E3-4E11-9DE3-30A955DDA06F");
}

#[tokio::test]
async fn http2_from_the_bot_is_forwarded_and_recorded() {
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::start(graph_like(), "h2").await;
    let (parts, body) = send(
        &h2_client(),
        request(
            "GET",
            &format!("{}/v1.0/communications/calls/abc", gt.api),
            &[],
            b"",
        ),
    )
    .await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert_eq!(&body[..], b"/v1.0/communications/calls/abc");
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "h2");
    assert_eq!(ex[0].request.version, "HTTP/2.0");
    assert_eq!(ex[0].request.path, "/v1.0/communications/calls/abc");
}

#[tokio::test]
async fn hundred_concurrent_exchanges_get_distinct_gap_free_sequence_numbers() {
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::start(graph_like(), "c").await;
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = client.clone();
        let url = format!("{}/v1.0/communications/calls/{i}", gt.api);
        tasks.spawn(async move { send(&client, request("GET", &url, &[], b"")).await });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.unwrap().0.status, 200);
    }
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "c");
    let seqs: Vec<u64> = ex.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>());
    let mut paths: Vec<String> = ex.iter().map(|e| e.request.path.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 100);
}

/// `--threads N` starts N connection workers, and exchanges over many connections at
/// once, spread over them, are all recorded in one gap-free order.
#[tokio::test]
async fn threads_sets_the_connection_workers_and_every_exchange_is_recorded() {
    let graph = FakePeer::start(graph_like()).await;
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::record(graph, "w", &["--threads", "3"]).await;
    let mut workers: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", gt.pid()))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("gt-conn-"))
        .collect();
    workers.sort();
    assert_eq!(workers, ["gt-conn-0", "gt-conn-1", "gt-conn-2"]);
    // One client per request: sixty connections, twenty per worker.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let url = format!("{}/v1.0/communications/calls/{i}", gt.api);
        tasks.spawn(async move { send(&client(), request("GET", &url, &[], b"")).await });
    }
    while let Some(done) = tasks.join_next().await {
        let (parts, body) = done.unwrap();
        assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    }
    assert!(gt.stop().await.status.success());
    let seqs: Vec<u64> = exchanges(&db, "w").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
}

#[tokio::test]
async fn upstream_down_gives_502_and_the_failure_is_recorded() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let upstream = format!("http://{closed}");
    let gt = Graphtape::record(&db, &["--upstream", &upstream, "--session", "down"]).await;
    let (parts, body) = send(
        &client(),
        request(
            "DELETE",
            &format!("{}/v1.0/communications/calls/1", gt.api),
            &[],
            b"",
        ),
    )
    .await;
    assert_eq!(parts.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "upstreamUnreachable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused"), "{message}");
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "down");
    assert_eq!(ex.len(), 1);
    assert!(ex[0].response.is_none());
    assert!(ex[0].error.as_deref().unwrap().contains("refused"));
}

#[tokio::test]
async fn upstream_reset_mid_body_gives_502_and_keeps_what_arrived() {
    // A raw TCP upstream that promises 100 bytes, sends 7 and hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let upstream = format!("http://{addr}");
    let gt = Graphtape::record(&db, &["--upstream", &upstream, "--session", "reset"]).await;
    let (parts, body) = send(
        &client(),
        request("GET", &format!("{}/x", gt.api), &[], b""),
    )
    .await;
    assert_eq!(parts.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "upstreamReset");
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "reset");
    let resp = ex[0].response.as_ref().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.bytes, b"partial");
    assert!(ex[0].error.as_deref().unwrap().contains("after 7 bytes"));
}

#[tokio::test]
async fn upstream_that_never_answers_times_out_with_502() {
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::record(
        FakePeer::start(handler(|_| std::future::pending())).await,
        "slow",
        &["--upstream-timeout", "0.2"],
    )
    .await;
    let (parts, body) = send(
        &client(),
        request("GET", &format!("{}/x", gt.api), &[], b""),
    )
    .await;
    assert_eq!(parts.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "upstreamTimeout");
    assert!(gt.stop().await.status.success());
    assert!(exchanges(&db, "slow")[0]
        .error
        .as_deref()
        .unwrap()
        .contains("did not answer within 0.2s"));
}

fn b64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[tokio::test]
async fn credentials_never_reach_the_database_files_or_logs() {
    let graph = FakePeer::start(graph_like()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let jwt = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64url(br#"{"iss":"https://sts.windows.net/tid-1/","aud":"https://graph.microsoft.com","tid":"tid-1","exp":1795000000}"#),
        "SIGNATURExSECRETxPART"
    );
    let auth = format!("Bearer {jwt}");
    let query_secret = "QUERYxSECRETx123";
    let body_secret = "BODYxSECRETx456";
    let body =
        format!(r#"{{"recordingLocation":"https://x","recordingAccessToken":"{body_secret}"}}"#);
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "sec"]).await;
    let (parts, _) = send(
        &client(),
        request(
            "POST",
            &format!(
                "{}/v1.0/app/calls/1/x?access_token={query_secret}&keep=1",
                gt.api
            ),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        ),
    )
    .await;
    assert_eq!(parts.status, 200);
    // The upstream still gets the real credentials.
    let up = &graph.seen()[0];
    assert_eq!(up.headers["authorization"], auth.as_str());
    assert!(up.uri.contains(query_secret));
    assert_eq!(up.body, body.as_bytes());

    let stopped = gt.stop().await;
    assert!(stopped.status.success());
    for secret in [
        jwt.as_str(),
        "SIGNATURExSECRETxPART",
        query_secret,
        body_secret,
    ] {
        assert!(!stopped.stderr.contains(secret), "{secret} in logs");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{secret} found in {}",
                path.display()
            );
        }
    }
    let ex = exchanges(&db, "sec");
    let stored_auth = ex[0]
        .request
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .unwrap();
    let parsed = graphtape::redact::parse_redacted(&stored_auth).unwrap();
    assert_eq!(parsed.claims.tid.as_deref(), Some("tid-1"));
    assert_eq!(
        parsed.claims.aud.as_deref(),
        Some("https://graph.microsoft.com")
    );
    assert_eq!(parsed.claims.exp, Some(1795000000));
    assert!(ex[0].request.query.as_deref().unwrap().ends_with("&keep=1"));
}

#[tokio::test]
async fn keep_secrets_stores_credentials_in_clear_and_says_so() {
    let Setup {
        graph: _graph,
        db,
        gt,
        _dir,
    } = Setup::record(
        FakePeer::start(graph_like()).await,
        "clear",
        &["--keep-secrets"],
    )
    .await;
    send(
        &client(),
        request(
            "GET",
            &format!("{}/x", gt.api),
            &[("authorization", "Bearer opaque-token-1")],
            b"",
        ),
    )
    .await;
    let stopped = gt.stop().await;
    assert!(stopped.stderr.contains("IN CLEAR"), "{}", stopped.stderr);
    let ex = exchanges(&db, "clear");
    assert!(ex[0].request.headers.contains(&(
        "authorization".to_string(),
        b"Bearer opaque-token-1".to_vec()
    )));
}

#[tokio::test]
async fn tls_upstream_is_trusted_only_with_its_ca() {
    let (server_tls, pem) = self_signed();
    let graph = FakePeer::start_tls(graph_like(), server_tls).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let db = dir.path().join("g.db");

    let ca_arg = ca.to_str().unwrap();
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "tls",
            "--upstream-ca",
            ca_arg,
        ],
    )
    .await;
    let (parts, body) = send(
        &client(),
        request(
            "POST",
            &format!("{}/v1.0/communications/calls", gt.api),
            &[],
            CREATE_CALL,
        ),
    )
    .await;
    assert_eq!(parts.status, 201);
    assert_eq!(&body[..], CALL_CREATED);
    // The upstream offered h2 by ALPN: graphtape spoke HTTP/2 to it, HTTP/1.1 to the bot.
    assert_eq!(graph.seen()[0].version, http::Version::HTTP_2);
    assert_eq!(&graph.seen()[0].body[..], CREATE_CALL);
    assert_eq!(parts.version, http::Version::HTTP_11);
    assert!(gt.stop().await.status.success());

    // Without the CA the certificate is rejected, and that is recorded too.
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "untrusted"]).await;
    let (parts, body) = send(
        &client(),
        request("GET", &format!("{}/x", gt.api), &[], b""),
    )
    .await;
    assert_eq!(parts.status, 502);
    let text = String::from_utf8_lossy(&body).to_lowercase();
    assert!(text.contains("certificate"), "{text}");
    assert!(gt.stop().await.status.success());
    assert!(exchanges(&db, "untrusted")[0].error.is_some());
}

#[tokio::test]
async fn not_an_open_proxy() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Setup {
        graph,
        db,
        gt,
        _dir,
    } = Setup::start(graph_like(), "open").await;
    let addr = gt.api.trim_start_matches("http://").to_string();
    for raw in [
        "GET http://evil.example/steal HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    ] {
        let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
        sock.write_all(raw.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 512];
        let n = tokio::time::timeout(DEADLINE, sock.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    }
    assert!(
        graph.seen().is_empty(),
        "a refused request reached the upstream"
    );
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "open");
    assert_eq!(ex.len(), 2);
    assert!(ex
        .iter()
        .all(|e| e.error.as_deref().unwrap().contains("only forwards to")));
}

#[tokio::test]
async fn large_bodies_are_forwarded_whole_and_stored_capped() {
    let graph = FakePeer::start(handler(|seen: Seen| async move {
        respond(
            200,
            &[("content-type", "application/octet-stream")],
            &seen.body,
        )
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "big",
            "--max-body",
            "1k",
        ],
    )
    .await;
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (parts, body) = send(
        &client(),
        request(
            "PUT",
            &format!("{}/upload", gt.api),
            &[("content-type", "application/octet-stream")],
            &big,
        ),
    )
    .await;
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], &big[..], "echo came back intact");
    assert_eq!(graph.seen()[0].body.len(), big.len());
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "big");
    for stored in [&ex[0].request.body, &ex[0].response.as_ref().unwrap().body] {
        assert_eq!(stored.bytes, &big[..1024]);
        assert_eq!(stored.len, 100_000);
        assert!(stored.truncated);
        assert_eq!(stored.sha256, graphtape::exchange::sha256_hex(&big));
    }
}

#[tokio::test]
async fn stop_signal_lets_in_flight_exchanges_finish_and_flushes() {
    let Gated {
        peer: graph,
        mut arrived,
        release,
    } = Gated::start(b"late but whole").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let mut gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "drain"]).await;
    let url = format!("{}/slow", gt.api);
    let pending =
        tokio::spawn(async move { send(&client(), request("GET", &url, &[], b"")).await });
    arrived.recv().await.unwrap();
    gt.signal(libc::SIGINT);
    gt.wait_stderr("stopping").await;
    release.notify_one();
    let (parts, body) = pending.await.unwrap();
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], b"late but whole");
    let stopped = gt.stop_with(0).await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "drain");
    assert_eq!(ex.len(), 1);
    assert_eq!(
        ex[0].response.as_ref().unwrap().body.bytes,
        b"late but whole"
    );
}

#[tokio::test]
async fn a_bot_that_hangs_up_mid_exchange_is_still_recorded() {
    use tokio::io::AsyncWriteExt;
    let Gated {
        peer: graph,
        mut arrived,
        release,
    } = Gated::start(b"answered after the bot left").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "gone"]).await;
    let addr = gt.api.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    sock.write_all(
        b"POST /v1.0/communications/calls HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await
    .unwrap();
    arrived.recv().await.unwrap();
    drop(sock);
    release.notify_one();
    // The stop waits for the exchange, which completes although nobody reads it.
    let stopped = gt.stop().await;
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let ex = exchanges(&db, "gone");
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].request.body.bytes, b"{}");
    assert_eq!(
        ex[0].response.as_ref().unwrap().body.bytes,
        b"answered after the bot left"
    );
}

#[tokio::test]
async fn gzip_responses_pass_byte_exact_and_are_read_decoded() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(CALL_CREATED).unwrap();
    let packed = gz.finish().unwrap();
    let wire = packed.clone();
    let graph = FakePeer::start(handler(move |_| {
        let wire = wire.clone();
        async move {
            respond(
                201,
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                &wire,
            )
        }
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = Graphtape::record(&db, &["--upstream", &graph.url, "--session", "gz"]).await;
    let (parts, body) = send(
        &client(),
        request(
            "POST",
            &format!("{}/v1.0/communications/calls", gt.api),
            &[
                ("accept-encoding", "gzip"),
                ("content-type", "application/json"),
            ],
            CREATE_CALL,
        ),
    )
    .await;
    assert_eq!(parts.status, 201);
    assert_eq!(parts.headers["content-encoding"], "gzip");
    assert_eq!(&body[..], &packed[..], "the compressed bytes, unchanged");
    assert!(gt.stop().await.status.success());
    let ex = exchanges(&db, "gz");
    assert_eq!(
        ex[0].response.as_ref().unwrap().body.bytes,
        packed,
        "stored as received"
    );
    // ...but read decoded: the call id comes from the gzip body, and show reports its state.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let call: String = conn
        .query_row("SELECT call_id FROM exchanges", [], |r| r.get(0))
        .unwrap();
    assert_eq!(call, "90ed37dcd8e34e119de330a955dda06f");
    let out = graphtape(&["show", "--db", db.to_str().unwrap(), "gz"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[establishing]"), "{text}");
}
