//! Replay: graphtape plays Graph to a bot from a recording and re-delivers the recorded
//! notifications, each released by the request that caused it, then reports where the
//! bot behaved differently.

pub mod auth;
pub mod engine;
pub mod ids;
pub mod junit;
pub mod matcher;
pub mod plan;
pub mod progress;
pub mod report;
pub mod scheduler;
pub mod substitute;
