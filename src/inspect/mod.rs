//! The analysis behind `graphtape inspect`: pure functions from a stored session to
//! what a person or a script needs to understand it.
//!
//! - [`timeline`]: the exchanges of both directions as one ordered list of events,
//!   per-call summaries, filters, one-line and JSON renderings.
//! - [`rules`]: ordering anomalies and deadlines (notifications racing responses,
//!   states going backwards, operations that never finish or finish too late, calls
//!   answered too late, duplicates, slow or failed acks), one table of rules.
//! - [`detail`]: one exchange in full (headers, decoded bodies, the forwarded change,
//!   timings, notifications), as text lines or as its recording-format JSON.
//! - [`diff`]: two stored sessions aligned event by event (LCS over summaries).
//! - [`model`]: the view model the HTML timeline, Mermaid and `ui` draw from.
//! - [`html`]: the timeline page (the exported file and the `ui`'s page).
//! - [`mermaid`]: the timeline as a Mermaid sequence diagram.
//! - [`har`]: the session as HAR 1.2, for browser dev tools and HTTP viewers.
//!
//! Input is always a session's exchanges in sequence order, as the store loads them;
//! nothing here reads the database, prints, or panics on odd recordings.

pub mod detail;
pub mod diff;
pub mod har;
pub mod html;
pub mod mermaid;
pub mod model;
pub mod rules;
pub mod timeline;
mod view;

#[cfg(test)]
pub(crate) mod testutil;

pub use detail::{detail_json, detail_lines};
pub use har::har;
pub use rules::{check, check_with, rules_table, CheckOptions, Finding, Severity};
pub use timeline::{calls, event_json, render_line, timeline, Filter, TimelineEvent};
