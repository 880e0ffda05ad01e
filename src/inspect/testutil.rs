//! Builders for crafted sessions, with payloads from the Graph docs' example flows
//! (`/work/shared/seeds/000_370f4294c967d10d.txt`: incoming call answered, join
//! meeting, invite participant).

use crate::exchange::{Direction, Exchange, RequestRecord, ResponseRecord, StoredBody, Timing};
use crate::store::SessionInfo;

/// The incoming P2P call, as notifications spell it.
pub(crate) const CALL_A: &str = "57DAB8B1894C409AB240BD8BEAE78896";
/// The same id as a `Location` header spells it.
pub(crate) const CALL_A_DASHED: &str = "57dab8b1-894c-409a-b240-bd8beae78896";
/// The joined meeting call.
pub(crate) const CALL_B: &str = "90ED37DCD8E34E119DE330A955DDA06F";
/// The invite operation.
pub(crate) const OP: &str = "0FE0623FD62842EDB4BD8AC290072CC5";

/// Seed: "Notification - Incoming".
const INCOMING: &str = r##"{"value":[{"changeType":"created","resource":"/app/calls/%CALL%","resourceData":{"@odata.type":"#microsoft.graph.call","@odata.id":"/app/calls/%CALL%","@odata.etag":"W/\"5445\"","state":"incoming","direction":"incoming","source":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"user":{"displayName":"Test User","language":"en-US","id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}},"targets":[{"@odata.type":"#microsoft.graph.participantInfo","identity":{"application":{"displayName":"Test BOT","language":"en-US","id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}}],"requestedModalities":["audio","video"]}}]}"##;

/// Seed: "Notification - Establishing" with the state as a parameter.
const CALL_STATE: &str = r##"{"value":[{"changeType":"updated","resource":"/app/calls/%CALL%","resourceData":{"@odata.type":"#microsoft.graph.call","@odata.id":"/app/calls/%CALL%","@odata.etag":"W/\"5445\"","state":"%STATE%"}}]}"##;

/// Seed: "Notification - Deleted the original P2P call".
const CALL_DELETED: &str = r##"{"value":[{"changeType":"deleted","resource":"/app/calls/%CALL%","resourceData":{"@odata.type":"#microsoft.graph.call","@odata.id":"/app/calls/%CALL%","@odata.etag":"W/\"5445\""}}]}"##;

/// Seed: "Notification - Operation Completed" with the status as a parameter.
const OP_STATUS: &str = r##"{"value":[{"changeType":"deleted","resource":"/app/calls/%CALL%/operations/%OP%","resourceData":{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","@odata.id":"/app/calls/%CALL%/operations/%OP%","@odata.etag":"W/\"51\"","clientContext":"A904FBD5A31041E881E861877A3DE3CD","status":"%STATUS%"}}]}"##;

/// Seed: "Notification - Roster Updated With Participant Added".
const ROSTER: &str = r##"{"value":[{"changeType":"updated","resource":"/app/calls/%CALL%/participants","resourceData":[{"@odata.type":"#microsoft.graph.participant","@odata.id":"/app/calls/%CALL%/participants/8A34A46B3D174ADC8DCEDC4E7D572698","@odata.etag":"W/\"51\"","info":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"user":{"region":"westus","languageId":"en-US","displayName":"Test User","id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}},"mediaStreams":[{"mediaType":"audio","label":"main-audio","sourceId":"1","direction":"sendReceive"}]}]}]}"##;

/// Seed: the answer request body.
pub(crate) const ANSWER_REQUEST: &str = r##"{"callback":"https://bot.contoso.com/api/calls","acceptModalities":["audio","video"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig","preFetchMedia":[{"url":"https://cdn.contoso.com/beep.wav","resourceId":"1D6DE2D4-CD51-4309-8DAA-70768651088E"}]}}"##;

/// Seed: "Join channel meeting without media" request body.
const JOIN_REQUEST: &str = r##"{"subject":"Test Call","callback":"https://bot.contoso.com/api/calls","source":{"@odata.type":"#microsoft.graph.participantInfo","identity":{"application":{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}}},"targetDisposition":"default","requestedModalities":[],"chatInfo":{"threadId":"90ED37DC-D8E3-4E11-9DE3-30A955DDA06F","messageId":"1507228578052","replyChainMessageId":"1507228578052"},"meetingInfo":{"@odata.type":"#microsoft.graph.organizerMeetingInfo","organizer":{"user":{"id":"90ED37DC-D8E3-4E11-9DE3-30A955DDA06F","tenantId":"49BFC225-8482-4AB8-94E7-76B48FDB9849"}}}}"##;

