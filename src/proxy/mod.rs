//! The recording proxy, as phases: receive (capture), check, forward, record, reply.
//!
//! Every request that reaches a listener is recorded, whatever happens to it: refused,
//! failed upstream, or passed through. Recording is the last phase and always runs.

pub mod api;
pub(crate) mod body;
pub mod callback;
mod callback_guard;
pub(crate) mod capture;
mod forward;
pub(crate) mod headers;
mod relay;
pub mod reply;
mod routes;

pub use callback_guard::CallbackGuard;
pub use forward::Forwarder;
pub use relay::Relay;
pub use routes::{CallbackRoutes, NewRoute};

/// An error and its sources, joined the way a user reads them: "a: b: c".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What to do with traffic once the store has failed (`--on-store-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreErrorPolicy {
    /// Refuse new requests with 503: no unrecorded traffic.
    Fail,
    /// Keep forwarding; count what is not recorded and exit non-zero at the end.
    Forward,
}
