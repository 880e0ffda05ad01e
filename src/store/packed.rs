//! An exchange laid out for binding: its numbers, and every text and blob column end to
//! end in two buffers.
//!
//! A prepared exchange is some forty small allocations (header names and values, ids,
//! hashes). Packed where it was prepared, the exchange is freed there while it is still
//! in cache, and the database thread reads two contiguous buffers instead of chasing
//! forty pointers a batch later, then hands back three allocations to free.

use std::ops::Range;

use crate::codec::write_headers_json;
use crate::exchange::{header, Direction, Exchange, StoredBody, Timing};
use crate::graph::{ids_from_exchange, parse_notifications, CallIds, NotificationIndex};

/// The text columns, in the order of [`Packed::text`]'s spans.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text {
    Method,
    Path,
    Query,
    Version,
    RequestHeaders,
    RequestSha,
    ResponseHeaders,
    ResponseSha,
    Error,
    CallId,
    CallIdRaw,
    OperationId,
    OperationIdRaw,
    Target,
}
const TEXTS: usize = Text::Target as usize + 1;

/// The blob columns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Blob {
    Request,
    Response,
    Forwarded,
}
const BLOBS: usize = Blob::Forwarded as usize + 1;

/// A body's facts besides its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyFacts {
    pub(crate) len: u64,
    pub(crate) truncated: bool,
}

/// An exchange as the database thread binds it, with what is derived for lookup (call
/// and operation ids, the notifications index, headers as JSON).
#[derive(Debug)]
pub struct Packed {
    pub(crate) seq: u64,
    pub(crate) direction: Direction,
    pub(crate) wall_start_us: i64,
    pub(crate) timing: Timing,
    pub(crate) request_body: BodyFacts,
    /// Status and body facts, when there was a response.
    pub(crate) response: Option<(u16, BodyFacts)>,
    /// Body bytes stored (request, forwarded and response), for size rotation.
    pub(crate) stored_bytes: usize,
    pub(crate) notifications: Vec<NotificationIndex>,
    text: String,
    texts: [Option<Range<usize>>; TEXTS],
    blobs: Vec<u8>,
    blob_spans: [Option<Range<usize>>; BLOBS],
}

impl Packed {
    /// Derives an exchange's call and operation ids and, for a callback, the index of the
    /// notifications it carries; encodes its headers; lays it all out.
    pub fn new(ex: &Exchange<StoredBody>) -> Packed {
        let req = &ex.request;
        let resp = ex.response.as_ref();
        let notifications = match ex.direction {
            // A body that is not a notification batch is still recorded, just not indexed.
            Direction::Callback => parse_notifications(&req.content()).unwrap_or_default(),
            Direction::Api => Vec::new(),
        };
        let ids = match ex.direction {
            // The path alone: ids never come from the query.
            Direction::Api => ids_from_exchange(
                &req.method,
                &req.path,
                resp.map(|r| r.status),
                resp.and_then(|r| header(&r.headers, "location")),
                &resp.map(|r| r.content()).unwrap_or_default(),
            ),
            // A POST is about the call its first notification names.
            Direction::Callback => notifications
                .iter()
                .find(|n| n.call.is_some())
                .map(|n| CallIds {
                    call: n.call.clone(),
                    operation: n.operation.clone(),
                })
                .unwrap_or_default(),
        };

        let mut text = Layout::with_capacity(text_size(ex));
        text.put(Text::Method, Some(req.method.as_bytes()));
        text.put(Text::Path, Some(req.path.as_bytes()));
        text.put(Text::Query, req.query.as_deref().map(str::as_bytes));
        text.put(Text::Version, Some(req.version.as_bytes()));
        text.put_with(Text::RequestHeaders, |out| {
            write_headers_json(out, &req.headers)
        });
        text.put(Text::RequestSha, Some(req.body.sha256.as_bytes()));
        if let Some(r) = resp {
            text.put_with(Text::ResponseHeaders, |out| {
                write_headers_json(out, &r.headers)
            });
            text.put(Text::ResponseSha, Some(r.body.sha256.as_bytes()));
        }
        text.put(Text::Error, ex.error.as_deref().map(str::as_bytes));
        let call = ids.call.as_ref();
        let operation = ids.operation.as_ref();
        text.put(Text::CallId, call.map(|i| i.norm.as_bytes()));
        text.put(Text::CallIdRaw, call.map(|i| i.raw.as_bytes()));
        text.put(Text::OperationId, operation.map(|i| i.norm.as_bytes()));
        text.put(Text::OperationIdRaw, operation.map(|i| i.raw.as_bytes()));
        text.put(Text::Target, ex.target.as_deref().map(str::as_bytes));

        let stored_bytes = req.body.bytes.len()
            + ex.forwarded_body.as_ref().map_or(0, |b| b.bytes.len())
            + resp.map_or(0, |r| r.body.bytes.len());
        let mut blobs = Layout::with_capacity(stored_bytes);
        blobs.put(Blob::Request, Some(&req.body.bytes));
        blobs.put(Blob::Response, resp.map(|r| &r.body.bytes[..]));
        blobs.put(
            Blob::Forwarded,
            ex.forwarded_body.as_ref().map(|b| &b.bytes[..]),
        );

        let (text_bytes, texts) = text.finish();
        let (blobs, blob_spans) = blobs.finish();
        Packed {
            seq: ex.seq,
            direction: ex.direction,
            wall_start_us: ex.wall_start_us,
            timing: ex.timing,
            request_body: facts(&req.body),
            response: resp.map(|r| (r.status, facts(&r.body))),
            stored_bytes,
            notifications,
            // Only `&str`s and JSON text were written, so this never fails; were it to,
            // the lossy form keeps the row rather than losing it.
            text: String::from_utf8(text_bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            texts,
            blobs,
            blob_spans,
        }
    }

    /// A text column's value.
    pub(crate) fn text(&self, column: Text) -> Option<&str> {
        self.text.get(self.texts[column as usize].clone()?)
    }

    /// A blob column's value.
    pub(crate) fn blob(&self, column: Blob) -> Option<&[u8]> {
        self.blobs.get(self.blob_spans[column as usize].clone()?)
    }
}

fn facts(body: &StoredBody) -> BodyFacts {
    BodyFacts {
        len: body.len,
        truncated: body.truncated,
    }
}

/// Room for the text columns, so the buffer is allocated once.
fn text_size(ex: &Exchange<StoredBody>) -> usize {
    let headers = |h: &[(String, Vec<u8>)]| -> usize {
        h.iter().map(|(n, v)| n.len() + v.len() + 8).sum::<usize>() + 2
    };
    let req = &ex.request;
    // Ids (four of at most a few dozen bytes) and the hashes.
    const IDS_AND_HASHES: usize = 4 * 40 + 2 * 64;
    req.method.len()
        + req.path.len()
        + req.query.as_ref().map_or(0, String::len)
        + req.version.len()
        + headers(&req.headers)
        + ex.response.as_ref().map_or(0, |r| headers(&r.headers))
        + ex.error.as_ref().map_or(0, String::len)
        + ex.target.as_ref().map_or(0, String::len)
        + IDS_AND_HASHES
}

/// Values appended to one buffer, each remembered by its span.
struct Layout<const N: usize> {
    buf: Vec<u8>,
    spans: [Option<Range<usize>>; N],
}

impl<const N: usize> Layout<N> {
    fn with_capacity(bytes: usize) -> Self {
        Layout {
            buf: Vec::with_capacity(bytes),
            spans: std::array::from_fn(|_| None),
        }
    }

