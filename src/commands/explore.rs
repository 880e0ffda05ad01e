//! `graphtape explore`: replay a recording many times, each run in another order Graph
//! may produce, to fresh call ids; shrink each failure to its smallest cause and write
//! it as a schedule `replay --schedule` reproduces.
//!
//! One API listener and one engine set-up serve every run: a run swaps in a fresh
//! [`Replay`] (its own plan, matcher and ids) behind the listener. Runs are not
//! recorded as sessions; `replay --schedule` of a written schedule records one.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::certs::cert_source;
use super::replay::{callback_auth, finish_requests, pace, wait_for_bot};
use super::source::{check_call, load};
use crate::cli::ExploreArgs;
use crate::clock::SessionClock;
use crate::config::{seconds, Upstream};
use crate::explore::coverage::Coverage;
use crate::explore::explain::{explain, minimal};
use crate::explore::file::{events_sha256, Origin, RecordingId, ScheduleFile};
use crate::explore::points::{apply, universe, Point};
use crate::explore::rules::{Delivery, Rules};
use crate::explore::shrink::ddmin;
use crate::explore::strategy::{choose, count_distinct, subsets, Perturb, Rng, Strategy};
use crate::graph::normalize_id;
use crate::proxy::Forwarder;
use crate::replay::engine::{Replay, Settings};
use crate::replay::ids::{recorded_ids, IdMap};
use crate::replay::matcher::MatchRules;
use crate::replay::plan::{plan, Plan, PlanOptions, Step};
use crate::replay::report::{Divergence, Report};
use crate::replay::scheduler::{deliver_all, Delivery as Sending, Pace, RESPONSE_GRACE};
use crate::replay::substitute::default_learn_keys;
use crate::server::{bind, listen_url, serve, stop_signal};
use crate::tls;

/// How long a stopped bot process has between SIGTERM and SIGKILL.
const BOT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The outcome of one execution (a run or a shrink re-run).
struct Outcome {
    passed: bool,
    report: Report,
    /// A failure that is not a divergence: the bot's process, --check-cmd.
    other: Option<String>,
    log: Option<PathBuf>,
    ids: IdMap,
}

impl Outcome {
    /// One line about what went wrong, for the per-run line.
    fn first_problem(&self) -> String {
        self.other
            .clone()
            .or_else(|| self.report.divergences.first().map(|d| d.message.clone()))
            .unwrap_or_default()
    }
}

/// Everything an execution needs, set up once.
struct Explorer {
    rules: Rules,
    base: Plan,
    recorded: Arc<Vec<crate::exchange::Exchange<crate::exchange::StoredBody>>>,
    settings: Arc<Settings>,
    clock: Arc<SessionClock>,
    /// The engine of the run under way, behind the one API listener. A std Mutex: it
    /// is held only to clone or swap the Arc, never across an await.
    current: Arc<Mutex<Arc<Replay>>>,
    bot: Upstream,
    forwarder: Forwarder,
    pace: Pace,
    retry: bool,
    wait: Duration,
    settle: Duration,
    bot_cmd: Option<String>,
    check_cmd: Option<String>,
    api_url: String,
    api_listen: String,
    dir: PathBuf,
    ids: Vec<String>,
    seed: u64,
    session: String,
    stop: watch::Receiver<bool>,
    /// Executions so far (runs and shrink re-runs).
    executions: u64,
}

impl Explorer {
    /// Fresh ids for execution `salt` of run `run`: never the same twice in one explore.
    fn fresh_ids(&self, run: u64, salt: u64) -> IdMap {
        let mut rng = Rng::for_run(self.seed, run, salt + 1);
        IdMap::new(self.ids.iter().map(|id| (id.clone(), rng.guid())))
    }

    fn execute(
        &mut self,
        rt: &tokio::runtime::Runtime,
        schedule: &[Delivery],
        ids: IdMap,
        label: &str,
    ) -> Outcome {
        self.executions += 1;
        rt.block_on(self.execute_async(schedule, ids, label))
    }

