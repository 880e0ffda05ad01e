//! What a recording may say, beyond its JSON shape: a recording is untrusted input
//! (anyone can hand one to `import` or `replay`), and replay turns it into real
//! requests, so every field that reaches the wire or the store is checked here with
//! the JSON path of the field and the reason.
//!
//! Pure: it looks at a parsed exchange and says what is wrong, if anything.

use crate::exchange::{Direction, Exchange, Headers, StoredBody};

/// Offsets past this (about 10 years of microseconds) are not a recorded session.
pub(crate) const MAX_OFFSET_US: i64 = 10 * 366 * 24 * 3600 * 1_000_000;
/// Longest method name accepted (the longest standard one is 7 bytes).
const MAX_METHOD: usize = 64;
/// Longest path plus query accepted.
const MAX_TARGET: usize = 64 << 10;
/// Longest header name and value accepted, and most headers per message.
const MAX_HEADER_NAME: usize = 1024;
const MAX_HEADER_VALUE: usize = 64 << 10;
const MAX_HEADERS: usize = 1000;
/// Largest count a recording may state (SQLite stores signed 64-bit integers).
pub(crate) const MAX_COUNT: u64 = i64::MAX as u64;

/// A field path relative to the event (`.request.path`) and what is wrong with it.
pub(crate) type Problem = (String, String);

/// Checks one exchange of a recording; the first problem found.
pub(crate) fn exchange(ex: &Exchange<StoredBody>) -> Result<(), Problem> {
    if ex.seq > MAX_COUNT {
        return Err((".seq".into(), format!("{} is too large", ex.seq)));
    }
    let req = &ex.request;
    if req.method.len() > MAX_METHOD {
        return Err((
            ".request.method".into(),
            format!("longer than {MAX_METHOD} bytes"),
        ));
    }
    // graphtape records what it refused as it arrived: `CONNECT host:443` has no
    // path, `OPTIONS *` has `*`. Such an exchange was never sent on, nor is replayed.
    let refused = ex.target.is_none() && ex.error.is_some();
    if refused {
        refused_target(&req.path, req.query.as_deref())?;
    } else {
        // Replay sends notifications to their recorded path: one leading `/`. A bot's
        // API paths are only ever matched, and `//x` is a path a real bot can send.
        let one_slash = ex.direction == Direction::Callback;
        origin_form(&req.path, req.query.as_deref(), one_slash)?;
    }
    if !matches!(
        req.version.as_str(),
        "HTTP/0.9" | "HTTP/1.0" | "HTTP/1.1" | "HTTP/2.0" | "HTTP/3.0"
    ) {
        return Err((
            ".request.version".into(),
            format!(
                "expected HTTP/1.0, HTTP/1.1, HTTP/2.0 or HTTP/3.0, found {:?}",
                req.version
            ),
        ));
    }
    headers(&req.headers).map_err(|(at, why)| (format!(".request.headers{at}"), why))?;
    body_len(&req.body).map_err(|why| (".request.body".into(), why))?;
    if let Some(body) = &ex.forwarded_body {
        body_len(body).map_err(|why| (".forwarded_body".into(), why))?;
    }
    if let Some(resp) = &ex.response {
        if !(100..=599).contains(&resp.status) {
            return Err((
                ".response.status".into(),
                format!("{} is not an HTTP status (100 to 599)", resp.status),
            ));
        }
        headers(&resp.headers).map_err(|(at, why)| (format!(".response.headers{at}"), why))?;
        body_len(&resp.body).map_err(|why| (".response.body".into(), why))?;
    }
    timing(ex)?;
    for (field, text) in [(".target", &ex.target), (".error", &ex.error)] {
        if text
            .as_deref()
            .is_some_and(|t| t.bytes().any(|b| b == b'\r' || b == 0))
        {
            return Err((field.into(), "contains a carriage return or NUL".into()));
        }
    }
    Ok(())
}

/// An offset of the session itself (`session.ended_us`).
pub(crate) fn offset(us: i64) -> Result<(), String> {
    if !(0..=MAX_OFFSET_US).contains(&us) {
        return Err(format!(
            "{us} is out of range (0 to {MAX_OFFSET_US} microseconds)"
        ));
    }
    Ok(())
}

/// A session name: printed in `key=value` lines and used as a lookup key.
pub(crate) fn session_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("empty name".into());
    }
    if name.len() > 256 {
        return Err("longer than 256 bytes".into());
    }
    if name.chars().any(char::is_control) {
        return Err("contains control characters".into());
    }
    Ok(())
}

/// A request target must be origin-form: it starts with one `/`, names no authority,
/// and has no fragment, whitespace or control characters. Replay joins it to the
/// bot's origin, so anything else could redirect a delivery elsewhere.
pub(crate) fn origin_form(path: &str, query: Option<&str>, one_slash: bool) -> Result<(), Problem> {
    let at_path = |why: String| (".request.path".to_string(), why);
    if !path.starts_with('/') {
        return Err(at_path(format!(
            "{:?} is not origin-form: a path must start with \"/\"",
            shorten(path)
        )));
    }
    if one_slash && path.starts_with("//") {
        return Err(at_path(format!(
            "{:?} is not origin-form: \"//\" would name a host",
            shorten(path)
        )));
    }
    if let Some(bad) = path.chars().find(|&c| !target_char(c) || c == '?') {
        return Err(at_path(format!(
            "{:?} is not origin-form: {bad:?} is not allowed in a path",
            shorten(path)
        )));
    }
    if let Some(query) = query {
        if let Some(bad) = query.chars().find(|&c| !target_char(c)) {
            return Err((
                ".request.query".into(),
                format!("{bad:?} is not allowed in a query"),
            ));
        }
    }
    let len = path.len() + query.map_or(0, |q| q.len() + 1);
    if len > MAX_TARGET {
        return Err(at_path(format!(
            "path and query longer than {MAX_TARGET} bytes"
        )));
    }
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    http::uri::PathAndQuery::try_from(target.as_str())
        .map(drop)
        .map_err(|e| at_path(format!("not a valid request target: {e}")))
}

