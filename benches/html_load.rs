//! How a big session opens in the exported page: 10,000 recorded events (20,000
//! arrows) exported by the release binary, opened from file:// in headless Chromium
//! five times, then scrolled a screen at a time. Prints the file size, the time from
//! navigation to the first screen drawn, and the time to draw each scrolled screen.
//!
//! `cargo bench --bench html_load`. Needs chromium; about 30 s; stops by itself.

#[path = "../tests/it/big.rs"]
mod big;
#[path = "../tests/it/browser.rs"]
#[allow(dead_code)]
mod browser;

use std::time::Instant;

use browser::{Browser, Network};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let source = big::big_recording(dir.path(), 5_000);
    let html = dir.path().join("big.html");
    let t0 = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(["export", source.to_str().unwrap(), "--format", "html", "-o"])
        .arg(&html)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export_ms = t0.elapsed().as_secs_f64() * 1e3;
    let size = std::fs::metadata(&html).unwrap().len();
    println!(
        "html_load: 10,000 recorded events (20,000 arrows), page of {:.1} MB, exported in {export_ms:.0} ms",
        size as f64 / 1e6
    );

    let browser = Browser::start(Network::None);
    let mut loads = Vec::new();
    for _ in 0..5 {
        let mut page = browser.page();
        page.goto(&format!("file://{}", html.display()));
        page.wait_for("document.body.dataset.ready === '1'");
        let ms = page.eval("document.body.dataset.readyAt");
        loads.push(ms.as_str().unwrap().parse::<f64>().unwrap());
        page.call("Page.close", serde_json::json!({}));
    }
    loads.sort_by(f64::total_cmp);
    println!(
        "  navigation to first screen: median {:.0} ms, max {:.0} ms (5 loads)",
        percentile(&loads, 50.0),
        loads[loads.len() - 1]
    );

    let mut page = browser.page();
    page.goto(&format!("file://{}", html.display()));
    page.wait_for("document.body.dataset.ready === '1'");
    // Each step: move one screen down, then wait two frames so the rows are drawn.
    let frames = page.eval(
        "(async () => {
           const sc = document.getElementById('scroller');
           const times = [];
           for (let i = 0; i < 300; i++) {
             const t = performance.now();
             sc.scrollTop += sc.clientHeight;
             await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
             times.push(performance.now() - t);
           }
           return { times, rows: document.querySelectorAll('[data-kind]').length };
         })()",
    );
    let mut times: Vec<f64> = frames["times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "  scrolling a screen at a time: median {:.1} ms, p99 {:.1} ms per screen (300 screens, two frames each), {} rows in the DOM",
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        frames["rows"]
    );
}
