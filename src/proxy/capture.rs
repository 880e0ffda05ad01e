//! Taking a request in: its arrival marks (sequence, time) and its body, kept even when
//! the sender fails halfway; a body over `--max-body` is left to stream on.

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use super::body::{read_prefix, BodyFailure, Prefix, ReadLimits, Tee, TeeEnd};
use crate::clock::SessionClock;
use crate::exchange::{Captured, CapturedBody, CapturedRequest, Direction, Timing};
use crate::server::Arrival;

/// A request as it arrived: body read whole, or up to `--max-body` with the rest still
/// to stream.
pub struct Inbound {
    pub seq: u64,
    pub wall_start_us: i64,
    pub timing: Timing,
    pub parts: Parts,
    /// The whole body, or the stored prefix of a streamed one.
    pub body: Bytes,
    /// Why the body could not be read to the end, if it could not.
    pub body_error: Option<BodyFailure>,
    /// What the listener says about this request: body timeout, the stop.
    pub arrival: Arrival,
    /// The body past `--max-body`, not read yet.
    rest: Option<Box<Tee<Incoming>>>,
    /// How the streamed body ended, once it has.
    rest_end: Option<oneshot::Receiver<TeeEnd>>,
}

impl Inbound {
    /// Marks arrival and reads the whole body (no cap: replay's listener).
    pub async fn receive(clock: &Arc<SessionClock>, req: http::Request<Incoming>) -> Inbound {
        Self::receive_capped(clock, req, usize::MAX).await
    }

    /// Marks arrival (sequence and time first, so order reflects arrival) and reads the
    /// body, up to `max_body` bytes; a longer one is left to stream through.
    pub async fn receive_capped(
        clock: &Arc<SessionClock>,
        req: http::Request<Incoming>,
        max_body: usize,
    ) -> Inbound {
        let seq = clock.next_seq();
        let start = clock.now_us();
        let wall_start_us = clock.wall_start_us() + start;
        let (mut parts, body) = req.into_parts();
        tracing::debug!(seq, method = %parts.method, path = parts.uri.path(), "request arrived");
        let arrival = parts
            .extensions
            .remove::<Arrival>()
            .unwrap_or_else(Arrival::detached);
        let limits = ReadLimits {
            max: max_body,
            stall: arrival.body_timeout,
            arrival: &arrival,
            clock,
        };
        let (body, body_error, rest, rest_end) = match read_prefix(body, limits).await {
            Prefix::Whole(body) => (body, None, None, None),
            Prefix::Broken(body, failure) => (body, Some(failure), None, None),
            Prefix::Over { kept, tee, end } => (kept, None, Some(tee), Some(end)),
        };
        let timing = Timing {
            request_start_us: start,
            request_end_us: (body_error.is_none() && rest.is_none()).then(|| clock.now_us()),
            ..Timing::default()
        };
        Inbound {
            seq,
            wall_start_us,
            timing,
            parts,
            body,
            body_error,
            arrival,
            rest,
            rest_end,
        }
    }

    /// Whether the body goes past `--max-body` and streams through.
    pub fn is_streamed(&self) -> bool {
        self.rest_end.is_some()
    }

    /// The rest of a streamed body, to forward (once).
    pub fn take_rest(&mut self) -> Option<Box<Tee<Incoming>>> {
        self.rest.take()
    }

    /// The exchange to record, so far: the request as it arrived and its timing. The
    /// caller fills in where it went and how it ended.
    pub fn into_exchange(self, direction: Direction) -> Captured {
        self.split(direction).0
    }

    /// [`Inbound::into_exchange`], and how a streamed body will have ended (for
    /// [`finish_request`]).
    pub fn split(mut self, direction: Direction) -> (Captured, Option<oneshot::Receiver<TeeEnd>>) {
        // What hyper attaches (upgrade handles and the like) is not part of the record.
        self.parts.extensions.clear();
        let captured = Captured {
            seq: self.seq,
            direction,
            wall_start_us: self.wall_start_us,
            timing: self.timing,
            request: CapturedRequest {
                parts: self.parts,
                body: CapturedBody::whole(self.body),
            },
            target: None,
            forwarded_body: None,
            response: None,
            error: None,
        };
        (captured, self.rest_end)
    }
}

/// Completes a streamed request body in `ex` from how it ended; returns the failure,
/// if it did not end normally.
pub fn finish_request(ex: &mut Captured, end: Option<TeeEnd>) -> Option<BodyFailure> {
    let prefix = std::mem::take(&mut ex.request.body.bytes);
    let Some(end) = end else {
        ex.request.body = CapturedBody::whole(prefix);
        return Some(BodyFailure::Failed(
            "the request body was never forwarded".into(),
        ));
    };
    ex.request.body = CapturedBody::streamed(prefix, end.len, end.sha256);
    ex.timing.request_end_us = end.end_us;
    end.failure
}