/// What a refused request may have carried: any target of visible ASCII.
fn refused_target(path: &str, query: Option<&str>) -> Result<(), Problem> {
    if path.len() + query.map_or(0, str::len) > MAX_TARGET {
        return Err((
            ".request.path".into(),
            format!("path and query longer than {MAX_TARGET} bytes"),
        ));
    }
    if !path
        .chars()
        .chain(query.unwrap_or("").chars())
        .all(|c| c.is_ascii_graphic())
    {
        return Err((
            ".request.path".into(),
            "a refused request's target holds only visible ASCII".into(),
        ));
    }
    Ok(())
}

/// Visible ASCII other than `#` (a fragment never reaches a server): what a request
/// line can carry.
fn target_char(c: char) -> bool {
    c.is_ascii_graphic() && c != '#'
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Header names are HTTP tokens and values hold no CR, LF or NUL (they would split
/// or end the header when sent again).
fn headers(headers: &Headers) -> Result<(), Problem> {
    if headers.len() > MAX_HEADERS {
        return Err((String::new(), format!("more than {MAX_HEADERS} headers")));
    }
    for (i, (name, value)) in headers.iter().enumerate() {
        let name_err = |why: String| (format!("[{i}][0]"), why);
        if name.is_empty() || name.len() > MAX_HEADER_NAME {
            return Err(name_err(format!(
                "a header name has 1 to {MAX_HEADER_NAME} bytes"
            )));
        }
        if name.bytes().any(|b| matches!(b, b'\r' | b'\n')) {
            return Err(name_err("a header name contains CR or LF".into()));
        }
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(name_err(format!(
                "{:?} is not a header name",
                shorten(name)
            )));
        }
        let value_err = |why: String| (format!("[{i}][1]"), why);
        if value.len() > MAX_HEADER_VALUE {
            return Err(value_err(format!(
                "header {name:?}: value longer than {MAX_HEADER_VALUE} bytes"
            )));
        }
        if value.iter().any(|b| matches!(b, b'\r' | b'\n')) {
            return Err(value_err(format!(
                "header {name:?}: value contains CR or LF"
            )));
        }
        if value.contains(&0) {
            return Err(value_err(format!("header {name:?}: value contains NUL")));
        }
    }
    Ok(())
}

fn body_len(body: &StoredBody) -> Result<(), String> {
    if body.len > MAX_COUNT {
        return Err(format!("length {} is too large", body.len));
    }
    Ok(())
}

/// Every offset in range, and each end at or after its start.
fn timing(ex: &Exchange<StoredBody>) -> Result<(), Problem> {
    let t = &ex.timing;
    let fields = [
        (".request.start_us", Some(t.request_start_us)),
        (".request.end_us", t.request_end_us),
        (".response.start_us", t.response_start_us),
        (".response.end_us", t.response_end_us),
    ];
    for (field, value) in fields {
        if let Some(us) = value {
            offset(us).map_err(|why| (field.to_string(), why))?;
        }
    }
    let ordered = [
        (
            ".request.end_us",
            t.request_end_us,
            Some(t.request_start_us),
            "request.start_us",
        ),
        (
            ".response.start_us",
            t.response_start_us,
            Some(t.request_start_us),
            "request.start_us",
        ),
        (
            ".response.end_us",
            t.response_end_us,
            t.response_start_us,
            "response.start_us",
        ),
    ];
    for (field, end, start, start_name) in ordered {
        if let (Some(end), Some(start)) = (end, start) {
            if end < start {
                return Err((
                    field.to_string(),
                    format!("{end} is before {start_name} {start}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_only() {
        assert!(origin_form("/v1.0/communications/calls", Some("a=1&b=%20"), true).is_ok());
        assert!(origin_form("/", None, true).is_ok());
        // Found by the round-trip property: a bot can send `//x`; only notification
        // paths (which replay sends) need exactly one leading slash.
        assert!(origin_form("//w.-qGQ", None, false).is_ok());
        assert!(origin_form("//w.-qGQ", None, true).is_err());
        for (path, query, want) in [
            ("@127.0.0.1:18099/evil", None, "must start with"),
            ("//evil.example/x", None, "would name a host"),
            ("http://evil/x", None, "must start with"),
            ("/a b", None, "not allowed in a path"),
            ("/a\r\nHost: x", None, "not allowed in a path"),
            ("/a?b", None, "not allowed in a path"),
            ("/a#frag", None, "not allowed in a path"),
            ("/a", Some("x=1#f"), "not allowed in a query"),
            ("/é", None, "not allowed"),
            ("", None, "must start with"),
        ] {
            let (_, why) = origin_form(path, query, true).unwrap_err();
            assert!(why.contains(want), "{path:?}: {why}");
        }
    }

    #[test]
    fn offsets_and_names() {
        assert!(offset(0).is_ok());
        assert!(offset(-1).is_err());
        assert!(offset(i64::MAX).is_err());
        assert!(session_name("a b").is_ok());
        assert!(session_name("a\nb").is_err());
        assert!(session_name(" ").is_err());
    }
}
