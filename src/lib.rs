//! graphtape records, replays and explains the traffic of Microsoft Graph calling bots.
//!
//! Map of the crate, in the order data flows when recording:
//! - [`cli`], [`config`]: arguments, then validated settings.
//! - [`server`]: the accept loop (TCP or TLS, HTTP/1.1 and HTTP/2, graceful stop).
//! - [`proxy`]: the request phases: capture, refuse, forward, record, reply.
//! - [`clock`]: one sequence counter and one monotonic clock per session.
//! - [`exchange`]: the model of what is recorded.
//! - [`redact`], [`graph`]: pure logic: what is secret, and Graph's ids and shapes.
//! - [`store`]: SQLite: schema, the writer thread, queries.
//! - [`codec`], [`recording`]: the `graphtape/1` recording file format.
//! - [`commands`]: one module per subcommand.

pub mod cli;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod config;
pub mod content_encoding;
pub mod exchange;
pub mod graph;
pub mod inspect;
pub mod jsonscan;
pub mod logging;
mod percent;
pub mod private_file;
#[cfg(test)]
mod proptest_support;
pub mod proxy;
pub mod recording;
pub mod redact;
pub mod replay;
pub mod server;
pub mod store;
pub mod tls;
