//! Command-line arguments as typed (raw); `config` and the commands validate them.
//! Every flag has an environment variable, so CI and containers can configure graphtape
//! without rewriting command lines.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::proxy::StoreErrorPolicy;

/// Record, replay and explain Microsoft Graph calling bot traffic.
#[derive(Debug, Parser)]
#[command(name = "graphtape", version, about, long_about = None)]
pub struct Cli {
    /// The SQLite database holding the sessions.
    #[arg(
        long,
        global = true,
        env = "GRAPHTAPE_DB",
        default_value = "graphtape.db"
    )]
    pub db: PathBuf,

    /// Whether --db (or GRAPHTAPE_DB) was given, rather than the default taken.
    #[arg(skip)]
    pub db_given: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Proxy the bot's Graph API calls and Graph's notifications, recording every exchange.
    Record(Box<RecordArgs>),
    /// List the sessions in the database, by start time (`sessions delete NAME...`
    /// removes some).
    Sessions(SessionsArgs),
    /// Write a session as a recording file (graphtape/1 JSON), whole or cut to some calls.
    Export(Box<ExportArgs>),
    /// Load a recording file into the database as a new session.
    Import(ImportArgs),
    /// Play Graph to a bot from a recording and re-deliver its notifications; exit 0 if
    /// the bot behaved as recorded, 1 if not.
    Replay(Box<ReplayArgs>),
    /// Replay a recording many times in other notification orders Graph may produce;
    /// shrink each failure to its cause; exit 0 if every run passed, 1 if not.
    Explore(Box<ExploreArgs>),
    /// Compare two sessions event by event.
    Diff(DiffArgs),
    /// One line per call: id, first and last state, counts, duration.
    Calls(CallsArgs),
    /// The session's events in global order, both directions.
    Show(ShowArgs),
    /// Ordering anomalies per call; exit 1 if any at or above --fail-on.
    #[command(after_help = check_help())]
    Check(CheckArgs),
    /// A local, read-only web inspector over the database: sessions, timelines that
    /// follow a recording live, exchanges, findings, divergences, diffs.
    Ui(UiArgs),
    /// Delete old sessions: by age (--older-than 7d) or all but the newest (--keep-last N).
    Prune(PruneArgs),
    /// Give the space of deleted sessions back to the file system.
    Vacuum,
    /// Record a scripted incoming call between a stand-in Graph and a stand-in bot on
    /// 127.0.0.1 (no real bot or Graph needed), then show and check it.
    Demo,
}

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Where the inspector listens. Deliberately no environment variable: an address
    /// other than loopback must be given here, and draws a warning (recordings can
    /// contain personal data).
    #[arg(long, default_value = "127.0.0.1:4040")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct CallsArgs {
    /// A session in --db, or a recording file.
    pub session: String,
    /// One JSON object per call.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A session in --db, or a recording file.
    pub session: String,
    /// Only events about this call (any id spelling).
    #[arg(long)]
    pub call: Option<String>,
    /// Only events from this sequence number on.
    #[arg(long)]
    pub since: Option<u64>,
    /// Print these exchanges in full (headers, decoded bodies, timings,
    /// notifications): a sequence number or a range A..B; repeatable. With --call,
    /// only those about the call.
    #[arg(long = "seq", value_name = "N|A..B", conflicts_with = "since")]
    pub seqs: Vec<String>,
    /// One JSON object per event, for scripts (with --seq: the event as the recording
    /// format has it, bodies decoded to JSON where they are JSON).
    #[arg(long)]
    pub json: bool,
    /// Never page, even on a terminal.
    #[arg(long)]
    pub no_pager: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A session in --db, or a recording file.
    #[arg(required_unless_present = "rules")]
    pub session: Option<String>,
    /// List the rules (id, severity range, what each finds) and exit.
    #[arg(long)]
    pub rules: bool,
    /// Only findings about this call (any id spelling).
    #[arg(long)]
    pub call: Option<String>,
    /// One JSON object per finding.
    #[arg(long)]
    pub json: bool,
    /// The least severity that makes the exit code 1: info, warning or error.
    #[arg(long, default_value = "warning", value_parser = parse_severity)]
    pub fail_on: crate::inspect::Severity,
    /// answer-too-late: seconds a bot has to answer an incoming call (15; 5 for
    /// policy-based recording bots).
    #[arg(long, env = "GRAPHTAPE_ANSWER_LIMIT", default_value_t = 15.0)]
    pub answer_limit: f64,
    /// Also write the findings as JUnit XML to this file: a testsuite for the session,
    /// a testcase per call, a failure per finding at or above --fail-on.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// `check --help` ends with the rule table, the very lines `check --rules` prints.
