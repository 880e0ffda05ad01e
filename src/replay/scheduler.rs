//! The notification side of a replay: re-sends the recorded notifications to the bot,
//! one at a time in recorded order, each released by its cause and the recorded gap.

use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use http_body_util::Full;
use tokio::sync::watch;
use tokio::time::Instant;

use super::auth::{claims_of, CallbackAuth};
use super::engine::Replay;
use super::plan::{Anchor, PlannedNotification};
use super::progress::Progress;
use super::report::Divergence;
use crate::config::Upstream;
use crate::exchange::{
    Captured, CapturedBody, CapturedRequest, CapturedResponse, Direction, Exchange, StoredBody,
    Target, Timing,
};
use crate::proxy::headers::resend;
use crate::proxy::Forwarder;

/// How fast recorded gaps pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Recorded gaps divided by this factor (1 = real time).
    Speed(f64),
    /// No gaps: each notification as soon as its cause allows.
    Fast,
}

impl Pace {
    pub fn scale(self, gap_us: i64) -> Duration {
        match self {
            Pace::Fast => Duration::ZERO,
            Pace::Speed(s) => Duration::from_secs_f64(gap_us.max(0) as f64 / 1e6 / s),
        }
    }
}

/// Under `--fast` in explore (and `replay --schedule`), the least time between a
/// response and a notification recorded after it: a bot needs a moment to read a
/// response, and Graph's own gaps are tens of milliseconds.
pub const RESPONSE_GRACE: Duration = Duration::from_millis(10);

