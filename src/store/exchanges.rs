//! Exchange rows: insert (writer thread, import) and load (export, inspect).

use rusqlite::{params, Connection, Row};

use super::packed::{Blob, Packed, Text};
use super::StoreError;
use crate::codec::{decode_headers, HeaderPair};
use crate::exchange::{
    Direction, Exchange, Headers, RequestRecord, ResponseRecord, StoredBody, Timing,
};

const INSERT: &str = "INSERT INTO exchanges (
    session_id, seq, direction, wall_start_unix_us,
    request_start_us, request_end_us, response_start_us, response_end_us,
    method, path, query, http_version, request_headers,
    request_body, request_body_len, request_body_sha256, request_body_truncated,
    status, response_headers, response_body, response_body_len, response_body_sha256,
    response_body_truncated, error, call_id, call_id_raw, operation_id, operation_id_raw,
    target, forwarded_body)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
         ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)";

const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (
    exchange_id, session_id, seq, position, change_type, resource, resource_url, odata_type,
    call_id, call_id_raw, operation_id, operation_id_raw, state, status)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Inserts one exchange, deriving what is looked up (see [`Packed::new`]).
pub fn insert_exchange(
    conn: &Connection,
    session_id: i64,
    ex: &Exchange<StoredBody>,
) -> Result<(), StoreError> {
    insert_packed(conn, session_id, &Packed::new(ex))
}

/// Inserts one packed exchange: binding and stepping only.
pub(crate) fn insert_packed(
    conn: &Connection,
    session_id: i64,
    row: &Packed,
) -> Result<(), StoreError> {
    let resp = row.response;
    let mut stmt = conn.prepare_cached(INSERT)?;
    stmt.execute(params![
        session_id,
        row.seq as i64,
        row.direction.as_str(),
        row.wall_start_us,
        row.timing.request_start_us,
        row.timing.request_end_us,
        row.timing.response_start_us,
        row.timing.response_end_us,
        row.text(Text::Method),
        row.text(Text::Path),
        row.text(Text::Query),
        row.text(Text::Version),
        row.text(Text::RequestHeaders),
        row.blob(Blob::Request),
        row.request_body.len as i64,
        row.text(Text::RequestSha),
        row.request_body.truncated,
        resp.map(|(status, _)| status),
        row.text(Text::ResponseHeaders),
        row.blob(Blob::Response),
        resp.map(|(_, body)| body.len as i64),
        row.text(Text::ResponseSha),
        resp.map(|(_, body)| body.truncated),
        row.text(Text::Error),
        row.text(Text::CallId),
        row.text(Text::CallIdRaw),
        row.text(Text::OperationId),
        row.text(Text::OperationIdRaw),
        row.text(Text::Target),
        row.blob(Blob::Forwarded),
    ])?;
    if !row.notifications.is_empty() {
        let exchange_id = conn.last_insert_rowid();
        let mut stmt = conn.prepare_cached(INSERT_NOTIFICATION)?;
        for n in &row.notifications {
            stmt.execute(params![
                exchange_id,
                session_id,
                row.seq as i64,
                n.index as i64,
                n.change_type,
                n.resource,
                n.resource_url,
                n.odata_type,
                n.call.as_ref().map(|i| &i.norm),
                n.call.as_ref().map(|i| &i.raw),
                n.operation.as_ref().map(|i| &i.norm),
                n.operation.as_ref().map(|i| &i.raw),
                n.state,
                n.status,
            ])?;
        }
    }
    Ok(())
}

