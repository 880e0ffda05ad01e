//! What the writer does to each exchange before SQLite: redaction and body caps
//! (`store::prepare`), then packing it for the database thread (`store::Packed`: call and
//! operation ids, notifications, headers as text, the columns laid out),
//! for the benchmark's shapes: a 510-byte invite POST answered with 291 bytes of JSON,
//! and a notification POST answered 202, each with the bearer JWT of about 1.4 KB that
//! real bot and Graph requests carry. Prints nanoseconds per exchange.
//!
//! `cargo bench --bench prepare`. Bounded: about a second. Also counts heap
//! allocations per exchange (a counting wrapper around the system allocator): on the
//! writer's threads each one costs far more than its share of a profile suggests, as
//! freeing contends with the allocating thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use graphtape::exchange::{
    Captured, CapturedBody, CapturedRequest, CapturedResponse, Direction, Timing,
};
use graphtape::redact::Redactor;
use graphtape::store::{prepare, Packed};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const INVITE: &str = r##"{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"a7ebfb2d-871e-419c-87af-27290b22e8db","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"278405a3-f568-4b3e-b684-009193463064","identityProvider":"AAD","displayName":"Heidi Steen"}}}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","callbackUri":"https://bot.contoso.com/api/calls/a7ebfb2d"}"##;
const OPERATION: &str = r##"{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","id":"0fe0623f-d628-42ed-b4bd-8ac290072cc5","status":"running","clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","resultInfo":null,"participants":[{"endpointType":"default","id":"278405a3"}]}"##;
const NOTIFICATION: &str = r##"{"@odata.type":"#microsoft.graph.commsNotifications","value":[{"@odata.type":"#microsoft.graph.commsNotification","changeType":"deleted","resource":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5","resourceUrl":"/communications/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5","resourceData":{"@odata.type":"#microsoft.graph.inviteParticipantsOperation","@odata.id":"/app/calls/57DAB8B1894C409AB240BD8BEAE78896/operations/0FE0623FD62842EDB4BD8AC290072CC5","@odata.etag":"W/\"54451\"","clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","status":"completed"}}]}"##;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

/// A bearer token of the size and shape Azure AD issues to a bot (header, a payload of
/// the usual claims, an RS256 signature), unsigned: redaction never verifies it.
fn bearer_jwt() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = r#"{"typ":"JWT","alg":"RS256","x5t":"CNv0OI3RwqlHFEVnaoMAshCH2XE","kid":"CNv0OI3RwqlHFEVnaoMAshCH2XE"}"#;
    let payload = r#"{"aud":"https://graph.microsoft.com","iss":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","iat":1764633600,"nbf":1764633600,"exp":1764637500,"aio":"k2BgYJj+t3bDfrpVdnSX5l8FmPzCAA==","app_displayname":"Contoso calling bot","appid":"b1c8a2f4-5e6d-4c3b-9a8f-7e6d5c4b3a29","appidacr":"1","idp":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","idtyp":"app","oid":"3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f","rh":"0.AAAAv4j5cvGGr0GRqy180BHbRwMAAAAAAAAAwAAAAAAAAAAAAAA.","roles":["Calls.Initiate.All","Calls.JoinGroupCall.All","Calls.AccessMedia.All","OnlineMeetings.Read.All"],"sub":"3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f","tenant_region_scope":"WW","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","uti":"ZlPm8v5pREGvXQ3mJcR0AA","ver":"1.0","wids":["0997a1d0-0d1d-4acb-b408-d5ca73121e90"],"xms_tcdt":1289241547}"#;
    let signature = [0x5a_u8; 256];
    format!(
        "Bearer {}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn captured(direction: Direction, bearer: &str) -> Captured {
    let (path, body, status, response) = match direction {
        Direction::Api => (
            "/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/participants/invite",
            INVITE,
            StatusCode::OK,
            OPERATION,
        ),
        Direction::Callback => ("/api/calls", NOTIFICATION, StatusCode::ACCEPTED, ""),
    };
    Captured {
        seq: 1,
        direction,
        wall_start_us: 0,
        timing: Timing::default(),
        request: CapturedRequest::new(
            Method::POST,
            Uri::from_static(path),
            headers(&[
                ("content-type", "application/json"),
                ("authorization", bearer),
                ("client-request-id", "0b9f0c1e-0000-4000-8000-000000000001"),
            ]),
            Bytes::from_static(body.as_bytes()),
        ),
        target: None,
        forwarded_body: None,
        response: Some(CapturedResponse {
            status,
            headers: headers(&[
                ("content-type", "application/json"),
                ("request-id", "11111111-2222-3333-4444-555555555555"),
            ]),
            body: CapturedBody::whole(Bytes::from_static(response.as_bytes())),
        }),
        error: None,
    }
}

fn main() {
    let redactor = Redactor::new(&[7; 32]);
    let directions = [Direction::Api, Direction::Callback];
    let bearer = bearer_jwt();
    const ROUNDS: usize = 20_000;
    let (mut prepare_ns, mut index_ns) = (0u128, 0u128);
    let (mut prepare_allocs, mut index_allocs) = (0u64, 0u64);
    for round in 0..ROUNDS + 1000 {
        for direction in directions {
            let ex = captured(direction, &bearer);
            let allocs = ALLOCATIONS.load(Ordering::Relaxed);
            let t = Instant::now();
            let stored = black_box(prepare(ex, &redactor, 16 << 20));
            let prepared = t.elapsed();
            let prepared_allocs = ALLOCATIONS.load(Ordering::Relaxed);
            let t = Instant::now();
            let packed = black_box(Packed::new(&stored));
            let indexed = t.elapsed();
            // The first rounds warm caches and the allocator.
            if round >= 1000 {
                prepare_ns += prepared.as_nanos();
                index_ns += indexed.as_nanos();
                prepare_allocs += prepared_allocs - allocs;
                index_allocs += ALLOCATIONS.load(Ordering::Relaxed) - prepared_allocs;
            }
            drop((stored, packed));
        }
    }
    let n = (ROUNDS * directions.len()) as u128;
    println!("prepare: {ROUNDS} API + {ROUNDS} callback exchanges");
    let line = |what: &str, ns: u128, allocs: u64| {
        println!(
            "  {what:<34} {:>6} ns/exchange {:>5.1} allocations/exchange",
            ns / n,
            allocs as f64 / n as f64
        )
    };
    line(
        "redact and cap (store::prepare)",
        prepare_ns,
        prepare_allocs,
    );
    line("ids, notifications, header text", index_ns, index_allocs);
    line(
        "total",
        prepare_ns + index_ns,
        prepare_allocs + index_allocs,
    );
}
