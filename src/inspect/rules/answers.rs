//! How each side answered: the bot's acknowledgements of notifications (`slow-ack`,
//! `bot-rejected`) and Graph's answers to the bot (`graph-error`).

use serde_json::Value;

use super::{describe, hit, CheckOptions, Hit, Session, Severity};
use crate::inspect::view;

/// Over this, Graph may give up on the bot (it asks for about 5 s).
const ACK_ERROR_US: i64 = 5_000_000;
/// Over this, the bot is close enough to the limit to be worth a look.
const ACK_WARNING_US: i64 = 1_000_000;

/// The bot taking long to answer a notification POST.
pub(super) fn slow_ack(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for (cb, notes) in s.callbacks() {
        let call = notes.iter().find_map(|n| n.index.call.as_ref());
        let took = view::latency_us(cb).or_else(|| {
            cb.timing
                .response_start_us
                .map(|t| t.saturating_sub(cb.timing.request_start_us))
        });
        let Some(took) = took.filter(|t| *t > ACK_WARNING_US) else {
            continue;
        };
        let severity = if took > ACK_ERROR_US {
            Severity::Error
        } else {
            Severity::Warning
        };
        out.push(hit(
            severity,
            call,
            &[cb.seq],
            format!(
                "the bot took {} ms to answer the notification POST at seq {}",
                view::ms(took),
                cb.seq
            ),
        ));
    }
    out
}

/// The bot answering a notification POST with a non-2xx status, or not at all.
pub(super) fn bot_rejected(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for (cb, notes) in s.callbacks() {
        let status = cb.response.as_ref().map(|r| r.status);
        let accepted = status.is_some_and(|st| (200..300).contains(&st)) && cb.error.is_none();
        if accepted {
            continue;
        }
        let call = notes.iter().find_map(|n| n.index.call.as_ref());
        let answer = status.map_or_else(|| "no answer".to_owned(), |st| format!("status {st}"));
        let error = cb
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        out.push(hit(
            Severity::Error,
            call,
            &[cb.seq],
            format!(
                "the bot gave {answer} to the notification POST at seq {}{error}",
                cb.seq
            ),
        ));
    }
    out
}

/// Graph (or the way to it) failing an API request.
pub(super) fn graph_errors(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for (api, facts) in s.api() {
        let status = api.response.as_ref().map(|r| r.status);
        let severity = match (status, &api.error) {
            (_, Some(_)) | (None, None) => Severity::Error,
            (Some(st), None) if st >= 500 => Severity::Error,
            (Some(st), None) if st >= 400 => Severity::Warning,
            _ => continue,
        };
        let mut message = format!(
            "{} answered {}",
            describe(api),
            status.map_or_else(|| "nothing".to_owned(), |st| st.to_string())
        );
        if let Some(detail) = api
            .response
            .as_ref()
            .and_then(|r| graph_error_detail(&r.content()))
        {
            message.push_str(&format!(" ({detail})"));
        }
        if let Some(error) = &api.error {
            message.push_str(&format!(": {error}"));
        }
        out.push(hit(severity, facts.ids.call.as_ref(), &[api.seq], message));
    }
    out
}

/// `code: message` from Graph's error body `{"error":{"code":..,"message":..}}`.
fn graph_error_detail(body: &[u8]) -> Option<String> {
    let body = view::json_body(body)?;
    let error = body.get("error")?;
    let code = error.get("code").and_then(Value::as_str);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (Some(text), None) | (None, Some(text)) => Some(text.to_owned()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{check_of, ended, of, CALL_B_NORM};
    use super::super::{check, Severity};
    use crate::inspect::testutil::{api, call_state_body, callback, incoming_body, CALL_A, CALL_B};

    #[test]
    fn slow_acks() {
        let body = |s| call_state_body(CALL_A, s);
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A))
                .latency_ms(1_000)
                .build(),
            callback(2, 10, &body("establishing"))
                .latency_us(1_000_001)
                .build(),
            callback(3, 20, &body("established"))
                .latency_us(5_000_001)
                .build(),
        ];
        ex.extend(ended(4, CALL_A));
        ex[3] = callback(4, 30, &body("terminated"))
            .latency_ms(5_000)
            .build();
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "slow-ack"),
            vec![
                (Severity::Warning, vec![2]),
                (Severity::Error, vec![3]),
                (Severity::Warning, vec![4])
            ]
        );
        assert!(
            findings[1].message.contains("5000.001 ms"),
            "{}",
            findings[1].message
        );
        assert_eq!(findings.len(), 3, "{findings:#?}");
    }

    #[test]
    fn bot_rejections() {
        let body = |s| call_state_body(CALL_A, s);
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A))
                .respond(401, "")
                .build(),
            callback(2, 10, &body("establishing"))
                .fail("bot unreachable: connection refused")
                .build(),
            callback(3, 20, &body("established"))
                .respond(200, "")
                .build(),
        ];
        ex.extend(ended(4, CALL_A));
        ex[3] = callback(4, 30, &body("terminated"))
            .error("reset mid-body")
            .build();
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "bot-rejected"),
            vec![
                (Severity::Error, vec![1]),
                (Severity::Error, vec![2]),
                (Severity::Error, vec![4])
            ]
        );
        assert!(
            findings[1].message.contains("no answer")
                && findings[1].message.contains("connection refused")
        );
        assert_eq!(findings.len(), 3, "{findings:#?}");
    }

    #[test]
    fn graph_failures() {
        let ex = vec![
            api(
                1,
                0,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_B}/playPrompt"),
            )
            .respond(
                404,
                r#"{"error":{"code":"itemNotFound","message":"Call not found"}}"#,
            )
            .build(),
            api(2, 10, "GET", "/v1.0/me").respond(503, "").build(),
            api(3, 20, "GET", "/v1.0/me")
                .fail("upstreamUnreachable: refused")
                .build(),
            api(4, 30, "GET", "/v1.0/me")
                .respond(502, "{}")
                .error("upstreamReset")
                .build(),
            api(5, 40, "GET", "/v1.0/me").respond(302, "").build(),
        ];
        let findings = check(&ex);
        assert_eq!(
            of(&findings, "graph-error"),
            vec![
                (Severity::Warning, vec![1]),
                (Severity::Error, vec![2]),
                (Severity::Error, vec![3]),
                (Severity::Error, vec![4])
            ]
        );
        let not_found = findings.iter().find(|f| f.rule == "graph-error");
        assert!(
            not_found.is_some_and(|f| f.message == format!(
                "POST /v1.0/communications/calls/{CALL_B}/playPrompt answered 404 (itemNotFound: Call not found)"
            ) && f.call.as_deref() == Some(CALL_B_NORM)),
            "{findings:#?}"
        );
        let reset = findings.iter().find(|f| f.seqs == [4]);
        assert!(
            reset.is_some_and(|f| f.message == "GET /v1.0/me answered 502: upstreamReset"),
            "{findings:#?}"
        );
        // The playPrompt names call B, never seen ending: that is reported as info.
        assert_eq!(
            of(&findings, "call-not-terminated"),
            vec![(Severity::Info, vec![1])]
        );
        assert_eq!(findings.len(), 5, "{findings:#?}");
        // 2xx and 3xx: silent.
        assert!(check_of(&ex[4..], "graph-error").is_empty());
    }
}