/// Seed: "Invite participant from initial incoming call" request body.
const INVITE_REQUEST: &str = r##"{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"8A34A46B-3D17-4ADC-8DCE-DC4E7D572698"}},"replacesCallId":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896"}]}"##;

/// Seed: the invite's commsOperation response, status `Running` as in the doc.
const OPERATION_RESPONSE: &str = r#"{"clientContext":"clientContext-value","createdDateTime":"2018-03-19T09:46:02Z","id":"id-value","lastActionDateTime":"2018-03-19T09:46:02Z","status":"%STATUS%"}"#;

/// A callback announcing an incoming call.
pub(crate) fn incoming_body(call: &str) -> String {
    INCOMING.replace("%CALL%", call)
}

/// A callback updating a call's state.
pub(crate) fn call_state_body(call: &str, state: &str) -> String {
    CALL_STATE.replace("%CALL%", call).replace("%STATE%", state)
}

/// A callback deleting a call (no state, as in the seed).
pub(crate) fn call_deleted_body(call: &str) -> String {
    CALL_DELETED.replace("%CALL%", call)
}

/// A callback reporting an operation's status.
pub(crate) fn op_status_body(call: &str, op: &str, status: &str) -> String {
    OP_STATUS
        .replace("%CALL%", call)
        .replace("%OP%", op)
        .replace("%STATUS%", status)
}

/// A participants roster update (an array `resourceData`).
pub(crate) fn roster_body(call: &str) -> String {
    ROSTER.replace("%CALL%", call)
}

/// The commsOperation an action returns.
pub(crate) fn operation_response(status: &str) -> String {
    OPERATION_RESPONSE.replace("%STATUS%", status)
}

/// A stored body holding all of `text`.
pub(crate) fn body(text: &[u8]) -> StoredBody {
    StoredBody::capture(text, usize::MAX)
}

/// One exchange under construction. Offsets are given in milliseconds; the request
/// takes 100 µs to arrive and the response its last 100 µs of the latency.
pub(crate) struct Ex {
    ex: Exchange<StoredBody>,
    latency_us: i64,
}

/// A bot → Graph request, answered `200` with an empty body after 20 ms by default.
pub(crate) fn api(seq: u64, at_ms: i64, method: &str, path: &str) -> Ex {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path.to_owned(), None),
    };
    Ex::new(seq, at_ms, Direction::Api, method, path, query).latency_ms(20)
}

/// A Graph → bot notification POST to `/api/calls`, answered `202` after 2 ms.
pub(crate) fn callback(seq: u64, at_ms: i64, notification_body: &str) -> Ex {
    Ex::new(
        seq,
        at_ms,
        Direction::Callback,
        "POST",
        "/api/calls".into(),
        None,
    )
    .body(notification_body)
    .header_req("content-type", "application/json")
    .respond(202, "")
    .latency_ms(2)
}

impl Ex {
    fn new(
        seq: u64,
        at_ms: i64,
        direction: Direction,
        method: &str,
        path: String,
        query: Option<String>,
    ) -> Ex {
        let start = at_ms * 1000;
        Ex {
            ex: Exchange {
                seq,
                direction,
                wall_start_us: 1_795_000_000_000_000 + start,
                timing: Timing {
                    request_start_us: start,
                    ..Timing::default()
                },
                request: RequestRecord {
                    method: method.into(),
                    path,
                    query,
                    version: "HTTP/1.1".into(),
                    headers: Vec::new(),
                    body: body(b""),
                },
                target: None,
                forwarded_body: None,
                response: Some(ResponseRecord {
                    status: 200,
                    headers: Vec::new(),
                    body: body(b""),
                }),
                error: None,
            },
            latency_us: 0,
        }
    }

    /// Sets the request body.
    pub(crate) fn body(mut self, text: &str) -> Ex {
        self.ex.request.body = body(text.as_bytes());
        self
    }

