//! Taking a request in: its arrival marks (sequence, time) and its body, kept even when
//! the sender fails halfway; a body over `--max-body` is left to stream on.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderValue};
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
        let (parts, body) = req.into_parts();
        tracing::debug!(seq, method = %parts.method, path = parts.uri.path(), "request arrived");
        let arrival = Arrival::current();
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
        let body = detach_in_place(&mut self.parts.headers, self.body);
        self.parts.uri = own_uri(&self.parts.uri);
        let captured = Captured {
            seq: self.seq,
            direction,
            wall_start_us: self.wall_start_us,
            timing: self.timing,
            request: CapturedRequest {
                parts: self.parts,
                body: CapturedBody::whole(body),
            },
            target: None,
            forwarded_body: None,
            response: None,
            error: None,
        };
        (captured, self.rest_end)
    }
}

/// Bodies up to this size are copied out of hyper's buffers for the record.
const DETACH_BODY: usize = 64 << 10;

/// Copies header values (and a small body) out of the connection's read buffer into one
/// allocation of their own. hyper hands them over as slices of that buffer, and a
/// captured exchange waiting in the writer's queue would otherwise keep the whole
/// buffer (8 KiB or more per request, per direction) alive: one small copy instead of
/// pinned buffers, so the queue's size in bytes is what it really holds.
pub fn detach(headers: &HeaderMap, body: Bytes) -> (HeaderMap, Bytes) {
    // A clone keeps the map's layout (no name is hashed again); only values are copied.
    let mut out = headers.clone();
    let body = detach_in_place(&mut out, body);
    (out, body)
}

/// [`detach`] on headers the caller owns: their values are replaced by copies.
pub fn detach_in_place(headers: &mut HeaderMap, body: Bytes) -> Bytes {
    let copy_body = body.len() <= DETACH_BODY;
    let values: usize = headers.values().map(|v| v.len()).sum();
    let mut buf = BytesMut::with_capacity(values + if copy_body { body.len() } else { 0 });
    for value in headers.values() {
        buf.extend_from_slice(value.as_bytes());
    }
    if copy_body {
        buf.extend_from_slice(&body);
    }
    let all = buf.freeze();
    let mut at = 0;
    for value in headers.values_mut() {
        let n = value.len();
        if let Ok(mut copied) = HeaderValue::from_maybe_shared(all.slice(at..at + n)) {
            copied.set_sensitive(value.is_sensitive());
            *value = copied;
        }
        at += n;
    }
    if copy_body {
        all.slice(at..)
    } else {
        body
    }
}

/// A copy of `uri` in an allocation of its own. A request's URI, and an upstream URI
/// joined from it, are slices of the connection's read buffer; kept in a record
/// waiting for the writer, they would keep that whole buffer alive (see [`detach`]).
pub fn own_uri(uri: &http::Uri) -> http::Uri {
    // Origin form (what both listeners forward): the path and query copied as they are,
    // with no formatting and no second parse of the whole.
    if uri.scheme().is_none() && uri.authority().is_none() {
        if let Some(pq) = uri.path_and_query() {
            let copy = Bytes::copy_from_slice(pq.as_str().as_bytes());
            if let Ok(pq) = http::uri::PathAndQuery::from_maybe_shared(copy) {
                return http::Uri::from(pq);
            }
        }
    }
    http::Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

/// `uri` as text, as its `Display` writes it, without the formatting machinery (the
/// record's target, once per exchange).
pub fn uri_text(uri: &http::Uri) -> String {
    let (scheme, authority) = (uri.scheme_str(), uri.authority().map(|a| a.as_str()));
    let query = uri.query();
    let mut text = String::with_capacity(
        scheme.map_or(0, |s| s.len() + 3)
            + authority.map_or(0, str::len)
            + uri.path().len()
            + query.map_or(0, |q| q.len() + 1),
    );
    if let Some(scheme) = scheme {
        text.push_str(scheme);
        text.push_str("://");
    }
    text.push_str(authority.unwrap_or_default());
    text.push_str(uri.path());
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_headers_and_body_are_equal_and_no_longer_share_the_buffer() {
        let wire = Bytes::from_static(b"application/json{\"a\":1}");
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_maybe_shared(wire.slice(..16)).unwrap(),
        );
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let (out, body) = detach(&headers, wire.slice(16..));
        assert_eq!(out, headers);
        assert_eq!(&body[..], b"{\"a\":1}");
        assert_ne!(body.as_ptr(), wire[16..].as_ptr(), "a copy, not a slice");
    }

    #[test]
    fn detaching_in_place_keeps_order_and_sensitivity_and_leaves_the_buffer() {
        let wire = Bytes::from_static(b"Bearer t12");
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_maybe_shared(wire.slice(..8)).unwrap();
        token.set_sensitive(true);
        headers.insert("authorization", token);
        headers.append(
            "x-a",
            HeaderValue::from_maybe_shared(wire.slice(8..9)).unwrap(),
        );
        headers.append(
            "x-a",
            HeaderValue::from_maybe_shared(wire.slice(9..)).unwrap(),
        );
        let before = headers.clone();
        let body = detach_in_place(&mut headers, Bytes::from_static(b"{}"));
        assert_eq!(headers, before);
        assert_eq!(&body[..], b"{}");
        assert!(headers["authorization"].is_sensitive());
        let values: Vec<_> = headers.get_all("x-a").iter().collect();
        assert_eq!(values, ["1", "2"]);
        for value in headers.values() {
            let at = value.as_bytes().as_ptr() as usize;
            let wire_at = wire.as_ptr() as usize;
            assert!(
                !(wire_at..wire_at + wire.len()).contains(&at),
                "a copy, not a slice of the read buffer"
            );
        }
    }

    #[test]
    fn uri_text_is_what_display_writes() {
        for text in [
            "https://graph.microsoft.com/v1.0/communications/calls?x=1&y",
            "http://127.0.0.1:8080/",
            "http://[::1]:9/a?",
            "/callback/abc",
            "/a?b=c",
            "*",
        ] {
            let uri: http::Uri = text.parse().unwrap();
            assert_eq!(uri_text(&uri), uri.to_string(), "{text}");
        }
    }

    #[test]
    fn an_owned_uri_is_equal_and_no_longer_shares_the_buffer() {
        let wire = Bytes::from_static(b"POST /v1.0/communications/calls?x=1 HTTP/1.1");
        let pq = http::uri::PathAndQuery::from_maybe_shared(wire.slice(5..35)).unwrap();
        let uri = http::Uri::from_parts({
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(http::uri::Scheme::HTTPS);
            parts.authority = Some(http::uri::Authority::from_static("graph.microsoft.com"));
            parts.path_and_query = Some(pq);
            parts
        })
        .unwrap();
        assert_eq!(
            uri.path().as_ptr(),
            wire[5..].as_ptr(),
            "the test's URI is a slice"
        );
        // Absolute form (a joined upstream URI) and origin form (a request's) alike.
        let origin =
            http::Uri::from(http::uri::PathAndQuery::from_maybe_shared(wire.slice(5..35)).unwrap());
        for uri in [uri, origin] {
            let owned = own_uri(&uri);
            assert_eq!(owned, uri);
            assert_eq!(owned.query(), uri.query());
            assert_ne!(
                owned.path().as_ptr(),
                uri.path().as_ptr(),
                "a copy, not a slice"
            );
        }
    }
}
