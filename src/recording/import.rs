//! Recording file to database: strict validation, then one transaction, so a bad file
//! leaves nothing behind.

use std::path::Path;

use rusqlite::Connection;

use super::format::{BodyDoc, EventDoc, Recording, FORMAT};
use super::provenance::PROVENANCE_KEY;
use super::validate;
use crate::clock::parse_unix_micros;
use crate::codec::{decode_headers, BodyContent};
use crate::exchange::{
    sha256_hex, Direction, Exchange, RequestRecord, ResponseRecord, StoredBody, Timing,
};
use crate::store::{create_session, insert_exchange, SessionInfo, StoreError};

/// Why a recording could not be imported: the file, where in it, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {location}: {reason}")]
    Invalid {
        file: String,
        location: String,
        reason: String,
    },
    #[error("{file}: {source}")]
    Store {
        file: String,
        source: Box<StoreError>,
    },
}

/// A validated recording, ready to store.
pub struct Loaded {
    /// Names the file in errors.
    pub file: String,
    pub session: SessionInfo,
    pub exchanges: Vec<Exchange<StoredBody>>,
}

/// Reads and validates the recording at `path` without touching any database.
pub fn read_recording(path: &Path) -> Result<Loaded, ImportError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        file: file.clone(),
        source,
    })?;
    let (session, exchanges) = parse_recording(&bytes, &file)?;
    Ok(Loaded {
        file,
        session,
        exchanges,
    })
}

/// Stores a validated recording as a new session, all or nothing.
pub fn store_recording(conn: &mut Connection, loaded: &Loaded) -> Result<(), ImportError> {
    let info = &loaded.session;
    let store_err = |source| ImportError::Store {
        file: loaded.file.clone(),
        source: Box::new(source),
    };
    // Immediate: take the write lock up front, so parallel imports queue instead of
    // failing on a stale read snapshot.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| store_err(StoreError::from(e)))?;
    let session_id =
        create_session(&tx, &info.name, info.started_unix_us, &info.config).map_err(store_err)?;
    tx.execute(
        "UPDATE sessions SET ended_us = ?1, unrecorded = ?2 WHERE id = ?3",
        rusqlite::params![info.ended_us, info.unrecorded as i64, session_id],
    )
    .map_err(|e| store_err(StoreError::from(e)))?;
    for ex in &loaded.exchanges {
        insert_exchange(&tx, session_id, ex).map_err(store_err)?;
    }
    tx.commit().map_err(|e| store_err(StoreError::from(e)))
}

/// Parses and validates a recording. `file` names it in errors.
pub fn parse_recording(
    bytes: &[u8],
    file: &str,
) -> Result<(SessionInfo, Vec<Exchange<StoredBody>>), ImportError> {
    let invalid = |location: String, reason: String| ImportError::Invalid {
        file: file.to_string(),
        location,
        reason,
    };
    let de = &mut serde_json::Deserializer::from_slice(crate::jsonscan::strip_bom(bytes));
    let doc: Recording = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut location = format!("line {}, column {}", inner.line(), inner.column());
        if path != "." {
            location.push_str(&format!(", at {path}"));
        }
        invalid(location, strip_position(&inner.to_string()))
    })?;
    if doc.format != FORMAT {
        return Err(invalid(
            "at format".into(),
            format!(
                "unsupported format {:?}; this graphtape reads {FORMAT:?}",
                doc.format
            ),
        ));
    }
    let started_unix_us = parse_unix_micros(&doc.session.started_at).ok_or_else(|| {
        invalid(
            "at session.started_at".into(),
            "expected a UTC time like 2026-11-27T16:53:45.123456Z".into(),
        )
    })?;
    validate::session_name(&doc.session.name)
        .map_err(|why| invalid("at session.name".into(), why))?;
    if let Some(ended) = doc.session.ended_us {
        validate::offset(ended).map_err(|why| invalid("at session.ended_us".into(), why))?;
    }
    if doc.session.unrecorded > validate::MAX_COUNT {
        return Err(invalid(
            "at session.unrecorded".into(),
            format!("{} is too large", doc.session.unrecorded),
        ));
    }
    if !doc.session.config.is_object() {
        return Err(invalid(
            "at session.config".into(),
            "expected an object".into(),
        ));
    }
    let mut config = doc.session.config;
    if let Some(provenance) = doc.provenance {
        let Some(fields) = config.as_object_mut() else {
            return Err(invalid(
                "at session.config".into(),
                "a recording with a provenance needs an object here".into(),
            ));
        };
        if !provenance.is_object() || fields.contains_key(PROVENANCE_KEY) {
            return Err(invalid(
                "at provenance".into(),
                "expected one object (and no \"provenance\" key in session.config)".into(),
            ));
        }
        fields.insert(PROVENANCE_KEY.into(), provenance);
    }
    let info = SessionInfo {
        id: 0,
        name: doc.session.name,
        started_unix_us,
        ended_us: doc.session.ended_us,
        config,
        unrecorded: doc.session.unrecorded,
    };
    let mut exchanges = Vec::with_capacity(doc.events.len());
    let mut last_seq = 0;
    for (i, event) in doc.events.into_iter().enumerate() {
        let at = |field: &str| format!("at events[{i}]{field}");
        if event.seq <= last_seq {
            return Err(invalid(
                at(".seq"),
                format!(
                    "sequence numbers must increase; {} follows {last_seq}",
                    event.seq
                ),
            ));
        }
        last_seq = event.seq;
        let ex = exchange(event).map_err(|(field, reason)| invalid(at(&field), reason))?;
        validate::exchange(&ex).map_err(|(field, reason)| invalid(at(&field), reason))?;
        exchanges.push(ex);
    }
    Ok((info, exchanges))
}

