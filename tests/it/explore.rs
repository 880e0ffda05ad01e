//! `graphtape explore` against reactive scripted bots: planted ordering bugs are found,
//! shrunk to the planted perturbation and reproduced by `replay --schedule`; a correct
//! bot passes every strategy; runs are deterministic and see fresh ids.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::explore_bot::*;

fn recording(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("recordings")
        .join(name)
        .to_string_lossy()
        .to_string()
}

/// What a graphtape child gave.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs graphtape with `args` (and `env`) to the end, without blocking the runtime the
/// bot runs on.
pub async fn run_graphtape(args: &[String], env: &[(&str, &str)]) -> Ran {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_graphtape"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("graphtape did not finish")
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// An explore set-up: a temp dir, an API port, a bot.
struct Setup {
    dir: tempfile::TempDir,
    port: u16,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            port: port_outside_ephemeral_range(),
        }
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn bot(&self, behaviour: Behaviour) -> ExploreBot {
        ExploreBot::start(behaviour, &self.api(), "127.0.0.1:0").await
    }

    /// `explore SOURCE` with the common flags, schedules in `schedules/`.
    async fn explore(&self, source: &str, bot: &str, extra: &[&str]) -> (Ran, serde_json::Value) {
        self.explore_into(source, bot, "schedules", extra, &[])
            .await
    }

    async fn explore_into(
        &self,
        source: &str,
        bot: &str,
        schedules: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Ran, serde_json::Value) {
        let report = self.path(&format!("{schedules}-report.json"));
        let mut args: Vec<String> = [
            "explore",
            &recording(source),
            "--db",
            self.path("g.db").to_str().unwrap(),
            "--bot-url",
            bot,
            "--api-listen",
            &format!("127.0.0.1:{}", self.port),
            "--schedules",
            self.path(schedules).to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        if !extra.contains(&"--wait") {
            args.extend(["--wait".to_string(), "2".to_string()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let ran = run_graphtape(&args, env).await;
        let report = std::fs::read(&report)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_default();
        (ran, report)
    }

    /// `replay SOURCE --schedule FILE`.
    async fn replay_schedule(
        &self,
        source: &str,
        bot: &str,
        schedule: &Path,
    ) -> (Ran, serde_json::Value) {
        let report = self.path("replay-report.json");
        let args: Vec<String> = [
            "replay",
            &recording(source),
            "--db",
            self.path("g.db").to_str().unwrap(),
            "--bot-url",
            bot,
            "--api-listen",
            &format!("127.0.0.1:{}", self.port),
            "--fast",
            "--wait",
            "2",
            "--settle",
            "0.1",
            "--report",
            report.to_str().unwrap(),
            "--schedule",
            schedule.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        let ran = run_graphtape(&args, &[]).await;
        let report = std::fs::read(&report)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_default();
        (ran, report)
    }

    /// `replay --schedule` three times, each to a fresh bot of `behaviour`; every run
    /// must fail (exit 1). Returns each run's output and report.
    async fn fails_three_times_in_three(
        &self,
        source: &str,
        behaviour: Behaviour,
        schedule: &Path,
    ) -> Vec<(Ran, serde_json::Value)> {
        let mut runs = Vec::new();
        for attempt in 1..=3 {
            let bot = self.bot(behaviour).await;
            let (ran, report) = self.replay_schedule(source, &bot.peer.url, schedule).await;
            assert_eq!(
                ran.code,
                Some(1),
                "attempt {attempt}: {}{}",
                ran.stdout,
                ran.stderr
            );
            runs.push((ran, report));
        }
        runs
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The schedule files of a directory, name → bytes (logs left out).
fn schedule_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

const STRICT: Behaviour = Behaviour {
    plot: Plot::Hangup,
    strict: true,
    late_completion: false,
};

#[tokio::test]
async fn a_strict_state_machine_is_caught_shrunk_and_reproduced() {
    let s = Setup::new();
    let bot = s.bot(STRICT).await;
    let source = "answer-incoming-voip-call.json";
    let (ran, report) = s
        .explore(
            source,
            &bot.peer.url,
            &["--runs", "50", "--seed", "7", "--max-delay", "0.05"],
        )
        .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let failure = &report["failures"][0];
    let run = failure["run"].as_u64().unwrap();
    let min = s.path("schedules").join(format!("run-{run}.min.json"));
    let expected = format!(
        "run {run} failed: the bot answered 500 to seq 3 (establishing) delivered after seq 4 (established); minimal: 1 perturbation (swap 3 and 4); reproduce: graphtape replay {} --bot-url {} --api-listen 127.0.0.1:{} --fast --schedule {}",
        recording(source),
        bot.peer.url,
        s.port,
        min.display()
    );
    assert!(ran.stdout.contains(&expected), "{}", ran.stdout);
    assert_eq!(report["failures"].as_array().unwrap().len(), 1, "one cause");
    // The minimal schedule holds exactly the planted perturbation.
    let file = json(&min);
    assert_eq!(
        file["perturbations"],
        serde_json::json!([{"kind": "move", "seq": 4, "before": 3}])
    );
    assert_eq!(file["recording"]["session"], "answer-incoming-voip-call");
    let order: Vec<u64> = file["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(order, vec![1, 4, 3, 6]);
    assert!(ran.stdout.contains("explored "), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("pairs covered: 1 of 1"),
        "{}",
        ran.stdout
    );

    // replay --schedule reproduces it, three times in three, to fresh bots.
    for (ran, report) in s.fails_three_times_in_three(source, STRICT, &min).await {
        let status: Vec<&serde_json::Value> = report["divergences"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "notification-status")
            .collect();
        assert_eq!(status.len(), 1, "{}", ran.stdout);
        assert_eq!(status[0]["recorded_seq"], 3);
        assert!(
            status[0]["message"]
                .as_str()
                .unwrap()
                .contains("answered 500"),
            "{}",
            ran.stdout
        );
    }
    // A correct bot passes the same schedule: the failure is the bot's.
    let good = s.bot(Behaviour::correct(Plot::Hangup)).await;
    let (ran, _) = s.replay_schedule(source, &good.peer.url, &min).await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);

    // A schedule for another recording is refused, naming both.
    let (ran, _) = s
        .replay_schedule("invite-participants.json", &good.peer.url, &min)
        .await;
    assert_eq!(ran.code, Some(2), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr
            .contains("is for recording answer-incoming-voip-call")
            && ran.stderr.contains("not for invite-participants"),
        "{}",
        ran.stderr
    );

    // Same seed, same schedule files, byte for byte.
    let again = s.bot(STRICT).await;
    let (ran, _) = s
        .explore_into(
            source,
            &again.peer.url,
            "schedules-again",
            &["--runs", "50", "--seed", "7", "--max-delay", "0.05"],
            &[],
        )
        .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let first = schedule_files(&s.path("schedules"));
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(first, schedule_files(&s.path("schedules-again")));
}

#[tokio::test]
async fn a_bot_that_looks_for_completions_too_late_is_caught() {
    let s = Setup::new();
    let buggy = Behaviour {
        plot: Plot::Invite,
        strict: false,
        late_completion: true,
    };
    let bot = s.bot(buggy).await;
    let source = "invite-from-incoming-call.json";
    let (ran, report) = s
        .explore(
            source,
            &bot.peer.url,
            &[
                "--runs",
                "50",
                "--seed",
                "9",
                "--wait",
                "1",
                "--max-delay",
                "0.05",
            ],
        )
        .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{}", ran.stdout);
    let run = failures[0]["run"].as_u64().unwrap();
    let min = s.path("schedules").join(format!("run-{run}.min.json"));
    assert_eq!(
        json(&min)["perturbations"],
        serde_json::json!([{"kind": "race", "seq": 10, "response": "before"}])
    );
    let said = failures[0]["summary"].as_str().unwrap();
    assert!(
        said.contains("the bot never made DELETE")
            && said.contains(
                "with seq 10 (completed) delivered before the response to seq 8 (POST invite)"
            )
            && said.contains("minimal: 1 perturbation (10 before the response to 8)"),
        "{said}"
    );
    for (_, report) in s.fails_three_times_in_three(source, buggy, &min).await {
        let kinds: Vec<&str> = report["divergences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"missing-request"), "{kinds:?}");
    }
}

#[tokio::test]
async fn a_correct_bot_passes_every_strategy() {
    let s = Setup::new();
    let bot = s.bot(Behaviour::correct(Plot::Hangup)).await;
    for strategy in ["pct", "random", "exhaustive"] {
        let (ran, report) = s
            .explore(
                "answer-incoming-voip-call.json",
                &bot.peer.url,
                &[
                    "--runs",
                    "200",
                    "--strategy",
                    strategy,
                    "--max-delay",
                    "0.02",
                    // A correct bot makes every cause at once, so the wait never runs
                    // out here; the other tests' 2 s (to fail fast) once did, for one
                    // request, on a machine loaded by the whole suite: a false alarm.
                    "--wait",
                    "10",
                ],
            )
            .await;
        assert_eq!(
            ran.code,
            Some(0),
            "{strategy}: {}{}",
            ran.stdout,
            ran.stderr
        );
        assert_eq!(report["passed"], true);
        assert_eq!(report["runs"], 200);
        if strategy == "exhaustive" {
            // Distinct schedules only, fewest perturbations first; counted exactly.
            assert_eq!(report["distinct_schedules"], 200);
            assert!(
                ran.stdout
                    .contains("explored 200 of 768 distinct schedules\n"),
                "{}",
                ran.stdout
            );
        }
    }
    // Exhaustive stops when every distinct schedule ran.
    let (ran, report) = s
        .explore(
            "answer-incoming-voip-call.json",
            &bot.peer.url,
            &[
                "--runs",
                "200",
                "--strategy",
                "exhaustive",
                "--perturb",
                "reorder,race",
                // Other ids than the exhaustive run above: the bot remembers calls.
                "--seed",
                "2",
            ],
        )
        .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert_eq!(report["runs"], 6);
    assert!(
        ran.stdout.contains("explored 6 of 6 distinct schedules\n"),
        "{}",
        ran.stdout
    );
    let invite = s.bot(Behaviour::correct(Plot::Invite)).await;
    let (ran, report) = s
        .explore(
            "invite-from-incoming-call.json",
            &invite.peer.url,
            &["--runs", "50", "--max-delay", "0.02"],
        )
        .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert_eq!(report["passed"], true);
    let covered = report["pairs_covered"].as_u64().unwrap();
    assert!(covered > 0 && covered <= report["pairs_total"].as_u64().unwrap());
    // Not on a terminal: a line per run.
    assert_eq!(ran.stdout.matches("\nrun ").count(), 50, "{}", ran.stdout);
}

#[tokio::test]
async fn every_run_sees_fresh_call_ids() {
    let s = Setup::new();
    let bot = s.bot(Behaviour::correct(Plot::Invite)).await;
    let (ran, report) = s
        .explore(
            "invite-from-incoming-call.json",
            &bot.peer.url,
            &["--runs", "30", "--perturb", "reorder,race"],
        )
        .await;
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert_eq!(report["runs"], 30);
    let ids = bot.incoming_ids();
    assert_eq!(ids.len(), 30, "one incoming call per run");
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 30, "never the same call id twice: {ids:?}");
    assert!(!ids.contains(&crate::graph_sim::INCOMING.to_lowercase()));
}

/// A free port below Linux's ephemeral range (32768 and up), for listeners bound anew
/// several times (a bot per run, graphtape's API listener for explore then replay):
/// between two binds an ephemeral port (another test's connection) must not take it.
fn port_outside_ephemeral_range() -> u16 {
    // Tests run in parallel in one process: each call starts elsewhere.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let start = 20_000 + ((std::process::id() as u16 % 1000) * 10 + call * 97) % 12_000;
    (start..32_000)
        .chain(20_000..start)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 32000")
}

/// Every run log in `dir`, for a failure message: the bot's own account of a failed run.
fn run_logs(dir: &std::path::Path) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    logs.sort();
    logs.iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            format!("\n--- {}\n{text}", p.display())
        })
        .collect()
}

/// The bot process of the --bot-cmd test, started by explore through this test
/// binary (`--ignored --exact explore::bot_process`): not a test on its own.
#[tokio::test]
#[ignore = "the bot process that explore's --bot-cmd test starts"]
async fn bot_process() {
    let (Ok(addr), Ok(api)) = (
        std::env::var("EXPLORE_BOT_ADDR"),
        std::env::var("GRAPHTAPE_API_URL"),
    ) else {
        eprintln!("run by the --bot-cmd test only");
        return;
    };
    let run = std::env::var("GRAPHTAPE_RUN").unwrap_or_default();
    println!("bot for run {run}, Graph at {api}");
    let bot = ExploreBot::start(Behaviour::correct(Plot::Join), &api, &addr).await;
    if let Ok(code) = std::env::var("EXPLORE_BOT_EXIT") {
        // A test driver that says the run failed: exit once the call is up.
        bot.peer.wait_for(2).await;
        println!("exiting with {code}");
        std::process::exit(code.parse().unwrap());
    }
    // Run until explore stops the process.
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn bot_cmd_starts_a_fresh_bot_per_run_and_its_exit_status_counts() {
    let s = Setup::new();
    let addr = format!("127.0.0.1:{}", port_outside_ephemeral_range());
    let url = format!("http://{addr}");
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "{} --ignored --exact explore::bot_process --nocapture",
        exe.display()
    );
    let (ran, report) = s
        .explore_into(
            "join-channel-meeting.json",
            &url,
            "schedules",
            // A freshly built test binary may start slowly on a loaded machine.
            &["--runs", "5", "--bot-cmd", &cmd, "--wait", "5"],
            &[("EXPLORE_BOT_ADDR", &addr)],
        )
        .await;
    assert_eq!(
        ran.code,
        Some(0),
        "{}{}{}",
        ran.stdout,
        ran.stderr,
        run_logs(&s.path("schedules/logs"))
    );
    assert_eq!(report["runs"], 5);
    for r in report["run_results"].as_array().unwrap() {
        let log = std::fs::read_to_string(r["log"].as_str().unwrap()).unwrap();
        assert!(
            log.contains(&format!(
                "bot for run {}, Graph at http://127.0.0.1:{}",
                r["run"], s.port
            )),
            "{log}"
        );
    }

    let (ran, report) = s
        .explore_into(
            "join-channel-meeting.json",
            &url,
            "failing",
            &["--runs", "1", "--bot-cmd", &cmd, "--wait", "5"],
            &[("EXPLORE_BOT_ADDR", &addr), ("EXPLORE_BOT_EXIT", "3")],
        )
        .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let problem = report["run_results"][0]["problem"].as_str().unwrap();
    assert!(
        problem.contains("the bot's process exited before it was stopped (exit status: 3)"),
        "{problem}"
    );
}

#[tokio::test]
async fn check_cmd_is_the_oracle_after_each_run_and_junit_has_a_case_per_run() {
    let s = Setup::new();
    let bot = s.bot(Behaviour::correct(Plot::Hangup)).await;
    let junit = s.path("explore.xml");
    let (ran, report) = s
        .explore(
            "answer-incoming-voip-call.json",
            &bot.peer.url,
            &[
                "--runs",
                "3",
                "--perturb",
                "reorder",
                "--check-cmd",
                "echo checking {run} at {api_url}; test {run} != 2",
                "--junit",
                junit.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    let runs = report["run_results"].as_array().unwrap();
    assert_eq!(runs[0]["passed"], true);
    assert_eq!(runs[1]["passed"], false);
    assert!(
        runs[1]["problem"]
            .as_str()
            .unwrap()
            .contains("--check-cmd exit status: 1"),
        "{}",
        ran.stdout
    );
    let log = std::fs::read_to_string(runs[1]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(&format!("checking 2 at {}", s.api())), "{log}");

    // A JUnit file a schema validator accepts: a case per run, the failed one failing.
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit/junit.xsd"))
        .arg(&junit)
        .output()
        .expect("xmllint (libxml2-utils) is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
    assert!(xml.contains("--check-cmd exit status: 1"), "{xml}");
}

/// The strict bot explored from seed 7 with `budget` shrink re-runs allowed.
async fn strict_with_shrink_budget(budget: &str) -> (Ran, serde_json::Value) {
    let s = Setup::new();
    let bot = s.bot(STRICT).await;
    s.explore(
        "answer-incoming-voip-call.json",
        &bot.peer.url,
        &[
            "--runs",
            "50",
            "--seed",
            "7",
            "--max-delay",
            "0.05",
            "--max-shrink-runs",
            budget,
        ],
    )
    .await
}

/// Shrinking is bounded: with no re-runs allowed, the failing run is reported unshrunk
/// and says so.
#[tokio::test]
async fn shrinking_stops_at_max_shrink_runs_and_says_so() {
    let (ran, report) = strict_with_shrink_budget("0").await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert_eq!(report["shrink_runs"], 0, "{report}");
    let failure = &report["failures"][0];
    assert_eq!(failure["shrink_capped"], true, "{failure}");
    assert_eq!(failure["minimal"], failure["perturbations"], "{failure}");
    assert!(
        failure["summary"].as_str().unwrap().contains(
            "(shrinking stopped: --max-shrink-runs 0 re-runs used up; may not be minimal)"
        ),
        "{failure}"
    );
    assert!(!ran.stdout.contains("  shrink run "), "{}", ran.stdout);

    // The budget is the whole explore's: later failures are reported unshrunk.
    let (ran, report) = strict_with_shrink_budget("2").await;
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(report["shrink_runs"].as_u64().unwrap() <= 2, "{report}");
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["shrink_capped"] == true),
        "{failures:?}"
    );
}
