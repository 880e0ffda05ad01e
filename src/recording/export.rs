//! Database to recording file.

use super::format::{BodyDoc, EventDoc, Recording, RequestDoc, ResponseDoc, SessionDoc, FORMAT};
use super::provenance::PROVENANCE_KEY;
use crate::clock::format_unix_micros;
use crate::codec::{encode_headers, BodyContent};
use crate::exchange::{Exchange, StoredBody};
use crate::store::SessionInfo;

/// Builds the document for a session and its exchanges.
pub fn to_document(info: &SessionInfo, exchanges: &[Exchange<StoredBody>]) -> Recording {
    // A cut's provenance lives in the config in the store, at the top level on disk.
    let mut config = info.config.clone();
    let provenance = config
        .as_object_mut()
        .and_then(|c| c.remove(PROVENANCE_KEY));
    Recording {
        format: FORMAT.to_string(),
        session: SessionDoc {
            name: info.name.clone(),
            started_at: format_unix_micros(info.started_unix_us),
            ended_us: info.ended_us,
            unrecorded: info.unrecorded,
            config,
        },
        provenance,
        events: exchanges.iter().map(event).collect(),
    }
}

/// One exchange as the recording file has it.
pub fn event(ex: &Exchange<StoredBody>) -> EventDoc {
    let req = &ex.request;
    EventDoc {
        seq: ex.seq,
        direction: ex.direction.as_str().to_string(),
        wall_start: format_unix_micros(ex.wall_start_us),
        request: RequestDoc {
            start_us: ex.timing.request_start_us,
            end_us: ex.timing.request_end_us,
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            version: req.version.clone(),
            headers: encode_headers(&req.headers),
            body: body(&req.body),
        },
        target: ex.target.clone(),
        forwarded_body: ex.forwarded_body.as_ref().and_then(body),
        response: ex.response.as_ref().map(|r| ResponseDoc {
            start_us: ex.timing.response_start_us,
            end_us: ex.timing.response_end_us,
            status: r.status,
            headers: encode_headers(&r.headers),
            body: body(&r.body),
        }),
        error: ex.error.clone(),
    }
}

fn body(stored: &StoredBody) -> Option<BodyDoc> {
    if stored.bytes.is_empty() && !stored.truncated {
        return None;
    }
    let mut doc = BodyDoc::default();
    match BodyContent::encode(&stored.bytes) {
        BodyContent::Json(v) => doc.json = Some(v),
        BodyContent::Text(t) => doc.text = Some(t),
        BodyContent::Base64(b) => doc.base64 = Some(b),
    }
    if stored.truncated {
        doc.length = Some(stored.len);
        doc.sha256 = Some(stored.sha256.clone());
        doc.truncated = true;
    }
    Some(doc)
}