/// serde_json appends "at line X column Y"; the location is reported separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

type FieldError = (String, String);

fn exchange(event: EventDoc) -> Result<Exchange<StoredBody>, FieldError> {
    let direction = Direction::parse(&event.direction).ok_or_else(|| {
        (
            ".direction".to_string(),
            format!(
                "expected \"api\" or \"callback\", found {:?}",
                event.direction
            ),
        )
    })?;
    let wall_start_us = parse_unix_micros(&event.wall_start).ok_or_else(|| {
        (
            ".wall_start".to_string(),
            "expected a UTC time like 2026-11-27T16:53:45.123456Z".to_string(),
        )
    })?;
    let req = event.request;
    if req.method.is_empty() || http::Method::from_bytes(req.method.as_bytes()).is_err() {
        return Err((
            ".request.method".into(),
            format!("not an HTTP method: {:?}", req.method),
        ));
    }
    let request = RequestRecord {
        method: req.method,
        path: req.path,
        query: req.query,
        version: req.version,
        headers: decode_headers(req.headers).map_err(|e| (".request.headers".into(), e))?,
        body: body(req.body).map_err(|e| (".request.body".into(), e))?,
    };
    let mut timing = Timing {
        request_start_us: req.start_us,
        request_end_us: req.end_us,
        ..Timing::default()
    };
    let response = match event.response {
        None => None,
        Some(resp) => {
            timing.response_start_us = resp.start_us;
            timing.response_end_us = resp.end_us;
            Some(ResponseRecord {
                status: resp.status,
                headers: decode_headers(resp.headers)
                    .map_err(|e| (".response.headers".into(), e))?,
                body: body(resp.body).map_err(|e| (".response.body".into(), e))?,
            })
        }
    };
    Ok(Exchange {
        seq: event.seq,
        direction,
        wall_start_us,
        timing,
        request,
        target: event.target,
        forwarded_body: match event.forwarded_body {
            None => None,
            Some(doc) => Some(body(Some(doc)).map_err(|e| (".forwarded_body".into(), e))?),
        },
        response,
        error: event.error,
    })
}

