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
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::certs::cert_source;
use super::explore_run::{Explorer, Outcome};
use super::replay::{callback_auth, pace, wait_for_bot};
use super::source::{check_call, load};
use crate::cli::{ExploreArgs, ReplayArgs};
use crate::clock::SessionClock;
use crate::config::{seconds, Upstream};
use crate::explore::coverage::Coverage;
use crate::explore::explain::{explain, minimal};
use crate::explore::file::{events_sha256, Origin, RecordingId, ScheduleFile};
use crate::explore::points::{apply, universe, Point};
use crate::explore::report::{junit_suite, ExploreReport, FailureReport, RunReport};
use crate::explore::rules::{Delivery, Rules};
use crate::explore::shrink::ddmin;
use crate::explore::strategy::{choose, count_distinct, subsets, Perturb, Strategy};
use crate::graph::normalize_id;
use crate::proxy::Forwarder;
use crate::replay::engine::{Replay, Settings};
use crate::replay::ids::recorded_ids;
use crate::replay::matcher::MatchRules;
use crate::replay::plan::{plan, PlanOptions};
use crate::replay::substitute::default_learn_keys;
use crate::server::{bind, listen_url, runtime, serve_with, stop_signal, Drain};
use crate::tls;
use crate::tls::CertSource;

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
    // With --report -, standard output is for the JSON alone.
    let quiet_stdout = r.report.as_deref() == Some(Path::new("-"));
    if r.junit.as_deref() == Some(Path::new("-")) {
        bail!("--junit -: give a file name (standard output is for --report -)");
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

    let limits = super::record::listener_limits(&r.listener)?;
    let drain_timeout = seconds("--drain-timeout", r.listener.drain_timeout, false)?;
    let rt = runtime(r.listener.threads).context("starting the async runtime")?;
    let (stop_server, server_stop) = watch::channel(());
    let slot = current.clone();
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let server = rt.spawn(serve_with(
        listener,
        server_tls,
        limits,
        Drain::new(drain_timeout),
        None,
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

    say(
        quiet_stdout,
        format!(
        "exploring session={session} runs={} strategy={strategy} seed={} points={} schedules={}{}",
        args.runs,
        args.seed,
        points.len(),
        if exact { "" } else { "~" },
        total
    ),
    );
    if let Some(CertSource::SelfSigned { write_to, .. }) = &cert {
        say(quiet_stdout, format!("tls cert={}", write_to.display()));
    }
    say(quiet_stdout, format!("listening api={api_url}"));
    let _ = std::io::stdout().flush();
    if args.bot_cmd.is_none() {
        rt.block_on(wait_for_bot(&bot, wait))?;
    }

    let ex = Explorer {
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
        id_seed: fnv1a(
            args.seed,
            &[
                strategy.to_string().as_bytes(),
                recording.events_sha256.as_bytes(),
            ],
        ),
        session: session.clone(),
        stop: stop.clone(),
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
            say(
                quiet_stdout,
                format!("run {run}/{} {verdict} [{what}]", args.runs),
            );
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
        // Failing candidates: the points kept, the schedule and the outcome.
        let mut failed_runs: HashMap<Vec<Point>, (Vec<Point>, Vec<Delivery>, Outcome)> =
            HashMap::new();
        // One budget for the whole explore: failures keep coming in bounded time.
        let budget = args
            .max_shrink_runs
            .saturating_sub(usize::try_from(shrink_runs).unwrap_or(usize::MAX));
        let min_points = {
            let ex = &ex;
            let rt = &rt;
            let failed_runs = &mut failed_runs;
            let shrink_runs = &mut shrink_runs;
            ddmin(&applied, budget, |candidate| {
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
                    say(
                        quiet_stdout,
                        format!(
                            "  shrink run {label}: {} point{} [{}] {}",
                            used.len(),
                            if used.len() == 1 { "" } else { "s" },
                            said.join(", "),
                            if failed { "failed" } else { "passed" }
                        ),
                    );
                }
                if failed {
                    failed_runs.insert(candidate.to_vec(), (used, sched, o));
                }
                failed
            })
        };
        let capped = min_points.capped;
        let min_points = min_points.points;
        // The minimal set is a failing candidate, or the whole run (never re-run).
        let (min_points, min_schedule, min_outcome) = match failed_runs.remove(&min_points) {
            Some(found) => found,
            None => (applied.clone(), schedule.clone(), outcome),
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
            "run {run} failed: {explanation}; minimal: {}{}; reproduce: {} --schedule {}",
            minimal(&ex.rules, &min_points),
            if capped {
                format!(
                    " (shrinking stopped: --max-shrink-runs {} re-runs used up; may not be minimal)",
                    args.max_shrink_runs
                )
            } else {
                String::new()
            },
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
                shrink_capped: capped,
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
        interrupted,
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
    write_report(&report, r, elapsed)?;
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress line: on standard output, or standard error when that is for JSON.
fn say(to_stderr: bool, line: String) {
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

/// The summary: as text (standard error when `--report -` takes standard output), as
/// JSON (`--report FILE` or `-`), as JUnit XML (`--junit FILE`).
fn write_report(report: &ExploreReport, args: &ReplayArgs, took_s: f64) -> anyhow::Result<()> {
    super::output::write_summary(&report.render(), report, args.report.as_deref())?;
    if let Some(path) = &args.junit {
        let suite = junit_suite(report, Some(took_s));
        std::fs::write(path, crate::junit::to_xml("graphtape explore", &[suite]))
            .with_context(|| format!("writing --junit {}", path.display()))?;
    }
    Ok(())
}

/// FNV-1a over `seed` and `parts`: a stable 64-bit mix (no crate's hash, which may
/// change between versions).
fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in seed
        .to_le_bytes()
        .iter()
        .chain(parts.iter().flat_map(|p| p.iter()))
    {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
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