fn check_help() -> String {
    format!(
        "Rules (as `check --rules` prints them):\n{}",
        crate::inspect::rules_table().join("\n")
    )
}

fn parse_severity(value: &str) -> Result<crate::inspect::Severity, String> {
    value.parse()
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A session in --db, or a recording file (graphtape/1 JSON).
    pub source: String,

    /// The bot's webhook base URL; each notification goes to this + the path it
    /// reached when recorded.
    #[arg(long, env = "GRAPHTAPE_BOT_URL")]
    pub bot_url: String,

    /// Where the bot's Graph client connects during the replay.
    #[arg(long, env = "GRAPHTAPE_API_LISTEN", default_value = "127.0.0.1:7080")]
    pub api_listen: SocketAddr,

    /// Recorded gaps are divided by this (1 = recorded timing, 20 = twenty times faster).
    /// Default: 1 for replay; explore runs use --fast unless --speed is given.
    #[arg(long, env = "GRAPHTAPE_SPEED", conflicts_with = "fast")]
    pub speed: Option<f64>,

    /// Skip recorded gaps: each notification as soon as its cause allows.
    #[arg(long, env = "GRAPHTAPE_FAST")]
    pub fast: bool,

    /// Replay only this call (any id spelling); repeatable.
    #[arg(long = "call", value_name = "ID")]
    pub calls: Vec<String>,

    /// Write the verdict as JSON to this file; `-` writes it to standard output (and
    /// everything else graphtape prints to standard error).
    #[arg(long)]
    pub report: Option<PathBuf>,

    /// Write the verdict as JUnit XML to this file: a testsuite for the replay, a
    /// testcase per call, a failure per divergence.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Seconds to wait for a request the recording says comes next (a notification's
    /// cause, a held response, the bot's last requests).
    #[arg(long, env = "GRAPHTAPE_WAIT", default_value_t = 10.0)]
    pub wait: f64,

    /// Seconds without a request before the replay ends once everything was delivered
    /// (catches extra requests). Default: 0.5 for replay, 0.05 per explore run.
    #[arg(long, env = "GRAPHTAPE_SETTLE")]
    pub settle: Option<f64>,

    /// How notifications are authenticated: sign (fresh tokens with graphtape's key,
    /// JWKS served on the API listener), token:VALUE, or none.
    #[arg(long, env = "GRAPHTAPE_CALLBACK_AUTH", default_value = "sign")]
    pub callback_auth: String,

    /// PKCS#8 PEM key (P-256 or RSA) for --callback-auth sign (default: one generated
    /// and saved next to the database as <db>-signing-key.pem).
    #[arg(long, env = "GRAPHTAPE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,

    /// Name of the session that records this replay (default: <session>-replay-N).
    #[arg(long, env = "GRAPHTAPE_RECORD_AS", conflicts_with = "no_record")]
    pub record_as: Option<String>,

    /// Keep no replay session: the replay is recorded in a temporary database, removed
    /// at the end (the report is the same). --db is then only read.
    #[arg(long, env = "GRAPHTAPE_NO_RECORD")]
    pub no_record: bool,

    /// Whether --db was given (set from the command line, not a flag).
    #[arg(skip)]
    pub db_given: bool,

    /// Deliver notifications only, on the recorded clock (the bot's API calls do not go
    /// through graphtape).
    #[arg(long, env = "GRAPHTAPE_NO_GRAPH")]
    pub no_graph: bool,

    /// Another JSON key to ignore when matching request bodies; repeatable.
    #[arg(long = "ignore", value_name = "KEY")]
    pub ignore: Vec<String>,

    /// Another JSON key whose value the bot generates (learned and substituted like
    /// clientContext); repeatable.
    #[arg(long = "learn", value_name = "KEY")]
    pub learn: Vec<String>,

    /// Seconds the bot has to answer a notification.
    #[arg(long, env = "GRAPHTAPE_BOT_TIMEOUT", default_value_t = 15.0)]
    pub bot_timeout: f64,

    /// Serve the API listener over TLS with this certificate (bots on another host).
    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub listener: ListenerArgs,

    /// Deliver exactly this schedule (an explore `run-<i>.json` or `run-<i>.min.json`):
    /// its order, perturbations and ids.
    #[arg(long, env = "GRAPHTAPE_SCHEDULE")]
    pub schedule: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The replay flags: source, --bot-url, --api-listen, --call, --wait, ...
    #[command(flatten)]
    pub replay: ReplayArgs,

    /// How many runs (schedules) to try.
    #[arg(long, env = "GRAPHTAPE_RUNS", default_value_t = 100)]
    pub runs: u64,

    /// Seed of the schedules: the same seed gives the same runs.
    #[arg(long, env = "GRAPHTAPE_SEED", default_value_t = 1)]
    pub seed: u64,

    /// pct (at most 2 perturbations per run), pct:K, random, or exhaustive.
    #[arg(long, env = "GRAPHTAPE_STRATEGY", default_value = "pct")]
    pub strategy: String,

    /// Comma list of reorder, race, delay, duplicate, drop, retry (default: all but
    /// drop).
    #[arg(long, env = "GRAPHTAPE_PERTURB")]
    pub perturb: Option<String>,

    /// Longest explored delay of one notification, in seconds.
    #[arg(long, env = "GRAPHTAPE_MAX_DELAY", default_value_t = 2.0)]
    pub max_delay: f64,

    /// Start this command fresh for every run ({api_url}, {api_listen}, {run} are
    /// replaced; also GRAPHTAPE_API_URL, GRAPHTAPE_API_LISTEN, GRAPHTAPE_RUN); stopped
    /// after the run with SIGTERM, SIGKILL after 5 s.
    #[arg(long, env = "GRAPHTAPE_BOT_CMD")]
    pub bot_cmd: Option<String>,

    /// Run this after each run (same placeholders); non-zero fails the run.
    #[arg(long, env = "GRAPHTAPE_CHECK_CMD")]
    pub check_cmd: Option<String>,

    /// Where failing schedules (and bot logs) go (default: explore-<session>/).
    #[arg(long, env = "GRAPHTAPE_SCHEDULES")]
    pub schedules: Option<PathBuf>,

    /// Most shrink re-runs in one explore, over all its failures; then the smallest
    /// failing schedule found so far is reported, marked as not shown minimal.
    #[arg(long, env = "GRAPHTAPE_MAX_SHRINK_RUNS", default_value_t = 50)]
    pub max_shrink_runs: usize,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first session (e.g. the recording), in --db or a recording file.
    pub a: String,
    /// The second session (e.g. its replay), in --db or a recording file.
    pub b: String,
    /// Unchanged events shown around each difference.
    #[arg(long, default_value_t = 2)]
    pub context: usize,
    /// The comparison as one JSON document on standard output (every line, with its
    /// op: same, only_a, only_b).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Where API calls go: Graph, or a test double.
    #[arg(
        long,
        env = "GRAPHTAPE_UPSTREAM",
        default_value = "https://graph.microsoft.com"
    )]
    pub upstream: String,

    /// Address the bot's Graph client is pointed at (port 0 picks a free port).
    #[arg(long, env = "GRAPHTAPE_API_LISTEN", default_value = "127.0.0.1:7080")]
    pub api_listen: SocketAddr,

    /// Session name (default: rec-<UTC date>-<time>).
    #[arg(long, env = "GRAPHTAPE_SESSION")]
    pub session: Option<String>,

    /// Extra PEM certificates to trust for the upstream (a private CA).
    #[arg(long, env = "GRAPHTAPE_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// Seconds the upstream has to answer one request completely.
    #[arg(long, env = "GRAPHTAPE_UPSTREAM_TIMEOUT", default_value_t = 30.0)]
    pub upstream_timeout: f64,

    /// Bodies larger than this are forwarded whole but stored as a prefix with their
    /// length and SHA-256 (e.g. 16MiB, 64k).
    #[arg(long, env = "GRAPHTAPE_MAX_BODY", default_value = "16MiB")]
    pub max_body: String,

    /// Start a new session (NAME-2, NAME-3, ...) when the current one has run this long
    /// (`1h`, `30m`) or stored this much (`500MB`, `20KB`).
    #[arg(long, env = "GRAPHTAPE_ROTATE", value_name = "AGE|SIZE")]
    pub rotate: Option<String>,

    /// With --rotate: delete this recording's ended sessions that started longer ago
    /// than this (`7d`).
    #[arg(
        long,
        env = "GRAPHTAPE_RETAIN",
        value_name = "AGE",
        requires = "rotate"
    )]
    pub retain: Option<String>,

    /// What to do when the store fails: refuse traffic (fail) or keep it flowing
    /// unrecorded and exit non-zero at the end (forward).
    #[arg(
        long,
        env = "GRAPHTAPE_ON_STORE_ERROR",
        value_enum,
        default_value = "forward"
    )]
    pub on_store_error: StoreErrorPolicy,

    /// Store credentials in clear (tokens, cookies, keys). For debugging only.
    #[arg(long, env = "GRAPHTAPE_KEEP_SECRETS")]
    pub keep_secrets: bool,

    /// Address Graph's notifications reach (enables the callback listener).
    #[arg(long, env = "GRAPHTAPE_CALLBACK_LISTEN")]
    pub callback_listen: Option<SocketAddr>,

    /// The bot's own webhook; notifications on paths graphtape did not mint go to
    /// bot-url + path (e.g. the registration's calling webhook, incoming calls).
    #[arg(long, env = "GRAPHTAPE_BOT_URL")]
    pub bot_url: Option<String>,

    /// The URL Graph reaches the callback listener at. When set, `callbackUri` in the
    /// bot's requests is rewritten to a URL under it that leads back to the original.
    #[arg(long, env = "GRAPHTAPE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Mint callback routes only to this host (`host`, `host:port` or `*.domain`);
    /// repeatable. Other `callbackUri` values are left as the bot gave them.
    #[arg(
        long = "callback-allow",
        value_name = "HOST",
        env = "GRAPHTAPE_CALLBACK_ALLOW",
        value_delimiter = ','
    )]
    pub callback_allow: Vec<String>,

    /// Seconds the bot has to answer a notification completely.
    #[arg(long, env = "GRAPHTAPE_BOT_TIMEOUT", default_value_t = 15.0)]
    pub bot_timeout: f64,

    /// The certificate for the callback listener (and --api-tls).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Serve the API listener over TLS too, with the same certificate.
    #[arg(long, env = "GRAPHTAPE_API_TLS")]
    pub api_tls: bool,

    /// Also serve the read-only web inspector (`graphtape ui`) at this address.
    #[arg(long, env = "GRAPHTAPE_UI", value_name = "ADDR")]
    pub ui: Option<SocketAddr>,

    /// Personal and tenant data rules, applied before anything is stored.
    #[command(flatten)]
    pub sanitizers: SanitizeArgs,

    #[command(flatten)]
    pub listener: ListenerArgs,
}

