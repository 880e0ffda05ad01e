//! The schedule file (`run-<i>.json`, `run-<i>.min.json`): the recording it belongs
//! to, how it was made, and the deliveries in order, so `replay --schedule` delivers
//! exactly the same thing. Written deterministically: same inputs, same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::points::{Point, Side};
use super::rules::{Delivery, Rules};
use crate::exchange::{Direction, Exchange, StoredBody};
use crate::replay::ids::IdMap;
use crate::replay::plan::{ResponseOrder, Step};

/// The format tag in every schedule file.
pub const FORMAT: &str = "graphtape-schedule/1";

/// Problems with a schedule file, naming it.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("reading --schedule {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--schedule {path} is not a schedule file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error(
        "--schedule {path} is for recording {theirs} (events {their_hash}), not for {ours} (events {our_hash})"
    )]
    OtherRecording {
        path: PathBuf,
        theirs: String,
        their_hash: String,
        ours: String,
        our_hash: String,
    },
    #[error("--schedule {path}: seq {seq} is not a notification of this replay (check --call and --no-graph)")]
    UnknownSeq { path: PathBuf, seq: u64 },
}

/// Which recording a schedule is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingId {
    pub session: String,
    /// SHA-256 over the events (see [`events_sha256`]).
    pub events_sha256: String,
}

/// One delivery as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The recorded notification delivered.
    pub seq: u64,
    /// Before or after its cause's response, when raced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Side>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
    /// What was changed here, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perturbation: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A whole schedule file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleFile {
    pub format: String,
    pub recording: RecordingId,
    pub seed: u64,
    pub strategy: String,
    pub run: u64,
    /// Shrunk by ddmin from run `run`'s schedule.
    #[serde(default)]
    pub minimal: bool,
    /// The points applied, in order.
    pub perturbations: Vec<Point>,
    /// Recorded → fresh call and operation ids of this run.
    pub ids: BTreeMap<String, String>,
    /// Failed deliveries are retried as Graph does (`--perturb retry`).
    #[serde(default)]
    pub retry: bool,
    pub deliveries: Vec<Entry>,
}

/// How a schedule came to be, for [`ScheduleFile::new`].
pub struct Origin<'a> {
    pub recording: &'a RecordingId,
    pub seed: u64,
    pub strategy: String,
    pub run: u64,
    pub minimal: bool,
    pub retry: bool,
}

impl ScheduleFile {
    pub fn new(
        origin: Origin<'_>,
        rules: &Rules,
        points: &[Point],
        schedule: &[Delivery],
        ids: &IdMap,
    ) -> ScheduleFile {
        let deliveries = schedule
            .iter()
            .map(|d| {
                let seq = rules.notes[d.position].seq;
                let said: Vec<String> = points
                    .iter()
                    .filter(|p| p.seq() == seq)
                    .map(|p| p.describe(rules))
                    .collect();
                Entry {
                    seq,
                    response: d.response.map(|r| match r {
                        ResponseOrder::Before => Side::Before,
                        ResponseOrder::After => Side::After,
                    }),
                    delay_ms: d.delay_us / 1000,
                    duplicate: d.duplicate,
                    perturbation: (!said.is_empty() && !d.duplicate).then(|| said.join(", ")),
                }
            })
            .collect();
        ScheduleFile {
            format: FORMAT.into(),
            recording: origin.recording.clone(),
            seed: origin.seed,
            strategy: origin.strategy,
            run: origin.run,
            minimal: origin.minimal,
            perturbations: points.to_vec(),
            ids: ids.pairs().iter().cloned().collect(),
            retry: origin.retry,
            deliveries,
        }
    }

