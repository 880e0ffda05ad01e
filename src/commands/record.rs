//! `graphtape record`: run the recording proxy until SIGINT/SIGTERM.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::certs::cert_source;
use super::sanitizers;
use crate::cli::RecordArgs;
use crate::clock::{format_unix_micros, SessionClock};
use crate::config::{parse_age, parse_size, seconds, ServerLimits, Upstream};
use crate::proxy::api::ApiProxy;
use crate::proxy::callback::CallbackProxy;
use crate::proxy::{CallbackGuard, CallbackRoutes, Forwarder, Relay};
use crate::redact::Redactor;
use crate::server::{bind, default_threads, listen_url, runtime, serve_with, Drain, StopSignals};
use crate::store::{self, Access, Recorder};
use crate::tls::{self, CertSource};
use crate::workers::Workers;

/// The settings `record` runs with, checked as a whole before anything starts.
struct Plan {
    upstream: Upstream,
    bot: Option<Upstream>,
    public_url: Option<Upstream>,
    max_body: usize,
    upstream_timeout: Duration,
    bot_timeout: Duration,
    cert: Option<CertSource>,
    limits: ServerLimits,
    drain_timeout: Duration,
    rotate: Option<store::RotateRule>,
    retain: Option<Duration>,
}

impl Plan {
    fn from_args(args: &RecordArgs, db: &Path) -> anyhow::Result<Plan> {
        let upstream = Upstream::parse(&args.upstream)?;
        let bot = args
            .bot_url
            .as_deref()
            .map(|u| Upstream::parse_flag("--bot-url", u))
            .transpose()?;
        if let Some(warning) = bot
            .as_ref()
            .and_then(|b| b.appended_path_warning("--bot-url"))
        {
            tracing::warn!("{warning}");
        }
        let public_url = args
            .public_url
            .as_deref()
            .map(|u| Upstream::parse_flag("--public-url", u))
            .transpose()?;
        let upstream_timeout = seconds("--upstream-timeout", args.upstream_timeout, true)?;
        let bot_timeout = seconds("--bot-timeout", args.bot_timeout, true)?;
        if args.callback_listen.is_none() {
            for (given, flag) in [
                (bot.is_some(), "--bot-url"),
                (public_url.is_some(), "--public-url"),
            ] {
                if given {
                    bail!("{flag} needs --callback-listen: notifications must reach graphtape");
                }
            }
        }
        let listens: Vec<_> = [Some(args.api_listen), args.callback_listen]
            .into_iter()
            .flatten()
            .collect();
        let cert = cert_source(
            &args.tls,
            db,
            &listens,
            public_url.as_ref().map(|u| u.host()),
        );
        if args.api_tls && cert.is_none() {
            bail!("--api-tls needs a certificate: --tls-cert and --tls-key, or --tls-self-signed");
        }
        if cert.is_some() && args.callback_listen.is_none() && !args.api_tls {
            bail!("a TLS certificate was given but no listener uses it: add --callback-listen or --api-tls");
        }
        Ok(Plan {
            upstream,
            bot,
            public_url,
            max_body: parse_size(&args.max_body)?,
            upstream_timeout,
            bot_timeout,
            cert,
            limits: listener_limits(&args.listener)?,
            drain_timeout: seconds("--drain-timeout", args.listener.drain_timeout, false)?,
            rotate: args
                .rotate
                .as_deref()
                .map(store::RotateRule::parse)
                .transpose()?,
            retain: args
                .retain
                .as_deref()
                .map(|v| parse_age("--retain", v))
                .transpose()?,
        })
    }
}