/// Limits every listener applies to its clients, and how a stop drains them.
#[derive(Debug, Args)]
pub struct ListenerArgs {
    /// Seconds a client has to send a request head (from its first byte; for a new
    /// connection, from the connect). Slower clients are disconnected.
    #[arg(long, env = "GRAPHTAPE_HEADER_TIMEOUT", default_value_t = 30.0)]
    pub header_timeout: f64,

    /// Seconds to wait for the next piece of a request body; then 408 and recorded.
    #[arg(long, env = "GRAPHTAPE_BODY_TIMEOUT", default_value_t = 30.0)]
    pub body_timeout: f64,

    /// Seconds a keep-alive connection may sit with no request before it is closed.
    #[arg(long, env = "GRAPHTAPE_IDLE_TIMEOUT", default_value_t = 75.0)]
    pub idle_timeout: f64,

    /// Connections served at once per listener; more wait to be accepted.
    #[arg(long, env = "GRAPHTAPE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a stop waits for in-flight exchanges before cutting them short
    /// (recorded with what arrived). A second SIGINT/SIGTERM cuts at once.
    #[arg(long, env = "GRAPHTAPE_DRAIN_TIMEOUT", default_value_t = 30.0)]
    pub drain_timeout: f64,

    /// Threads serving connections (default: one per CPU core). For `record`, connection
    /// workers, each an event loop that keeps its connections for their whole life; for
    /// `replay` and `explore`, the async runtime's workers.
    #[arg(long, env = "GRAPHTAPE_THREADS")]
    pub threads: Option<usize>,
}

