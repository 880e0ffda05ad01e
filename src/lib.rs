//! graphtape records, replays and explains the traffic of Microsoft Graph calling bots.
//!
//! Map of the crate, in the order data flows when recording:
//! - [`cli`], [`config`]: arguments, then validated settings; [`help`]: each
//!   subcommand's exit codes and example.
//! - [`server`]: the accept loop (TCP or TLS, HTTP/1.1 and HTTP/2, graceful stop).
//! - [`proxy`]: the request phases: capture, refuse, forward, record, reply.
//! - [`clock`]: one sequence counter and one monotonic clock per session.
//! - [`exchange`]: the model of what is recorded.
//! - [`redact`], [`graph`]: pure logic: what is secret, and Graph's ids and shapes.
//! - [`sanitize`]: pure: personal and tenant data rules, consistent id replacement.
//! - [`store`]: SQLite: schema, the writer thread, queries.
//! - [`codec`], [`recording`]: the `graphtape/1` recording file format.
//! - [`replay`], [`explore`]: graphtape as Graph for a bot: the recorded order, or
//!   explored orders with failures shrunk to their cause.
//! - [`inspect`]: pure analysis and the view model; [`ui`]: the read-only web inspector.
//! - [`junit`]: JUnit XML for CI (`replay --junit`, `check --junit`).
//! - [`commands`]: one module per subcommand.
//! - `workers`: the connection worker threads `record`'s listeners serve on.
//! - [`demo`]: the stand-in Graph and bot `graphtape demo` records between.

pub mod cli;
pub mod clock;
pub(crate) mod codec;
pub mod commands;
pub mod config;
pub(crate) mod content_encoding;
pub(crate) mod demo;
pub mod exchange;
pub(crate) mod explore;
pub mod graph;
pub mod help;
pub(crate) mod inspect;
pub(crate) mod jsonscan;
pub(crate) mod junit;
pub mod logging;
mod percent;
pub(crate) mod plural;
pub(crate) mod private_file;
#[cfg(test)]
mod proptest_support;
pub mod proxy;
pub mod recording;
pub mod redact;
pub mod replay;
pub mod sanitize;
pub mod server;
pub mod store;
pub mod tls;
pub(crate) mod ui;
pub(crate) mod workers;
