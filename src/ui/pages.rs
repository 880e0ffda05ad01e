//! The inspector's own pages, rendered on the server: the sessions list and the diff
//! of two sessions side by side. (A session's timeline is the exported page.)

use std::path::Path;

use serde_json::{json, Value};

use crate::clock::format_unix_micros;
use crate::inspect::diff::DiffLine;
use crate::inspect::html::escape;
use crate::store::SessionSummary;

const CSS: &str = include_str!("../inspect/html/page.css");

/// The recorded end, else the last event (a session cut short by a crash).
pub(crate) fn duration_us(s: &SessionSummary) -> Option<i64> {
    s.info.ended_us.or(s.last_event_us)
}

/// A session with the counts `graphtape sessions --json` prints.
pub(crate) fn summary_json(s: &SessionSummary) -> Value {
    json!({
        "name": s.info.name,
        "started_at": format_unix_micros(s.info.started_unix_us),
        "duration_us": duration_us(s),
        "ended": s.info.ended_us.is_some(),
        "calls": s.calls,
        "api_exchanges": s.api_exchanges,
        "callbacks": s.callbacks,
        "notifications": s.notifications,
        "unrecorded": s.info.unrecorded,
    })
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub(crate) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn shell(title: &str, content: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>graphtape: {title}</title><style>{CSS}</style></head>
<body><header><h1><a href="/">graphtape</a> <span class="sub">{title}</span></h1></header>
<div class="page">{content}</div></body></html>
"#,
        title = escape(title)
    )
}

/// The sessions list, with the counts `graphtape sessions` prints, and a diff form.
pub(crate) fn sessions(list: &[SessionSummary], db: &Path) -> String {
    let mut rows = String::new();
    for s in list {
        let name = escape(&s.info.name);
        let link = format!("/sessions/{}", encode(&s.info.name));
        let replay = s
            .info
            .config
            .get("replay_of")
            .and_then(Value::as_str)
            .map(|of| {
                format!(
                    r#"replay of <a href="/sessions/{}">{}</a> · <a href="/diff?a={}&amp;b={}">diff</a>"#,
                    encode(of),
                    escape(of),
                    encode(of),
                    encode(&s.info.name)
                )
            })
            .unwrap_or_default();
        rows.push_str(&format!(
            r#"<tr data-session="{name}"><td><a href="{link}">{name}</a></td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{replay}</td></tr>
"#,
            format_unix_micros(s.info.started_unix_us),
            duration_us(s).map_or_else(|| "-".into(), |us| format!("{:.3}s", us as f64 / 1e6)),
            s.calls,
            s.api_exchanges,
            s.notifications,
            s.info.unrecorded
        ));
    }
    let options: String = list
        .iter()
        .map(|s| format!("<option>{}</option>", escape(&s.info.name)))
        .collect();
    let content = format!(
        r#"<table class="list" id="sessions"><thead><tr><th>NAME</th><th>STARTED (UTC)</th><th>DURATION</th><th>CALLS</th><th>API</th><th>NOTIFICATIONS</th><th>UNRECORDED</th><th></th></tr></thead>
<tbody>
{rows}</tbody></table>
<form action="/diff" method="get">compare <select name="a">{options}</select> with <select name="b">{options}</select> <button>diff</button></form>"#
    );
    shell(&format!("sessions in {}", db.display()), &content)
}

/// Two sessions side by side, aligned as `graphtape diff` aligns them.
pub(crate) fn diff(a: &str, b: &str, lines: &[DiffLine]) -> String {
    let mut rows = String::new();
    let mut differences = 0;
    for line in lines {
        let (class, a_seq, a_text, b_seq, b_text) = match line {
            DiffLine::Same {
                a_seq,
                b_seq,
                summary,
            } => (
                "same",
                a_seq.to_string(),
                summary.as_str(),
                b_seq.to_string(),
                summary.as_str(),
            ),
            DiffLine::OnlyA { a_seq, summary } => (
                "only-a",
                format!("- {a_seq}"),
                summary.as_str(),
                String::new(),
                "",
            ),
            DiffLine::OnlyB { b_seq, summary } => (
                "only-b",
                String::new(),
                "",
                format!("+ {b_seq}"),
                summary.as_str(),
            ),
        };
        if class != "same" {
            differences += 1;
        }
        rows.push_str(&format!(
            r#"<tr class="{class}"><td class="sa">{a_seq}</td><td class="a">{}</td><td class="sb">{b_seq}</td><td class="b">{}</td></tr>
"#,
            escape(a_text),
            escape(b_text)
        ));
    }
    let content = format!(
        r#"<p>{differences} differences</p><table class="diff"><thead><tr><th class="s"></th><th><a href="/sessions/{}">{}</a></th><th class="s"></th><th><a href="/sessions/{}">{}</a></th></tr></thead><tbody>
{rows}</tbody></table>"#,
        encode(a),
        escape(a),
        encode(b),
        escape(b)
    );
    shell(&format!("diff {a} {b}"), &content)
}

/// One diff line as JSON.
pub(crate) fn diff_json(line: &DiffLine) -> Value {
    match line {
        DiffLine::Same {
            a_seq,
            b_seq,
            summary,
        } => json!({"op": "same", "a_seq": a_seq, "b_seq": b_seq, "summary": summary}),
        DiffLine::OnlyA { a_seq, summary } => {
            json!({"op": "only-a", "a_seq": a_seq, "summary": summary})
        }
        DiffLine::OnlyB { b_seq, summary } => {
            json!({"op": "only-b", "b_seq": b_seq, "summary": summary})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode("rec-1_x.y~"), "rec-1_x.y~");
    }

    #[test]
    fn diff_page_escapes_and_counts() {
        let lines = [
            DiffLine::Same {
                a_seq: 1,
                b_seq: 1,
                summary: "api GET /x -> 200".into(),
            },
            DiffLine::OnlyB {
                b_seq: 2,
                summary: "api GET /<y> -> 404".into(),
            },
        ];
        let page = diff("a", "b", &lines);
        assert!(page.contains("<p>1 differences</p>"));
        assert!(page.contains("/&lt;y&gt;"));
    }
}