/// Where a listener's TLS certificate comes from; none of them means plain HTTP.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// TLS certificate chain (PEM).
    #[arg(long, env = "GRAPHTAPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[arg(long, env = "GRAPHTAPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a fresh self-signed certificate; its PEM is written next to the
    /// database and its path printed (`tls cert=...`). For local testing.
    #[arg(long, env = "GRAPHTAPE_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// One JSON object per session instead of a table.
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub action: Option<SessionsAction>,
}

/// What `sessions` can do besides listing.
#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Delete sessions with their exchanges (all named, or none if one is unknown or
    /// being recorded).
    Delete(SessionsDeleteArgs),
}

#[derive(Debug, Args)]
pub struct SessionsDeleteArgs {
    /// The sessions to delete.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("rule").required(true).args(["older_than", "keep_last"])))]
pub struct PruneArgs {
    /// Delete sessions that started longer ago than this (e.g. 7d, 12h, 30m, 2w).
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,

    /// Delete all but the N most recently started sessions.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A session in --db, or a recording file.
    pub session: String,

    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    /// graphtape (the lossless recording format), har (HAR 1.2, for dev tools), html
    /// (the timeline as one self-contained page) or mermaid (a sequence diagram).
    #[arg(long, value_enum, default_value = "graphtape")]
    pub format: ExportFormat,

