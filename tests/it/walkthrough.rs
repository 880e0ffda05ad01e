//! The README's "Capture to CI" walkthrough, run as written: its commands are read
//! from README.md, with only the paths moved into a temporary directory and the ports
//! replaced by free ones. Production is played by the simulated Graph (several
//! concurrent calls), the bot by the scripted one, handling only the cut call.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::bot::*;
use crate::fixtures::{hang_up, record_two_calls_as};
use crate::graph_sim::INCOMING;
use crate::util::*;

const SECTION: &str = "## Capture to CI";

/// The README text from `SECTION` to the next top-level heading.
fn section() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find(SECTION)
        .expect("the README has the walkthrough");
    let rest = &readme[start + SECTION.len()..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

/// The first fenced block of `lang` in `text`.
fn block(text: &str, lang: &str) -> String {
    let fence = format!("```{lang}\n");
    let start = text
        .find(&fence)
        .unwrap_or_else(|| panic!("no {lang} block"))
        + fence.len();
    text[start..start + text[start..].find("```").unwrap()].to_string()
}

/// The commands of a shell block: continuation lines joined, comments dropped, words.
fn commands(block: &str) -> Vec<Vec<String>> {
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(|line| line.split(" #").next().unwrap_or_default())
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().map(String::from).collect())
        .collect()
}

/// Where the walkthrough's relative paths and ports go in this run.
struct Place {
    dir: PathBuf,
    bot_url: String,
    api: String,
}

impl Place {
    fn arg(&self, word: &str) -> String {
        let word = word
            .replace("http://127.0.0.1:3978", &self.bot_url)
            .replace("127.0.0.1:7080", &self.api);
        let is_path = [".db", ".json", ".toml", ".xml"]
            .iter()
            .any(|ext| word.ends_with(ext))
            && !word.starts_with('-');
        if is_path {
            self.dir.join(&word).to_str().unwrap().to_string()
        } else {
            word
        }
    }

    fn args(&self, command: &[String]) -> Vec<String> {
        command[1..].iter().map(|w| self.arg(w)).collect()
    }
}

fn value_of(command: &[String], flag: &str) -> String {
    let i = command.iter().position(|w| w == flag).unwrap();
    command[i + 1].clone()
}

#[tokio::test]
async fn the_capture_to_ci_walkthrough_works_as_written() {
    let text = section();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("recordings")).unwrap();
    let bot = Bot::start(Script::default()).await;
    let place = Place {
        dir: dir.path().to_path_buf(),
        bot_url: bot.peer.url.clone(),
        api: format!("127.0.0.1:{}", free_port()),
    };
    // The rules file the walkthrough keeps in the repository.
    std::fs::write(
        place.dir.join("recordings/sanitizers.toml"),
        block(&text, "toml"),
    )
    .unwrap();

    let mut replayed = false;
    for command in commands(&block(&text, "sh")) {
        match (command[0].as_str(), command.get(1).map(String::as_str)) {
            ("graphtape", Some("record")) => {
                // Production: concurrent calls through a real `record` with the same
                // database, session name and rules.
                let db = PathBuf::from(place.arg(&value_of(&command, "--db")));
                let rules = place.arg(&value_of(&command, "--sanitizers"));
                let session = value_of(&command, "--session");
                record_two_calls_as(&db, &session, &["--sanitizers", &rules]).await;
            }
            ("graphtape", Some("replay")) => {
                let args = place.args(&command);
                let code = replay_as_written(&args, &bot).await;
                assert_eq!(code, Some(0), "{command:?}");
                replayed = true;
            }
            ("graphtape", sub) => {
                let args = place.args(&command);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = graphtape(&args);
                let stdout = String::from_utf8_lossy(&out.stdout);
                // The simulated production races as Graph does (a call's notification
                // may beat the answer's response) and a loaded machine slows the bot's
                // acknowledgements: findings about the capture, which `check` is there
                // to report, not failures of the walkthrough.
                let only_races = sub == Some("check")
                    && out.status.code() == Some(1)
                    && stdout
                        .lines()
                        .filter(|l| !l.contains(" findings in ") && !l.contains(" finding in "))
                        .all(|l| {
                            l.contains("notification-before-response") || l.contains("slow-ack")
                        });
                assert!(
                    out.status.code() == Some(0) || only_races,
                    "{command:?}: {:?} {stdout}{}",
                    out.status.code(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // Committing the fixture, and starting the bot (already up): not graphtape's.
            ("git", _) | ("./my-bot", _) => {}
            (other, _) => panic!("the walkthrough runs {other:?}: teach this test about it"),
        }
    }
    assert!(replayed, "the walkthrough replays");

    let fixture = std::fs::read_to_string(place.dir.join("recordings/incoming-call.json")).unwrap();
    assert!(!fixture.contains("Test User"), "sanitised");
    let junit = std::fs::read_to_string(place.dir.join("replay-junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite") && !junit.contains("<failure"),
        "{junit}"
    );

    // The diff the walkthrough suggests.
    let diff = text
        .split('`')
        .find(|s| s.starts_with("graphtape diff"))
        .expect("the walkthrough shows a diff");
    let words: Vec<String> = diff.split_whitespace().map(String::from).collect();
    let args = place.args(&words);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = graphtape(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{diff}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the walkthrough's replay while the bot plays its part: it answers the incoming
/// call (on its own), and hangs up after the call's four notifications.
async fn replay_as_written(args: &[String], bot: &Bot) -> Option<i32> {
    bot.use_api(&format!(
        "http://{}",
        args[args.iter().position(|a| a == "--api-listen").unwrap() + 1]
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let status = tokio::time::timeout(DEADLINE, async {
        let mut out = String::new();
        while !out.contains("listening api=") {
            if stdout.read_line(&mut out).await.unwrap() == 0 {
                break;
            }
        }
        if out.contains("listening api=") {
            bot.peer.wait_for(4).await;
            hang_up(bot, INCOMING).await;
            bot.peer.wait_for(5).await;
        }
        stdout.read_to_string(&mut out).await.unwrap();
        child.wait().await.unwrap()
    })
    .await
    .expect("replay did not finish");
    let stderr = stderr.await.unwrap_or_default();
    if !status.success() {
        eprintln!("replay: {stderr}");
    }
    status.code()
}
