//! The serde shape of a recording file. Field order here is the key order on disk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::HeaderPair;

/// The format tag every recording carries.
pub const FORMAT: &str = "graphtape/1";

/// A whole recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recording {
    pub format: String,
    pub session: SessionDoc,
    /// Where a cut fixture came from (source session, original seqs, rewritten
    /// notification POSTs, sanitising); kept in the session's config when imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    pub events: Vec<EventDoc>,
}

/// The session the events belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDoc {
    pub name: String,
    /// Wall clock at session start, RFC 3339 UTC with microseconds.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_us: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unrecorded: u64,
    pub config: Value,
}

/// One exchange. Offsets (`*_us`) are microseconds from the session start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDoc {
    pub seq: u64,
    /// `api` (bot to Graph) or `callback` (Graph to bot).
    pub direction: String,
    pub wall_start: String,
    pub request: RequestDoc,
    /// Where graphtape sent the request (absent when it refused it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The request body as forwarded, when graphtape changed it (callbackUri rewriting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_body: Option<BodyDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The request as it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDoc {
    pub start_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<i64>,
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub version: String,
    pub headers: Vec<HeaderPair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyDoc>,
}

/// The response as the peer sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<i64>,
    pub status: u16,
    pub headers: Vec<HeaderPair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyDoc>,
}

/// A body: exactly one of `json`, `text`, `base64`. `length`, `sha256` and `truncated`
/// appear only when the store kept a prefix of a larger body; they describe the whole.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}
