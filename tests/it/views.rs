//! The pictures in a real browser: the exported timeline from `file://` with the
//! network disabled, the Mermaid diagram through the real Mermaid parser, and the `ui`
//! following a recording live.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::big::big_recording;
use crate::browser::{screenshot_path, Browser, Network, Page};
use crate::util::*;

fn recording(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(name)
}

fn export(source: &Path, format: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "export",
        source.to_str().unwrap(),
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = graphtape(&args);
    assert!(
        out.status.success(),
        "export --format {format}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens an exported page and waits until its model is drawn.
fn open_page(browser: &Browser, file: &Path) -> Page {
    let mut page = browser.page();
    page.goto(&format!("file://{}", file.display()));
    page.wait_for("document.body.dataset.ready === '1'");
    page
}

fn count(page: &mut Page, selector: &str) -> u64 {
    page.eval(&format!("document.querySelectorAll({selector:?}).length"))
        .as_u64()
        .unwrap()
}

/// The page asked for nothing but itself, and reported no error.
fn assert_offline_and_clean(page: &mut Page) {
    page.settle();
    assert!(page.errors.is_empty(), "page errors: {:?}", page.errors);
    let remote: Vec<_> = page
        .requests
        .iter()
        .filter(|u| !u.starts_with("file:") && !u.starts_with("data:"))
        .collect();
    assert!(remote.is_empty(), "network requests: {remote:?}");
}

/// racy-invite with the invite's response body sent gzip-compressed, so the panel
/// has a body to decode.
fn racy_with_gzip(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let mut doc: Value =
        serde_json::from_slice(&std::fs::read(recording("racy-invite.json")).unwrap()).unwrap();
    let events = doc["events"].as_array_mut().unwrap();
    let invite = events.iter_mut().find(|e| e["seq"] == 4).unwrap();
    let response = &mut invite["response"];
    let plain = match &response["body"] {
        Value::Object(b) if b.contains_key("json") => b["json"].to_string(),
        Value::Object(b) => b["text"].as_str().unwrap().to_owned(),
        other => panic!("unexpected body {other}"),
    };
    assert!(plain.contains("running"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    response["headers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(["content-encoding", "gzip"]));
    response["body"] = serde_json::json!({ "base64": b64 });
    let path = dir.join("racy-gzip.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

/// Events per kind a recording should draw: a request and a response per API
/// exchange, a notification and an ack per callback.
fn kinds_of(file: &Path) -> (u64, u64) {
    let doc: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let events = doc["events"].as_array().unwrap();
    let api = events.iter().filter(|e| e["direction"] == "api").count() as u64;
    (api, events.len() as u64 - api)
}

/// Whether the race's notification (seq 5) is drawn above the late response (seq 4).
const ABOVE: &str = "document.querySelector('[data-seq=\"5\"][data-kind=notification]').getBoundingClientRect().top <
     document.querySelector('[data-seq=\"4\"][data-kind=response]').getBoundingClientRect().top";

#[test]
fn html_timeline_opens_offline_marks_the_race_and_shows_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    let source = racy_with_gzip(dir.path());
    let html = dir.path().join("timeline.html");
    export(&source, "html", &html, &[]);
    let browser = Browser::start(Network::None);
    let mut page = open_page(&browser, &html);

    // One element per request, response, notification and ack, with data-* names.
    let (api, callbacks) = kinds_of(&source);
    assert_eq!(count(&mut page, "[data-kind=request]"), api);
    assert_eq!(count(&mut page, "[data-kind=response]"), api);
    assert_eq!(count(&mut page, "[data-kind=notification]"), callbacks);
    assert_eq!(count(&mut page, "[data-kind=ack]"), callbacks);
    assert_eq!(
        count(&mut page, "[data-seq][data-call]"),
        2 * (api + callbacks)
    );
    let call = "90ed37dcd8e34e119de330a955dda06f";
    assert_eq!(
        count(&mut page, &format!("[data-call='{call}']")),
        2 * (api + callbacks)
    );

    // The race: marked on the notification (seq 5) and the late response (seq 4),
    // and the notification is drawn above the response.
    let raced = page.eval(
        "[...document.querySelectorAll('[data-findings~=notification-before-response]')]
           .map(e => e.dataset.seq + ':' + e.dataset.kind + ':' + e.textContent.includes('⚠ notification-before-response'))",
    );
    assert_eq!(
        raced,
        serde_json::json!(["5:notification:true", "4:response:true"])
    );
    assert_eq!(page.eval(ABOVE), Value::Bool(true));
    let explained = page.eval("document.getElementById('marks').textContent");
    assert!(explained
        .as_str()
        .unwrap()
        .contains("arrived before the response of the request that created"));

    // True time: the race still reads in arrival order; zoom stretches the diagram.
    page.eval(
        "(() => { const s = document.getElementById('scale'); s.value = 'time';
                  s.dispatchEvent(new Event('change')); })()",
    );
    assert_eq!(page.eval(ABOVE), Value::Bool(true));
    let height = "parseFloat(document.getElementById('canvas').style.height)";
    let before = page.eval(height).as_f64().unwrap();
    page.click("#zoom-in");
    let after = page.eval(height).as_f64().unwrap();
    assert!(after > before * 1.4, "zoom: {before} -> {after}");
    page.click("#zoom-out");
    page.eval(
        "(() => { const s = document.getElementById('scale'); s.value = 'even';
                  s.dispatchEvent(new Event('change')); })()",
    );

    // Clicking an arrow opens the exchange in full, its gzip body decoded.
    page.click("[data-seq='4'][data-kind=response]");
    page.wait_for("document.getElementById('detail').dataset.seq === '4'");
    let detail = page
        .eval("document.getElementById('detail').innerText")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("gzip-decoded"), "{detail}");
    assert!(detail.contains("\"status\": \"running\""), "{detail}");
    assert!(detail.contains("content-encoding"), "{detail}");
    assert!(detail.contains("notification-before-response"), "{detail}");
    page.screenshot(&screenshot_path("timeline"));

    // Keyboard: down moves to the next arrow and, with the panel open, shows it.
    page.key("ArrowDown");
    page.wait_for("document.getElementById('detail').dataset.seq === '6'");
    let focused =
        page.eval("document.activeElement.dataset.seq + ':' + document.activeElement.dataset.kind");
    assert_eq!(focused, "6:notification");
    let resource = page.eval("document.querySelector('#detail .resource-data') !== null");
    assert_eq!(resource, Value::Bool(true));
    // `/` searches; the search hides what does not match.
    page.key("Escape");
    page.key("/");
    assert_eq!(page.eval("document.activeElement.id"), "search");
    page.type_text("DELETE");
    page.wait_for("document.querySelectorAll('[data-kind=request]').length === 1");
    assert_eq!(count(&mut page, "[data-seq='7'][data-kind=request]"), 1);
    assert_offline_and_clean(&mut page);
}

#[test]
fn html_call_filter_hides_the_other_calls() {
    let dir = tempfile::tempdir().unwrap();
    let source = recording("invite-from-incoming-call.json");
    let html = dir.path().join("two-calls.html");
    export(&source, "html", &html, &[]);
    let browser = Browser::start(Network::None);
    let mut page = open_page(&browser, &html);
    let calls = page.eval(
        "[...document.querySelectorAll('#call-filter option')].map(o => o.value).filter(v => v)",
    );
    let calls: Vec<String> = serde_json::from_value(calls).unwrap();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let first = &calls[0];
    let mine = count(&mut page, &format!("[data-call='{first}']"));
    let total = count(&mut page, "[data-kind]");
    assert!(mine > 0 && mine < total);
    page.eval(&format!(
        "(() => {{ const s = document.getElementById('call-filter'); s.value = {first:?};
                   s.dispatchEvent(new Event('change')); }})()"
    ));
    page.wait_for(&format!(
        "document.querySelectorAll('[data-kind]').length === {mine}"
    ));
    assert_eq!(
        count(
            &mut page,
            &format!("[data-kind]:not([data-call='{first}'])")
        ),
        0
    );
    // Selecting an arrow dims the other calls (with the filter off).
    page.eval(
        "(() => { const s = document.getElementById('call-filter'); s.value = '';
                  s.dispatchEvent(new Event('change')); })()",
    );
    page.wait_for(&format!(
        "document.querySelectorAll('[data-kind]').length === {total}"
    ));
    page.click(&format!("[data-call='{first}'][data-kind=request]"));
    page.wait_for("document.querySelector('.ev.dim') !== null");
    assert_eq!(
        count(&mut page, &format!(".ev.dim[data-call='{first}']")),
        0
    );
    assert_eq!(count(&mut page, ".ev.dim"), total - mine);
    page.screenshot(&screenshot_path("timeline-two-calls"));
    assert_offline_and_clean(&mut page);
}