fn body(doc: Option<BodyDoc>) -> Result<StoredBody, String> {
    let Some(doc) = doc else {
        return Ok(StoredBody::capture(&[], 0));
    };
    let content = match (doc.json, doc.text, doc.base64) {
        (Some(v), None, None) => BodyContent::Json(v),
        (None, Some(t), None) => BodyContent::Text(t),
        (None, None, Some(b)) => BodyContent::Base64(b),
        _ => return Err("a body has exactly one of \"json\", \"text\" or \"base64\"".into()),
    };
    let bytes = content.decode()?;
    if !doc.truncated {
        if doc.length.is_some() || doc.sha256.is_some() {
            return Err("\"length\" and \"sha256\" belong to truncated bodies only".into());
        }
        let len = bytes.len() as u64;
        return Ok(StoredBody {
            sha256: sha256_hex(&bytes),
            bytes,
            len,
            truncated: false,
        });
    }
    let (Some(len), Some(sha256)) = (doc.length, doc.sha256) else {
        return Err("a truncated body needs \"length\" and \"sha256\"".into());
    };
    if len < bytes.len() as u64 {
        return Err(format!(
            "length {len} is shorter than the {} bytes kept",
            bytes.len()
        ));
    }
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha256 must be 64 hex digits".into());
    }
    Ok(StoredBody {
        bytes,
        len,
        sha256,
        truncated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
  "format": "graphtape/1",
  "session": {"name": "s", "started_at": "2026-11-27T16:53:45.000001Z", "config": {}},
  "events": [
    {"seq": 1, "direction": "api", "wall_start": "2026-11-27T16:53:45.000002Z",
     "request": {"start_us": 1, "method": "GET", "path": "/v1.0/x", "version": "HTTP/1.1",
                 "headers": [["accept", "*/*"]]},
     "response": {"status": 200, "headers": [], "body": {"json": {"a": 1}}}}
  ]
}"#;

    fn err_of(text: &str) -> String {
        parse_recording(text.as_bytes(), "f.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_recording_parses() {
        let (info, ex) = parse_recording(MINIMAL.as_bytes(), "f.json").unwrap();
        assert_eq!(info.name, "s");
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].response.as_ref().unwrap().body.bytes, br#"{"a":1}"#);
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let broken = MINIMAL.replace("\"seq\": 1,", "\"seq\": 1");
        let msg = err_of(&broken);
        assert!(msg.starts_with("f.json: line 5, column"), "{msg}");
    }

    #[test]
    fn type_error_names_the_field_path() {
        let msg = err_of(&MINIMAL.replace("\"status\": 200", "\"status\": \"ok\""));
        assert!(msg.contains("at events[0].response.status"), "{msg}");
        let msg = err_of(&MINIMAL.replace("\"config\"", "\"confg\""));
        assert!(msg.contains("unknown field `confg`"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        for (from, to, want) in [
            ("graphtape/1", "graphtape/9", "unsupported format"),
            ("\"api\"", "\"sideways\"", "at events[0].direction"),
            ("\"GET\"", "\"G T\"", "at events[0].request.method"),
            (
                "{\"json\": {\"a\": 1}}",
                "{\"base64\": \"!!\"}",
                "at events[0].response.body",
            ),
            (
                "{\"json\": {\"a\": 1}}",
                "{\"text\": \"a\", \"json\": {}}",
                "exactly one",
            ),
            ("\"2026-11-27T16:53:45.000002Z\"", "\"noon\"", "wall_start"),
        ] {
            let msg = err_of(&MINIMAL.replace(from, to));
            assert!(msg.contains(want), "{to}: {msg}");
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::exchange::{Direction, Headers, RequestRecord, ResponseRecord, Timing};
    use crate::proptest_support::{json_value, near_json, spell};
    use crate::recording::{to_document, to_pretty};
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = StoredBody> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            (json_value(), any::<u64>()).prop_map(|(v, style)| spell(&v, style)),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ]
        .prop_flat_map(|bytes| {
            let len = bytes.len();
            (Just(bytes), 0..=len + 1)
        })
        .prop_map(|(bytes, keep)| StoredBody::capture(&bytes, keep))
    }

    fn headers() -> impl Strategy<Value = Headers> {
        let value = prop_oneof![
            "[ -~]{0,20}".prop_map(String::into_bytes),
            prop::collection::vec(
                any::<u8>().prop_filter("no CR/LF/NUL", |b| !matches!(b, 0 | b'\r' | b'\n')),
                0..10
            ),
        ];
        prop::collection::vec(("[a-z][a-z0-9-]{0,12}", value), 0..4)
    }

    fn exchange() -> impl Strategy<Value = Exchange<StoredBody>> {
        (
            any::<bool>(),
            (
                0..1_000_000i64,
                0..1000i64,
                prop::option::of((0..1000i64, 0..1000i64)),
            ),
            (
                prop::sample::select(vec!["GET", "POST", "DELETE", "PATCH"]),
                "(/[a-zA-Z0-9._~%-]{1,8}){1,2}(/[a-zA-Z0-9._~%-]{0,8}){0,2}",
                prop::option::of("[a-z0-9=&%+]{0,12}"),
            ),
            // A forwarded body is a rewritten one: never empty (an empty one reads as absent).
            (
                headers(),
                body(),
                prop::option::of(body().prop_filter("non-empty", |b| b.len > 0)),
            ),
            prop::option::of((100u16..600, headers(), body())),
            (
                prop::option::of("[ -~]{0,30}"),
                prop::option::of("[ -~\n]{0,30}"),
            ),
        )
            .prop_map(
                |(
                    callback,
                    (start, took, answered),
                    (method, path, query),
                    (req_headers, req_body, forwarded),
                    response,
                    (target, error),
                )| {
                    let (response_timing, response) = match (answered, response) {
                        (Some((wait, len)), Some((status, headers, body))) => (
                            (Some(start + wait), Some(start + wait + len)),
                            Some(ResponseRecord {
                                status,
                                headers,
                                body,
                            }),
                        ),
                        _ => ((None, None), None),
                    };
                    Exchange {
                        seq: 0,
                        direction: if callback {
                            Direction::Callback
                        } else {
                            Direction::Api
                        },
                        wall_start_us: 1_795_000_000_000_000 + start,
                        timing: Timing {
                            request_start_us: start,
                            request_end_us: Some(start + took),
                            response_start_us: response_timing.0,
                            response_end_us: response_timing.1,
                        },
                        request: RequestRecord {
                            method: method.to_string(),
                            path,
                            query,
                            version: "HTTP/1.1".into(),
                            headers: req_headers,
                            body: req_body,
                        },
                        target,
                        forwarded_body: forwarded,
                        response,
                        error,
                    }
                },
            )
    }

    fn session() -> SessionInfo {
        SessionInfo {
            id: 0,
            name: "prop".into(),
            started_unix_us: 1_795_000_000_000_000,
            ended_us: Some(2_000_000),
            config: serde_json::json!({"upstream": "https://graph.microsoft.com"}),
            unrecorded: 0,
        }
    }

    proptest! {
        /// Export, import, export: the same exchanges and the identical file.
        #[test]
        fn recordings_round_trip(mut exchanges in prop::collection::vec(exchange(), 0..5)) {
            for (i, ex) in exchanges.iter_mut().enumerate() {
                ex.seq = i as u64 * 3 + 1;
            }
            let info = session();
            let text = to_pretty(&serde_json::to_value(to_document(&info, &exchanges)).unwrap());
            let (back_info, back) = parse_recording(text.as_bytes(), "p.json").unwrap();
            prop_assert_eq!(&back, &exchanges);
            prop_assert_eq!(&back_info.name, &info.name);
            let again = to_pretty(&serde_json::to_value(to_document(&info, &back)).unwrap());
            prop_assert_eq!(again, text);
        }

        /// Anything at all, or a real recording with one byte changed and cut: an
        /// error or a recording, never a panic.
        #[test]
        fn no_input_panics(
            bytes in near_json(),
            exchanges in prop::collection::vec(exchange(), 1..3),
            at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>(),
        ) {
            let _ = parse_recording(&bytes, "x.json");
            let mut exchanges = exchanges;
            for (i, ex) in exchanges.iter_mut().enumerate() {
                ex.seq = i as u64 + 1;
            }
            let info = session();
            let mut text = to_pretty(&serde_json::to_value(to_document(&info, &exchanges)).unwrap()).into_bytes();
            let at = at % text.len();
            text[at] = byte;
            text.truncate(cut % (text.len() + 1));
            let _ = parse_recording(&text, "x.json");
        }
    }
}
