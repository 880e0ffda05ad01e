//! Responses graphtape makes itself, in Graph's error shape so bot SDKs parse them.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// The body type of every response graphtape sends.
pub type Body = Full<Bytes>;

/// Graph's error shape, marked as graphtape's own.
pub fn error_json(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": { "code": code, "message": message, "innerError": { "source": "graphtape" } }
    })
}

/// A JSON error `{"error":{"code":..,"message":..}}` with the given status.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = error_json(code, message);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_body_names_code_and_message() {
        let resp = error(StatusCode::BAD_GATEWAY, "upstreamUnreachable", "refused");
        assert_eq!(resp.status(), 502);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "upstreamUnreachable");
        assert_eq!(v["error"]["message"], "refused");
    }
}
