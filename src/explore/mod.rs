//! Explore: the replay engine fed by generated schedules instead of the recorded order,
//! to find the notification order that breaks a bot, shrink it to its cause, and
//! write it down so `replay --schedule` reproduces it.
//!
//! Pure parts only: which notifications may move relative to which ([`rules`]), the
//! perturbation points and the schedules they make ([`points`]), how runs choose them
//! ([`strategy`]), shrinking ([`shrink`]), coverage ([`coverage`]), the schedule file
//! ([`file`]), the failure in words ([`explain`]) and the summary ([`report`]). The run loop is
//! `commands::explore`.

pub mod coverage;
pub mod explain;
pub mod file;
pub mod points;
pub mod report;
pub mod rules;
pub mod shrink;
pub mod strategy;
