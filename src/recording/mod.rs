//! The recording file format (`graphtape/1`): one pretty-printed JSON document per
//! session, events in sequence order, so recordings review and diff well in git.
//!
//! The format is lossless: every body round-trips byte-exact, so export, import and
//! export again gives the identical file.

mod cut;
mod export;
mod format;
mod import;
mod pretty;
mod provenance;
mod validate;

pub use cut::{cut, CutSpec, SeqRange};
pub use export::{event as event_doc, to_document};
pub use format::{Recording, FORMAT};
pub use import::{parse_recording, read_recording, store_recording, ImportError, Loaded};
pub use pretty::to_pretty;
pub use provenance::{match_ignores, note_sanitized};
#[cfg(test)]
pub(crate) use validate::origin_form;
pub(crate) use validate::session_name;
