//! Which recorded API exchange answers a live bot request.
//!
//! During replay the bot runs again and sends its requests to graphtape instead of
//! Graph. Each one must be answered by the recorded exchange it corresponds to, even
//! though the bot spells paths and ids its own way (`/app/calls/57DAB8B1...` vs
//! `/communications/calls/57dab8b1-...`), orders query parameters differently, and
//! puts values in its bodies that change on every run (`clientContext`, its callback
//! URL). Requests are therefore compared in a canonical form ([`graph::normalize_path`],
//! decoded query multisets, JSON structure without the ignored keys), and identical
//! requests are answered first-in-first-out, as the recording saw them.
//!
//! Pure: no I/O, and no input can make it panic.

use crate::exchange::{Exchange, StoredBody};
use crate::graph;
use serde_json::Value;
use std::collections::HashMap;

/// At most this many difference lines are reported; the rest are counted.
const MAX_DIFFERENCES: usize = 10;

/// Longest rendering of one JSON value in a difference line, in characters.
const MAX_SHOWN: usize = 60;

/// What is compared and what is ignored.
#[derive(Debug, Clone)]
pub struct MatchRules {
    /// JSON object keys ignored anywhere in request bodies (ASCII case-insensitive):
    /// values that legitimately change between runs.
    pub ignore_keys: Vec<String>,
}

impl Default for MatchRules {
    /// The values a bot regenerates on every run: its operation correlation id and
    /// its webhook URL (which a tunnel or a port change alters).
    fn default() -> Self {
        MatchRules {
            ignore_keys: ["callbackUri", "callback", "clientContext"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl MatchRules {
    /// Ignored keys, plus credential fields: the recording holds placeholders where
    /// the live request holds real tokens, so they can never be compared.
    fn ignores(&self, key: &str) -> bool {
        self.ignore_keys.iter().any(|k| k.eq_ignore_ascii_case(key))
            || crate::redact::is_secret_json_key(key)
    }
}

/// A request as the bot sent it during replay.
#[derive(Debug, Clone, Copy)]
pub struct LiveRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Raw query string without `?`.
    pub query: Option<&'a str>,
    /// The body's content (decoded if it was sent encoded).
    pub body: &'a [u8],
}

/// A recorded API request, owned so the matcher outlives the store rows it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string without `?`.
    pub query: Option<String>,
    pub body: Vec<u8>,
}

impl From<&Exchange<StoredBody>> for RecordedRequest {
    /// The request as the bot sent it (not `forwarded_body`: the replayed bot sends
    /// its own callback URL again, not graphtape's rewritten one), its body decoded
    /// when it was sent gzip- or deflate-encoded.
    fn from(ex: &Exchange<StoredBody>) -> Self {
        RecordedRequest {
            method: ex.request.method.clone(),
            path: ex.request.path.clone(),
            query: ex.request.query.clone(),
            body: ex.request.content().into_owned(),
        }
    }
}

/// How a live request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchOutcome {
    /// Index (into the list given to [`Matcher::new`]) of the recorded exchange that
    /// answers it; now consumed.
    Matched(usize),
    /// It matches only recorded requests already consumed: the bot repeated itself
    /// more than when recorded. Index of the latest such.
    Extra(usize),
    /// Nothing matches. The nearest recorded candidate (index) and how it differs, if
    /// any candidate is reasonably near (same method or same normalised path).
    Unmatched {
        nearest: Option<(usize, Vec<String>)>,
    },
}

/// The recorded requests of one session, consumed as the live bot makes them.
#[derive(Debug, Clone)]
pub struct Matcher {
    recorded: Vec<Shape>,
    consumed: Vec<bool>,
    /// Indices by (method, normalised path), ascending: what `take` looks through.
    by_route: HashMap<(String, String), Vec<usize>>,
    rules: MatchRules,
}

impl Matcher {
    /// `recorded`: the recorded API exchanges' requests in sequence order (method,
    /// path, query, body bytes), e.g. built with `RecordedRequest::from` from the
    /// session's exchanges filtered to `Direction::Api`.
    pub fn new(recorded: Vec<RecordedRequest>, rules: MatchRules) -> Matcher {
        let recorded: Vec<Shape> = recorded
            .iter()
            .map(|r| Shape::new(&r.method, &r.path, r.query.as_deref(), &r.body, &rules))
            .collect();
        let mut by_route: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, shape) in recorded.iter().enumerate() {
            by_route.entry(shape.route()).or_default().push(i);
        }
        Matcher {
            consumed: vec![false; recorded.len()],
            recorded,
            by_route,
            rules,
        }
    }