/// All exchanges of a session in sequence order.
pub fn load_exchanges(
    conn: &Connection,
    session_id: i64,
) -> Result<Vec<Exchange<StoredBody>>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, direction, wall_start_unix_us,
                request_start_us, request_end_us, response_start_us, response_end_us,
                method, path, query, http_version, request_headers,
                request_body, request_body_len, request_body_sha256, request_body_truncated,
                status, response_headers, response_body, response_body_len,
                response_body_sha256, response_body_truncated, error, target, forwarded_body
         FROM exchanges WHERE session_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([session_id], exchange_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn exchange_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Exchange<StoredBody>, StoreError>> {
    let seq: i64 = r.get(0)?;
    let direction: String = r.get(1)?;
    let Some(direction) = Direction::parse(&direction) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "exchange {seq} has direction {direction:?}"
        ))));
    };
    let request_headers = match parse_headers(seq, &r.get::<_, String>(11)?) {
        Ok(h) => h,
        Err(e) => return Ok(Err(e)),
    };
    let response = match r.get::<_, Option<u16>>(16)? {
        None => None,
        Some(status) => {
            let headers: Option<String> = r.get(17)?;
            let headers = match parse_headers(seq, headers.as_deref().unwrap_or("[]")) {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
            Some(ResponseRecord {
                status,
                headers,
                body: StoredBody {
                    bytes: r.get::<_, Option<Vec<u8>>>(18)?.unwrap_or_default(),
                    len: r.get::<_, Option<i64>>(19)?.unwrap_or(0) as u64,
                    sha256: r.get::<_, Option<String>>(20)?.unwrap_or_default(),
                    truncated: r.get::<_, Option<bool>>(21)?.unwrap_or(false),
                },
            })
        }
    };
    Ok(Ok(Exchange {
        seq: seq as u64,
        direction,
        wall_start_us: r.get(2)?,
        timing: Timing {
            request_start_us: r.get(3)?,
            request_end_us: r.get(4)?,
            response_start_us: r.get(5)?,
            response_end_us: r.get(6)?,
        },
        request: RequestRecord {
            method: r.get(7)?,
            path: r.get(8)?,
            query: r.get(9)?,
            version: r.get(10)?,
            headers: request_headers,
            body: StoredBody {
                bytes: r.get(12)?,
                len: r.get::<_, i64>(13)? as u64,
                sha256: r.get(14)?,
                truncated: r.get(15)?,
            },
        },
        target: r.get(23)?,
        forwarded_body: r
            .get::<_, Option<Vec<u8>>>(24)?
            .map(|b| StoredBody::capture(&b, usize::MAX)),
        response,
        error: r.get(22)?,
    }))
}

fn parse_headers(seq: i64, json: &str) -> Result<Headers, StoreError> {
    let pairs: Vec<HeaderPair> = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("exchange {seq} headers: {e}")))?;
    decode_headers(pairs).map_err(|e| StoreError::Corrupt(format!("exchange {seq}: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{create_session, open, Access};

    pub(crate) fn sample(seq: u64) -> Exchange<StoredBody> {
        Exchange {
            seq,
            direction: Direction::Api,
            wall_start_us: 1_700_000_000_000_000,
            timing: Timing {
                request_start_us: 10,
                request_end_us: Some(20),
                response_start_us: Some(30),
                response_end_us: Some(40),
            },
            request: RequestRecord {
                method: "POST".into(),
                path: "/v1.0/communications/calls".into(),
                query: Some("a=1".into()),
                version: "HTTP/1.1".into(),
                headers: vec![("content-type".into(), b"application/json".to_vec())],
                body: StoredBody::capture(br#"{"x":1}"#, 1024),
            },
            target: Some("https://graph.microsoft.com/v1.0/communications/calls?a=1".into()),
            forwarded_body: Some(StoredBody::capture(br#"{"x":2}"#, 1024)),
            response: Some(ResponseRecord {
                status: 201,
                headers: vec![(
                    "location".into(),
                    b"https://graph.microsoft.com/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896"
                        .to_vec(),
                )],
                body: StoredBody::capture(
                    br#"{"id":"57dab8b1-894c-409a-b240-bd8beae78896","state":"establishing"}"#,
                    1024,
                ),
            }),
            error: None,
        }
    }

    #[test]
    fn insert_then_load_is_identical_and_ids_are_derived() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("e.db"), Access::Create).unwrap();
        let sid = create_session(&conn, "s", 0, &serde_json::json!({})).unwrap();
        let mut failed = sample(2);
        failed.response = None;
        failed.error = Some("upstream: connection refused".into());
        insert_exchange(&conn, sid, &sample(1)).unwrap();
        insert_exchange(&conn, sid, &failed).unwrap();
        let loaded = load_exchanges(&conn, sid).unwrap();
        assert_eq!(loaded, vec![sample(1), failed]);
        let call: String = conn
            .query_row("SELECT call_id FROM exchanges WHERE seq = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(call, "57dab8b1894c409ab240bd8beae78896");
    }

    #[test]
    fn duplicate_sequence_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("e.db"), Access::Create).unwrap();
        let sid = create_session(&conn, "s", 0, &serde_json::json!({})).unwrap();
        insert_exchange(&conn, sid, &sample(1)).unwrap();
        assert!(insert_exchange(&conn, sid, &sample(1)).is_err());
    }
}
