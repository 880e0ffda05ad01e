//! The notification side of a replay: re-sends the recorded notifications to the bot,
//! one at a time in recorded order, each released by its cause and the recorded gap.

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Request, Version};
use http_body_util::Full;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::CallbackAuth;
use super::engine::Replay;
use super::plan::{Anchor, PlannedNotification};
use super::progress::Progress;
use super::report::Divergence;
use crate::config::Upstream;
use crate::exchange::{
    header, Direction, Exchange, RequestRecord, ResponseRecord, StoredBody, Timing,
};
use crate::proxy::headers::{resend, to_record};
use crate::proxy::Forwarder;
use crate::redact::{jwt_claims, parse_redacted, JwtClaims};

/// How fast recorded gaps pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Recorded gaps divided by this factor (1 = real time).
    Speed(f64),
    /// No gaps: each notification as soon as its cause allows.
    Fast,
}

impl Pace {
    fn scale(self, gap_us: i64) -> Duration {
        match self {
            Pace::Fast => Duration::ZERO,
            Pace::Speed(s) => Duration::from_secs_f64(gap_us.max(0) as f64 / 1e6 / s),
        }
    }
}

/// Where and how notifications are delivered.
pub struct Delivery {
    pub bot: Upstream,
    pub forwarder: Forwarder,
    pub pace: Pace,
    /// Where progress is kept for display, if it is shown.
    pub progress: Option<Arc<Progress>>,
}