    /// Finds and consumes the earliest unconsumed recorded request equal to `live`
    /// (first-in-first-out among identical ones, as the recording answered them).
    pub fn take(&mut self, live: &LiveRequest) -> MatchOutcome {
        let shape = Shape::from_live(live, &self.rules);
        let equal: Vec<usize> = self
            .by_route
            .get(&shape.route())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| self.recorded.get(i) == Some(&shape))
            .collect();
        if let Some(&i) = equal.iter().find(|&&i| !self.is_consumed(i)) {
            if let Some(flag) = self.consumed.get_mut(i) {
                *flag = true;
            }
            return MatchOutcome::Matched(i);
        }
        if let Some(&i) = equal.last() {
            return MatchOutcome::Extra(i);
        }
        MatchOutcome::Unmatched {
            nearest: self.nearest(&shape),
        }
    }

    /// Indices never consumed, in order: requests the bot never made this time.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.consumed.len())
            .filter(|&i| !self.is_consumed(i))
            .collect()
    }

    fn is_consumed(&self, i: usize) -> bool {
        self.consumed.get(i).copied().unwrap_or(false)
    }

    /// The recorded request a human would most likely have meant: same method and
    /// path beats same path beats same method; then fewest differences; then earliest.
    fn nearest(&self, live: &Shape) -> Option<(usize, Vec<String>)> {
        self.recorded
            .iter()
            .enumerate()
            .filter_map(|(i, rec)| {
                let tier = match (rec.method == live.method, rec.path == live.path) {
                    (true, true) => 0,
                    (false, true) => 1,
                    (true, false) => 2,
                    (false, false) => return None,
                };
                let diffs = shape_differences(rec, live);
                Some(((tier, diffs.len(), i), diffs))
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|((_, _, i), diffs)| (i, cap(diffs)))
    }
}

#[cfg(test)] // test support: only the unit tests use it
/// Human-readable differences between a recorded and a live request, recorded value
/// first: `method: POST != GET`, `path: /a != /b` (normalised), `query: a=1 != a=2`
/// (decoded, sorted), `body /participants/0/identity/user/id: "x" != "y"` (JSON
/// pointer; `missing` for an absent member), `body: not JSON, bytes differ`. Ignored
/// keys never appear. At most 10 lines, then `... N more`.
pub fn differences(
    recorded: &RecordedRequest,
    live: &LiveRequest,
    rules: &MatchRules,
) -> Vec<String> {
    let rec = Shape::new(
        &recorded.method,
        &recorded.path,
        recorded.query.as_deref(),
        &recorded.body,
        rules,
    );
    cap(shape_differences(&rec, &Shape::from_live(live, rules)))
}

/// A request in the form that is compared: equal shapes are the same request.
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    /// Upper-case.
    method: String,
    /// [`graph::normalize_path`].
    path: String,
    /// Decoded `(key, value)` pairs, sorted: a multiset.
    query: Vec<(String, String)>,
    body: Body,
}

/// A body as compared.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// Not JSON: compared byte for byte (an empty body is one of these).
    Raw(Vec<u8>),
    /// JSON, without the ignored keys.
    Json(Value),
}

impl Shape {
    fn new(
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        rules: &MatchRules,
    ) -> Shape {
        Shape {
            method: method.to_ascii_uppercase(),
            path: graph::normalize_path(path),
            query: query_pairs(query.unwrap_or("")),
            body: Body::new(body, rules),
        }
    }

    fn from_live(live: &LiveRequest, rules: &MatchRules) -> Shape {
        Shape::new(live.method, live.path, live.query, live.body, rules)
    }

    fn route(&self) -> (String, String) {
        (self.method.clone(), self.path.clone())
    }
}

