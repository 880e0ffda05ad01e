//! `graphtape record`: run the recording proxy until SIGINT/SIGTERM.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::cli::RecordArgs;
use crate::clock::{format_unix_micros, SessionClock};
use crate::config::{parse_size, Upstream};
use crate::proxy::api::ApiProxy;
use crate::proxy::Forwarder;
use crate::redact::Redactor;
use crate::server::{listen_url, serve};
use crate::store::{self, Access};
use crate::tls;

pub fn run(db: &Path, args: RecordArgs) -> anyhow::Result<ExitCode> {
    let upstream = Upstream::parse(&args.upstream)?;
    let max_body = parse_size(&args.max_body)?;
    if !(args.upstream_timeout.is_finite() && args.upstream_timeout > 0.0) {
        anyhow::bail!(
            "--upstream-timeout {}: give a positive number of seconds",
            args.upstream_timeout
        );
    }
    let client_tls = tls::client_config(args.upstream_ca.as_deref())?;
    // Bind before touching the database, so a busy port leaves no empty session behind.
    let api_listener = std::net::TcpListener::bind(args.api_listen)
        .with_context(|| format!("--api-listen {}: cannot listen", args.api_listen))?;
    api_listener.set_nonblocking(true)?;
    let api_addr = api_listener.local_addr()?;

    let conn = store::open(db, Access::Create)?;
    let redactor = if args.keep_secrets {
        tracing::warn!(
            "--keep-secrets: credentials will be stored IN CLEAR in {}",
            db.display()
        );
        Redactor::disabled()
    } else {
        Redactor::new(&store::redaction_key(&conn)?)
    };
    let clock = Arc::new(SessionClock::start());
    let name = match args.session.clone() {
        Some(name) => name,
        None => default_name(&conn, clock.wall_start_us())?,
    };
    let config = serde_json::json!({
        "graphtape": env!("CARGO_PKG_VERSION"),
        "upstream": upstream.to_string(),
        "upstream_ca": args.upstream_ca.as_ref().map(|p| p.display().to_string()),
        "upstream_timeout_s": args.upstream_timeout,
        "api_listen": api_addr.to_string(),
        "max_body": max_body,
        "on_store_error": format!("{:?}", args.on_store_error).to_lowercase(),
        "keep_secrets": args.keep_secrets,
    });
    let session_id = store::create_session(&conn, &name, clock.wall_start_us(), &config)?;
    let (recorder, writer) = store::spawn_writer(conn, session_id, redactor, max_body);

    let proxy = Arc::new(ApiProxy {
        upstream,
        forwarder: Forwarder::new(client_tls, Duration::from_secs_f64(args.upstream_timeout)),
        clock: clock.clone(),
        recorder,
        policy: args.on_store_error,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let session = name.clone();
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(api_listener)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "recording session={name} db={}", db.display())?;
        writeln!(out, "listening api={}", listen_url(api_addr, false))?;
        out.flush()?;
        drop(out);

        let (stop_tx, stop_rx) = watch::channel(());
        let api = tokio::spawn(serve(
            listener,
            None,
            move |req| proxy.clone().handle(req),
            stopped(stop_rx),
        ));
        wait_for_signal().await?;
        tracing::info!("stopping: finishing in-flight exchanges");
        drop(stop_tx);
        api.await?;
        anyhow::Ok(())
    });
    // Connection tasks still running after the drain deadline hold recorders; ending
    // the runtime drops them so the writer can finish.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let health = writer.finish(clock.now_us());
    served?;

    let unrecorded = health.unrecorded();
    eprintln!(
        "graphtape: session {session} recorded: {} exchanges in {}",
        health.recorded(),
        db.display()
    );
    if unrecorded > 0 {
        eprintln!(
            "graphtape: error: {unrecorded} exchanges passed through but were NOT recorded; last store error: {}",
            health.last_error().unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `rec-YYYYMMDD-HHMMSS`, with a suffix if that is taken.
fn default_name(conn: &rusqlite::Connection, wall_us: i64) -> anyhow::Result<String> {
    let stamp: String = format_unix_micros(wall_us)
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let base = format!("rec-{}", stamp.replace('T', "-"));
    for n in 1.. {
        let candidate = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if store::find_session(conn, &candidate).is_err() {
            return Ok(candidate);
        }
    }
    unreachable!("an unbounded search always returns")
}

async fn stopped(mut rx: watch::Receiver<()>) {
    // Resolves when the sender is dropped.
    while rx.changed().await.is_ok() {}
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