pub fn run(db: &Path, args: RecordArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_args(&args, db)?;
    let client_tls = tls::client_config(args.upstream_ca.as_deref())?;
    let server_tls = plan
        .cert
        .as_ref()
        .map(tls::server_config)
        .transpose()?
        .map(TlsAcceptor::from);
    // Bind before touching the database, so a busy port leaves no empty session behind.
    let (api_listener, api_addr) = bind(args.api_listen, "--api-listen")?;
    let callback = args
        .callback_listen
        .map(|addr| bind(addr, "--callback-listen"))
        .transpose()?;
    let ui = args.ui.map(|addr| bind(addr, "--ui")).transpose()?;

    let conn = store::open(db, Access::Create)?;
    store::check_integrity(&conn, db)?;
    let key = store::redaction_key(&conn)?;
    let redactor = if args.keep_secrets {
        tracing::warn!(
            "--keep-secrets: credentials will be stored IN CLEAR in {}",
            db.display()
        );
        Redactor::disabled()
    } else {
        Redactor::new(&key)
    };
    let guard = CallbackGuard {
        listeners: [Some(api_addr), callback.as_ref().map(|(_, addr)| *addr)]
            .into_iter()
            .flatten()
            .collect(),
        public: plan.public_url.as_ref().map(CallbackGuard::host_port),
        allow: args.callback_allow.clone(),
    };
    let routes = Arc::new(
        CallbackRoutes::new(
            &key,
            plan.public_url.as_ref().map(|u| u.to_string()).as_deref(),
            store::load_routes(&conn)?,
        )
        .with_guard(guard),
    );
    let clock = Arc::new(SessionClock::start());
    let mut config = serde_json::json!({
        "graphtape": env!("CARGO_PKG_VERSION"),
        "upstream": plan.upstream.to_string(),
        "upstream_ca": args.upstream_ca.as_ref().map(|p| p.display().to_string()),
        "upstream_timeout_s": args.upstream_timeout,
        "api_listen": api_addr.to_string(),
        "api_tls": args.api_tls,
        "callback_listen": callback.as_ref().map(|(_, addr)| addr.to_string()),
        "callback_tls": callback.is_some() && server_tls.is_some(),
        "public_url": plan.public_url.as_ref().map(|u| u.to_string()),
        "bot_url": plan.bot.as_ref().map(|u| u.to_string()),
        "callback_allow": args.callback_allow,
        "bot_timeout_s": args.bot_timeout,
        "max_body": plan.max_body,
        "on_store_error": format!("{:?}", args.on_store_error).to_lowercase(),
        "keep_secrets": args.keep_secrets,
        "rotate": args.rotate,
        "retain": args.retain,
    });
    let sanitizer = sanitizers::for_record(&args.sanitizers, &key, &mut config)?;
    // Held until the session is closed: `sessions delete` refuses a live session. The
    // default name is allocated atomically (`-2`, `-3`... when taken).
    let (session_id, name, live) = match args.session.clone() {
        Some(name) => {
            let (id, live) =
                store::create_live_session(&conn, db, &name, clock.wall_start_us(), &config)?;
            (id, name, live)
        }
        None => store::create_live_session_named(
            &conn,
            db,
            default_names(clock.wall_start_us()),
            clock.wall_start_us(),
            &config,
        )?,
    };
    // With --rotate the writer owns the sessions' live locks, releasing each as its
    // session ends.
    let (live, (recorder, writer)) = match plan.rotate {
        None => (
            Some(live),
            store::spawn_writer_sanitized(conn, session_id, redactor, plan.max_body, sanitizer),
        ),
        Some(rule) => {
            let rotation = store::Rotation::new(
                rule,
                plan.retain,
                db.to_path_buf(),
                name.clone(),
                config,
                clock.clone(),
                session_id,
                live,
            );
            let writer = store::spawn_writer_rotating(
                conn,
                session_id,
                redactor,
                plan.max_body,
                sanitizer,
                rotation,
            );
            (None, writer)
        }
    };

    // Connections run on the workers; the runtime only accepts, signals and serves the
    // inspector, so one thread does.
    let runtime = runtime(Some(1)).context("starting the async runtime")?;
    let workers = Arc::new(
        Workers::start(args.listener.threads.unwrap_or_else(default_threads))
            .context("starting the connection workers")?,
    );
    let relay = |recorder: Recorder, timeout| Relay {
        forwarder: Forwarder::per_worker(client_tls.clone(), timeout, workers.count()),
        clock: clock.clone(),
        recorder,
        policy: args.on_store_error,
        max_body: plan.max_body,
    };
    let api = Arc::new(ApiProxy {
        upstream: plan.upstream,
        relay: relay(recorder.clone(), plan.upstream_timeout),
        routes: routes.clone(),
    });
    let callback_proxy = Arc::new(CallbackProxy {
        bot: plan.bot,
        relay: relay(recorder, plan.bot_timeout),
        routes,
    });

    let workers_of_run = workers.clone();
    let drain = Drain::new(plan.drain_timeout);
    let limits = plan.limits;
    let session = name.clone();
    let api_tls = args.api_tls.then(|| server_tls.clone()).flatten();
    let drain_of_run = drain.clone();
    let served = runtime.block_on(async move {
        let drain = drain_of_run;
        let workers = workers_of_run;
        let mut signals = StopSignals::new()?;
        let (stop_tx, stop_rx) = watch::channel(());
        let stop_rx_ui = stop_rx.clone();
        let mut servers = Vec::new();
        let mut out = std::io::stdout().lock();
        writeln!(out, "recording session={name} db={}", db.display())?;
        if let Some(CertSource::SelfSigned { write_to, .. }) = &plan.cert {
            writeln!(out, "tls cert={}", write_to.display())?;
        }
        writeln!(
            out,
            "listening api={}",
            listen_url(api_addr, api_tls.is_some())
        )?;
        servers.push(tokio::spawn(serve_with(
            tokio::net::TcpListener::from_std(api_listener)?,
            api_tls,
            limits,
            drain.clone(),
            Some(workers.clone()),
            move |req| api.clone().handle(req),
            stopped(stop_rx.clone()),
        )));
        if let Some((listener, addr)) = callback {
            writeln!(
                out,
                "listening callback={}",
                listen_url(addr, server_tls.is_some())
            )?;
            servers.push(tokio::spawn(serve_with(
                tokio::net::TcpListener::from_std(listener)?,
                server_tls,
                limits,
                drain.clone(),
                Some(workers),
                move |req| callback_proxy.clone().handle(req),
                stopped(stop_rx),
            )));
        }
        if let Some((listener, addr)) = ui {
            super::ui::warn_if_exposed(addr);
            writeln!(out, "listening ui={}", listen_url(addr, false))?;
            servers.push(tokio::spawn(crate::ui::serve(
                tokio::net::TcpListener::from_std(listener)?,
                db.to_path_buf(),
                stopped(stop_rx_ui),
            )));
        }
        out.flush()?;
        drop(out);

        signals.next().await;
        let again = drain.clone();
        tokio::spawn(async move {
            signals.next().await;
            again.cut_now();
        });
        tracing::info!("stopping: finishing in-flight exchanges (signal again to stop now)");
        drop(stop_tx);
        for server in servers {
            server.await?;
        }
        anyhow::Ok(())
    });
    // Connection tasks still running after the drain deadline hold recorders; ending
    // the runtime and the workers drops them so the writer can finish.
    runtime.shutdown_timeout(Duration::from_secs(1));
    workers.stop();
    let health = writer.finish(clock.now_us());
    drop(live);
    served?;

    // With --rotate the count covers every session of the recording.
    let rotated = if plan.rotate.is_some() {
        " and its rotations"
    } else {
        ""
    };
    eprintln!(
        "graphtape: session {session}{rotated} recorded: {} in {}",
        crate::plural::count(health.recorded(), "exchange"),
        db.display()
    );
    let cut_short = drain.cut_short();
    if cut_short > 0 {
        eprintln!(
            "graphtape: error: {cut_short} exchanges were still open at shutdown; recorded with what had arrived and the error \"{}\"",
            crate::server::CUT_SHORT
        );
    }
    if health.refused() > 0 {
        eprintln!(
            "graphtape: error: {} refused (503 recordingFailed, --on-store-error fail) while the store was failing",
            crate::plural::count(health.refused(), "request")
        );
    }
    if health.unrecorded_refusals() > 0 {
        eprintln!(
            "graphtape: error: {} could not be recorded either",
            crate::plural::count(health.unrecorded_refusals(), "refused request")
        );
    }
    let unrecorded = health.unrecorded();
    if unrecorded > 0 {
        eprintln!(
            "graphtape: error: {} passed through but NOT recorded",
            crate::plural::count(unrecorded, "exchange")
        );
    }
    if unrecorded > 0 || health.unrecorded_refusals() > 0 || health.refused() > 0 {
        eprintln!(
            "graphtape: last store error: {}",
            health.last_error().unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    if health.has_failed() {
        eprintln!(
            "graphtape: the store was locked or failing for a while, but nothing was lost (last: {})",
            health.last_error().unwrap_or_default()
        );
    }
    if cut_short > 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The listener limits from their flags.
pub(crate) fn listener_limits(args: &crate::cli::ListenerArgs) -> anyhow::Result<ServerLimits> {
    Ok(ServerLimits::from_flags(
        args.header_timeout,
        args.body_timeout,
        args.idle_timeout,
        args.max_connections,
    )?)
}

/// `rec-YYYYMMDD-HHMMSS`, then with a suffix (`-2`, `-3`...) for when that is taken.
fn default_names(wall_us: i64) -> impl Iterator<Item = String> {
    let stamp: String = format_unix_micros(wall_us)
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let base = format!("rec-{}", stamp.replace('T', "-"));
    let suffixed = (2..).map({
        let base = base.clone();
        move |n| format!("{base}-{n}")
    });
    std::iter::once(base).chain(suffixed)
}

async fn stopped(mut rx: watch::Receiver<()>) {
    // Resolves when the sender is dropped.
    while rx.changed().await.is_ok() {}
}