impl Body {
    fn new(bytes: &[u8], rules: &MatchRules) -> Body {
        let unmarked = crate::jsonscan::strip_bom(bytes);
        match serde_json::from_slice::<Value>(unmarked) {
            Ok(mut value) => {
                strip_keys(&mut value, rules);
                Body::Json(value)
            }
            Err(_) => Body::Raw(bytes.to_vec()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Body::Raw(bytes) if bytes.is_empty() => "empty".to_owned(),
            Body::Raw(bytes) if bytes.len() == 1 => "not JSON (1 byte)".to_owned(),
            Body::Raw(bytes) => format!("not JSON ({} bytes)", bytes.len()),
            Body::Json(_) => "JSON".to_owned(),
        }
    }
}

/// Removes the ignored keys at any depth (serde_json's recursion limit bounds depth).
fn strip_keys(value: &mut Value, rules: &MatchRules) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !rules.ignores(key));
            map.values_mut().for_each(|v| strip_keys(v, rules));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_keys(v, rules)),
        _ => {}
    }
}

/// A query string as a sorted multiset of decoded pairs; `a` reads as `a=`. Credential
/// values (a placeholder when recorded, a token when live) compare equal and are never
/// shown in differences.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let value = if crate::redact::is_secret_param(key.as_bytes()) {
                "(credential)".to_string()
            } else {
                // Form decoding: `+` is a space.
                crate::percent::decode_lossy(value, true).into_owned()
            };
            (crate::percent::decode_lossy(key, true).into_owned(), value)
        })
        .collect();
    pairs.sort();
    pairs
}

/// Every difference, uncapped, in the order method, path, query, body.
fn shape_differences(rec: &Shape, live: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    if rec.method != live.method {
        out.push(format!("method: {} != {}", rec.method, live.method));
    }
    if rec.path != live.path {
        out.push(format!("path: {} != {}", rec.path, live.path));
    }
    if rec.query != live.query {
        out.push(format!(
            "query: {} != {}",
            show_query(&rec.query),
            show_query(&live.query)
        ));
    }
    match (&rec.body, &live.body) {
        (Body::Json(a), Body::Json(b)) => json_differences(a, b, &mut String::new(), &mut out),
        (Body::Raw(a), Body::Raw(b)) if a == b => {}
        (Body::Raw(a), Body::Raw(b)) if !a.is_empty() && !b.is_empty() => {
            out.push("body: not JSON, bytes differ".to_owned());
        }
        (a, b) => out.push(format!("body: {} != {}", a.describe(), b.describe())),
    }
    out
}

fn show_query(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return "(none)".to_owned();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Appends one line per differing leaf, addressed by JSON pointer. Recursion depth is
/// bounded by serde_json's parser limit.
fn json_differences(a: &Value, b: &Value, pointer: &mut String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (key, va) in ma {
                in_member(pointer, &escape_pointer(key), |p| match mb.get(key) {
                    Some(vb) => json_differences(va, vb, p, out),
                    None => out.push(body_line(p, &show(va), "missing")),
                });
            }
            for (key, vb) in mb.iter().filter(|(k, _)| !ma.contains_key(*k)) {
                in_member(pointer, &escape_pointer(key), |p| {
                    out.push(body_line(p, "missing", &show(vb)));
                });
            }
        }
        (Value::Array(la), Value::Array(lb)) => {
            for i in 0..la.len().max(lb.len()) {
                in_member(pointer, &i.to_string(), |p| match (la.get(i), lb.get(i)) {
                    (Some(va), Some(vb)) => json_differences(va, vb, p, out),
                    (Some(va), None) => out.push(body_line(p, &show(va), "missing")),
                    (None, Some(vb)) => out.push(body_line(p, "missing", &show(vb))),
                    (None, None) => {}
                });
            }
        }
        _ if a != b => out.push(body_line(pointer, &show(a), &show(b))),
        _ => {}
    }
}

/// Runs `f` with `pointer` extended by one reference token, then restores it.
fn in_member(pointer: &mut String, token: &str, f: impl FnOnce(&mut String)) {
    let len = pointer.len();
    pointer.push('/');
    pointer.push_str(token);
    f(pointer);
    pointer.truncate(len);
}

/// RFC 6901 escaping of one reference token.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn body_line(pointer: &str, recorded: &str, live: &str) -> String {
    if pointer.is_empty() {
        format!("body: {recorded} != {live}")
    } else {
        format!("body {pointer}: {recorded} != {live}")
    }
}