    async fn execute_async(&self, schedule: &[Delivery], ids: IdMap, label: &str) -> Outcome {
        let steps: Vec<Step> = schedule
            .iter()
            .map(|d| Step {
                position: d.position,
                response: d.response,
                delay_us: d.delay_us,
            })
            .collect();
        let replay = Arc::new(
            Replay::new(
                self.base.scheduled(&steps),
                self.recorded.clone(),
                self.settings.clone(),
                self.clock.clone(),
                None,
            )
            .with_ids(ids.clone()),
        );
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = replay.clone();
        let mut other = None;
        let log = (self.bot_cmd.is_some() || self.check_cmd.is_some())
            .then(|| self.dir.join("logs").join(format!("run-{label}.log")));
        let mut child = None;
        if let (Some(cmd), Some(log)) = (&self.bot_cmd, &log) {
            match self.start_bot(cmd, label, log).await {
                Ok(c) => child = Some(c),
                Err(e) => other = Some(format!("{e:#}")),
            }
        }
        if other.is_none() {
            let sending = Sending {
                bot: self.bot.clone(),
                forwarder: self.forwarder.clone(),
                pace: self.pace,
                progress: None,
                retry: self.retry,
                response_grace: match self.pace {
                    Pace::Fast => RESPONSE_GRACE,
                    Pace::Speed(_) => Duration::ZERO,
                },
            };
            deliver_all(
                replay.clone(),
                sending,
                tokio::time::Instant::now(),
                self.stop.clone(),
            )
            .await;
            finish_requests(&replay, self.wait, self.settle).await;
        }
        if let Some(child) = child {
            if let Some(problem) = stop_bot(child).await {
                other.get_or_insert(problem);
            }
        }
        if let (Some(cmd), Some(log), None) = (&self.check_cmd, &log, &other) {
            other = self.check(cmd, label, log).await;
        }
        if *self.stop.borrow() {
            replay.diverged(Divergence {
                kind: "interrupted",
                call: None,
                recorded_seq: None,
                replay_seq: None,
                message: "explore was interrupted during this run".into(),
            });
        }
        let report = replay.finish(&self.session, &format!("explore run {label}"));
        Outcome {
            passed: report.passed && other.is_none(),
            report,
            other,
            log,
            ids,
        }
    }

    fn command(
        &self,
        cmd: &str,
        label: &str,
        log: &Path,
    ) -> anyhow::Result<tokio::process::Command> {
        let expanded = cmd
            .replace("{api_url}", &self.api_url)
            .replace("{api_listen}", &self.api_listen)
            .replace("{run}", label);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the run log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(expanded)
            .env("GRAPHTAPE_API_URL", &self.api_url)
            .env("GRAPHTAPE_API_LISTEN", &self.api_listen)
            .env("GRAPHTAPE_RUN", label)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        Ok(c)
    }

    /// Starts the bot's process and waits until --bot-url accepts connections.
    async fn start_bot(
        &self,
        cmd: &str,
        label: &str,
        log: &Path,
    ) -> anyhow::Result<tokio::process::Child> {
        let mut command = self.command(cmd, label, log)?;
        // Its own process group, so stopping it stops whatever the shell started.
        command.process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("--bot-cmd: starting {cmd:?}"))?;
        tokio::select! {
            ready = wait_for_bot(&self.bot, self.wait) => ready.map(|()| child),
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                bail!("the bot's process ended before it accepted connections ({status}); see {}", log.display())
            }
        }
    }

    /// Runs --check-cmd; a failure in words if it did not exit 0.
    async fn check(&self, cmd: &str, label: &str, log: &Path) -> Option<String> {
        let mut command = match self.command(cmd, label, log) {
            Ok(c) => c,
            Err(e) => return Some(format!("--check-cmd: {e:#}")),
        };
        match command.status().await {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("--check-cmd {s}")),
            Err(e) => Some(format!("--check-cmd could not start: {e}")),
        }
    }
}

