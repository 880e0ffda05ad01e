//! `graphtape replay`: a recording becomes a repeatable test of a bot.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::certs::{beside, cert_source};
use super::replay_db::ReplayDb;
use super::source::{check_call, load};
use crate::cli::ReplayArgs;
use crate::clock::SessionClock;
use crate::config::{seconds, Upstream};
use crate::explore::file::{events_sha256, RecordingId, ScheduleFile};
use crate::explore::rules::Rules;
use crate::graph::normalize_id;
use crate::junit;
use crate::proxy::Forwarder;
use crate::redact::Redactor;
use crate::replay::auth::{AuthMode, CallbackAuth, Signer};
use crate::replay::engine::{Replay, Settings};
use crate::replay::ids::IdMap;
use crate::replay::matcher::MatchRules;
use crate::replay::plan::{plan, PlanOptions};
use crate::replay::progress::{clear as clear_progress, show as show_progress, Progress};
use crate::replay::report::{Divergence, Report};
use crate::replay::scheduler::{deliver_all, Delivery, Pace, RESPONSE_GRACE};
use crate::replay::substitute::default_learn_keys;
use crate::server::{bind, listen_url, runtime, serve_with, stop_signal, Drain};
use crate::store::{self, Access};
use crate::tls::{self, CertSource};

/// `<session>-replay-N` candidates; the store takes the first N not taken, atomically.
fn replay_names(session: &str) -> Vec<String> {
    (1..=10_000)
        .map(|n| format!("{session}-replay-{n}"))
        .collect()
}

fn signing_key_path(db: &Path, given: Option<&PathBuf>) -> PathBuf {
    given
        .cloned()
        .unwrap_or_else(|| beside(db, "signing-key.pem"))
}

/// The pace the flags ask for; `fast_by_default` when neither --speed nor --fast is
/// given (explore).
pub(super) fn pace(args: &ReplayArgs, fast_by_default: bool) -> anyhow::Result<Pace> {
    if let Some(speed) = args.speed {
        if !(speed.is_finite() && speed > 0.0) {
            bail!("--speed {speed}: give a positive factor (1 = recorded timing)");
        }
    }
    Ok(match (args.fast, args.speed) {
        (true, _) => Pace::Fast,
        (false, Some(speed)) => Pace::Speed(speed),
        (false, None) if fast_by_default => Pace::Fast,
        (false, None) => Pace::Speed(1.0),
    })
}

/// The callback authentication the flags ask for (a signing key is loaded, or
/// generated and kept beside the database).
pub(super) fn callback_auth(
    db: &Path,
    args: &ReplayArgs,
    announce: bool,
) -> anyhow::Result<CallbackAuth> {
    Ok(match AuthMode::parse(&args.callback_auth)? {
        AuthMode::None => CallbackAuth::None,
        AuthMode::Token(t) => CallbackAuth::Token(t),
        AuthMode::Sign => {
            let path = signing_key_path(db, args.signing_key.as_ref());
            let (signer, generated) = Signer::load_or_create(&path)?;
            if generated && announce {
                eprintln!("graphtape: signing key={} (generated)", path.display());
            }
            CallbackAuth::Sign(Box::new(signer))
        }
    })
}

