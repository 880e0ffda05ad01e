//! `graphtape demo`: the main job on a machine with no bot and no Graph. A scripted
//! incoming call between two stand-ins on 127.0.0.1 goes through a real `graphtape
//! record` process into a real SQLite file; then its `show` and `check`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::cli::{CheckArgs, ShowArgs};
use crate::demo::{bot::Bot, graph::Graph, BOT_PATH};
use crate::inspect::Severity;
use crate::store::{self, Access};

/// The whole recorded flow must be done by then (it takes about a second).
const DEADLINE: Duration = Duration::from_secs(60);

pub fn run(db: &Path, db_given: bool) -> anyhow::Result<ExitCode> {
    let (db, session) = if db_given {
        (db.to_path_buf(), free_name(db)?)
    } else {
        // Kept after the demo so its output can be explored; never ./graphtape.db.
        let dir = tempfile::Builder::new()
            .prefix("graphtape-demo-")
            .tempdir()
            .context("creating a directory for the demo's database")?
            .keep();
        (dir.join("demo.db"), "demo".to_string())
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(DEADLINE, record(&db, &session))
            .await
            .unwrap_or_else(|_| bail!("the demo did not finish within {DEADLINE:?}"))
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));

    let quoted = db.display().to_string();
    heading(&format!("graphtape show {session} --db {quoted}"))?;
    super::show::run(
        &db,
        &ShowArgs {
            session: session.clone(),
            call: None,
            since: None,
            seqs: Vec::new(),
            json: false,
            no_pager: true,
        },
    )?;
    heading(&format!("graphtape check {session} --db {quoted}"))?;
    // check exits 1 on the race it finds: that finding is the point of the demo.
    super::check::run(
        &db,
        &CheckArgs {
            session: Some(session.clone()),
            rules: false,
            call: None,
            json: false,
            fail_on: Severity::Warning,
            answer_limit: 15.0,
            junit: None,
        },
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "(That finding is the demo's deliberate race: the stand-in Graph notified the \
         invite's completion before answering the invite, as Graph sometimes does.)"
    )?;
    writeln!(
        out,
        "\nThe database is {quoted}. Next: `graphtape calls {session} --db {quoted}`, \
         `graphtape export {session} --db {quoted}`, or point your own bot at \
         `graphtape record` (see the README)."
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `demo`, `demo-2`, ... whichever the database does not hold yet.
fn free_name(db: &Path) -> anyhow::Result<String> {
    if !db.exists() {
        return Ok("demo".into());
    }
    let conn = store::open(db, Access::Existing)?;
    let names = std::iter::once("demo".to_string()).chain((2..).map(|n| format!("demo-{n}")));
    Ok(store::unused_name(&conn, names).unwrap_or_else(|| "demo".into()))
}

fn heading(command: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n$ {command}")?;
    out.flush()
}

/// Runs the stand-ins and `graphtape record` between them until the call is over.
///
/// The callback port is picked before `record` starts (its public URL names it), so
/// something else can take it first; then `record` stops before listening, and the
/// demo tries again on another port, up to three times.
async fn record(db: &Path, session: &str) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match record_once(db, session).await? {
            None => return Ok(()),
            Some(status) if attempt < 3 => {
                eprintln!(
                    "graphtape demo: graphtape record stopped before listening ({status}); \
                     trying again on another port"
                );
                attempt += 1;
            }
            Some(status) => bail!(
                "graphtape record stopped before listening ({status}); see its messages above"
            ),
        }
    }
}

/// One run of [`record`]: the exit status of a `record` that stopped before listening,
/// or None once the call is over.
async fn record_once(db: &Path, session: &str) -> anyhow::Result<Option<std::process::ExitStatus>> {
    let callback_port = free_port()?;
    let callback = format!("http://127.0.0.1:{callback_port}");
    let mut bot = Bot::start()?;
    let (graph_server, graph) = Graph::start(format!("{callback}{BOT_PATH}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "graphtape demo: a scripted incoming call between two stand-ins on 127.0.0.1,\n\
         recorded by a real `graphtape record` into {}\n\
         \x20 stand-in Graph  {}  (answers the calling API, sends notifications)\n\
         \x20 stand-in bot    {}  (answers the call, invites a participant, hangs up)",
        db.display(),
        graph_server.url,
        bot.server.url,
    )?;
    let args: Vec<String> = [
        "record",
        "--db",
        &db.display().to_string(),
        "--session",
        session,
        "--upstream",
        &graph_server.url,
        "--api-listen",
        "127.0.0.1:0",
        "--callback-listen",
        &format!("127.0.0.1:{callback_port}"),
        "--public-url",
        &callback,
        "--bot-url",
        &bot.server.url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    writeln!(out, "\n$ graphtape {}", args.join(" "))?;
    out.flush()?;
    drop(out);

    let exe = std::env::current_exe().context("finding the graphtape binary")?;
    let mut command = Command::new(exe);
    // The demo's settings are all on the command line: GRAPHTAPE_* variables meant for
    // the user's own recordings (a CA, --api-tls, ...) must not change it.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        if name.starts_with("GRAPHTAPE_") && name != "GRAPHTAPE_LOG" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting graphtape record")?;
    let mut lines = BufReader::new(child.stdout.take().context("record's stdout")?).lines();
    let mut api = None;
    while let Some(line) = lines.next_line().await? {
        println!("{line}");
        if let Some(url) = line.strip_prefix("listening api=") {
            api = Some(url.to_string());
        }
        if line.starts_with("listening callback=") {
            break;
        }
    }
    let Some(api) = api else {
        return Ok(Some(child.wait().await?));
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let flow = async {
        graph.ring().await?;
        bot.run(&api).await
    };
    let flowed = flow.await;
    stop(&child)?;
    let status = child.wait().await?;
    flowed?;
    if let Some(problem) = graph.problems.lock().ok().and_then(|p| p.first().cloned()) {
        bail!("the stand-in Graph: {problem}");
    }
    if !status.success() {
        bail!("graphtape record ended with {status}; see its messages above");
    }
    Ok(None)
}

/// A port the callback listener can take (the public URL must name it up front).
///
/// The kernel's pick. Ports below its ephemeral range would be safe from outgoing
/// connections, but other programs (and this project's tests) hold those on purpose and
/// let them go between uses; the retry in [`record`] covers a port taken meanwhile.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Asks `record` to stop as Ctrl-C would: it drains, flushes and closes the session.
fn stop(child: &tokio::process::Child) -> anyhow::Result<()> {
    let Some(pid) = child.id() else {
        return Ok(());
    };
    // SAFETY: kill(2) on a child this process spawned and has not reaped yet.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } != 0 {
        bail!(
            "could not stop graphtape record: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}