#[test]
fn ten_thousand_events_render_only_what_is_on_screen() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_recording(dir.path(), 5_000);
    let html = dir.path().join("big.html");
    export(&big, "html", &html, &[]);
    let browser = Browser::start(Network::None);
    let mut page = open_page(&browser, &html);
    // 10,000 recorded events (exchanges) are 20,000 arrows.
    assert_eq!(page.eval("document.body.dataset.events"), "20000");
    let drawn = count(&mut page, "[data-kind]");
    assert!(drawn > 10 && drawn < 200, "{drawn} rows in the DOM");
    page.eval("document.getElementById('scroller').scrollTop = 1e9");
    page.wait_for("document.querySelector('[data-seq=\"10000\"][data-kind=ack]') !== null");
    let drawn = count(&mut page, "[data-kind]");
    assert!(drawn < 200, "{drawn} rows in the DOM after scrolling");
    assert_offline_and_clean(&mut page);
}

/// The real Mermaid parser (npm `mermaid`), installed into target/ on first use.
fn mermaid_js() -> PathBuf {
    let prefix = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("mermaid");
    let script = prefix.join("node_modules/mermaid/dist/mermaid.min.js");
    if !script.exists() {
        let status = std::process::Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&prefix)
            .arg("mermaid@12.3.0")
            .status()
            .expect("npm is needed to fetch the Mermaid parser");
        assert!(status.success(), "npm install mermaid failed");
    }
    script
}

