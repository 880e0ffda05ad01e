//! Running `graphtape replay` as a child process against a scripted bot.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::bot::Bot;
use crate::flows::{run_script, Flow};
use crate::util::*;

/// What a replay run gave.
pub struct Replayed {
    pub code: Option<i32>,
    pub stdout: String,
    /// Diagnostics, for failure messages.
    pub stderr: String,
    pub report: serde_json::Value,
    /// The race was reproduced (meeting flow).
    pub raced: bool,
}

/// Replays `source` to `bot` while the bot runs the flow's script.
pub async fn replay(
    db: &Path,
    source: &str,
    bot: &Bot,
    flow: Flow,
    client_context: &str,
    extra: &[&str],
) -> Replayed {
    replay_with(db, source, bot, extra, async |bot: &Bot| {
        run_script(bot, flow, client_context).await
    })
    .await
}

/// Replays `source` to `bot` (with `--wait 2 --settle 0.2 --report` unless `extra`
/// gives them) while `script` plays the bot's side; the script starts once replay
/// listens.
pub async fn replay_with(
    db: &Path,
    source: &str,
    bot: &Bot,
    extra: &[&str],
    script: impl AsyncFnOnce(&Bot) -> bool,
) -> Replayed {
    // The bot is told the API address before replay starts: a listening port is
    // chosen here unless `extra` names one.
    let given = |flag: &str| {
        extra
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| extra.get(i + 1))
            .map(|a| a.to_string())
    };
    let listen = given("--api-listen").unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
    let scheme = if given("--tls-cert").is_some() {
        "https"
    } else {
        "http"
    };
    bot.use_api(&format!("{scheme}://{listen}"));
    let port = listen.rsplit(':').next().unwrap_or("0").to_string();
    let report_path = db.with_file_name(format!("report-{port}.json"));
    let mut args: Vec<String> = [
        "replay",
        source,
        "--db",
        db.to_str().unwrap(),
        "--bot-url",
        &bot.peer.url,
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--report".into(), report_path.to_str().unwrap().into()]);
    for (flag, default) in [
        ("--api-listen", listen.as_str()),
        ("--wait", "2"),
        ("--settle", "0.2"),
    ] {
        if given(flag).is_none() {
            args.extend([flag.to_string(), default.to_string()]);
        }
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // Drain stderr as it comes so the child never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let (raced, status, out) = tokio::time::timeout(DEADLINE, async {
        // The bot may call Graph only once replay listens.
        let mut out = String::new();
        let ready = if extra.contains(&"--no-graph") {
            "replaying "
        } else {
            "listening api="
        };
        while !out.contains(ready) {
            if stdout.read_line(&mut out).await.unwrap() == 0 {
                break;
            }
        }
        // A replay that exited before listening (bad arguments) runs no script.
        let raced = if out.contains(ready) {
            script(bot).await
        } else {
            false
        };
        stdout.read_to_string(&mut out).await.unwrap();
        (raced, child.wait().await.unwrap(), out)
    })
    .await
    .expect("replay did not finish");
    let stderr = stderr.await.unwrap_or_default();
    let report = std::fs::read(&report_path)
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or_default();
    Replayed {
        code: status.code(),
        stdout: out,
        stderr,
        report,
        raced,
    }
}