/// Delivers every planned notification; returns when all are delivered or given up,
/// or early when `stop` turns true (between deliveries: one under way completes and is
/// recorded).
pub async fn deliver_all(
    replay: Arc<Replay>,
    delivery: Delivery,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let mut missing_causes: Vec<usize> = Vec::new();
    for (position, planned) in replay.plan.notifications.iter().enumerate() {
        if let Some(p) = &delivery.progress {
            p.waiting_for_cause();
        }
        let due = tokio::select! {
            due = due_time(&replay, &delivery, planned, start, &mut missing_causes) => due,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match due {
            Some(due) => deliver(&replay, &delivery, position, due).await,
            None => undelivered(&replay, position),
        }
        replay.finished(position);
        if let Some(p) = &delivery.progress {
            p.sent(position + 1, recorded_offset(&replay, planned));
        }
    }
}

/// When the notification happened in the recording.
fn recorded_offset(replay: &Replay, planned: &PlannedNotification) -> i64 {
    replay.recorded[planned.index].timing.request_start_us
}

/// Waits until a notification is due: its cause made (and answered, if it was recorded
/// after the answer), then the recorded gap. None if the cause never came.
async fn due_time(
    replay: &Replay,
    delivery: &Delivery,
    planned: &PlannedNotification,
    start: Instant,
    missing_causes: &mut Vec<usize>,
) -> Option<Instant> {
    let anchor = match planned.anchor {
        Anchor::Start => start,
        Anchor::Cause(ordinal) if missing_causes.contains(&ordinal) => return None,
        Anchor::Cause(ordinal) => {
            let Some(arrived) = replay.arrival(ordinal).await else {
                missing_causes.push(ordinal);
                return None;
            };
            if planned.after_response {
                // Recorded after its cause's response: do not overtake it.
                replay.response_sent(ordinal).await;
            }
            arrived
        }
    };
    let due = anchor + delivery.pace.scale(planned.gap_us);
    if let Some(p) = &delivery.progress {
        p.due(due, recorded_offset(replay, planned));
    }
    sleep_precisely(due).await;
    Some(due)
}

/// tokio's timer has millisecond resolution: sleep to just before the deadline, then
/// yield until it passes, for sub-millisecond release times.
async fn sleep_precisely(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(1500);
    if let Some(early) = deadline.checked_sub(SPIN) {
        if early > Instant::now() {
            tokio::time::sleep_until(early).await;
        }
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

fn undelivered(replay: &Replay, position: usize) {
    let planned = &replay.plan.notifications[position];
    let cause = match planned.anchor {
        Anchor::Cause(ordinal) => {
            let r = &replay.recorded[replay.plan.api[ordinal]];
            format!(
                "its cause, recorded #{} {} {}, was never made within {:?}",
                r.seq, r.request.method, r.request.path, replay.settings.wait
            )
        }
        Anchor::Start => "no cause".into(),
    };
    replay.diverged(Divergence {
        kind: "notification-undelivered",
        call: planned.call.clone(),
        recorded_seq: Some(planned.seq),
        replay_seq: None,
        message: format!("not delivered: {cause}"),
    });
}

/// Sends one notification; `due` is its planned send time, measured against the moment
/// the request is handed to the client.
async fn deliver(replay: &Replay, delivery: &Delivery, position: usize, due: Instant) {
    let planned = &replay.plan.notifications[position];
    let recorded = &replay.recorded[planned.index];
    let body = replay.substitute(&recorded.request.headers, &recorded.request.body.bytes);
    let headers = outgoing_headers(recorded, &replay.settings.auth, body.len());
    let method = Method::from_bytes(recorded.request.method.as_bytes()).unwrap_or(Method::POST);
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = method;
    let path = replay.delivery_path(recorded.target.as_deref(), &planned.path);
    *req.uri_mut() = delivery.bot.join(&path);
    *req.headers_mut() = headers.clone();
    *req.version_mut() = Version::HTTP_11;
    let target = req.uri().to_string();

    let clock = &replay.clock;
    let seq = clock.next_seq();
    let start = clock.now_us();
    let late_us = Instant::now().saturating_duration_since(due).as_secs_f64() * 1e6;
    let outcome = delivery.forwarder.send(req, clock).await;
    let status = outcome.head.as_ref().map(|h| h.status.as_u16());
    let recorded_status = recorded.response.as_ref().map(|r| r.status);
    let divergence = match (&outcome.error, status, recorded_status) {
        (Some(e), _, _) => Some((
            "notification-failed",
            format!("the bot did not answer: {}", e.message),
        )),
        (None, Some(now), Some(then)) if now != then => Some((
            "notification-status",
            format!("the bot answered {now}, recorded {then}"),
        )),
        _ => None,
    };
    // A notification the bot answered, whatever it answered, was delivered.
    if outcome.error.is_none() {
        replay.report(|r| r.delivered(&planned.call, late_us));
    }
    if let Some((kind, message)) = divergence {
        replay.diverged(Divergence {
            kind,
            call: planned.call.clone(),
            recorded_seq: Some(planned.seq),
            replay_seq: Some(seq),
            message,
        });
    }
    let ex = Exchange {
        seq,
        direction: Direction::Callback,
        wall_start_us: clock.wall_start_us() + start,
        timing: Timing {
            request_start_us: start,
            request_end_us: Some(start),
            response_start_us: outcome.response_start_us,
            response_end_us: outcome.response_end_us,
        },
        request: RequestRecord {
            method: recorded.request.method.clone(),
            query: path.split_once('?').map(|(_, q)| q.to_string()),
            path: path.split('?').next().unwrap_or_default().to_string(),
            version: "HTTP/1.1".into(),
            headers: to_record(&headers),
            body,
        },
        target: Some(target),
        forwarded_body: None,
        response: outcome.head.map(|head| ResponseRecord {
            status: head.status.as_u16(),
            headers: to_record(&head.headers),
            body: outcome.body,
        }),
        error: outcome.error.map(|e| e.message),
    };
    replay.recorder.record(ex).await;
}

/// The recorded headers, minus what belongs to the old hop and the old token, plus the
/// token this replay sends.
fn outgoing_headers(recorded: &Exchange<StoredBody>, auth: &CallbackAuth, len: usize) -> HeaderMap {
    let mut headers = resend(&recorded.request.headers, len);
    headers.remove(AUTHORIZATION);
    let token = match auth {
        CallbackAuth::Sign(signer) => {
            let now = crate::clock::unix_micros(std::time::SystemTime::now()) / 1_000_000;
            Some(signer.token(&claims_of(recorded).unwrap_or_default(), now))
        }
        CallbackAuth::Token(token) => Some(token.clone()),
        CallbackAuth::None => None,
    };
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

/// The claims of a recorded notification's token: from graphtape's placeholder, or from
/// the token itself when it was recorded in clear.
pub fn claims_of(ex: &Exchange<StoredBody>) -> Option<JwtClaims> {
    let value = header(&ex.request.headers, "authorization")?;
    if let Some(redacted) = parse_redacted(value) {
        return Some(redacted.claims);
    }
    let token = value.split_once(' ').map_or(value, |(_, t)| t);
    jwt_claims(token)
}
