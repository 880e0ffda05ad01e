//! The inspector's routes: HTML pages and the JSON they read. GET only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use super::data::{load_session, session_model, stamp};
use super::pages;
use crate::inspect::diff::diff;
use crate::inspect::html::live_page;
use crate::percent::decode_lossy;
use crate::proxy::reply::Body;
use crate::store::open_read_only;
use crate::store::{list_sessions, StoreError};

/// Answers one request; database work runs on the blocking pool.
pub async fn handle(db: Arc<PathBuf>, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the inspector is read-only\n",
        );
    }
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    tokio::task::spawn_blocking(move || route(&db, &path, &query))
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "ui handler failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        })
}

fn route(db: &Path, path: &str, query: &str) -> Response<Body> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode_lossy(s, false).into_owned())
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = match segs.as_slice() {
        [] => with_db(db, |c| Ok(html(pages::sessions(&list_sessions(c)?, db)))),
        ["sessions", name] => Ok(html(live_page(
            name,
            &format!("/api/sessions/{}", pages::encode(name)),
        ))),
        ["diff"] => {
            let (a, b) = pair(query);
            with_db(db, |c| {
                let (_, ea) = load_session(c, &a)?;
                let (_, eb) = load_session(c, &b)?;
                Ok(html(pages::diff(&a, &b, &diff(&ea, &eb))))
            })
        }
        ["api", "sessions"] => with_db(db, |c| {
            let list: Vec<_> = list_sessions(c)?.iter().map(pages::summary_json).collect();
            Ok(json_response(&serde_json::Value::Array(list)))
        }),
        ["api", "sessions", name, "stamp"] => {
            with_db(db, |c| Ok(text(StatusCode::OK, &stamp(c, name)?)))
        }
        ["api", "sessions", name, what] => with_db(db, |c| {
            let (info, exchanges) = load_session(c, name)?;
            let mut model = session_model(Some(c), &info, &exchanges)?;
            Ok(match *what {
                "model" => {
                    // The page fetches exchanges one at a time when opened.
                    model.exchanges.clear();
                    json_response(&model)
                }
                "findings" => json_response(&model.findings),
                "divergences" => json_response(&json!({
                    "replay_of": model.session.replay_of,
                    "divergences": model.divergences,
                })),
                "exchanges" => json_response(&model.exchanges),
                _ => not_found(),
            })
        }),
        ["api", "sessions", name, "exchanges", seq] => with_db(db, |c| {
            let Ok(seq) = seq.parse::<u64>() else {
                return Ok(not_found());
            };
            let (info, exchanges) = load_session(c, name)?;
            let model = session_model(None, &info, &exchanges)?;
            Ok(match model.exchanges.iter().find(|x| x.seq == seq) {
                Some(x) => json_response(x),
                None => not_found(),
            })
        }),
        ["api", "diff"] => {
            let (a, b) = pair(query);
            with_db(db, |c| {
                let (_, ea) = load_session(c, &a)?;
                let (_, eb) = load_session(c, &b)?;
                let lines: Vec<_> = diff(&ea, &eb).iter().map(pages::diff_json).collect();
                Ok(json_response(&json!({"a": a, "b": b, "lines": lines})))
            })
        }
        _ => Ok(not_found()),
    };
    result.unwrap_or_else(|e| match e {
        StoreError::SessionNotFound { .. } => text(StatusCode::NOT_FOUND, &format!("{e}\n")),
        e => {
            tracing::warn!(error = %e, "ui query failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n"))
        }
    })
}

fn with_db(
    db: &Path,
    f: impl FnOnce(&rusqlite::Connection) -> Result<Response<Body>, StoreError>,
) -> Result<Response<Body>, StoreError> {
    f(&open_read_only(db)?)
}

/// `a` and `b` from `?a=X&b=Y`.
fn pair(query: &str) -> (String, String) {
    let get = |key: &str| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| decode_lossy(v, true).into_owned())
            .unwrap_or_default()
    };
    (get("a"), get("b"))
}

fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn html(page: String) -> Response<Body> {
    response(StatusCode::OK, "text/html; charset=utf-8", page)
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", body.to_owned())
}

fn json_response(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => response(StatusCode::OK, "application/json", bytes),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_pair_is_decoded() {
        assert_eq!(pair("a=x%20y&b=z+w"), ("x y".into(), "z w".into()));
        assert_eq!(pair(""), (String::new(), String::new()));
    }
}
