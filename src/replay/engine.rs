//! The replay's shared state and its Graph side: the bot's API requests are matched
//! against the recording and answered from it, and each match releases the
//! notifications it caused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{claims_of, CallbackAuth};
use super::ids::IdMap;
use super::matcher::{LiveRequest, MatchOutcome, MatchRules, Matcher, RecordedRequest};
use super::plan::Plan;
use super::report::{Divergence, Report, ReportBuilder};
use super::substitute::Substitutions;
use crate::clock::SessionClock;
use crate::content_encoding::map_content;
use crate::exchange::{
    Captured, CapturedBody, CapturedResponse, Direction, Exchange, Headers, StoredBody, Target,
};
use crate::graph::ids_from_path;
use crate::proxy::capture::Inbound;
use crate::proxy::headers::resend;
use crate::proxy::reply::{error_json, Body};
use crate::store::Recorder;

/// How a replay matches, learns, waits and authenticates.
pub struct Settings {
    pub rules: MatchRules,
    /// Keys whose values the bot generates (learned and substituted).
    pub learn_keys: Vec<String>,
    /// How long to wait for a cause or a held notification.
    pub wait: Duration,
    pub auth: CallbackAuth,
    /// The API listener's own URL, for the OpenID configuration.
    pub self_url: String,
    /// Requests made in another order than recorded within a call fail the verdict
    /// (replay); explore matches order-insensitively within a call.
    pub request_order: bool,
    /// Log each divergence as it happens (replay); explore reports them per run.
    pub log_divergences: bool,
}

/// Everything the Graph side and the scheduler share.
pub struct Replay {
    pub plan: Plan,
    /// The recorded session, in sequence order (shared by the runs of an explore).
    pub recorded: Arc<Vec<Exchange<StoredBody>>>,
    /// This run's fresh call and operation ids (empty in a plain replay).
    ids: IdMap,
    matcher: Mutex<Matcher>,
    subs: Mutex<Substitutions>,
    /// The bot's recorded callback URLs → the ones it gives in this replay.
    callback_urls: Mutex<HashMap<String, String>>,
    /// Per API ordinal: when the bot made that request in this replay.
    arrivals: Vec<watch::Sender<Option<Instant>>>,
    /// Per API ordinal: its response has been handed to the connection.
    responded: Vec<watch::Sender<Option<Instant>>>,
    /// Per notification position: delivered (or given up on), so held responses go.
    done: Vec<watch::Sender<bool>>,
    /// Counts API requests, so the end of the replay can wait for stragglers without
    /// missing one that arrives between two checks.
    activity: watch::Sender<u64>,
    report: Mutex<ReportBuilder>,
    pub settings: Arc<Settings>,
    pub clock: Arc<SessionClock>,
    /// Where the replay itself is recorded; None when it is not (explore runs).
    pub recorder: Option<Recorder>,
}

/// An answer to the bot, kept as parts so the replay session records exactly what
/// was sent.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Reply {
            status,
            headers,
            body: Bytes::from(value.to_string()),
        }
    }

    fn response(&self) -> Response<Body> {
        let mut resp = Response::new(Full::new(self.body.clone()));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers.clone();
        resp
    }
}

/// Paths where a bot's token validator finds graphtape's keys.
const OPENID_PATHS: &[&str] = &[
    "/.well-known/openid-configuration",
    "/v1/.well-known/openidconfiguration",
];
const JWKS_PATHS: &[&str] = &["/.well-known/jwks.json", "/v1/.well-known/keys"];

impl Replay {
    /// The shared state for a plan over `recorded`; the replay itself is recorded
    /// through `recorder` on `clock`.
    pub fn new(
        plan: Plan,
        recorded: Arc<Vec<Exchange<StoredBody>>>,
        settings: Arc<Settings>,
        clock: Arc<SessionClock>,
        recorder: Option<Recorder>,
    ) -> Replay {
        let requests = plan
            .api
            .iter()
            .map(|&i| RecordedRequest::from(&recorded[i]))
            .collect();
        let arrivals = plan.api.iter().map(|_| watch::channel(None).0).collect();
        let responded = plan.api.iter().map(|_| watch::channel(None).0).collect();
        let done = plan
            .notifications
            .iter()
            .map(|_| watch::channel(false).0)
            .collect();
        Replay {
            matcher: Mutex::new(Matcher::new(requests, settings.rules.clone())),
            subs: Mutex::new(Substitutions::default()),
            callback_urls: Mutex::new(HashMap::new()),
            arrivals,
            responded,
            done,
            activity: watch::channel(0).0,
            report: Mutex::new(ReportBuilder::default()),
            settings,
            clock,
            recorder,
            plan,
            recorded,
            ids: IdMap::default(),
        }
    }