/// Where and how notifications are delivered.
pub struct Delivery {
    pub bot: Upstream,
    pub forwarder: Forwarder,
    pub pace: Pace,
    /// Where progress is kept for display, if it is shown.
    pub progress: Option<Arc<Progress>>,
    /// Deliver again, as Graph does, when the bot answers 5xx or not in time.
    pub retry: bool,
    /// Least time between a response and a notification that must come after it:
    /// under `--fast` the bot could otherwise get the notification before it has read
    /// the response, an order the recording did not show (explore; zero in replay).
    pub response_grace: Duration,
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
    let mut not_before = None;
    let anchor = match planned.anchor {
        Anchor::Start => start,
        Anchor::Cause(ordinal) if missing_causes.contains(&ordinal) => return None,
        Anchor::Cause(ordinal) => {
            let Some(arrived) = replay.arrival(ordinal).await else {
                missing_causes.push(ordinal);
                return None;
            };
            if planned.after_response {
                // Recorded after its cause's response: do not overtake it, and leave
                // the bot the grace to read it.
                if let Some(sent) = replay.response_sent(ordinal).await {
                    not_before = Some(sent + delivery.response_grace);
                }
            }
            arrived
        }
    };
    // An explored delay holds the notification beyond its recorded gap, whatever the
    // pace: lateness is the point of it.
    let due =
        anchor + delivery.pace.scale(planned.gap_us) + Duration::from_micros(planned.delay_us);
    let due = not_before.map_or(due, |n| due.max(n));
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

/// Graph's retry of a notification the bot failed (5xx or no answer in time): up to
/// three more attempts after 1 s, 2 s and 4 s (scaled by the pace).
const RETRY_BACKOFF_US: [i64; 3] = [1_000_000, 2_000_000, 4_000_000];

/// Sends one notification (and, with `retry`, its retries); `due` is its planned send
/// time, measured against the moment the request is handed to the client. The verdict
/// is the last attempt's.
async fn deliver(replay: &Replay, delivery: &Delivery, position: usize, due: Instant) {
    let planned = &replay.plan.notifications[position];
    let recorded = &replay.recorded[planned.index];
    let recorded_status = recorded.response.as_ref().map(|r| r.status);
    let mut attempt = 0;
    let (seq, outcome) = loop {
        let Some((seq, outcome)) = send_once(replay, delivery, position, due).await else {
            return;
        };
        let failed = outcome.error.is_some() || outcome.status.is_some_and(|s| s >= 500);
        if !(delivery.retry && failed && attempt < RETRY_BACKOFF_US.len()) {
            break (seq, outcome);
        }
        tokio::time::sleep(delivery.pace.scale(RETRY_BACKOFF_US[attempt])).await;
        attempt += 1;
    };
    let divergence = match (&outcome.error, outcome.status, recorded_status) {
        (Some(e), _, _) => Some((
            "notification-failed",
            format!("the bot did not answer: {e}"),
        )),
        (None, Some(now), Some(then)) if now != then => Some((
            "notification-status",
            format!("the bot answered {now}, recorded {then}"),
        )),
        _ => None,
    };
    // A notification the bot answered, whatever it answered, was delivered.
    if outcome.error.is_none() {
        replay.report(|r| r.delivered(&planned.call, outcome.late_us));
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
}

/// What one attempt gave.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    late_us: f64,
}

/// One attempt at a notification, recorded as an exchange of the replay session.
async fn send_once(
    replay: &Replay,
    delivery: &Delivery,
    position: usize,
    due: Instant,
) -> Option<(u64, Attempt)> {
    let planned = &replay.plan.notifications[position];
    let recorded = &replay.recorded[planned.index];
    let body = replay.substitute(&recorded.request.headers, &recorded.request.body.bytes);
    let headers = outgoing_headers(replay, recorded, body.len());
    let method = Method::from_bytes(recorded.request.method.as_bytes()).unwrap_or(Method::POST);
    let mut req = Request::new(Full::new(body.clone()));
    *req.method_mut() = method.clone();
    let path = replay.delivery_path(recorded.target.as_deref(), &planned.path);
    *req.uri_mut() = match delivery_target(&delivery.bot, &path) {
        Ok(uri) => uri,
        Err(reason) => {
            replay.diverged(Divergence {
                kind: "notification-failed",
                call: planned.call.clone(),
                recorded_seq: Some(planned.seq),
                replay_seq: None,
                message: format!("not delivered: {reason}"),
            });
            return None;
        }
    };
    *req.headers_mut() = headers.clone();
    *req.version_mut() = Version::HTTP_11;
    let target = req.uri().clone();

    let clock = &replay.clock;
    let seq = clock.next_seq();
    let start = clock.now_us();
    let late_us = Instant::now().saturating_duration_since(due).as_secs_f64() * 1e6;
    let outcome = delivery.forwarder.send(req, clock).await;
    let attempt = Attempt {
        status: outcome.head.as_ref().map(|h| h.status.as_u16()),
        error: outcome.error.as_ref().map(|e| e.message.clone()),
        late_us,
    };
    let ex = Captured {
        seq,
        direction: Direction::Callback,
        wall_start_us: clock.wall_start_us() + start,
        timing: Timing {
            request_start_us: start,
            request_end_us: Some(start),
            response_start_us: outcome.response_start_us,
            response_end_us: outcome.response_end_us,
        },
        request: CapturedRequest::new(
            method,
            path.parse().unwrap_or_else(|_| Uri::from_static("/")),
            headers,
            body,
        ),
        target: Some(Target::Uri(target.to_string())),
        forwarded_body: None,
        response: outcome.head.map(|head| CapturedResponse {
            status: head.status,
            headers: head.headers,
            body: CapturedBody::whole(outcome.body),
        }),
        error: outcome.error.map(|e| e.message),
    };
    replay.record(ex).await;
    Some((seq, attempt))
}

/// Where a notification goes: always the bot's origin (`--bot-url`), with the recorded
/// (or learned) path, which must be origin-form. A path that is not (`@host/x`,
/// `//host/x`, an absolute URL) could otherwise move the delivery, and its freshly
/// signed token, to another host.
pub(crate) fn delivery_target(bot: &Upstream, path_and_query: &str) -> Result<Uri, String> {
    let refuse = |why: &str| format!("the path {path_and_query:?} {why}; refusing to send it");
    if !path_and_query.starts_with('/') || path_and_query.starts_with("//") {
        return Err(refuse("is not origin-form (one leading \"/\", no host)"));
    }
    let joined = format!("{}{path_and_query}", bot.base_path);
    let pq = PathAndQuery::try_from(joined.as_str()).map_err(|e| refuse(&e.to_string()))?;
    let uri = Uri::builder()
        .scheme(bot.scheme.as_str())
        .authority(bot.authority.as_str())
        .path_and_query(pq)
        .build()
        .map_err(|e| refuse(&e.to_string()))?;
    // Belt and braces: whatever the path held, the origin is the bot's.
    if uri.authority().map(|a| a.as_str()) != Some(bot.authority.as_str()) {
        return Err(refuse("would leave the bot's origin"));
    }
    Ok(uri)
}

/// The recorded headers, minus what belongs to the old hop and the old token, plus the
/// token this replay sends.
fn outgoing_headers(replay: &Replay, recorded: &Exchange<StoredBody>, len: usize) -> HeaderMap {
    let auth = &replay.settings.auth;
    let mut headers = resend(&replay.live_headers(&recorded.request.headers), len);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever path a recording or a bot gives, a delivery goes to the bot's
        /// origin or nowhere; and every path the importer accepts is deliverable.
        #[test]
        fn deliveries_never_leave_the_bots_origin(path in any::<String>(), tail in "[ -~]{0,20}") {
            let bot = Upstream::parse("http://127.0.0.1:3978/hook").unwrap();
            for candidate in [path.clone(), format!("/{tail}"), format!("@{tail}"), format!("//{tail}")] {
                if let Ok(uri) = delivery_target(&bot, &candidate) {
                    prop_assert_eq!(uri.authority().map(|a| a.as_str()), Some("127.0.0.1:3978"));
                    prop_assert_eq!(uri.scheme_str(), Some("http"));
                    prop_assert!(uri.path().starts_with("/hook/"));
                }
                let (p, q) = match candidate.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (candidate.as_str(), None),
                };
                if crate::recording::origin_form(p, q, true).is_ok() {
                    prop_assert!(delivery_target(&bot, &candidate).is_ok(), "{}", candidate);
                }
            }
        }
    }

    #[test]
    fn deliveries_stay_at_the_bots_origin() {
        let bot = Upstream::parse("http://127.0.0.1:3978/bot").unwrap();
        assert_eq!(
            delivery_target(&bot, "/api/calls?x=1").unwrap().to_string(),
            "http://127.0.0.1:3978/bot/api/calls?x=1"
        );
        for evil in [
            "@127.0.0.1:18099/evil",
            "//127.0.0.1:18099/evil",
            "http://127.0.0.1:18099/evil",
            "/a b",
            "",
        ] {
            let err = delivery_target(&bot, evil).unwrap_err();
            assert!(err.contains("refusing"), "{evil}: {err}");
        }
        let bare = Upstream::parse("http://127.0.0.1:3978").unwrap();
        let err = delivery_target(&bare, "@127.0.0.1:18099/evil").unwrap_err();
        assert!(err.contains("origin-form"), "{err}");
    }
}