pub fn run(db: &Path, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let bot = Upstream::parse_flag("--bot-url", &args.bot_url)?;
    if args.junit.as_deref() == Some(Path::new("-")) {
        bail!("--junit -: give a file name (standard output is for --report -)");
    }
    if let Some(warning) = bot.appended_path_warning("--bot-url") {
        tracing::warn!("{warning}");
    }
    let pace = pace(&args, false)?;
    let wait = seconds("--wait", args.wait, false)?;
    let settle = seconds("--settle", args.settle.unwrap_or(0.5), false)?;
    let bot_timeout = seconds("--bot-timeout", args.bot_timeout, true)?;
    AuthMode::parse(&args.callback_auth)?;
    let calls: Vec<String> = args.calls.iter().filter_map(|c| normalize_id(c)).collect();

    let source = load(db, &args.source)?;
    let source_is_file = Path::new(&args.source).is_file();
    let target = ReplayDb::choose(db, args.db_given, source_is_file, args.no_record)?;
    // Files graphtape makes for the replay go beside the database the user named, or
    // the temporary one: never silently into the working directory.
    let files_kept = args.db_given || !source_is_file;
    let files_beside = if files_kept { db } else { target.path() };
    let source_name = source.info.name.clone();
    for given in &args.calls {
        check_call(&source, given)?;
    }
    let plan = plan(
        &source.exchanges,
        &PlanOptions {
            calls,
            no_graph: args.no_graph,
        },
    );
    // With --schedule: that order, those perturbations and ids, checked to be for
    // this recording.
    let schedule = match &args.schedule {
        Some(path) => {
            let recording = RecordingId {
                session: source.info.name.clone(),
                events_sha256: events_sha256(&source.exchanges),
            };
            let file = ScheduleFile::load(path, &recording)?;
            let steps = file.steps(&Rules::new(&plan, &source.exchanges), path)?;
            Some((file, steps))
        }
        None => None,
    };
    let (plan, ids, retry) = match &schedule {
        Some((file, steps)) => (plan.scheduled(steps), file.id_map(), file.retry),
        None => (plan, IdMap::default(), false),
    };

    let auth = callback_auth(files_beside, &args, files_kept)?;

    let cert = cert_source(&args.tls, files_beside, &[args.api_listen], None);
    if cert.is_some() && args.no_graph {
        bail!("--tls-* serve the API listener, which --no-graph does not start");
    }
    let server_tls = cert
        .as_ref()
        .map(tls::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    let (listener, api_addr) = match args.no_graph {
        true => (None, None),
        false => {
            let (l, addr) = bind(args.api_listen, "--api-listen")?;
            (Some(l), Some(addr))
        }
    };

    let conn = store::open(target.path(), Access::Create)?;
    let names = match &args.record_as {
        Some(name) => vec![name.clone()],
        None => replay_names(&source.info.name),
    };
    let clock = Arc::new(SessionClock::start());
    let config = serde_json::json!({
        "graphtape": env!("CARGO_PKG_VERSION"),
        "replay_of": source.info.name,
        "bot_url": bot.to_string(),
        "api_listen": api_addr.map(|a| a.to_string()),
        "speed": match pace { Pace::Fast => serde_json::Value::from("fast"), Pace::Speed(s) => s.into() },
        "schedule": args.schedule.as_ref().map(|p| p.display().to_string()),
        "calls": args.calls,
        "callback_auth": args.callback_auth.split(':').next(),
        "no_graph": args.no_graph,
    });
    // Held until the session is closed: `sessions delete` refuses a live session. The
    // name is allocated atomically, so parallel replays each get their own.
    let (session_id, record_as, live) = store::create_live_session_named(
        &conn,
        target.path(),
        names,
        clock.wall_start_us(),
        &config,
    )?;
    let redactor = Redactor::new(&store::redaction_key(&conn)?);
    let (recorder, writer) = store::spawn_writer(conn, session_id, redactor, 16 << 20);

    let mut rules = MatchRules::default();
    rules.ignore_keys.extend(args.ignore.iter().cloned());
    // A sanitised recording holds placeholders where the bot sends its real values.
    rules
        .ignore_keys
        .extend(crate::recording::match_ignores(&source.info.config));
    let mut learn = default_learn_keys();
    learn.extend(args.learn.iter().cloned());
    let self_url = api_addr
        .map(|a| listen_url(a, server_tls.is_some()))
        .unwrap_or_default();
    let requests_recorded = plan.api.len();
    let notifications_recorded = plan.notifications.len();
    let settings = Settings {
        rules,
        learn_keys: learn,
        wait,
        auth,
        self_url: self_url.clone(),
        // A schedule from explore is judged as explore judged it.
        request_order: schedule.is_none(),
        log_divergences: true,
    };
    let end_recorded_us = source
        .exchanges
        .iter()
        .map(|e| e.timing.request_start_us)
        .max()
        .unwrap_or(0);
    let progress = Progress::new(notifications_recorded, pace, end_recorded_us);
    let terminal = std::io::stderr().is_terminal();
    let replay = Arc::new(
        Replay::new(
            plan,
            Arc::new(source.exchanges),
            Arc::new(settings),
            clock.clone(),
            Some(recorder),
        )
        .with_ids(ids),
    );
    let delivery = Delivery {
        bot: bot.clone(),
        forwarder: Forwarder::new(tls::client_config(None)?, bot_timeout),
        pace,
        progress: Some(progress.clone()),
        retry,
        // A schedule is delivered as explore delivered it.
        response_grace: match (&args.schedule, pace) {
            (Some(_), Pace::Fast) => RESPONSE_GRACE,
            _ => Duration::ZERO,
        },
    };

    let limits = super::record::listener_limits(&args.listener)?;
    let drain_timeout = seconds("--drain-timeout", args.listener.drain_timeout, false)?;
    let runtime = runtime(args.listener.threads).context("starting the async runtime")?;
    let engine = replay.clone();
    let record_name = record_as.clone();
    let started = std::time::Instant::now();
    let report_to_stdout = args.report.as_deref() == Some(Path::new("-"));
    let ran = runtime.block_on(async move {
        // With `--report -` standard output carries the JSON report and nothing else.
        let mut out: Box<dyn Write> = if report_to_stdout {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        writeln!(
            out,
            "replaying session={} requests={requests_recorded} notifications={notifications_recorded} record-as={record_name}",
            source.info.name
        )?;
        let (stop_tx, stop_rx) = watch::channel(());
        let server = match listener {
            Some(l) => {
                if let Some(CertSource::SelfSigned { write_to, .. }) = &cert {
                    writeln!(out, "tls cert={}", write_to.display())?;
                }
                writeln!(out, "listening api={self_url}")?;
                let engine = engine.clone();
                Some(tokio::spawn(serve_with(
                    tokio::net::TcpListener::from_std(l)?,
                    server_tls,
                    limits,
                    Drain::new(drain_timeout),
                    None,
                    move |req| engine.clone().handle(req),
                    async move {
                        let mut rx = stop_rx;
                        while rx.changed().await.is_ok() {}
                    },
                )))
            }
            None => None,
        };
        out.flush()?;
        drop(out);
        // SIGINT/SIGTERM stop the replay early; what happened so far is still
        // recorded and reported.
        let (interrupt_tx, interrupted) = watch::channel(false);
        tokio::spawn(async move {
            if stop_signal().await.is_ok() {
                interrupt_tx.send_replace(true);
            }
        });
        let mut stopped = interrupted.clone();
        tokio::select! {
            ready = wait_for_bot(&bot, wait) => ready?,
            _ = stopped.wait_for(|s| *s) => {}
        }
        // Elapsed time, the recorded clock and the next gap, while the replay runs.
        let ticker = tokio::spawn(show_progress(progress, terminal));
        if !*interrupted.borrow() {
            deliver_all(engine.clone(), delivery, tokio::time::Instant::now(), interrupted.clone()).await;
        }
        tokio::select! {
            () = finish_requests(&engine, wait, settle) => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        ticker.abort();
        clear_progress(terminal);
        if *interrupted.borrow() {
            engine.diverged(Divergence {
                kind: "interrupted",
                call: None,
                recorded_seq: None,
                replay_seq: None,
                message: "the replay was interrupted before the end".into(),
            });
        }
        drop(stop_tx);
        if let Some(server) = server {
            server.await?;
        }
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    let health = writer.finish(clock.now_us());
    drop(live);
    if ran.is_err() && health.recorded() == 0 {
        target.discard(&record_as);
    }
    ran?;
    if !target.kept() {
        eprintln!("graphtape: the replay session is not kept (temporary database; --db keeps it)");
    }

    let report = replay.finish(&source_name, &record_as);
    write_report(&report, &args, started.elapsed())?;
    if health.unrecorded() > 0 {
        eprintln!(
            "graphtape: warning: {} replay events were not recorded: {}",
            health.unrecorded(),
            health.last_error().unwrap_or_default()
        );
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Waits until the bot accepts connections, so the first notification does not race
/// the bot's start-up.
pub(super) async fn wait_for_bot(bot: &Upstream, wait: Duration) -> anyhow::Result<()> {
    let authority = bot.authority.clone();
    let addr = if authority.contains(':') {
        authority
    } else if bot.scheme == "https" {
        format!("{authority}:443")
    } else {
        format!("{authority}:80")
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("--bot-url {bot}: nothing accepts connections at {addr} (waited {wait:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the last notification: wait (up to --wait of silence) for recorded requests
/// the bot has not made yet, then for --settle of silence to catch extra ones.
pub(super) async fn finish_requests(replay: &Replay, wait: Duration, settle: Duration) {
    let mut activity = replay.activity();
    while !replay.missing().is_empty() {
        if tokio::time::timeout(wait, activity.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    while let Ok(Ok(())) = tokio::time::timeout(settle, activity.changed()).await {}
}

/// The verdict: as text (standard error when `--report -` takes standard output),
/// as JSON (`--report FILE` or `-`), as JUnit XML (`--junit FILE`).
fn write_report(report: &Report, args: &ReplayArgs, took: Duration) -> anyhow::Result<()> {
    super::output::write_summary(&report.render(), report, args.report.as_deref())?;
    if let Some(path) = &args.junit {
        let suite = crate::replay::junit::suite(report, Some(took.as_secs_f64()));
        std::fs::write(path, junit::to_xml("graphtape replay", &[suite]))
            .with_context(|| format!("writing --junit {}", path.display()))?;
    }
    Ok(())
}