    /// Cut a fixture: keep only this call's events (any id spelling); repeatable. With
    /// --format mermaid: draw only this call.
    #[arg(long = "call", value_name = "ID")]
    pub calls: Vec<String>,

    /// Cut a fixture: keep only the events with these sequence numbers (inclusive;
    /// `A..`, `..B` and `N` too).
    #[arg(long, value_name = "A..B", value_parser = parse_seq_range)]
    pub seq: Option<crate::recording::SeqRange>,

    /// The session name written into the file (default: the source's; a cut's is
    /// <session>-cut).
    #[arg(long = "as", value_name = "NAME")]
    pub rename: Option<String>,

    /// Sanitise personal and tenant data with the rules given (--redact-pii when none
    /// is); any rule flag implies it.
    #[arg(long)]
    pub sanitize: bool,

    #[command(flatten)]
    pub sanitizers: SanitizeArgs,
}

/// Rules for personal and tenant data (beyond credentials, which are always redacted).
#[derive(Debug, Args, Default)]
pub struct SanitizeArgs {
    /// Display names, user principal names, e-mail addresses, phone numbers, and user
    /// and tenant ids (replaced consistently, also in tokens' tid and aud claims).
    #[arg(long)]
    pub redact_pii: bool,

    /// Replace string values at or below this JSON key (dotted paths: user.displayName);
    /// repeatable.
    #[arg(long = "redact-json-key", value_name = "KEY")]
    pub json_keys: Vec<String>,

    /// An id at this JSON key (dotted path) is replaced consistently everywhere it
    /// appears (paths, bodies, headers, query); `tid` or `aud` for token claims;
    /// repeatable.
    #[arg(long = "redact-id", value_name = "KEY")]
    pub ids: Vec<String>,

    /// Replace this header's value; repeatable.
    #[arg(long = "redact-header", value_name = "NAME")]
    pub headers: Vec<String>,

    /// Replace this query parameter's value; repeatable.
    #[arg(long = "redact-query", value_name = "NAME")]
    pub query: Vec<String>,

    /// Replace matches of this regular expression in text bodies (only capture group 1
    /// when it has one); repeatable.
    #[arg(long = "redact-regex", value_name = "PATTERN")]
    pub regex: Vec<String>,

    /// A rules file (TOML or JSON: pii, json_keys, ids, headers, query, regex), added
    /// to the flags.
    #[arg(long, env = "GRAPHTAPE_SANITIZERS", value_name = "FILE")]
    pub sanitizers: Option<PathBuf>,
}

fn parse_seq_range(value: &str) -> Result<crate::recording::SeqRange, String> {
    crate::recording::SeqRange::parse(value)
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Graphtape,
    Har,
    Html,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A recording file (graphtape/1 JSON).
    pub file: PathBuf,

    /// Import under this session name instead of the one in the file.
    #[arg(long = "as", value_name = "NAME")]
    pub rename: Option<String>,
}
