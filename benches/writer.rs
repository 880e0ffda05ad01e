//! The writer alone: exchanges of the hop benchmark's shape (a POST of a 510-byte Graph
//! invite body answered by 291 bytes of JSON, with the usual headers and a bearer
//! token to redact) fed straight into `Recorder::record`, stored in a real SQLite file.
//!
//! `cargo bench --bench writer` prints one line: exchanges/s from the first record to
//! the last commit (`finish`), CPU per exchange, and the bytes written and read per
//! exchange (the WAL, its checkpoints, and what they read back). `-- --smoke` (or
//! `GRAPHTAPE_BENCH_SMOKE=1`) runs a short pass that only checks it works.
//! `GRAPHTAPE_BENCH_PREPARE=N` sets the prepare threads.

use std::time::Instant;

use bytes::Bytes;
use graphtape::exchange::{
    Captured, CapturedBody, CapturedRequest, CapturedResponse, Direction, Target, Timing,
};
use graphtape::redact::Redactor;
use graphtape::store::{self, Access, WriterOptions};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

const FULL: u64 = 300_000;
const SMOKE: u64 = 5_000;

const INVITE: &str = r##"{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","replacesCallId":"a7ebfb2d-871e-419c-87af-27290b22e8db","identity":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"278405a3-f568-4b3e-b684-009193463064","identityProvider":"AAD","displayName":"Adele Vance"}},"endpointType":"default"}],"clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","callbackUri":"https://bot.contoso.com/api/calls/notifications"}"##;
const ANSWER: &str = r##"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#commsOperation","@odata.type":"#microsoft.graph.inviteParticipantsOperation","id":"eec3812a-fdc3-4fb4-825c-a06c9f35414e","status":"running","clientContext":"f2fa86af-3c51-4bc2-8fc0-475452d9764f","participants":[]}"##;

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke")
        || std::env::var_os("GRAPHTAPE_BENCH_SMOKE").is_some_and(|v| v != "0");
    let count = if smoke { SMOKE } else { FULL };
    let mut options = WriterOptions::new(16 << 20);
    if let Some(n) = std::env::var("GRAPHTAPE_BENCH_PREPARE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.prepare_threads = n;
    }
    let prepare_threads = options.prepare_threads;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("writer-bench.db");
    let conn = store::open(&db, Access::Create).expect("opening the bench database");
    let key = store::redaction_key(&conn).expect("the redaction key");
    let session = store::create_session(&conn, "bench", 0, &serde_json::json!({}))
        .expect("creating the session");
    let (recorder, writer) =
        store::spawn_writer_with(conn, session, Redactor::new(&key), options, None);

    let template = Template::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    runtime.block_on(async {
        for seq in 1..=count {
            recorder.record(template.exchange(seq)).await;
        }
    });
    drop(recorder);
    let health = writer.finish(1);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        health.recorded(),
        count,
        "every exchange stored: {:?}",
        health.last_error()
    );
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(db.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    let cpu = cpu_seconds();
    let io = match (io_bytes("wchar"), io_bytes("rchar")) {
        (Some(written), Some(read)) => format!(
            ", {:.0} bytes/exchange written and {:.0} read",
            written as f64 / count as f64,
            read as f64 / count as f64
        ),
        _ => String::new(),
    };
    println!(
        "writer: {count} exchanges in {elapsed:.2} s = {:.0} exchanges/s, CPU {:.1} us/exchange ({:.0} exchanges per CPU-second), {prepare_threads} prepare threads, {:.0} bytes/exchange on disk{io}{}",
        count as f64 / elapsed,
        cpu * 1e6 / count as f64,
        count as f64 / cpu,
        size as f64 / count as f64,
        if smoke { " [smoke]" } else { "" }
    );
}

/// Bytes this process has passed to write (`wchar`) or read (`rchar`) system calls so
/// far (Linux's `/proc/self/io`): SQLite's WAL, checkpoints and reads back, per exchange.
fn io_bytes(field: &str) -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().parse().ok())
}

/// User plus system CPU time of this process so far (all threads): on a shared machine
/// the wall-clock rate says more about the neighbours than about the writer.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid initial value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// What every exchange is made from; building one per record is what the proxy does.
struct Template {
    uri: Uri,
    target: String,
    request_headers: HeaderMap,
    response_headers: HeaderMap,
    invite: Bytes,
    answer: Bytes,
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

impl Template {
    fn new() -> Template {
        // Padded with JSON whitespace to the benchmark's sizes.
        let invite = format!("{INVITE:<510}");
        let answer = format!("{ANSWER:<291}");
        assert_eq!(
            (invite.len(), answer.len()),
            (510, 291),
            "the benchmark's shape"
        );
        let path =
            "/v1.0/communications/calls/57dab8b1-894c-409a-b240-bd8beae78896/participants/invite";
        Template {
            uri: Uri::from_static(path),
            target: format!("https://graph.microsoft.com{path}"),
            request_headers: headers(&[
                ("host", "graph.microsoft.com"),
                ("content-type", "application/json"),
                ("content-length", "510"),
                ("authorization", "Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoLm1pY3Jvc29mdC5jb20ifQ.c2lnbmF0dXJl"),
                ("client-request-id", "0d4f6f8e-6a5e-4a44-9d1c-2f1f5c7b9a11"),
                ("user-agent", "Microsoft.Graph.Communications/1.2"),
            ]),
            response_headers: headers(&[
                ("content-type", "application/json"),
                ("content-length", "291"),
                ("request-id", "a9d1e6b4-0000-4000-8000-000000000001"),
                ("client-request-id", "0d4f6f8e-6a5e-4a44-9d1c-2f1f5c7b9a11"),
                ("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"West US"}}"#),
                ("date", "Mon, 01 Dec 2026 19:00:00 GMT"),
            ]),
            invite: Bytes::from(invite),
            answer: Bytes::from(answer),
        }
    }

    fn exchange(&self, seq: u64) -> Captured {
        Captured {
            seq,
            direction: Direction::Api,
            wall_start_us: 1_764_600_000_000_000,
            timing: Timing {
                request_start_us: 10,
                request_end_us: Some(20),
                response_start_us: Some(300),
                response_end_us: Some(320),
            },
            request: CapturedRequest::new(
                Method::POST,
                self.uri.clone(),
                self.request_headers.clone(),
                self.invite.clone(),
            ),
            target: Some(Target::Uri(self.target.clone())),
            forwarded_body: None,
            response: Some(CapturedResponse {
                status: StatusCode::OK,
                headers: self.response_headers.clone(),
                body: CapturedBody::whole(self.answer.clone()),
            }),
            error: None,
        }
    }
}
