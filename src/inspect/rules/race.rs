//! `notification-before-response`: a notification reaching the bot while the request
//! that brought its subject into being was still waiting for its response.

use super::{describe, hit, norm_eq, CheckOptions, Ex, Facts, Hit, Session, Severity};
use crate::graph::IdRef;
use crate::inspect::view::{self, Note};

/// What an API exchange brought into being, which notifications may then be about.
enum Created {
    Call(IdRef),
    Answered(IdRef),
    Operation(IdRef),
}

impl Created {
    fn of(ex: &Ex, facts: &Facts) -> Vec<Created> {
        let created = facts.created.clone();
        let mut out: Vec<Created> = created
            .operation
            .into_iter()
            .map(Created::Operation)
            .collect();
        match created.call {
            Some(call) => out.push(Created::Call(call)),
            None if view::is_answer(ex) => {
                out.extend(facts.ids.call.clone().map(Created::Answered));
            }
            None => {}
        }
        out
    }

    fn is_about(&self, note: &Note) -> bool {
        match self {
            Created::Operation(op) => norm_eq(note.index.operation.as_ref(), op),
            Created::Call(call) | Created::Answered(call) => {
                norm_eq(note.index.call.as_ref(), call)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Created::Operation(op) => format!("operation {} that it created", op.raw),
            Created::Call(call) => format!("call {} that it created", call.raw),
            Created::Answered(call) => format!("call {} that it answered", call.raw),
        }
    }
}

/// A notification that reached the bot between a request and its response: the bot
/// may not yet know the id the notification talks about.
pub(super) fn notification_before_response(s: &Session<'_>, _: &CheckOptions) -> Vec<Hit> {
    let mut out = Vec::new();
    for (api, facts) in s.api() {
        let Some(response_start) = api.timing.response_start_us else {
            continue;
        };
        let created = Created::of(api, facts);
        if created.is_empty() {
            continue;
        }
        let window = api.timing.request_start_us..response_start;
        for (cb, notes) in s.callbacks() {
            let arrived = cb.timing.request_start_us;
            if !window.contains(&arrived) {
                continue;
            }
            let found = created
                .iter()
                .find_map(|c| notes.iter().find(|n| c.is_about(n)).map(|n| (c, n)));
            if let Some((what, note)) = found {
                let call = note.index.call.clone().or_else(|| facts.ids.call.clone());
                out.push(hit(
                    Severity::Warning,
                    call.as_ref(),
                    &[api.seq, cb.seq],
                    format!(
                        "notification at seq {} arrived {} ms before the response to seq {} ({}) about the {}",
                        cb.seq,
                        view::ms(response_start.saturating_sub(arrived)),
                        api.seq,
                        describe(api),
                        what.describe()
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ended, invite, of, CALL_B_NORM};
    use super::super::{check, Severity};
    use crate::inspect::testutil::{
        api, call_state_body, callback, incoming_body, op_status_body, CALL_A, CALL_A_DASHED,
        CALL_B, OP,
    };

    const RULE: &str = "notification-before-response";

    #[test]
    fn operation_notified_before_its_response() {
        // The completion lands 10 ms into the invite's 20 ms round trip.
        let mut ex = vec![
            invite(1, 400, "running"),
            callback(2, 410, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        let findings = check(&ex);
        assert_eq!(of(&findings, RULE), vec![(Severity::Warning, vec![1, 2])]);
        let f = &findings[0];
        assert_eq!(f.call.as_deref(), Some(CALL_B_NORM));
        assert!(
            f.message.contains("9.900 ms before the response to seq 1"),
            "{}",
            f.message
        );
        assert!(f.message.contains(OP), "{}", f.message);
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }

    #[test]
    fn silent_when_the_notification_follows_the_response() {
        let mut ex = vec![
            invite(1, 400, "running"),
            callback(2, 430, &op_status_body(CALL_B, OP, "completed")).build(),
        ];
        ex.extend(ended(3, CALL_B));
        assert!(check(&ex).is_empty(), "{:#?}", check(&ex));
    }

    #[test]
    fn call_notified_before_create_or_answer_response() {
        let create = api(1, 100, "POST", "/v1.0/communications/calls")
            .respond(
                201,
                r#"{"id":"90ed37dc-d8e3-4e11-9de3-30a955dda06f","state":"establishing"}"#,
            )
            .latency_ms(50)
            .build();
        let early = callback(2, 120, &call_state_body(CALL_B, "establishing")).build();
        let found = of(&check(&[create, early]), RULE);
        assert_eq!(found, vec![(Severity::Warning, vec![1, 2])]);

        // The incoming notification precedes the answer and is not a race; the
        // establishing one inside the answer's round trip is.
        let mut ex = vec![
            callback(1, 0, &incoming_body(CALL_A)).build(),
            api(
                2,
                10,
                "POST",
                &format!("/v1.0/communications/calls/{CALL_A_DASHED}/answer"),
            )
            .respond(202, "")
            .latency_ms(30)
            .build(),
            callback(3, 20, &call_state_body(CALL_A, "establishing")).build(),
            callback(4, 60, &call_state_body(CALL_A, "established")).build(),
        ];
        ex.extend(ended(5, CALL_A));
        let findings = check(&ex);
        assert_eq!(of(&findings, RULE), vec![(Severity::Warning, vec![2, 3])]);
        assert!(
            findings[0].message.contains("that it answered"),
            "{}",
            findings[0].message
        );
        assert_eq!(findings.len(), 1, "{findings:#?}");
    }
}