    fn put(&mut self, column: impl Into<usize>, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.put_with(column, |out| out.extend_from_slice(value));
        }
    }

    fn put_with(&mut self, column: impl Into<usize>, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.spans[column.into()] = Some(start..self.buf.len());
    }

    fn finish(self) -> (Vec<u8>, [Option<Range<usize>>; N]) {
        (self.buf, self.spans)
    }
}

impl From<Text> for usize {
    fn from(column: Text) -> usize {
        column as usize
    }
}

impl From<Blob> for usize {
    fn from(column: Blob) -> usize {
        column as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::exchanges::tests::sample;

    #[test]
    fn every_column_reads_back_as_the_exchange_has_it() {
        let ex = sample(7);
        let packed = Packed::new(&ex);
        assert_eq!(packed.text(Text::Method), Some("POST"));
        assert_eq!(packed.text(Text::Path), Some(ex.request.path.as_str()));
        assert_eq!(packed.text(Text::Query), Some("a=1"));
        assert_eq!(packed.text(Text::Version), Some("HTTP/1.1"));
        assert_eq!(
            packed.text(Text::RequestHeaders),
            Some(r#"[["content-type","application/json"]]"#)
        );
        assert_eq!(
            packed.text(Text::RequestSha),
            Some(ex.request.body.sha256.as_str())
        );
        let resp = ex.response.as_ref().unwrap();
        assert_eq!(
            packed.text(Text::ResponseSha),
            Some(resp.body.sha256.as_str())
        );
        assert_eq!(packed.text(Text::Error), None);
        assert_eq!(
            packed.text(Text::CallId),
            Some("57dab8b1894c409ab240bd8beae78896")
        );
        assert_eq!(
            packed.text(Text::CallIdRaw),
            Some("57dab8b1-894c-409a-b240-bd8beae78896")
        );
        assert_eq!(packed.text(Text::OperationId), None);
        assert_eq!(packed.text(Text::Target), ex.target.as_deref());
        assert_eq!(packed.blob(Blob::Request), Some(&ex.request.body.bytes[..]));
        assert_eq!(packed.blob(Blob::Response), Some(&resp.body.bytes[..]));
        assert_eq!(
            packed.blob(Blob::Forwarded),
            Some(&ex.forwarded_body.as_ref().unwrap().bytes[..])
        );
        assert_eq!(packed.response.map(|(status, _)| status), Some(201));
        assert_eq!(packed.stored_bytes, 7 + 7 + resp.body.bytes.len());
    }

    #[test]
    fn absent_and_empty_values_stay_apart() {
        let mut ex = sample(1);
        ex.request.query = Some(String::new());
        ex.response = None;
        ex.forwarded_body = None;
        ex.request.body = StoredBody::capture(b"", 1024);
        let packed = Packed::new(&ex);
        assert_eq!(packed.text(Text::Query), Some(""));
        assert_eq!(packed.text(Text::ResponseHeaders), None);
        assert_eq!(packed.blob(Blob::Request), Some(&b""[..]));
        assert_eq!(packed.blob(Blob::Response), None);
        assert_eq!(packed.blob(Blob::Forwarded), None);
        assert!(packed.response.is_none());
    }

    #[test]
    fn headers_that_are_not_utf8_are_packed_as_base64() {
        let mut ex = sample(1);
        ex.request.headers = vec![("x-raw".into(), vec![0xff, 0x00])];
        let packed = Packed::new(&ex);
        assert_eq!(
            packed.text(Text::RequestHeaders),
            Some(r#"[["x-raw",{"base64":"/wA="}]]"#)
        );
    }
}