    /// Adds a request header.
    pub(crate) fn header_req(mut self, name: &str, value: &str) -> Ex {
        self.ex
            .request
            .headers
            .push((name.into(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the response status and body (JSON bodies get a content type).
    pub(crate) fn respond(mut self, status: u16, text: &str) -> Ex {
        let mut headers = Vec::new();
        if !text.is_empty() {
            headers.push(("content-type".into(), b"application/json".to_vec()));
        }
        self.ex.response = Some(ResponseRecord {
            status,
            headers,
            body: body(text.as_bytes()),
        });
        self
    }

    /// Adds a `Location` response header.
    pub(crate) fn location(mut self, url: &str) -> Ex {
        if let Some(r) = self.ex.response.as_mut() {
            r.headers.push(("location".into(), url.as_bytes().to_vec()));
        }
        self
    }

    /// Total time from request start to response end.
    pub(crate) fn latency_ms(mut self, ms: i64) -> Ex {
        self.latency_us = ms * 1000;
        self
    }

    /// Sets the total time in microseconds, for sub-millisecond precision.
    pub(crate) fn latency_us(mut self, us: i64) -> Ex {
        self.latency_us = us;
        self
    }

    /// No response arrived; the exchange failed with `error`.
    pub(crate) fn fail(mut self, error: &str) -> Ex {
        self.ex.response = None;
        self.ex.error = Some(error.into());
        self
    }

    /// Records an error alongside whatever response there is.
    pub(crate) fn error(mut self, error: &str) -> Ex {
        self.ex.error = Some(error.into());
        self
    }

    /// Where graphtape forwarded the request.
    pub(crate) fn target(mut self, url: &str) -> Ex {
        self.ex.target = Some(url.into());
        self
    }

    /// The exchange, with timings filled in from the latency.
    pub(crate) fn build(mut self) -> Exchange<StoredBody> {
        let start = self.ex.timing.request_start_us;
        let request_end = start + self.latency_us.min(100);
        self.ex.timing.request_end_us = Some(request_end);
        if self.ex.response.is_some() {
            let end = start + self.latency_us;
            self.ex.timing.response_start_us = Some((end - 100).max(request_end));
            self.ex.timing.response_end_us = Some(end);
        }
        self.ex
    }
}

/// A session row to go with the exchanges.
pub(crate) fn session() -> SessionInfo {
    SessionInfo {
        id: 1,
        name: "seed-flow".into(),
        started_unix_us: 1_795_000_000_000_000,
        ended_us: Some(2_000_000),
        config: serde_json::json!({"upstream": "https://graph.microsoft.com"}),
        unrecorded: 0,
    }
}

/// The docs' flows, in an order where nothing is wrong: call A comes in and is
/// answered, the bot joins meeting B, invites into B, A ends, the bot hangs up B.
pub(crate) fn seed_flow() -> Vec<Exchange<StoredBody>> {
    let graph = "https://graph.microsoft.com/v1.0/communications/calls";
    vec![
        callback(1, 0, &incoming_body(CALL_A)).build(),
        api(
            2,
            10,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_A_DASHED}/answer"),
        )
        .body(ANSWER_REQUEST)
        .header_req("content-type", "application/json")
        .respond(202, "")
        .target(&format!("{graph}/{CALL_A_DASHED}/answer"))
        .build(),
        callback(3, 50, &call_state_body(CALL_A, "establishing")).build(),
        callback(4, 80, &call_state_body(CALL_A, "established")).build(),
        api(5, 100, "POST", "/v1.0/communications/calls")
            .body(JOIN_REQUEST)
            .respond(
                201,
                r#"{"id":"90ed37dc-d8e3-4e11-9de3-30a955dda06f","state":"establishing"}"#,
            )
            .location(&format!("{graph}/90ed37dc-d8e3-4e11-9de3-30a955dda06f"))
            .target(graph)
            .build(),
        callback(6, 200, &call_state_body(CALL_B, "establishing")).build(),
        callback(7, 300, &call_state_body(CALL_B, "established")).build(),
        api(
            8,
            400,
            "POST",
            &format!("/v1.0/communications/calls/{CALL_B}/participants/invite"),
        )
        .body(INVITE_REQUEST)
        .respond(200, &operation_response("Running"))
        .location(&format!("{graph}/{CALL_B}/operations/{OP}"))
        .build(),
        callback(9, 500, &op_status_body(CALL_B, OP, "completed")).build(),
        callback(10, 550, &roster_body(CALL_A)).build(),
        callback(11, 600, &call_state_body(CALL_A, "terminated")).build(),
        callback(12, 650, &call_deleted_body(CALL_A)).build(),
        api(
            13,
            700,
            "DELETE",
            &format!("/v1.0/communications/calls/{CALL_B}"),
        )
        .respond(204, "")
        .build(),
        callback(14, 800, &call_state_body(CALL_B, "terminated")).build(),
    ]
}