    /// The same replay with fresh ids: recorded ids are replaced in everything sent
    /// to the bot, and the bot's use of the fresh ones is mapped back.
    pub fn with_ids(mut self, ids: IdMap) -> Replay {
        self.ids = ids;
        self
    }

    /// Records one exchange of the replay, when it is recorded.
    pub async fn record(&self, ex: Captured) {
        if let Some(recorder) = &self.recorder {
            recorder.record(ex).await;
        }
    }

    /// Recorded headers as sent in this run (fresh ids in `Location` and the like).
    pub fn live_headers(&self, headers: &Headers) -> Headers {
        self.ids.headers_to_live(headers)
    }

    /// Ticks on every API request the bot makes.
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.activity.subscribe()
    }

    /// Adds to the report under construction.
    pub fn report(&self, f: impl FnOnce(&mut ReportBuilder)) {
        if let Ok(mut report) = self.report.lock() {
            f(&mut report);
        }
    }

    /// The verdict: what was collected, plus the recorded requests the bot never made.
    pub fn finish(&self, session: &str, replay_session: &str) -> Report {
        for ordinal in self.missing() {
            let r = &self.recorded[self.plan.api[ordinal]];
            self.diverged(Divergence {
                kind: "missing-request",
                call: self.plan.api_calls[ordinal].clone(),
                recorded_seq: Some(r.seq),
                replay_seq: None,
                message: format!("{} {} was never made", r.request.method, r.request.path),
            });
        }
        let builder = self
            .report
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        builder.finish(
            session,
            replay_session,
            self.plan.api.len(),
            self.plan.notifications.len(),
            self.settings.request_order,
        )
    }

    /// Waits for the bot to make recorded request `ordinal`; None after `--wait`.
    pub async fn arrival(&self, ordinal: usize) -> Option<Instant> {
        let mut rx = self.arrivals.get(ordinal)?.subscribe();
        let waited = tokio::time::timeout(self.settings.wait, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(at)) => *at,
            _ => None,
        }
    }

    /// Waits until the response to recorded request `ordinal` has been sent, and says
    /// when; None after `--wait`.
    pub async fn response_sent(&self, ordinal: usize) -> Option<Instant> {
        let mut rx = self.responded.get(ordinal)?.subscribe();
        let waited = tokio::time::timeout(self.settings.wait, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(at)) => *at,
            _ => None,
        }
    }

    /// Marks notification `position` as finished with (delivered or given up).
    pub fn finished(&self, position: usize) {
        if let Some(tx) = self.done.get(position) {
            tx.send_replace(true);
        }
    }

    /// Recorded requests the bot has not made (yet).
    pub fn missing(&self) -> Vec<usize> {
        self.matcher.lock().map(|m| m.missing()).unwrap_or_default()
    }

    /// A recorded body with the learned substitutions and this run's fresh ids applied
    /// to its content (an encoded body is decoded, changed and encoded again).
    pub fn substitute(&self, headers: &Headers, body: &[u8]) -> Bytes {
        let subs = self.subs.lock();
        let changed = subs.ok().and_then(|s| {
            map_content(
                crate::exchange::header(headers, "content-encoding"),
                body,
                |content| {
                    let learned = s.apply(content);
                    let source = learned.as_deref().unwrap_or(content);
                    self.ids.to_live(source).or(learned)
                },
            )
        });
        match changed {
            Some(changed) => Bytes::from(changed),
            None => Bytes::copy_from_slice(body),
        }
    }

    /// A bot may give another callback URL than when recorded (a fresh id in the path):
    /// notifications recorded for the old one go to the new one's path.
    fn learn_callback_url(&self, recorded_body: &[u8], live_body: &[u8]) {
        let (Some(recorded), Some(live)) = (callback_url(recorded_body), callback_url(live_body))
        else {
            return;
        };
        if recorded != live {
            if let Ok(mut urls) = self.callback_urls.lock() {
                urls.insert(recorded, live);
            }
        }
    }

    /// The path (and query) to deliver a notification to: where the bot now wants
    /// notifications that went to `recorded_target`, else `recorded_path`.
    pub fn delivery_path(&self, recorded_target: Option<&str>, recorded_path: &str) -> String {
        let live = recorded_target.and_then(|t| {
            self.callback_urls
                .lock()
                .ok()
                .and_then(|urls| urls.get(t).cloned())
        });
        let path = live
            .and_then(|url| url.parse::<http::Uri>().ok())
            .and_then(|uri| uri.path_and_query().map(|pq| pq.as_str().to_string()))
            .unwrap_or_else(|| recorded_path.to_string());
        self.ids.str_to_live(&path)
    }

    /// Reports a divergence (logged at debug level as it happens; the report lists it).
    pub fn diverged(&self, d: Divergence) {
        if self.settings.log_divergences {
            tracing::debug!(kind = d.kind, message = %d.message, "divergence");
        }
        self.report(|r| r.diverged(d));
    }

    /// One API request from the bot, answered as Graph answered it when recorded.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        if let Some(doc) = self.discovery(&path) {
            return doc;
        }
        let inbound = Inbound::receive(&self.clock, req).await;
        self.activity.send_modify(|n| *n += 1);
        let (reply, recorded_seq, ordinal) = self.answer(&inbound).await;
        let mut ex = inbound.into_exchange(Direction::Api);
        ex.timing.response_start_us = Some(self.clock.now_us());
        ex.timing.response_end_us = ex.timing.response_start_us;
        ex.target =
            recorded_seq.map(|seq| Target::Label(format!("graphtape-replay:recorded#{seq}")));
        ex.response = Some(CapturedResponse {
            status: reply.status,
            headers: reply.headers.clone(),
            body: CapturedBody::whole(reply.body.clone()),
        });
        self.record(ex).await;
        let response = reply.response();
        // Handed to hyper, which writes it at once: notifications recorded after this
        // response may go now.
        if let Some(tx) = ordinal.and_then(|o| self.responded.get(o)) {
            tx.send_replace(Some(Instant::now()));
        }
        response
    }

    /// The reply, the recorded sequence number it comes from, and the ordinal of the
    /// recorded request it matched (first time only).
    async fn answer(&self, inbound: &Inbound) -> (Reply, Option<u64>, Option<usize>) {
        // The bot's use of this run's fresh ids, mapped back to the recorded ones.
        let path = self.ids.str_to_recorded(inbound.parts.uri.path());
        let query = inbound
            .parts
            .uri
            .query()
            .map(|q| self.ids.str_to_recorded(q));
        // Matching and learning read the content: a bot may gzip its request bodies.
        let encoding = inbound
            .parts
            .headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let content = crate::content_encoding::content(encoding, &inbound.body);
        let body = self
            .ids
            .to_recorded(&content)
            .map(Bytes::from)
            .unwrap_or_else(|| Bytes::copy_from_slice(&content));
        let live = LiveRequest {
            method: inbound.parts.method.as_str(),
            path: &path,
            query: query.as_deref(),
            body: &body,
        };
        let outcome = match self.matcher.lock() {
            Ok(mut m) => m.take(&live),
            Err(_) => MatchOutcome::Unmatched { nearest: None },
        };
        let live_call = ids_from_path(live.path).call.map(|c| c.norm);
        match outcome {
            MatchOutcome::Matched(ordinal) => {
                let recorded = &self.recorded[self.plan.api[ordinal]];
                if let Ok(mut subs) = self.subs.lock() {
                    subs.learn(
                        &recorded.request.content(),
                        &body,
                        &self.settings.learn_keys,
                    );
                }
                self.learn_callback_url(&recorded.request.content(), &body);
                let call = self.plan.api_calls[ordinal].clone();
                self.report(|r| r.matched(&call, ordinal));
                if let Some(tx) = self.arrivals.get(ordinal) {
                    tx.send_replace(Some(Instant::now()));
                }
                self.hold(ordinal, &call).await;
                (
                    self.recorded_reply(recorded),
                    Some(recorded.seq),
                    Some(ordinal),
                )
            }
            MatchOutcome::Extra(ordinal) => {
                let recorded = &self.recorded[self.plan.api[ordinal]];
                self.diverged(Divergence {
                    kind: "extra-request",
                    call: self.plan.api_calls[ordinal].clone().or(live_call),
                    recorded_seq: Some(recorded.seq),
                    replay_seq: Some(inbound.seq),
                    message: format!(
                        "{} {} was made more often than recorded; answered as recorded #{}",
                        live.method, live.path, recorded.seq
                    ),
                });
                (self.recorded_reply(recorded), Some(recorded.seq), None)
            }
            MatchOutcome::Unmatched { nearest } => {
                let (detail, nearest_json) = match &nearest {
                    Some((ordinal, differences)) => {
                        let r = &self.recorded[self.plan.api[*ordinal]];
                        (
                            format!(
                                "; nearest recorded #{} {} {}: {}",
                                r.seq,
                                r.request.method,
                                r.request.path,
                                differences.join("; ")
                            ),
                            serde_json::json!({
                                "seq": r.seq,
                                "method": r.request.method,
                                "path": r.request.path,
                                "differences": differences,
                            }),
                        )
                    }
                    None => (String::new(), serde_json::Value::Null),
                };
                let message = format!(
                    "{} {} matches no recorded request{detail}",
                    live.method, live.path
                );
                self.diverged(Divergence {
                    kind: "unmatched-request",
                    call: live_call,
                    recorded_seq: None,
                    replay_seq: Some(inbound.seq),
                    message: message.clone(),
                });
                let body = serde_json::json!({
                    "error": {
                        "code": "replayUnmatched",
                        "message": message,
                        "innerError": { "source": "graphtape", "nearest": nearest_json },
                    }
                });
                (Reply::json(StatusCode::NOT_FOUND, &body), None, None)
            }
        }
    }

    /// Holds a response until the notifications that, when recorded, reached the bot
    /// before it, have been delivered: this is how a recorded race is reproduced.
    async fn hold(&self, ordinal: usize, call: &Option<String>) {
        for &position in self.plan.holds.get(ordinal).into_iter().flatten() {
            let Some(tx) = self.done.get(position) else {
                continue;
            };
            let mut rx = tx.subscribe();
            let waited = tokio::time::timeout(self.settings.wait, rx.wait_for(|done| *done)).await;
            if waited.is_err() {
                let n = &self.plan.notifications[position];
                self.diverged(Divergence {
                    kind: "held-response-timeout",
                    call: call.clone(),
                    recorded_seq: Some(n.seq),
                    replay_seq: None,
                    message: format!(
                        "the response was held for notification #{} which was not delivered within {:?}",
                        n.seq, self.settings.wait
                    ),
                });
            }
        }
    }

    /// The recorded answer, with learned substitutions applied; a recorded failure
    /// (no response) is answered as graphtape answered it then.
    fn recorded_reply(&self, recorded: &Exchange<StoredBody>) -> Reply {
        let Some(resp) = &recorded.response else {
            let message = recorded
                .error
                .clone()
                .unwrap_or_else(|| "no response was recorded".into());
            return Reply::json(
                StatusCode::BAD_GATEWAY,
                &error_json("upstreamError", &message),
            );
        };
        let body = self.substitute(&resp.headers, &resp.body.bytes);
        let headers = resend(&self.live_headers(&resp.headers), body.len());
        Reply {
            status: StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK),
            headers,
            body,
        }
    }

    /// OpenID configuration and JWKS, when replay signs callback tokens.
    fn discovery(&self, path: &str) -> Option<Response<Body>> {
        let CallbackAuth::Sign(signer) = &self.settings.auth else {
            return None;
        };
        let doc = if OPENID_PATHS.contains(&path) {
            let issuer = self
                .recorded_claims()
                .iss
                .unwrap_or_else(|| "https://api.botframework.com".into());
            let jwks_uri = format!("{}{}", self.settings.self_url, JWKS_PATHS[0]);
            signer.openid_configuration(&issuer, &jwks_uri)
        } else if JWKS_PATHS.contains(&path) {
            signer.jwks()
        } else {
            return None;
        };
        Some(Reply::json(StatusCode::OK, &doc).response())
    }

    /// The claims of the first recorded callback token (for the issuer).
    pub fn recorded_claims(&self) -> crate::redact::JwtClaims {
        self.recorded
            .iter()
            .filter(|e| e.direction == Direction::Callback)
            .find_map(claims_of)
            .unwrap_or_default()
    }
}

/// The first `callbackUri` (or legacy `callback`) string in a JSON body.
fn callback_url(body: &[u8]) -> Option<String> {
    crate::jsonscan::string_values(body, |k| {
        k.eq_ignore_ascii_case("callbackUri") || k.eq_ignore_ascii_case("callback")
    })?
    .into_iter()
    .next()
    .map(|(_, url)| url)
}