    /// The file's bytes: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a schedule and checks that it is for `recording`.
    pub fn load(path: &Path, recording: &RecordingId) -> Result<ScheduleFile, ScheduleError> {
        let bytes = std::fs::read(path).map_err(|source| ScheduleError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ScheduleFile =
            serde_json::from_slice(&bytes).map_err(|e| ScheduleError::Parse {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        if file.format != FORMAT {
            return Err(ScheduleError::Parse {
                path: path.to_path_buf(),
                reason: format!("format {:?}, expected {FORMAT:?}", file.format),
            });
        }
        if file.recording.events_sha256 != recording.events_sha256 {
            return Err(ScheduleError::OtherRecording {
                path: path.to_path_buf(),
                theirs: file.recording.session.clone(),
                their_hash: short(&file.recording.events_sha256),
                ours: recording.session.clone(),
                our_hash: short(&recording.events_sha256),
            });
        }
        Ok(file)
    }

    /// The plan steps this schedule delivers, checked against the rules' notifications.
    pub fn steps(&self, rules: &Rules, path: &Path) -> Result<Vec<Step>, ScheduleError> {
        self.deliveries
            .iter()
            .map(|e| {
                let position = super::points::position(rules, e.seq).ok_or_else(|| {
                    ScheduleError::UnknownSeq {
                        path: path.to_path_buf(),
                        seq: e.seq,
                    }
                })?;
                Ok(Step {
                    position,
                    response: e.response.map(Into::into),
                    delay_us: e.delay_ms.saturating_mul(1000),
                })
            })
            .collect()
    }

    /// The fresh ids of this schedule.
    pub fn id_map(&self) -> IdMap {
        IdMap::new(self.ids.iter().map(|(r, f)| (r.clone(), f.clone())))
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// The identity of a recording's events: SHA-256 over each exchange's sequence number,
/// direction, method, path, query, body hashes and status, so the same recording
/// gives the same hash from a file or from the database.
pub fn events_sha256(exchanges: &[Exchange<StoredBody>]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for ex in exchanges {
        let direction = match ex.direction {
            Direction::Api => "api",
            Direction::Callback => "callback",
        };
        let line = format!(
            "{} {direction} {} {} {} {} {} {}\n",
            ex.seq,
            ex.request.method,
            ex.request.path,
            ex.request.query.as_deref().unwrap_or(""),
            ex.request.body.sha256,
            ex.response.as_ref().map(|r| r.status).unwrap_or(0),
            ex.response
                .as_ref()
                .map(|r| r.body.sha256.as_str())
                .unwrap_or(""),
        );
        ctx.update(line.as_bytes());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::points::apply;
    use crate::explore::rules::tests::{incoming, invite, rules_of};

    fn file_for(run: u64) -> (ScheduleFile, RecordingId) {
        let session = incoming();
        let rules = rules_of(&session);
        let id = RecordingId {
            session: "incoming".into(),
            events_sha256: events_sha256(&session),
        };
        let points = vec![
            Point::Move { seq: 4, before: 3 },
            Point::Duplicate { seq: 4 },
        ];
        let (schedule, applied) = apply(&rules, &points);
        let ids = IdMap::new([(
            "57dab8b1894c409ab240bd8beae78896".to_string(),
            "0123456789abcdef0123456789abcdef".to_string(),
        )]);
        let origin = Origin {
            recording: &id,
            seed: 7,
            strategy: "pct:2".into(),
            run,
            minimal: false,
            retry: true,
        };
        (
            ScheduleFile::new(origin, &rules, &applied, &schedule, &ids),
            id,
        )
    }

    #[test]
    fn a_schedule_file_round_trips_and_is_deterministic() {
        let (file, id) = file_for(17);
        let bytes = file.to_bytes();
        assert_eq!(bytes, file_for(17).0.to_bytes(), "same inputs, same bytes");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(r#""perturbation": "swap 3 and 4, duplicate 4""#),
            "{text}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-17.json");
        std::fs::write(&path, &bytes).unwrap();
        let back = ScheduleFile::load(&path, &id).unwrap();
        assert_eq!(back, file);
        let rules = rules_of(&incoming());
        let steps = back.steps(&rules, &path).unwrap();
        let positions: Vec<usize> = steps.iter().map(|s| s.position).collect();
        assert_eq!(positions, vec![0, 2, 2, 1, 3]);
        assert_eq!(back.id_map().pairs().len(), 1);
    }

    #[test]
    fn a_schedule_for_another_recording_is_refused() {
        let (file, _) = file_for(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-1.json");
        std::fs::write(&path, file.to_bytes()).unwrap();
        let other = RecordingId {
            session: "meeting".into(),
            events_sha256: events_sha256(&invite()),
        };
        let err = ScheduleFile::load(&path, &other).unwrap_err().to_string();
        assert!(err.contains("is for recording incoming"), "{err}");
        assert!(err.contains("not for meeting"), "{err}");
        std::fs::write(&path, b"{}").unwrap();
        let err = ScheduleFile::load(&path, &other).unwrap_err().to_string();
        assert!(err.contains("is not a schedule file"), "{err}");
    }
}