#[test]
fn mermaid_export_parses_with_mermaid_itself() {
    let script = mermaid_js();
    let dir = tempfile::tempdir().unwrap();
    let mut diagrams = Vec::new();
    for name in [
        "racy-invite.json",
        "answer-incoming-voip-call.json",
        "invite-from-incoming-call.json",
        "invite-participants.json",
        "join-channel-meeting.json",
    ] {
        let out = dir.path().join(format!("{name}.mmd"));
        export(&recording(name), "mermaid", &out, &[]);
        diagrams.push((name.to_owned(), std::fs::read_to_string(&out).unwrap()));
    }
    let one = dir.path().join("one-call.mmd");
    export(
        &recording("invite-from-incoming-call.json"),
        "mermaid",
        &one,
        &["--call", "57DAB8B1-894C-409A-B240-BD8BEAE78896"],
    );
    let one = std::fs::read_to_string(&one).unwrap();
    assert!(!one.contains("90ed37dc"), "{one}");
    diagrams.push(("one call".into(), one));
    let racy = &diagrams[0].1;
    assert!(racy.contains("Note over Bot,Graph: ⚠ warning notification-before-response"));

    let host = dir.path().join("mermaid.html");
    std::fs::write(
        &host,
        format!(
            r#"<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><body><div id="out"></div>
<script src="file://{}"></script>
<script>mermaid.initialize({{ startOnLoad: false }});</script></body>"#,
            script.display()
        ),
    )
    .unwrap();
    let browser = Browser::start(Network::None);
    let mut page = browser.page();
    page.goto(&format!("file://{}", host.display()));
    page.wait_for("typeof mermaid === 'object'");
    for (name, text) in &diagrams {
        let parsed = page.eval(&format!(
            "mermaid.parse({}).then(r => r.diagramType)",
            serde_json::to_string(text).unwrap()
        ));
        assert_eq!(parsed, "sequence", "{name}");
    }
    let svg = page.eval(&format!(
        "mermaid.render('racy', {}).then(r => {{ document.getElementById('out').innerHTML = r.svg; return r.svg.length; }})",
        serde_json::to_string(racy).unwrap()
    ));
    assert!(svg.as_u64().unwrap() > 1000);
    page.screenshot(&screenshot_path("mermaid"));
    page.settle();
    assert!(page.errors.is_empty(), "page errors: {:?}", page.errors);
}

#[test]
fn ui_shows_new_exchanges_of_a_live_recording_without_reload() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let graph = rt.block_on(FakePeer::start(handler(|_seen: Seen| async move {
        respond(
            201,
            &[("content-type", "application/json")],
            br#"{"id":"90ed37dc-d8e3-4e11-9de3-30a955dda06f","state":"establishing"}"#,
        )
    })));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    let gt = rt.block_on(Graphtape::record(
        &db,
        &[
            "--upstream",
            &graph.url,
            "--session",
            "live",
            "--ui",
            "127.0.0.1:0",
        ],
    ));
    let ui = gt.ui.clone().expect("listening ui= line");
    let post = |path: &str| {
        let url = format!("{}{path}", gt.api);
        rt.block_on(async {
            send(
                &client(),
                request(
                    "POST",
                    &url,
                    &[("content-type", "application/json")],
                    br#"{"callbackUri":"https://bot/cb"}"#,
                ),
            )
            .await
        })
    };
    post("/v1.0/communications/calls");

    let browser = Browser::start(Network::Loopback);
    let mut page = browser.page();
    page.goto(&format!("{ui}/"));
    let listed = page.eval("document.querySelector('tr[data-session=live]').innerText");
    assert!(listed.as_str().unwrap().contains("live"), "{listed}");
    page.screenshot(&screenshot_path("ui-sessions"));
    page.goto(&format!("{ui}/sessions/live"));
    page.wait_for("document.querySelectorAll('[data-kind=request]').length === 1");
    page.eval("window.notReloaded = true");

    // New traffic while the page is open appears on it, without a reload.
    post("/v1.0/communications/calls/90ed37dc-d8e3-4e11-9de3-30a955dda06f/participants/invite");
    page.wait_for("document.querySelector('[data-seq=\"2\"][data-kind=response]') !== null");
    assert_eq!(page.eval("window.notReloaded === true"), Value::Bool(true));
    // The exchange in full comes from the JSON endpoint.
    page.click("[data-seq='2'][data-kind=request]");
    page.wait_for("document.getElementById('detail').dataset.seq === '2'");
    page.wait_for("document.getElementById('detail').innerText.includes('callbackUri')");
    page.screenshot(&screenshot_path("ui-timeline"));
    page.settle();
    assert!(page.errors.is_empty(), "page errors: {:?}", page.errors);

    // Read-only: writes are refused.
    let (parts, _) = rt.block_on(send(
        &client(),
        request("POST", &format!("{ui}/api/sessions"), &[], b""),
    ));
    assert_eq!(parts.status, 405);
    let stopped = rt.block_on(gt.stop());
    assert!(stopped.status.success(), "{}", stopped.stderr);
}