/// Compact JSON, shortened so one huge value cannot flood a report.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= MAX_SHOWN {
        return text;
    }
    let mut short: String = text.chars().take(MAX_SHOWN).collect();
    short.push_str("...");
    short
}

/// Keeps the first lines and says how many more there were.
fn cap(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_DIFFERENCES {
        let more = lines.len() - MAX_DIFFERENCES;
        lines.truncate(MAX_DIFFERENCES);
        lines.push(format!("... {more} more"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Direction, RequestRecord, Timing};

    const CALL_UPPER: &str = "57DAB8B1894C409AB240BD8BEAE78896";
    const CALL_DASHED: &str = "57dab8b1-894c-409a-b240-bd8beae78896";

    /// Seed: the answer request body.
    const ANSWER: &str = r##"{"callbackUri":"https://bot.contoso.com/api/calls","acceptedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig","preFetchMedia":[{"uri":"https://cdn.contoso.com/beep.wav","resourceId":"f8971b04-b53e-418c-9222-c82ce681a582"}]}}"##;

    /// Seed: "Invite participants to an existing call" with its clientContext.
    const INVITE: &str = r#"{"participants":[{"endpointType":"default","identity":{"user":{"id":"550fae72-d251-43ec-868c-373732c2704f","tenantId":"72f988bf-86f1-41af-91ab-2d7cd011db47","displayName":"Heidi Steen"}},"languageId":"en-US","region":"westus"}],"clientContext":"d45324c1-fcb5-430a-902c-f20af696537c"}"#;

    fn rec(method: &str, path: &str, query: Option<&str>, body: &str) -> RecordedRequest {
        RecordedRequest {
            method: method.into(),
            path: path.into(),
            query: query.map(String::from),
            body: body.as_bytes().to_vec(),
        }
    }

    fn live<'a>(
        method: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        body: &'a str,
    ) -> LiveRequest<'a> {
        LiveRequest {
            method,
            path,
            query,
            body: body.as_bytes(),
        }
    }

    fn invite_path(call: &str) -> String {
        format!("/v1.0/communications/calls/{call}/participants/invite")
    }

    fn matcher(recorded: Vec<RecordedRequest>) -> Matcher {
        Matcher::new(recorded, MatchRules::default())
    }

    #[test]
    fn answer_matches_across_path_styles_and_id_spellings() {
        let mut m = matcher(vec![rec(
            "POST",
            &format!("/app/calls/{CALL_UPPER}/answer"),
            None,
            ANSWER,
        )]);
        let path = format!("/v1.0/communications/calls/{CALL_DASHED}/microsoft.graph.answer");
        let body = ANSWER.replace("bot.contoso.com", "tunnel.example.net:4443");
        assert_eq!(
            m.take(&live("post", &path, None, &body)),
            MatchOutcome::Matched(0)
        );
        assert!(m.missing().is_empty());
    }

    #[test]
    fn invite_with_new_client_context_and_callback_still_matches() {
        let recorded = rec("POST", &invite_path(CALL_UPPER), None, INVITE);
        let body = INVITE
            .replace("d45324c1-fcb5-430a-902c-f20af696537c", "fresh-context")
            .replace(
                r#"{"participants""#,
                r#"{"callbackUri":"https://x/cb","participants""#,
            );
        // Key order and whitespace do not matter either.
        let body = body.replace(
            r#""languageId":"en-US","region":"westus""#,
            r#" "region" : "westus", "languageId":"en-US" "#,
        );
        let path = invite_path(CALL_DASHED);
        let request = live("POST", &path, None, &body);
        assert!(differences(&recorded, &request, &MatchRules::default()).is_empty());
        let mut m = matcher(vec![recorded]);
        assert_eq!(m.take(&request), MatchOutcome::Matched(0));
    }

    #[test]
    fn identical_requests_are_first_in_first_out_then_extra() {
        let path = format!("/communications/calls/{CALL_UPPER}/mute");
        let mut m = matcher(vec![
            rec("POST", &path, None, "{}"),
            rec("GET", &path, None, ""),
            rec("POST", &path, None, "{}"),
        ]);
        assert_eq!(m.missing(), vec![0, 1, 2]);
        let request = live("POST", &path, None, "{ }");
        assert_eq!(m.take(&request), MatchOutcome::Matched(0));
        assert_eq!(m.take(&request), MatchOutcome::Matched(2));
        assert_eq!(m.take(&request), MatchOutcome::Extra(2));
        assert_eq!(m.missing(), vec![1]);
    }

    #[test]
    fn unmatched_names_the_nearest_and_the_json_pointer() {
        let other = INVITE.replace(
            "550fae72-d251-43ec-868c-373732c2704f",
            "11111111-2222-3333-4444-555555555555",
        );
        let mut m = matcher(vec![
            rec("GET", &invite_path(CALL_UPPER), None, ""),
            rec("POST", "/communications/calls", None, "{}"),
            rec("POST", &invite_path(CALL_UPPER), None, INVITE),
        ]);
        let path = invite_path(CALL_DASHED);
        let outcome = m.take(&live("POST", &path, None, &other));
        assert_eq!(
            outcome,
            MatchOutcome::Unmatched {
                nearest: Some((
                    2,
                    vec![
                        "body /participants/0/identity/user/id: \"550fae72-d251-43ec-868c-373732c2704f\" != \"11111111-2222-3333-4444-555555555555\"".to_owned()
                    ]
                ))
            }
        );
        assert_eq!(m.missing(), vec![0, 1, 2]);
        // Nothing with the same method or path: no nearest.
        assert_eq!(
            m.take(&live("DELETE", "/me", None, "")),
            MatchOutcome::Unmatched { nearest: None }
        );
    }

    #[test]
    fn nearest_prefers_same_route_then_path_then_method_then_fewest_differences() {
        let path = format!("/communications/calls/{CALL_UPPER}/mute");
        let recorded = vec![
            rec("POST", "/communications/calls", None, "{}"),
            rec("PATCH", &path, None, "{}"),
            rec("POST", &path, None, r#"{"a":1,"b":2}"#),
            rec("POST", &path, None, r#"{"a":1,"b":3}"#),
        ];
        let m = matcher(recorded.clone());
        let request = live("POST", &path, None, r#"{"a":1,"b":4}"#);
        let nearest = |m: &Matcher| {
            m.nearest(&Shape::from_live(&request, &m.rules))
                .map(|(i, _)| i)
        };
        assert_eq!(nearest(&m), Some(2));
        let m = matcher(vec![recorded[1].clone(), recorded[0].clone()]);
        assert_eq!(nearest(&m), Some(0), "same path beats same method");
        let m = matcher(vec![
            recorded[0].clone(),
            rec("POST", &path, None, r#"{"x":1,"y":2}"#),
            recorded[3].clone(),
        ]);
        assert_eq!(nearest(&m), Some(2), "fewest differences");
    }

    #[test]
    fn credentials_never_decide_a_match_nor_appear_in_differences() {
        let recorded = rec(
            "POST",
            "/v1.0/x",
            Some("access_token=graphtape-redacted:0123456789ab&a=1"),
            r#"{"token":"graphtape-redacted:0123456789ab","n":1}"#,
        );
        let mut m = Matcher::new(vec![recorded.clone()], MatchRules::default());
        let secret_live = live(
            "POST",
            "/v1.0/x",
            Some("a=1&access_token=LIVE-SECRET"),
            r#"{"n":1,"token":"LIVE-SECRET"}"#,
        );
        assert_eq!(m.take(&secret_live), MatchOutcome::Matched(0));
        let other = live(
            "POST",
            "/v1.0/x",
            Some("a=2&access_token=LIVE-SECRET"),
            r#"{"n":1}"#,
        );
        let text = differences(&recorded, &other, &MatchRules::default()).join("\n");
        assert!(text.contains("a=2"), "{text}");
        assert!(!text.contains("LIVE-SECRET"), "{text}");
    }

    #[test]
    fn query_is_an_order_insensitive_decoded_multiset() {
        let mut m = matcher(vec![rec(
            "GET",
            "/v1.0/communications/calls",
            Some("a=1&b=x%20y&a=2"),
            "",
        )]);
        assert_eq!(
            m.take(&live(
                "GET",
                "/communications/calls",
                Some("a=2&b=x+y&a=1"),
                ""
            )),
            MatchOutcome::Matched(0)
        );
        let recorded = rec("GET", "/me", Some("a=1&a=1"), "");
        assert_eq!(
            differences(
                &recorded,
                &live("GET", "/me", Some("a=1"), ""),
                &MatchRules::default()
            ),
            vec!["query: a=1&a=1 != a=1"]
        );
        let recorded = rec("GET", "/me", Some(""), "");
        assert!(differences(
            &recorded,
            &live("GET", "/me", None, ""),
            &MatchRules::default()
        )
        .is_empty());
    }

    #[test]
    fn differences_cover_method_path_and_body_kinds() {
        let rules = MatchRules::default();
        let recorded = rec("POST", "/a", None, "not json");
        assert_eq!(
            differences(&recorded, &live("GET", "/b", None, "also not"), &rules),
            vec![
                "method: POST != GET",
                "path: /a != /b",
                "body: not JSON, bytes differ"
            ]
        );
        assert_eq!(
            differences(&recorded, &live("POST", "/a", None, ""), &rules),
            vec!["body: not JSON (8 bytes) != empty"]
        );
        assert_eq!(
            differences(
                &rec("POST", "/a", None, "{}"),
                &live("POST", "/a", None, "x"),
                &rules
            ),
            vec!["body: JSON != not JSON (1 byte)"]
        );
        assert_eq!(
            differences(
                &rec("POST", "/a", None, r#"{"a/b":[1,2],"n":1,"gone":true}"#),
                &live("POST", "/a", None, r#"{"a/b":[1],"n":1.0,"new":null}"#),
                &rules
            ),
            vec![
                "body /a~1b/1: 2 != missing",
                "body /n: 1 != 1.0",
                "body /gone: true != missing",
                "body /new: missing != null",
            ]
        );
        assert_eq!(
            differences(
                &rec("POST", "/a", None, "[1]"),
                &live("POST", "/a", None, "{}"),
                &rules
            ),
            vec!["body: [1] != {}"]
        );
    }

    #[test]
    fn differences_are_capped() {
        let a: Vec<u32> = (0..15).collect();
        let b: Vec<u32> = (100..115).collect();
        let (a, b) = (
            serde_json::json!(a).to_string(),
            serde_json::json!(b).to_string(),
        );
        let lines = differences(
            &rec("PUT", "/x", None, &a),
            &live("PUT", "/x", None, &b),
            &MatchRules::default(),
        );
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "body /0: 0 != 100");
        assert_eq!(lines[10], "... 5 more");
    }

    #[test]
    fn ignored_keys_are_case_insensitive_at_any_depth() {
        let rules = MatchRules {
            ignore_keys: vec!["stamp".into()],
        };
        let recorded = rec(
            "POST",
            "/x",
            None,
            r#"{"a":[{"Stamp":1,"b":2}],"STAMP":"q"}"#,
        );
        assert!(differences(
            &recorded,
            &live("POST", "/x", None, r#"{"a":[{"b":2}]}"#),
            &rules
        )
        .is_empty());
    }

    #[test]
    fn recorded_request_comes_from_the_body_the_bot_sent() {
        let body = |b: &str| StoredBody::capture(b.as_bytes(), usize::MAX);
        let ex = Exchange {
            seq: 3,
            direction: Direction::Api,
            wall_start_us: 0,
            timing: Timing::default(),
            request: RequestRecord {
                method: "POST".into(),
                path: "/v1.0/communications/calls".into(),
                query: Some("a=1".into()),
                version: "HTTP/1.1".into(),
                headers: Vec::new(),
                body: body(r#"{"callbackUri":"https://bot"}"#),
            },
            target: None,
            forwarded_body: Some(body(r#"{"callbackUri":"https://rec/callback/t"}"#)),
            response: None,
            error: None,
        };
        assert_eq!(
            RecordedRequest::from(&ex),
            rec(
                "POST",
                "/v1.0/communications/calls",
                Some("a=1"),
                r#"{"callbackUri":"https://bot"}"#
            )
        );
        // A gzip-sending bot (Kiota's compression handler): matched on the content.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, br#"{"callbackUri":"https://bot","a":1}"#).unwrap();
        let mut gzipped = ex.clone();
        gzipped.request.headers = vec![("content-encoding".into(), b"gzip".to_vec())];
        gzipped.request.body = StoredBody::capture(&gz.finish().unwrap(), usize::MAX);
        let mut m = Matcher::new(vec![RecordedRequest::from(&gzipped)], MatchRules::default());
        let live = LiveRequest {
            method: "POST",
            path: "/v1.0/communications/calls",
            query: Some("a=1"),
            body: br#"{"a":1,"callbackUri":"https://live-bot"}"#,
        };
        assert_eq!(m.take(&live), MatchOutcome::Matched(0));
    }

    #[test]
    fn no_input_panics() {
        let samples = [
            "",
            "%",
            "%zz&=&==",
            "\u{feff}{}",
            "{\"a\":[",
            "[[[[]]]]",
            "+%2B%e2%82",
        ];
        let recorded: Vec<RecordedRequest> =
            samples.iter().map(|s| rec(s, s, Some(s), s)).collect();
        let mut m = matcher(recorded);
        for s in samples {
            let _ = m.take(&live(s, s, Some(s), s));
            let _ = m.take(&live(s, s, None, s));
        }
        let _ = m.missing();
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::proptest_support::{json_object, near_json, spell};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn no_input_panics(
            recorded in prop::collection::vec((any::<String>(), any::<String>(), prop::option::of(any::<String>()), near_json()), 0..4),
            live in (any::<String>(), any::<String>(), prop::option::of(any::<String>()), near_json()),
        ) {
            let recorded: Vec<RecordedRequest> = recorded
                .into_iter()
                .map(|(method, path, query, body)| RecordedRequest { method, path, query, body })
                .collect();
            let mut m = Matcher::new(recorded.clone(), MatchRules::default());
            let live = LiveRequest { method: &live.0, path: &live.1, query: live.2.as_deref(), body: &live.3 };
            let _ = m.take(&live);
            let _ = m.take(&live);
            for r in &recorded {
                let _ = differences(r, &live, &MatchRules::default());
            }
        }

        /// A request matches its recording however the bot spells it this time: method
        /// case, id case and dashes, query order, JSON layout and escapes, and the
        /// values that change per run (callbackUri, clientContext, credentials).
        #[test]
        fn a_request_matches_its_recording_in_any_spelling(
            body in json_object(),
            style in any::<u64>(),
            other_style in any::<u64>(),
            query in prop::collection::vec(("[a-z]{1,4}", "[a-z0-9]{0,4}"), 0..4),
            rotate in any::<usize>(),
            live_context in "[a-z0-9-]{1,12}",
        ) {
            let path = "/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/participants/invite";
            let live_path = "/beta/app/calls/57DAB8B1894C409AB240BD8BEAE78896/Participants/microsoft.graph.invite";
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut shuffled = pairs.clone();
            if !shuffled.is_empty() {
                let n = rotate % shuffled.len();
                shuffled.rotate_left(n);
            }
            let mut recorded_body = body.clone();
            recorded_body["clientContext"] = "recorded-context".into();
            recorded_body["callbackUri"] = "https://old-tunnel.example/api/calls".into();
            recorded_body["token"] = "graphtape-redacted:0123456789ab".into();
            let mut live_body = body;
            live_body["clientContext"] = live_context.into();
            live_body["callbackUri"] = "https://new-tunnel.example/api/calls".into();
            live_body["token"] = "a-real-token".into();
            let recorded = RecordedRequest {
                method: "POST".into(),
                path: path.into(),
                query: (!pairs.is_empty()).then(|| pairs.join("&")),
                body: spell(&recorded_body, style),
            };
            let live_body = spell(&live_body, other_style);
            let live_query = shuffled.join("&");
            let live = LiveRequest {
                method: "post",
                path: live_path,
                query: (!shuffled.is_empty()).then_some(live_query.as_str()),
                body: &live_body,
            };
            let mut m = Matcher::new(vec![recorded], MatchRules::default());
            prop_assert_eq!(m.take(&live), MatchOutcome::Matched(0));
            prop_assert_eq!(m.take(&live), MatchOutcome::Extra(0));
        }
    }
}
