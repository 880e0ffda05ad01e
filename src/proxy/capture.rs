//! Taking a request in: its arrival marks (sequence, time) and its body, kept even when
//! the sender fails halfway.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::clock::SessionClock;
use crate::exchange::{Captured, CapturedBody, CapturedRequest, Direction, Timing};

/// A request as it arrived, body read.
pub struct Inbound {
    pub seq: u64,
    pub wall_start_us: i64,
    pub timing: Timing,
    pub parts: Parts,
    pub body: Bytes,
    /// Why the body could not be read to the end, if it could not.
    pub body_error: Option<String>,
}

impl Inbound {
    /// Marks arrival (sequence and time first, so order reflects arrival) and reads the
    /// body.
    pub async fn receive(clock: &Arc<SessionClock>, req: http::Request<Incoming>) -> Inbound {
        let seq = clock.next_seq();
        let start = clock.now_us();
        let wall_start_us = clock.wall_start_us() + start;
        let (parts, body) = req.into_parts();
        let (body, body_error) = read_body(body).await;
        let timing = Timing {
            request_start_us: start,
            request_end_us: body_error.is_none().then(|| clock.now_us()),
            ..Timing::default()
        };
        Inbound {
            seq,
            wall_start_us,
            timing,
            parts,
            body,
            body_error,
        }
    }

    /// The exchange to record, so far: the request as it arrived and its timing. The
    /// caller fills in where it went and how it ended.
    pub fn into_exchange(self, direction: Direction) -> Captured {
        let mut parts = self.parts;
        // What hyper attaches (upgrade handles and the like) is not part of the record.
        parts.extensions.clear();
        Captured {
            seq: self.seq,
            direction,
            wall_start_us: self.wall_start_us,
            timing: self.timing,
            request: CapturedRequest {
                parts,
                body: CapturedBody::whole(self.body),
            },
            target: None,
            forwarded_body: None,
            response: None,
            error: None,
        }
    }
}

/// Reads a body to its end. On failure returns what did arrive, and the reason.
pub async fn read_body<B>(mut body: B) -> (Bytes, Option<String>)
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error,
{
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return (buf.freeze(), None),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if buf.is_empty() && body.is_end_stream() {
                        // A single-frame body: hand it on without a copy.
                        return (data, None);
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                let reason = format!(
                    "body ended after {} bytes: {}",
                    buf.len(),
                    crate::proxy::error_chain(&e)
                );
                return (buf.freeze(), Some(reason));
            }
        }
    }
}
