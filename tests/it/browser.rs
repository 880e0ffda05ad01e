//! A real browser for the page tests: headless Chromium driven over the DevTools
//! protocol (one WebSocket per page, JSON messages), with a profile of its own that
//! is thrown away afterwards.
//!
//! Why not a driver crate: the tests need a handful of calls (navigate, evaluate,
//! click, key, screenshot, console events), which is a page of code over
//! `tungstenite`; chromiumoxide or fantoccini (with chromedriver) would add a large
//! generated protocol crate or a WebDriver stack to the compile on 2 cores.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Upper bound for one protocol answer or page condition.
const DEADLINE: Duration = Duration::from_secs(30);

/// Which network the browser may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Nothing: every request, loopback included, goes to a proxy that is not there.
    /// `file://` pages still open.
    None,
    /// Loopback only (the `ui` server); anything else goes to the dead proxy.
    Loopback,
}

pub struct Browser {
    child: Child,
    /// `127.0.0.1:PORT` of the DevTools endpoint.
    endpoint: String,
    /// The browser's own DevTools socket (as printed on stderr).
    browser_ws: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts headless Chromium and waits for its DevTools endpoint.
    pub fn start(network: Network) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--no-sandbox",
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
            "--window-size=1200,720",
            "--proxy-server=127.0.0.1:9",
        ]);
        if network == Network::None {
            // Without this, loopback bypasses the proxy by default.
            cmd.arg("--proxy-bypass-list=<-loopback>");
        }
        let mut child = cmd
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is needed for the page tests (apt-get install chromium)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    if !sent {
                        let _ = tx.send(url.trim().to_owned());
                        sent = true;
                    }
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(DEADLINE)
            .expect("chromium did not print its DevTools endpoint");
        let endpoint = browser_ws
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("a ws:// DevTools URL")
            .to_owned();
        Browser {
            child,
            endpoint,
            browser_ws,
            _profile: profile,
        }
    }

    /// A new tab, with page, runtime, log and network events on.
    pub fn page(&self) -> Page {
        let mut browser = Page::connect(&self.browser_ws);
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().unwrap().to_owned();
        let mut page = Page::connect(&format!("ws://{}/devtools/page/{id}", self.endpoint));
        for domain in ["Page", "Runtime", "Log", "Network"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chromium")
}

/// One tab, and what it reported while the tests drove it.
pub struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// Console errors, uncaught exceptions and error log entries, as text.
    pub errors: Vec<String>,
    /// Every URL the page asked the network stack for.
    pub requests: Vec<String>,
    loaded: bool,
}

impl Page {
    fn connect(url: &str) -> Page {
        let addr = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap();
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let (ws, _) = tungstenite::client(url, stream).expect("DevTools websocket handshake");
        Page {
            ws,
            next_id: 0,
            errors: Vec::new(),
            requests: Vec::new(),
            loaded: false,
        }
    }

    /// Sends a command and returns its result; protocol errors panic with the message.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).unwrap();
        loop {
            let v = self.read();
            if v["id"].as_u64() == Some(id) {
                assert!(v["error"].is_null(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// The next message; events are recorded on the way.
    fn read(&mut self) -> Value {
        let msg = self.ws.read().expect("DevTools socket read");
        let Message::Text(text) = msg else {
            return Value::Null;
        };
        let v: Value = serde_json::from_str(&text).unwrap();
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.consoleAPICalled") if p["type"] == "error" => self
                .errors
                .push(format!("console.error: {}", p["args"][0]["value"])),
            Some("Runtime.exceptionThrown") => self
                .errors
                .push(format!("exception: {}", p["exceptionDetails"])),
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.errors.push(format!("log: {}", p["entry"]["text"]))
            }
            Some("Network.requestWillBeSent") => self
                .requests
                .push(p["request"]["url"].as_str().unwrap_or_default().to_owned()),
            Some("Page.loadEventFired") => self.loaded = true,
            _ => {}
        }
        v
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&mut self, url: &str) {
        self.loaded = false;
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r["errorText"].is_null(), "navigating to {url}: {r}");
        self.wait_for_load();
    }

    /// Reads events until the page's load event (`loaded` was cleared before the
    /// navigation started).
    fn wait_for_load(&mut self) {
        while !self.loaded {
            self.read();
        }
    }

    /// Evaluates `expr` (awaiting a promise) and returns its value; a JS exception panics.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "{expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Waits, inside the page, until `expr` is truthy (checked on each animation frame
    /// and timer tick), and returns its value.
    pub fn wait_for(&mut self, expr: &str) -> Value {
        let ms = DEADLINE.as_millis();
        self.eval(&format!(
            "new Promise((resolve, reject) => {{
               const t0 = performance.now();
               const tick = () => {{
                 let v; try {{ v = ({expr}); }} catch (e) {{ v = undefined; }}
                 if (v) resolve(v);
                 else if (performance.now() - t0 > {ms}) reject(new Error('timed out waiting for: ' + {expr:?}));
                 else setTimeout(tick, 10);
               }};
               tick();
             }})"
        ))
    }

    /// Clicks a link and waits for the page it leads to to load: evaluating while the
    /// old page is being replaced fails ("execution context was destroyed").
    pub fn click_to_navigate(&mut self, selector: &str) {
        self.loaded = false;
        self.click(selector);
        self.wait_for_load();
    }

    /// A real mouse click at the centre of the first element matching `selector`.
    pub fn click(&mut self, selector: &str) {
        let rect = self.eval(&format!(
            "(() => {{ const e = document.querySelector({selector:?});
                if (!e) throw new Error('no element ' + {selector:?});
                const r = e.getBoundingClientRect();
                return [r.left + Math.min(r.width / 2, 300), r.top + r.height / 2]; }})()"
        ));
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Presses and releases a key (`ArrowDown`, `Enter`, `/`...).
    pub fn key(&mut self, key: &str) {
        let code = match key {
            "ArrowDown" => 40,
            "ArrowUp" => 38,
            "Enter" => 13,
            "Escape" => 27,
            "/" => 191,
            _ => 0,
        };
        let text = if key.chars().count() == 1 { key } else { "" };
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({"type": kind, "key": key, "windowsVirtualKeyCode": code});
            if kind == "keyDown" && !text.is_empty() {
                params["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", params);
        }
    }

    /// Types text into the focused element.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Writes a PNG of the viewport to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Lets queued events (console messages) arrive: a round trip through the page.
    pub fn settle(&mut self) {
        self.eval("new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))");
    }
}

/// `target/screenshots/NAME.png`.
pub fn screenshot_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("screenshots")
        .join(format!("{name}.png"))
}
