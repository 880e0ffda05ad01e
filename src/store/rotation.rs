//! Session rotation for a long-running `record` (`--rotate`, `--retain`), run on the
//! writer's database thread.
//!
//! An exchange belongs to the session that was current when its request ARRIVED: a
//! rotation starts at a [`Boundary`], the clock's offset and the next sequence number it
//! will hand out (read when the time rule fell due, or, for a size rule, when the
//! exchange that crossed the threshold was recorded, so the writer's lag does not move
//! the split), and every exchange from that sequence on goes to the new session, with its
//! sequence and offsets rebased so the new session counts from 1 and from its own
//! start. Exchanges still in flight finish in the session they started in; that session
//! ends (and its live lock is released) once every sequence number below the boundary
//! has been stored, or when `record` stops, whichever comes first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::health::Trouble;
use super::live::{create_live_session_named, LiveLock};
use super::packed::Packed;
use super::prune::{prune_among, PruneRule};
use super::{StoreError, StoreHealth};
use crate::clock::SessionClock;
use crate::config::{parse_age, parse_size, ConfigError};

/// When a new session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateRule {
    /// When the current session has run this long (its own elapsed time).
    Every(Duration),
    /// When the current session has stored this many body bytes.
    Size(u64),
}

impl RotateRule {
    /// `1h`, `30m`, `7d` (an age: s, m, h, d, w) or `500MB`, `20KB`, `1G` (a size; `m`
    /// alone means minutes).
    pub fn parse(value: &str) -> Result<RotateRule, ConfigError> {
        if let Ok(age) = parse_age("--rotate", value) {
            if age.is_zero() {
                return Err(ConfigError::Age {
                    flag: "--rotate",
                    value: value.into(),
                    reason: "must be longer than 0",
                });
            }
            return Ok(RotateRule::Every(age));
        }
        match parse_size(value) {
            Ok(0) => Err(ConfigError::Age {
                flag: "--rotate",
                value: value.into(),
                reason: "must be more than 0 bytes",
            }),
            Ok(n) => Ok(RotateRule::Size(n as u64)),
            Err(_) => Err(ConfigError::Age {
                flag: "--rotate",
                value: value.into(),
                reason: "expected an age (1h, 30m, 7d) or a size (500MB, 20KB)",
            }),
        }
    }
}

/// One session of the recording.
struct Segment {
    id: i64,
    name: String,
    /// First sequence number (on the process clock) that belongs here.
    first_seq: u64,
    /// First one that does not, once the next session has started.
    end_seq: Option<u64>,
    /// Process clock offset of this session's start.
    base_us: i64,
    /// Exchanges placed here so far.
    seen: u64,
    /// Body bytes stored here so far.
    bytes: u64,
    /// Highest sequence number (on the process clock) placed here so far.
    last_seq: u64,
    unrecorded_at_start: u64,
    _lock: LiveLock,
}

/// A recording's sessions and when to start the next.
pub struct Rotation {
    rule: RotateRule,
    retain: Option<Duration>,
    db: PathBuf,
    base_name: String,
    config: serde_json::Value,
    clock: Arc<SessionClock>,
    /// The open sessions, oldest first; the last is current.
    open: Vec<Segment>,
    /// Ended sessions of this recording, candidates for `--retain`.
    ended: Vec<(i64, String)>,
    next_suffix: u64,
    /// After a failed rotation, when to try again.
    retry_at: Option<Instant>,
}