/// Stops the bot's process group: SIGTERM, then SIGKILL after the grace period. A
/// failure in words if it had already exited non-zero (its own driver said so).
async fn stop_bot(mut child: tokio::process::Child) -> Option<String> {
    if let Ok(Some(status)) = child.try_wait() {
        return (!status.success())
            .then(|| format!("the bot's process exited before it was stopped ({status})"));
    }
    let group = child.id().map(|pid| -(pid as i32));
    if let Some(group) = group {
        // SAFETY: kill(2) with a process group id and a signal number has no
        // memory-safety preconditions.
        unsafe { libc::kill(group, libc::SIGTERM) };
    }
    if tokio::time::timeout(BOT_STOP_GRACE, child.wait())
        .await
        .is_err()
    {
        if let Some(group) = group {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
    None
}

/// One failure group: the runs whose schedules shrank to the same minimal one.
#[derive(Debug, Serialize)]
struct FailureReport {
    run: u64,
    summary: String,
    explanation: String,
    schedule: PathBuf,
    minimal_schedule: PathBuf,
    perturbations: Vec<String>,
    minimal: Vec<String>,
    shrink_runs: u64,
    also_runs: Vec<u64>,
    divergences: Vec<Divergence>,
    other: Option<String>,
    log: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct RunReport {
    run: u64,
    passed: bool,
    perturbations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ExploreReport {
    session: String,
    recording: RecordingId,
    seed: u64,
    strategy: String,
    passed: bool,
    runs: u64,
    shrink_runs: u64,
    distinct_schedules: usize,
    total_schedules: u64,
    total_exact: bool,
    pairs_covered: usize,
    pairs_total: usize,
    runs_per_second: f64,
    failures: Vec<FailureReport>,
    run_results: Vec<RunReport>,
}

pub fn run(db: &Path, args: ExploreArgs) -> anyhow::Result<ExitCode> {
    let r = &args.replay;
    if r.schedule.is_some() {
        bail!("--schedule is for replay; explore makes its own schedules");
    }
    if r.record_as.is_some() {
        bail!("explore does not record its runs; reproduce one with replay --schedule, which does");
    }
    if r.no_graph {
        bail!("explore needs the Graph side (its causes order the notifications): drop --no-graph");
    }
    if args.runs == 0 {
        bail!("--runs 0: give at least one run");
    }
    let strategy: Strategy = args.strategy.parse()?;
    let perturb: Perturb = match &args.perturb {
        Some(p) => p.parse()?,
        None => Perturb::default(),
    };
    let max_delay_ms = seconds("--max-delay", args.max_delay, false)?.as_millis() as u64;
    let bot = Upstream::parse_flag("--bot-url", &r.bot_url)?;
    let pace = pace(r, true)?;
    let wait = seconds("--wait", r.wait, false)?;
    let settle = seconds("--settle", r.settle.unwrap_or(0.05), false)?;
    let bot_timeout = seconds("--bot-timeout", r.bot_timeout, true)?;
    let calls: Vec<String> = r.calls.iter().filter_map(|c| normalize_id(c)).collect();

    let source = load(db, &r.source)?;
    for given in &r.calls {
        check_call(&source, given)?;
    }
    let session = source.info.name.clone();
    let base = plan(
        &source.exchanges,
        &PlanOptions {
            calls,
            no_graph: false,
        },
    );
    let rules = Rules::new(&base, &source.exchanges);
    let points = universe(&rules, perturb.kinds, max_delay_ms);
    let (total, exact) = count_distinct(&rules, &points);
    let recording = RecordingId {
        session: session.clone(),
        events_sha256: events_sha256(&source.exchanges),
    };
    let dir = args
        .schedules
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("explore-{session}")));

    let auth = callback_auth(db, r, true)?;
    let cert = cert_source(&r.tls, db, &[r.api_listen], None);
    let server_tls = cert
        .as_ref()
        .map(tls::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    let (listener, api_addr) = bind(r.api_listen, "--api-listen")?;
    let api_url = listen_url(api_addr, server_tls.is_some());
    let mut rules_m = MatchRules::default();
    rules_m.ignore_keys.extend(r.ignore.iter().cloned());
    // A sanitised recording holds placeholders where the bot sends its real values.
    rules_m
        .ignore_keys
        .extend(crate::recording::match_ignores(&source.info.config));
    let mut learn = default_learn_keys();
    learn.extend(r.learn.iter().cloned());
    let settings = Arc::new(Settings {
        rules: rules_m,
        learn_keys: learn,
        wait,
        auth,
        self_url: api_url.clone(),
        request_order: false,
        log_divergences: false,
    });
    let recorded = Arc::new(source.exchanges);
    let recorded_for_ids = recorded.clone();
    let clock = Arc::new(SessionClock::start());
    let idle = Arc::new(Replay::new(
        base.clone(),
        recorded.clone(),
        settings.clone(),
        clock.clone(),
        None,
    ));
    let current = Arc::new(Mutex::new(idle));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (stop_server, server_stop) = watch::channel(());
    let slot = current.clone();
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let server = rt.spawn(serve(
        listener,
        server_tls,
        move |req| {
            let engine = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            engine.handle(req)
        },
        async move {
            let mut rx = server_stop;
            while rx.changed().await.is_ok() {}
        },
    ));
    let (interrupt, stop) = watch::channel(false);
    rt.spawn(async move {
        if stop_signal().await.is_ok() {
            interrupt.send_replace(true);
        }
    });

    println!(
        "exploring session={session} runs={} strategy={strategy} seed={} points={} schedules={}{}",
        args.runs,
        args.seed,
        points.len(),
        if exact { "" } else { "~" },
        total
    );
    println!("listening api={api_url}");
    let _ = std::io::stdout().flush();
    if args.bot_cmd.is_none() {
        rt.block_on(wait_for_bot(&bot, wait))?;
    }

    let mut ex = Explorer {
        rules,
        base,
        recorded,
        settings,
        clock,
        current,
        bot: bot.clone(),
        forwarder: Forwarder::new(tls::client_config(None)?, bot_timeout),
        pace,
        retry: perturb.retry,
        wait,
        settle,
        bot_cmd: args.bot_cmd.clone(),
        check_cmd: args.check_cmd.clone(),
        api_url,
        api_listen: api_addr.to_string(),
        dir: dir.clone(),
        ids: recorded_ids(&recorded_for_ids),
        seed: args.seed,
        session: session.clone(),
        stop: stop.clone(),
        executions: 0,
    };

    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut coverage = Coverage::new(&ex.rules, &points);
    let mut distinct: HashSet<Vec<Delivery>> = HashSet::new();
    let mut failing: HashMap<Vec<Delivery>, Vec<Delivery>> = HashMap::new();
    let mut groups: HashMap<Vec<Delivery>, FailureReport> = HashMap::new();
    let mut group_order: Vec<Vec<Delivery>> = Vec::new();
    let mut results = Vec::new();
    let mut exhaustive = subsets(points.len());
    let mut runs_done = 0;
    let mut shrink_runs = 0;
    let origin = |run: u64, minimal: bool| Origin {
        recording: &recording,
        seed: args.seed,
        strategy: strategy.to_string(),
        run,
        minimal,
        retry: perturb.retry,
    };
    let reproduce_prefix = reproduce_command(db, &args);

    'runs: for run in 1..=args.runs {
        if *stop.borrow() {
            break;
        }
        let (schedule, applied) = match strategy {
            Strategy::Exhaustive => loop {
                let Some(subset) = exhaustive.next() else {
                    break 'runs;
                };
                let chosen: Vec<Point> = subset.iter().map(|&i| points[i].clone()).collect();
                let (schedule, applied) = apply(&ex.rules, &chosen);
                if !distinct.contains(&schedule) {
                    break (schedule, applied);
                }
            },
            _ => apply(
                &ex.rules,
                &choose(&points, strategy, args.seed, run, max_delay_ms),
            ),
        };
        distinct.insert(schedule.clone());
        coverage.observe(&schedule);
        let ids = ex.fresh_ids(run, 0);
        let outcome = ex.execute(&rt, &schedule, ids, &run.to_string());
        runs_done = run;
        let described: Vec<String> = applied.iter().map(|p| p.describe(&ex.rules)).collect();
        results.push(RunReport {
            run,
            passed: outcome.passed,
            perturbations: described.clone(),
            problem: (!outcome.passed).then(|| outcome.first_problem()),
            log: outcome.log.clone(),
        });
        let rate = run as f64 / started.elapsed().as_secs_f64().max(1e-9);
        if terminal {
            eprint!(
                "\rexplore: run {run}/{}, {} failed, {} distinct, {rate:.1} runs/s   ",
                args.runs,
                results.iter().filter(|r| !r.passed).count(),
                distinct.len()
            );
            let _ = std::io::stderr().flush();
        } else {
            let verdict = if outcome.passed {
                "passed".to_string()
            } else {
                format!("FAILED: {}", outcome.first_problem())
            };
            let what = if described.is_empty() {
                "recorded order".to_string()
            } else {
                described.join(", ")
            };
            println!("run {run}/{} {verdict} [{what}]", args.runs);
        }
        if outcome.passed || *stop.borrow() {
            continue;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let full_path = dir.join(format!("run-{run}.json"));
        let full = ScheduleFile::new(
            origin(run, false),
            &ex.rules,
            &applied,
            &schedule,
            &outcome.ids,
        );
        std::fs::write(&full_path, full.to_bytes())
            .with_context(|| format!("writing {}", full_path.display()))?;
        if let Some(group) = failing.get(&schedule).and_then(|key| groups.get_mut(key)) {
            // This very schedule failed before: same group, no new shrinking.
            group.also_runs.push(run);
            continue;
        }

        // Shrink: ddmin over the applied points, each candidate a real re-run.
        let mut salt = 0;
        let mut last_fail: Option<(Vec<Point>, Vec<Delivery>, Outcome)> = None;
        let min_points = {
            let ex = &mut ex;
            let rt = &rt;
            let last_fail = &mut last_fail;
            let shrink_runs = &mut shrink_runs;
            ddmin(&applied, |candidate| {
                if *ex.stop.borrow() {
                    return false;
                }
                salt += 1;
                *shrink_runs += 1;
                let (sched, used) = apply(&ex.rules, candidate);
                let ids = ex.fresh_ids(run, salt);
                let label = format!("{run}.{salt}");
                let o = ex.execute(rt, &sched, ids, &label);
                let failed = !o.passed;
                if !terminal {
                    let said: Vec<String> = used.iter().map(|p| p.describe(&ex.rules)).collect();
                    println!(
                        "  shrink run {label}: {} point{} [{}] {}",
                        used.len(),
                        if used.len() == 1 { "" } else { "s" },
                        said.join(", "),
                        if failed { "failed" } else { "passed" }
                    );
                }
                if failed {
                    *last_fail = Some((used, sched, o));
                }
                failed
            })
        };
        let (min_points, min_schedule, min_outcome) = match last_fail {
            Some((used, sched, o)) if used == apply(&ex.rules, &min_points).1 => (used, sched, o),
            _ => (applied.clone(), schedule.clone(), outcome),
        };
        failing.insert(schedule.clone(), min_schedule.clone());
        if let Some(g) = groups.get_mut(&min_schedule) {
            g.also_runs.push(run);
            continue;
        }
        let min_path = dir.join(format!("run-{run}.min.json"));
        let min_file = ScheduleFile::new(
            origin(run, true),
            &ex.rules,
            &min_points,
            &min_schedule,
            &min_outcome.ids,
        );
        std::fs::write(&min_path, min_file.to_bytes())
            .with_context(|| format!("writing {}", min_path.display()))?;
        let explanation = explain(
            &ex.rules,
            &min_points,
            &min_outcome.report.divergences,
            min_outcome.other.as_deref(),
        );
        let summary = format!(
            "run {run} failed: {explanation}; minimal: {}; reproduce: {} --schedule {}",
            minimal(&ex.rules, &min_points),
            reproduce_prefix,
            min_path.display()
        );
        group_order.push(min_schedule.clone());
        groups.insert(
            min_schedule,
            FailureReport {
                run,
                summary,
                explanation,
                schedule: full_path,
                minimal_schedule: min_path,
                perturbations: described,
                minimal: min_points.iter().map(|p| p.describe(&ex.rules)).collect(),
                shrink_runs: salt,
                also_runs: Vec::new(),
                divergences: min_outcome.report.divergences.clone(),
                other: min_outcome.other.clone(),
                log: min_outcome.log.clone(),
            },
        );
    }
    if terminal {
        eprintln!();
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    drop(stop_server);
    let _ = rt.block_on(server);
    rt.shutdown_timeout(Duration::from_secs(1));

    let interrupted = *stop.borrow();
    let failures: Vec<FailureReport> = group_order
        .iter()
        .filter_map(|k| groups.remove(k))
        .collect();
    let failed_runs = results.iter().filter(|r| !r.passed).count();
    let (covered, pairs) = coverage.covered();
    let report = ExploreReport {
        session: session.clone(),
        recording: recording.clone(),
        seed: args.seed,
        strategy: strategy.to_string(),
        passed: failed_runs == 0 && !interrupted,
        runs: runs_done,
        shrink_runs,
        distinct_schedules: distinct.len(),
        total_schedules: total,
        total_exact: exact,
        pairs_covered: covered,
        pairs_total: pairs,
        runs_per_second: (runs_done + shrink_runs) as f64 / elapsed,
        failures,
        run_results: results,
    };
    print!("{}", render(&report, interrupted));
    if let Some(path) = &r.report {
        let json = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, json)
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `graphtape replay SOURCE [--db DB] --bot-url URL --api-listen ADDR ...`, the
/// command that reproduces a written schedule.
fn reproduce_command(db: &Path, args: &ExploreArgs) -> String {
    let r = &args.replay;
    let mut cmd = vec!["graphtape".to_string(), "replay".into(), r.source.clone()];
    if !Path::new(&r.source).is_file() {
        cmd.extend(["--db".into(), db.display().to_string()]);
    }
    cmd.extend(["--bot-url".into(), r.bot_url.clone()]);
    cmd.extend(["--api-listen".into(), r.api_listen.to_string()]);
    match r.speed {
        Some(s) => cmd.extend(["--speed".into(), s.to_string()]),
        None => cmd.push("--fast".into()),
    }
    for call in &r.calls {
        cmd.extend(["--call".into(), call.clone()]);
    }
    if r.callback_auth != "sign" {
        cmd.extend(["--callback-auth".into(), r.callback_auth.clone()]);
    }
    cmd.join(" ")
}

fn render(report: &ExploreReport, interrupted: bool) -> String {
    let failed = report.run_results.iter().filter(|r| !r.passed).count();
    let mut out = format!(
        "explore of {}: {} runs ({} shrink runs), {} distinct schedules, {failed} failed{}\n",
        report.session,
        report.runs,
        report.shrink_runs,
        report.distinct_schedules,
        if interrupted { ", interrupted" } else { "" }
    );
    out.push_str(&format!(
        "explored {} of {}{} distinct schedules{}\n",
        report.distinct_schedules,
        if report.total_exact { "" } else { "~" },
        report.total_schedules,
        if report.total_exact {
            ""
        } else {
            " (estimate)"
        }
    ));
    out.push_str(&format!(
        "pairs covered: {} of {}\n",
        report.pairs_covered, report.pairs_total
    ));
    for f in &report.failures {
        out.push_str(&f.summary);
        out.push('\n');
        if !f.also_runs.is_empty() {
            let runs: Vec<String> = f.also_runs.iter().map(u64::to_string).collect();
            out.push_str(&format!(
                "  also runs {} (same minimal schedule)\n",
                runs.join(", ")
            ));
        }
        if let Some(log) = &f.log {
            out.push_str(&format!("  log: {}\n", log.display()));
        }
    }
    out.push_str(&format!(
        "{:.1} runs/s\n{}\n",
        report.runs_per_second,
        if report.passed { "PASS" } else { "FAIL" }
    ));
    out
}
