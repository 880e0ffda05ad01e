//! Replay: graphtape plays Graph to a bot from a recording and re-delivers the recorded
//! notifications, each released by the request that caused it, then reports where the
//! bot behaved differently.

pub mod auth;
pub(crate) mod engine;
pub(crate) mod ids;
pub(crate) mod junit;
pub(crate) mod matcher;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod scheduler;
pub(crate) mod substitute;