impl Rotation {
    /// Starts with the first session, already created and claimed by `record`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rule: RotateRule,
        retain: Option<Duration>,
        db: PathBuf,
        name: String,
        config: serde_json::Value,
        clock: Arc<SessionClock>,
        session_id: i64,
        lock: LiveLock,
    ) -> Rotation {
        Rotation {
            rule,
            retain,
            db,
            base_name: name.clone(),
            config,
            clock,
            open: vec![Segment {
                id: session_id,
                name,
                first_seq: 1,
                end_seq: None,
                base_us: 0,
                seen: 0,
                bytes: 0,
                last_seq: 0,
                unrecorded_at_start: 0,
                _lock: lock,
            }],
            ended: Vec::new(),
            next_suffix: 2,
            retry_at: None,
        }
    }

    /// Rebases `ex` onto the session its sequence number belongs to; returns that
    /// session's id.
    pub(crate) fn place(&mut self, ex: &mut Packed) -> i64 {
        let at = place_index(self.open.iter().map(|s| s.first_seq), ex.seq);
        let segment = &mut self.open[at];
        segment.last_seq = segment.last_seq.max(ex.seq);
        ex.seq = ex.seq - segment.first_seq + 1;
        let base = segment.base_us;
        let t = &mut ex.timing;
        t.request_start_us = (t.request_start_us - base).max(0);
        for offset in [
            &mut t.request_end_us,
            &mut t.response_start_us,
            &mut t.response_end_us,
        ]
        .into_iter()
        .flatten()
        {
            *offset = (*offset - base).max(0);
        }
        segment.seen += 1;
        segment.bytes += ex.stored_bytes as u64;
        segment.id
    }

    /// How long the database thread may wait for rows before rotation needs a look.
    pub(crate) fn wait(&self) -> Option<Duration> {
        match self.rule {
            RotateRule::Every(every) => {
                let ran = self.clock.now_us() - self.current().base_us;
                let left = Duration::from_micros((every.as_micros() as i64 - ran).max(0) as u64);
                // After a failed rotation, not before its retry.
                let retry = self.retry_at.map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(Instant::now())
                });
                Some(left.max(retry).max(Duration::from_millis(1)))
            }
            RotateRule::Size(_) => None,
        }
    }

    /// With a size rule: the clock, for the recorders to mark each exchange with the
    /// [`Boundary`] it would start.
    pub(crate) fn size_clock(&self) -> Option<Arc<SessionClock>> {
        matches!(self.rule, RotateRule::Size(_)).then(|| self.clock.clone())
    }

    /// Rotates if due and ends the sessions whose exchanges are all stored. Called with
    /// no batch open. A size rotation starts at `at`, the boundary marked when the
    /// exchange that crossed the threshold was recorded; otherwise at now.
    pub(crate) fn tick(&mut self, conn: &Connection, health: &StoreHealth, at: Option<Boundary>) {
        if self.due() && self.retry_at.is_none_or(|at| Instant::now() >= at) {
            let at = at.unwrap_or_else(|| Boundary::now(&self.clock));
            match self.rotate(conn, health, at) {
                Ok(()) => self.retry_at = None,
                Err(e) => {
                    tracing::warn!(error = %e, "starting the next session; retrying in 1 s");
                    self.retry_at = Some(Instant::now() + Duration::from_secs(1));
                }
            }
        }
        let done: Vec<usize> = (0..self.open.len() - 1)
            .filter(|&i| {
                let s = &self.open[i];
                s.end_seq.is_some_and(|end| s.seen >= end - s.first_seq)
            })
            .collect();
        for i in done.into_iter().rev() {
            let segment = self.open.remove(i);
            self.end(conn, health, segment, self.clock.now_us());
        }
    }

    /// Ends every open session, at `ended_us` on the process clock. The last one is
    /// never pruned: it is the recording's newest.
    pub(crate) fn finish(&mut self, conn: &Connection, health: &StoreHealth, ended_us: i64) {
        let mut open = std::mem::take(&mut self.open);
        let last = open.pop();
        for segment in open {
            self.end(conn, health, segment, ended_us);
        }
        if let Some(last) = last {
            self.retain = None;
            self.end(conn, health, last, ended_us);
        }
    }

    pub(crate) fn rule(&self) -> RotateRule {
        self.rule
    }

    /// Whether the current session has reached the rotation boundary.
    pub(crate) fn due(&self) -> bool {
        match self.rule {
            RotateRule::Every(every) => {
                self.clock.now_us() - self.current().base_us >= every.as_micros() as i64
            }
            RotateRule::Size(limit) => self.current().bytes >= limit,
        }
    }

    fn current(&self) -> &Segment {
        self.open
            .last()
            .expect("a rotation always has a current session")
    }

    fn rotate(
        &mut self,
        conn: &Connection,
        health: &StoreHealth,
        at: Boundary,
    ) -> Result<(), StoreError> {
        let base_us = at.base_us;
        let first_seq = first_seq(at, self.current().last_seq);
        let started = self.clock.wall_start_us() + base_us;
        let base = self.base_name.clone();
        let candidates = (self.next_suffix..).map(move |n| format!("{base}-{n}"));
        let (id, name, lock) =
            create_live_session_named(conn, &self.db, candidates, started, &self.config)?;
        self.next_suffix = name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(self.next_suffix + 1, |n| n + 1);
        if let Some(current) = self.open.last_mut() {
            current.end_seq = Some(first_seq);
        }
        println!("recording session={name} db={}", self.db.display());
        self.open.push(Segment {
            id,
            name,
            first_seq,
            end_seq: None,
            base_us,
            seen: 0,
            bytes: 0,
            last_seq: 0,
            unrecorded_at_start: health.unrecorded(),
            _lock: lock,
        });
        Ok(())
    }

    /// Closes `segment` (its lock goes with it), then applies `--retain`.
    fn end(&mut self, conn: &Connection, health: &StoreHealth, segment: Segment, at_us: i64) {
        let ended_us = (at_us - segment.base_us).max(0);
        let unrecorded = health.unrecorded() - segment.unrecorded_at_start;
        let result = super::batch::with_lock_retry(health, || {
            Ok(conn.execute(
                "UPDATE sessions SET ended_us = ?1, unrecorded = ?2 WHERE id = ?3",
                rusqlite::params![ended_us, unrecorded as i64, segment.id],
            )?)
        });
        if let Err(e) = result {
            health.lost(
                0,
                0,
                Trouble::Failed,
                format!("closing session {}: {e}", segment.name),
            );
        }
        self.ended.push((segment.id, segment.name.clone()));
        drop(segment);
        self.retain(conn);
    }

    fn retain(&mut self, conn: &Connection) {
        let Some(age) = self.retain else { return };
        let now = crate::clock::unix_micros(std::time::SystemTime::now());
        let ended = &self.ended;
        let eligible = |s: &super::SessionSummary| ended.iter().any(|(id, _)| *id == s.info.id);
        match prune_among(
            conn,
            &self.db,
            eligible,
            PruneRule::OlderThan(age),
            now,
            false,
        ) {
            Ok(pruned) => {
                for removed in &pruned.removed {
                    println!("pruned session={}", removed.name);
                }
                self.ended
                    .retain(|(_, name)| pruned.removed.iter().all(|r| &r.name != name));
            }
            Err(e) => tracing::warn!(error = %e, "--retain: pruning old sessions"),
        }
    }
}

