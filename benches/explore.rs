//! Explore throughput: runs per second of `graphtape explore` (release binary) for the
//! seed flows against the reactive scripted bot of the integration tests, once with
//! the bot running for the whole explore and once with `--bot-cmd` starting a fresh
//! bot process per run (this benchmark's own executable). Perturbations: reorder, race
//! and duplicate (delays are wall time by design). Target: >= 10 runs/s without
//! `--bot-cmd`.
//!
//! `cargo bench --bench explore`. Bounded (a few hundred runs); stops by itself.

// The scripted bot and its helpers, shared with tests/it.
#[path = "../tests/it/bot.rs"]
#[allow(dead_code)]
mod bot;
#[path = "../tests/it/explore_bot.rs"]
#[allow(dead_code)]
mod explore_bot;
#[path = "../tests/it/flows.rs"]
#[allow(dead_code)]
mod flows;
#[path = "../tests/it/graph_sim.rs"]
#[allow(dead_code)]
mod graph_sim;
#[path = "../tests/it/util.rs"]
#[allow(dead_code)]
mod util;

use std::path::Path;
use std::process::Command;

use explore_bot::{Behaviour, ExploreBot, Plot};

/// Set when this executable runs as the bot of a `--bot-cmd` run.
const BOT_ADDR: &str = "EXPLORE_BENCH_BOT_ADDR";

fn recording(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(name)
        .to_string_lossy()
        .to_string()
}

fn rate(dir: &Path, name: &str, bot_url: &str, port: u16, runs: u32, bot_cmd: Option<&str>) -> f64 {
    let report = dir.join(format!("{name}-report.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graphtape"));
    cmd.arg("explore")
        .arg(recording(name))
        .arg("--db")
        .arg(dir.join("bench.db"))
        .args(["--bot-url", bot_url])
        .args(["--api-listen", &format!("127.0.0.1:{port}")])
        .args(["--runs", &runs.to_string()])
        .args([
            "--perturb",
            "reorder,race,duplicate",
            "--callback-auth",
            "none",
        ])
        .arg("--schedules")
        .arg(dir.join(format!("{name}-schedules")))
        .arg("--report")
        .arg(&report);
    if let Some(c) = bot_cmd {
        cmd.args(["--bot-cmd", c]);
    }
    let out = cmd.output().expect("running graphtape explore");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    report["runs_per_second"].as_f64().unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    if let (Ok(addr), Ok(api)) = (std::env::var(BOT_ADDR), std::env::var("GRAPHTAPE_API_URL")) {
        // The bot of one --bot-cmd run: serve until stopped.
        rt.block_on(async {
            let _bot = ExploreBot::start(Behaviour::correct(Plot::Join), &api, &addr).await;
            std::future::pending::<()>().await;
        });
        return;
    }
    let dir = std::env::temp_dir().join(format!("graphtape-explore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("explore: release binary, bot on loopback, --perturb reorder,race,duplicate");
    for (name, plot, runs) in [
        ("answer-incoming-voip-call.json", Plot::Hangup, 200),
        ("invite-from-incoming-call.json", Plot::Invite, 100),
    ] {
        let port = util::free_port();
        let bot = rt.block_on(ExploreBot::start(
            Behaviour::correct(plot),
            &format!("http://127.0.0.1:{port}"),
            "127.0.0.1:0",
        ));
        let r = rate(&dir, name, &bot.peer.url, port, runs, None);
        println!("  {name}: {runs} runs, {r:.1} runs/s (one bot for all runs; target >= 10)");
    }
    let addr = format!("127.0.0.1:{}", util::free_port());
    let exe = std::env::current_exe().unwrap();
    // SAFETY: set before any other thread reads the environment of this process
    // (the runtime's worker is idle; the child inherits it).
    unsafe { std::env::set_var(BOT_ADDR, &addr) };
    let cmd = exe.display().to_string();
    let r = rate(
        &dir,
        "join-channel-meeting.json",
        &format!("http://{addr}"),
        util::free_port(),
        30,
        Some(&cmd),
    );
    println!("  join-channel-meeting.json: 30 runs, {r:.1} runs/s (--bot-cmd, a fresh bot process per run)");
    let _ = std::fs::remove_dir_all(&dir);
}
