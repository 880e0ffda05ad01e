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

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Proxy the bot's Graph API calls to the upstream and record every exchange.
    Record(Box<RecordArgs>),
    /// List the sessions in the database.
    Sessions(SessionsArgs),
    /// Write a session as a recording file (graphtape/1 JSON).
    Export(ExportArgs),
    /// Load a recording file into the database as a new session.
    Import(ImportArgs),
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

    /// Seconds the bot has to answer a notification completely.
    #[arg(long, env = "GRAPHTAPE_BOT_TIMEOUT", default_value_t = 15.0)]
    pub bot_timeout: f64,

    /// TLS certificate chain (PEM) for the callback listener (and --api-tls).
    #[arg(long, env = "GRAPHTAPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[arg(long, env = "GRAPHTAPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a fresh self-signed certificate; its PEM is written next to the
    /// database and its path printed (`tls cert=...`). For local testing.
    #[arg(long, env = "GRAPHTAPE_TLS_SELF_SIGNED", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Serve the API listener over TLS too, with the same certificate.
    #[arg(long, env = "GRAPHTAPE_API_TLS")]
    pub api_tls: bool,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// One JSON object per session instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The session to export.
    pub session: String,

    /// Output file (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A recording file (graphtape/1 JSON).
    pub file: PathBuf,

    /// Import under this session name instead of the one in the file.
    #[arg(long = "as", value_name = "NAME")]
    pub rename: Option<String>,
}