/// Where the next session may start: the clock's offset, then the sequence number the
/// clock would hand out next, read in that order. Every sequence number from `first_seq`
/// on was taken after `base_us`, so its offsets are at or after the new session's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Boundary {
    pub(crate) base_us: i64,
    pub(crate) first_seq: u64,
}

impl Boundary {
    pub(crate) fn now(clock: &SessionClock) -> Boundary {
        let base_us = clock.now_us();
        Boundary {
            base_us,
            first_seq: clock.peek_seq(),
        }
    }
}

/// Pure: the first sequence number of a session starting at `at`, when the current one
/// already holds sequences up to `last_seq` (exchanges finish out of order: one that
/// arrived after the mark may have been placed before the crossing one was).
fn first_seq(at: Boundary, last_seq: u64) -> u64 {
    at.first_seq.max(last_seq + 1)
}

/// Pure: the index of the session a sequence number belongs to, given each session's
/// first sequence number (ascending).
fn place_index(firsts: impl Iterator<Item = u64>, seq: u64) -> usize {
    firsts
        .enumerate()
        .filter(|&(_, first)| first <= seq)
        .map(|(i, _)| i)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_ages_and_sizes() {
        assert_eq!(
            RotateRule::parse("1h").unwrap(),
            RotateRule::Every(Duration::from_secs(3600))
        );
        assert_eq!(
            RotateRule::parse("500MB").unwrap(),
            RotateRule::Size(500 << 20)
        );
        assert_eq!(
            RotateRule::parse("20KB").unwrap(),
            RotateRule::Size(20 << 10)
        );
        assert_eq!(
            RotateRule::parse("30m").unwrap(),
            RotateRule::Every(Duration::from_secs(1800))
        );
        let err = RotateRule::parse("soon").unwrap_err().to_string();
        assert!(err.contains("--rotate \"soon\""), "{err}");
        assert!(RotateRule::parse("0s").is_err());
        assert!(RotateRule::parse("0KB").is_err());
    }

    #[test]
    fn a_session_starts_at_its_mark_unless_a_later_sequence_is_already_placed() {
        let at = Boundary {
            base_us: 10,
            first_seq: 11,
        };
        // Sequential traffic: the next exchange after the crossing one.
        assert_eq!(first_seq(at, 10), 11);
        // An exchange that arrived after the mark finished first: it stays behind.
        assert_eq!(first_seq(at, 14), 15);
    }

    #[test]
    fn a_sequence_goes_to_the_last_session_started_at_or_before_it() {
        let firsts = [1, 5, 9];
        assert_eq!(place_index(firsts.into_iter(), 1), 0);
        assert_eq!(place_index(firsts.into_iter(), 4), 0);
        assert_eq!(place_index(firsts.into_iter(), 5), 1);
        assert_eq!(place_index(firsts.into_iter(), 100), 2);
    }
}