/// A replay session whose bot asked for something the recording does not have: the
/// invite (seq 4) answered `replayUnmatched`, and nothing after it.
fn import_racy_and_a_diverging_replay(db: &Path, dir: &Path) {
    let text = std::fs::read(recording("racy-invite.json")).unwrap();
    let mut doc: Value = serde_json::from_slice(&text).unwrap();
    doc["session"]["name"] = "racy-replay-1".into();
    doc["session"]["config"] = serde_json::json!({"replay_of": "racy-invite"});
    let events = doc["events"].as_array_mut().unwrap();
    events.truncate(4);
    let invite = &mut events[3];
    invite["request"]["path"] = "/v1.0/communications/calls/x/participants/invite".into();
    invite["response"]["status"] = 404.into();
    invite["response"]["body"] = serde_json::json!({"json": {"error": {"code": "replayUnmatched", "message": "no recorded request"}}});
    let replay = dir.join("replay.json");
    std::fs::write(&replay, serde_json::to_vec(&doc).unwrap()).unwrap();
    for file in [recording("racy-invite.json"), replay] {
        let out = graphtape(&[
            "import",
            "--db",
            db.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn replay_divergences_are_marked_and_ui_shows_the_diff() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("g.db");
    import_racy_and_a_diverging_replay(&db, dir.path());
    let html = dir.path().join("replay.html");
    export(
        Path::new("racy-replay-1"),
        "html",
        &html,
        &["--db", db.to_str().unwrap()],
    );
    let browser = Browser::start(Network::None);
    let mut page = open_page(&browser, &html);
    let marked = page.eval(
        "[...document.querySelectorAll('[data-divergences]')].map(e => e.dataset.seq + ':' + e.dataset.kind + ':' + e.dataset.divergences)",
    );
    assert_eq!(marked, serde_json::json!(["4:request:unmatched"]));
    let listed = page.eval("document.querySelector('#marks .divergences').innerText");
    let listed = listed.as_str().unwrap();
    assert!(
        listed.contains("✖ missing") && listed.contains("✖ undelivered"),
        "{listed}"
    );
    assert_offline_and_clean(&mut page);

    // The standalone inspector over the same database: sessions, then the diff.
    let mut ui = std::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args([
            "ui",
            "--db",
            db.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ui.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening ui=http://127.0.0.1:")
        .map(|port| format!("http://127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    let browser = Browser::start(Network::Loopback);
    let mut page = browser.page();
    page.goto(&format!("{url}/"));
    let rows = page.eval("[...document.querySelectorAll('#sessions tbody tr')].map(r => r.innerText.split('\\t').slice(0, 1).concat(r.innerText.split('\\t').slice(3, 6)).join(' '))");
    assert_eq!(
        rows,
        serde_json::json!(["racy-invite 1 3 6", "racy-replay-1 2 2 2"])
    );
    page.click_to_navigate("tr[data-session='racy-replay-1'] a[href^='/diff']");
    page.wait_for("document.querySelector('table.diff') !== null");
    let only_b =
        page.eval("[...document.querySelectorAll('tr.only-b td.b')].map(t => t.innerText)");
    assert_eq!(
        only_b,
        serde_json::json!(["api POST /communications/calls/x/participants/invite -> 404"])
    );
    assert!(count(&mut page, "tr.only-a") >= 4);
    page.screenshot(&screenshot_path("ui-diff"));
    page.settle();
    assert!(page.errors.is_empty(), "page errors: {:?}", page.errors);
    // SIGTERM stops it cleanly.
    // SAFETY: kill(2) on the child we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(ui.id() as i32, libc::SIGTERM) }, 0);
    assert!(ui.wait().unwrap().success());
}
