//! `graphtape diff A B`: two sessions compared event by event.
//!
//! Two runs of the same bot flow never agree on ids, timestamps or tokens, so a byte
//! diff of recordings is useless. Each exchange is reduced to what a reader cares
//! about ([`event_key`]: what was asked, of which resource, and how it was answered,
//! with ids in lookup form), and the two sequences are aligned with a longest common
//! subsequence, so one extra or missing event shows as one line instead of shifting
//! everything after it.
//!
//! Pure: no I/O, and no input can make it panic.

use std::collections::HashMap;

use serde::Serialize;

use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::{self, NotificationIndex};

/// Largest LCS table, in cells (4 bytes each): about 100 MB, two sessions of 5000
/// events that differ from first to last. Common prefixes and suffixes are trimmed
/// first, so typical sessions need far less.
const MAX_LCS_CELLS: usize = 5_001 * 5_001;

/// One event of a session reduced to what a comparison should look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub direction: Direction,
    /// See [`event_key`]; starts with the direction, so it alone identifies the key.
    pub summary: String,
}

/// The comparable summary of an exchange, so that two runs that did the same thing
/// compare equal even when Graph spelled ids differently.
///
/// API: `api POST /communications/calls/<norm id>/answer -> 202` (method,
/// [`graph::normalize_path`], response status or `error`). Callbacks: `callback `,
/// then per notification `<changeType> <resource> <state or status>` (lower-cased,
/// resource normalised, `-` when absent) joined with ` + `, then `-> <bot status>`.
/// A callback body that is not a notification (or has none) gives `callback <path>
/// sha256:<first 12 hex of the body's hash> -> <status>`.
pub fn event_key(ex: &Exchange<StoredBody>) -> EventKey {
    let status = ex
        .response
        .as_ref()
        .map_or_else(|| "error".to_owned(), |r| r.status.to_string());
    let summary = match ex.direction {
        Direction::Api => format!(
            "api {} {} -> {status}",
            ex.request.method.to_ascii_uppercase(),
            graph::normalize_path(&ex.request.path)
        ),
        Direction::Callback => format!("callback {} -> {status}", callback_subject(ex)),
    };
    EventKey {
        direction: ex.direction,
        summary,
    }
}

/// What a callback delivered: its notifications, or failing that its path and hash.
fn callback_subject(ex: &Exchange<StoredBody>) -> String {
    match graph::parse_notifications(&ex.request.content()) {
        Ok(notifications) if !notifications.is_empty() => notifications
            .iter()
            .map(notification_summary)
            .collect::<Vec<_>>()
            .join(" + "),
        _ => {
            let sha = &ex.request.body.sha256;
            format!(
                "{} sha256:{}",
                graph::normalize_path(&ex.request.path),
                sha.get(..12).unwrap_or(sha)
            )
        }
    }
}

fn notification_summary(n: &NotificationIndex) -> String {
    let lower = |s: Option<&String>| s.map_or_else(|| "-".to_owned(), |s| s.to_lowercase());
    let resource = n
        .resource
        .as_ref()
        .or(n.resource_url.as_ref())
        .map_or_else(|| "-".to_owned(), |r| graph::normalize_path(r));
    format!(
        "{} {resource} {}",
        lower(n.change_type.as_ref()),
        lower(n.state.as_ref().or(n.status.as_ref()))
    )
}

/// One line of the aligned sessions; as JSON `{"op":"same"|"only_a"|"only_b", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DiffLine {
    /// The same event in both sessions.
    Same {
        a_seq: u64,
        b_seq: u64,
        summary: String,
    },
    /// An event of A with no counterpart in B.
    OnlyA { a_seq: u64, summary: String },
    /// An event of B with no counterpart in A.
    OnlyB { b_seq: u64, summary: String },
}

impl DiffLine {
    /// Whether the line is a difference (only in A or only in B).
    pub fn is_change(&self) -> bool {
        !matches!(self, DiffLine::Same { .. })
    }
}

/// The whole comparison as one JSON document, every line included (no context
/// collapsing): `{"a":..,"b":..,"differences":N,"lines":[{"op":..,"a_seq":..,
/// "b_seq":..,"summary":..}]}`.
pub fn to_json(a: &str, b: &str, lines: &[DiffLine]) -> serde_json::Value {
    serde_json::json!({
        "a": a,
        "b": b,
        "differences": lines.iter().filter(|l| l.is_change()).count(),
        "lines": lines,
    })
}

/// Aligns two sessions with a longest common subsequence over event keys, so one
/// extra or missing event shows as one line, not a cascade. When the part that
/// differs (after the common prefix and suffix) would need more than about 5000 x 5000
/// table cells, a greedy in-order alignment is used instead: linear memory, and still
/// exact for isolated insertions and deletions, but it may report a reordering as more
/// lines than the LCS would.
pub fn diff(a: &[Exchange<StoredBody>], b: &[Exchange<StoredBody>]) -> Vec<DiffLine> {
    let keys_a: Vec<EventKey> = a.iter().map(event_key).collect();
    let keys_b: Vec<EventKey> = b.iter().map(event_key).collect();
    let (ids_a, ids_b) = intern(&keys_a, &keys_b);
    align(&ids_a, &ids_b)
        .into_iter()
        .filter_map(|op| {
            Some(match op {
                Op::Same(i, j) => DiffLine::Same {
                    a_seq: a.get(i)?.seq,
                    b_seq: b.get(j)?.seq,
                    summary: keys_a.get(i)?.summary.clone(),
                },
                Op::OnlyA(i) => DiffLine::OnlyA {
                    a_seq: a.get(i)?.seq,
                    summary: keys_a.get(i)?.summary.clone(),
                },
                Op::OnlyB(j) => DiffLine::OnlyB {
                    b_seq: b.get(j)?.seq,
                    summary: keys_b.get(j)?.summary.clone(),
                },
            })
        })
        .collect()
}

/// Renders as text: `  ` for same, `- ` for only in A, `+ ` for only in B, then the
/// seq numbers in A and B and the summary. `context` unchanged events are kept
/// around each change; other runs of unchanged events collapse into `  ... N
/// unchanged events`. The last line counts the differing lines (`N differences`) or
/// says `no differences`.
pub fn render(lines: &[DiffLine], context: usize) -> String {
    let shown = near_a_change(lines, context);
    let mut out = String::new();
    let mut hidden = 0usize;
    for (line, show) in lines.iter().zip(shown) {
        if !show {
            hidden += 1;
            continue;
        }
        push_hidden(&mut out, &mut hidden);
        out.push_str(&render_line(line));
        out.push('\n');
    }
    push_hidden(&mut out, &mut hidden);
    let changes = lines.iter().filter(|l| l.is_change()).count();
    match changes {
        0 => out.push_str("no differences\n"),
        1 => out.push_str("1 difference\n"),
        n => out.push_str(&format!("{n} differences\n")),
    }
    out
}

fn render_line(line: &DiffLine) -> String {
    match line {
        DiffLine::Same {
            a_seq,
            b_seq,
            summary,
        } => format!("  {a_seq:>5} {b_seq:>5}  {summary}"),
        DiffLine::OnlyA { a_seq, summary } => format!("- {a_seq:>5} {:>5}  {summary}", ""),
        DiffLine::OnlyB { b_seq, summary } => format!("+ {:>5} {b_seq:>5}  {summary}", ""),
    }
}

/// Writes the collapsed-run line for `hidden` unchanged events, if any, and resets it.
fn push_hidden(out: &mut String, hidden: &mut usize) {
    match *hidden {
        0 => {}
        1 => out.push_str("  ... 1 unchanged event\n"),
        n => out.push_str(&format!("  ... {n} unchanged events\n")),
    }
    *hidden = 0;
}

/// Per line: is it a change, or within `context` lines of one?
fn near_a_change(lines: &[DiffLine], context: usize) -> Vec<bool> {
    let mut shown = vec![false; lines.len()];
    let mut since_change: Option<usize> = None;
    for (line, show) in lines.iter().zip(shown.iter_mut()) {
        since_change = if line.is_change() {
            Some(0)
        } else {
            since_change.map(|d| d.saturating_add(1))
        };
        *show = since_change.is_some_and(|d| d <= context);
    }
    let mut until_change: Option<usize> = None;
    for (line, show) in lines.iter().zip(shown.iter_mut()).rev() {
        until_change = if line.is_change() {
            Some(0)
        } else {
            until_change.map(|d| d.saturating_add(1))
        };
        *show |= until_change.is_some_and(|d| d <= context);
    }
    shown
}

/// Maps each distinct key to a small integer so alignment compares integers.
fn intern<'k>(a: &'k [EventKey], b: &'k [EventKey]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: HashMap<(&'static str, &'k str), u32> = HashMap::new();
    let mut id_of = |k: &'k EventKey| -> u32 {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry((k.direction.as_str(), k.summary.as_str()))
            .or_insert(next)
    };
    let a = a.iter().map(&mut id_of).collect();
    let b = b.iter().map(&mut id_of).collect();
    (a, b)
}

/// One step of an alignment, by index into A and B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same(usize, usize),
    OnlyA(usize),
    OnlyB(usize),
}

/// Trims the common prefix and suffix, then aligns the middle by LCS, or greedily
/// when the table would be too large.
fn align(a: &[u32], b: &[u32]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (rest_a, rest_b) = (&a[prefix..], &b[prefix..]);
    let suffix = rest_a
        .iter()
        .rev()
        .zip(rest_b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mid_a = &rest_a[..rest_a.len() - suffix];
    let mid_b = &rest_b[..rest_b.len() - suffix];
    let cells = (mid_a.len() + 1).checked_mul(mid_b.len() + 1);
    let middle = match cells {
        Some(c) if c <= MAX_LCS_CELLS => lcs_align(mid_a, mid_b),
        _ => greedy_align(mid_a, mid_b),
    };
    let mut ops: Vec<Op> = (0..prefix).map(|i| Op::Same(i, i)).collect();
    ops.extend(middle.into_iter().map(|op| shift(op, prefix)));
    let (end_a, end_b) = (prefix + mid_a.len(), prefix + mid_b.len());
    ops.extend((0..suffix).map(|k| Op::Same(end_a + k, end_b + k)));
    ops
}

fn shift(op: Op, by: usize) -> Op {
    match op {
        Op::Same(i, j) => Op::Same(i + by, j + by),
        Op::OnlyA(i) => Op::OnlyA(i + by),
        Op::OnlyB(j) => Op::OnlyB(j + by),
    }
}

/// Exact LCS alignment; a removal is listed before the insertion that replaces it.
fn lcs_align(a: &[u32], b: &[u32]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    // table[i * width + j]: LCS length of a[i..] and b[j..].
    let mut table = vec![0u32; (n + 1) * width];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[i * width + j] = if a[i] == b[j] {
                table[(i + 1) * width + j + 1] + 1
            } else {
                table[(i + 1) * width + j].max(table[i * width + j + 1])
            };
        }
    }
    let mut ops = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push(Op::Same(i, j));
            (i, j) = (i + 1, j + 1);
        } else if table[(i + 1) * width + j] >= table[i * width + j + 1] {
            ops.push(Op::OnlyA(i));
            i += 1;
        } else {
            ops.push(Op::OnlyB(j));
            j += 1;
        }
    }
    ops.extend((i..n).map(Op::OnlyA));
    ops.extend((j..m).map(Op::OnlyB));
    ops
}

/// In-order alignment in O((n + m) log n): at a mismatch, an event that never occurs
/// again on the other side is reported alone; otherwise the side whose next match is
/// nearer is skipped up to it.
fn greedy_align(a: &[u32], b: &[u32]) -> Vec<Op> {
    let (in_a, in_b) = (positions(a), positions(b));
    let mut ops = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x == y {
            ops.push(Op::Same(i, j));
            (i, j) = (i + 1, j + 1);
            continue;
        }
        let gap_b = next_at_or_after(&in_b, x, j).map(|p| p - j);
        let gap_a = next_at_or_after(&in_a, y, i).map(|p| p - i);
        match (gap_b, gap_a) {
            (Some(gb), Some(ga)) if gb <= ga => {
                ops.push(Op::OnlyB(j));
                j += 1;
            }
            (_, Some(_)) | (None, None) => {
                ops.push(Op::OnlyA(i));
                i += 1;
            }
            (Some(_), None) => {
                ops.push(Op::OnlyB(j));
                j += 1;
            }
        }
    }
    ops.extend((i..a.len()).map(Op::OnlyA));
    ops.extend((j..b.len()).map(Op::OnlyB));
    ops
}

/// Where each id occurs, ascending.
fn positions(ids: &[u32]) -> HashMap<u32, Vec<usize>> {
    let mut map: HashMap<u32, Vec<usize>> = HashMap::new();
    for (p, &id) in ids.iter().enumerate() {
        map.entry(id).or_default().push(p);
    }
    map
}

fn next_at_or_after(positions: &HashMap<u32, Vec<usize>>, id: u32, from: usize) -> Option<usize> {
    let list = positions.get(&id)?;
    list.get(list.partition_point(|&p| p < from)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{RequestRecord, ResponseRecord, Timing};

    const CALL_UPPER: &str = "57DAB8B1894C409AB240BD8BEAE78896";
    const CALL_DASHED: &str = "57dab8b1-894c-409a-b240-bd8beae78896";
    const CALL_NORM: &str = "57dab8b1894c409ab240bd8beae78896";

    fn stored(text: &str) -> StoredBody {
        StoredBody::capture(text.as_bytes(), usize::MAX)
    }

    fn exchange(
        seq: u64,
        direction: Direction,
        method: &str,
        path: &str,
        body: &str,
        status: Option<u16>,
    ) -> Exchange<StoredBody> {
        Exchange {
            seq,
            direction,
            wall_start_us: 1_795_000_000_000_000,
            timing: Timing {
                request_start_us: 1000 * i64::try_from(seq).unwrap_or(0),
                request_end_us: None,
                response_start_us: None,
                response_end_us: None,
            },
            request: RequestRecord {
                method: method.into(),
                path: path.into(),
                query: None,
                version: "HTTP/1.1".into(),
                headers: Vec::new(),
                body: stored(body),
            },
            target: Some("http://127.0.0.1:3978".into()),
            forwarded_body: None,
            response: status.map(|status| ResponseRecord {
                status,
                headers: Vec::new(),
                body: stored(""),
            }),
            error: status.is_none().then(|| "upstreamTimeout".to_owned()),
        }
    }

    fn api(seq: u64, method: &str, path: &str, status: u16) -> Exchange<StoredBody> {
        exchange(seq, Direction::Api, method, path, "{}", Some(status))
    }

    fn state(seq: u64, call: &str, state: &str) -> Exchange<StoredBody> {
        let body = format!(
            r##"{{"value":[{{"changeType":"Updated","resource":"/app/calls/{call}","resourceData":{{"@odata.type":"#microsoft.graph.call","state":"{state}"}}}}]}}"##
        );
        exchange(
            seq,
            Direction::Callback,
            "POST",
            "/api/calls",
            &body,
            Some(202),
        )
    }

    /// An incoming call answered, established, then hung up.
    fn session(call: &str) -> Vec<Exchange<StoredBody>> {
        vec![
            exchange(
                1,
                Direction::Callback,
                "POST",
                "/api/calls",
                &format!(
                    r#"{{"value":[{{"changeType":"created","resource":"/app/calls/{call}","resourceData":{{"state":"incoming"}}}}]}}"#
                ),
                Some(200),
            ),
            api(2, "POST", &format!("/app/calls/{call}/answer"), 202),
            state(3, call, "establishing"),
            state(4, call, "established"),
            api(
                5,
                "DELETE",
                &format!("/v1.0/communications/calls/{call}"),
                204,
            ),
            state(6, call, "terminated"),
        ]
    }

    fn changes(lines: &[DiffLine]) -> Vec<&DiffLine> {
        lines.iter().filter(|l| l.is_change()).collect()
    }

    #[test]
    fn summaries() {
        let key = event_key(&api(
            2,
            "post",
            &format!("/app/calls/{CALL_UPPER}/microsoft.graph.answer"),
            202,
        ));
        assert_eq!(key.direction, Direction::Api);
        assert_eq!(
            key.summary,
            format!("api POST /communications/calls/{CALL_NORM}/answer -> 202")
        );
        let failed = exchange(3, Direction::Api, "GET", "/v1.0/me", "", None);
        assert_eq!(event_key(&failed).summary, "api GET /me -> error");
        let two = exchange(
            4,
            Direction::Callback,
            "POST",
            "/api/calls",
            &format!(
                r#"{{"value":[{{"changeType":"Updated","resourceUrl":"/communications/calls/{CALL_DASHED}","resourceData":{{"state":"Established"}}}},{{"changeType":"deleted","resource":"/app/calls/{CALL_UPPER}/operations/AB","resourceData":{{"status":"Completed"}}}},{{}}]}}"#
            ),
            Some(202),
        );
        assert_eq!(
            event_key(&two).summary,
            format!("callback updated /communications/calls/{CALL_NORM} established + deleted /communications/calls/{CALL_NORM}/operations/ab completed + - - - -> 202")
        );
        let raw = exchange(
            5,
            Direction::Callback,
            "POST",
            "/callback/TOKEN",
            "not json",
            Some(200),
        );
        let sha = crate::exchange::sha256_hex(b"not json");
        assert_eq!(
            event_key(&raw).summary,
            format!("callback /callback/TOKEN sha256:{} -> 200", &sha[..12])
        );
    }

    #[test]
    fn identical_sessions() {
        let lines = diff(&session(CALL_UPPER), &session(CALL_UPPER));
        assert_eq!(lines.len(), 6);
        assert!(changes(&lines).is_empty());
        assert_eq!(
            render(&lines, 2),
            "  ... 6 unchanged events\nno differences\n"
        );
        assert_eq!(render(&[], 2), "no differences\n");
    }

    #[test]
    fn id_spellings_are_equal() {
        let dashed: Vec<_> = session(CALL_DASHED)
            .into_iter()
            .map(|mut ex| {
                ex.request.path = ex
                    .request
                    .path
                    .replace("/app/calls", "/beta/communications/calls");
                ex
            })
            .collect();
        assert!(changes(&diff(&session(CALL_UPPER), &dashed)).is_empty());
    }

    #[test]
    fn one_missing_event_is_one_line() {
        let a = session(CALL_UPPER);
        let mut b = session(CALL_UPPER);
        b.remove(2);
        let lines = diff(&a, &b);
        assert_eq!(lines.len(), 6);
        assert_eq!(
            changes(&lines),
            [&DiffLine::OnlyA {
                a_seq: 3,
                summary: format!(
                    "callback updated /communications/calls/{CALL_NORM} establishing -> 202"
                )
            }]
        );
        assert_eq!(
            lines[3],
            DiffLine::Same {
                a_seq: 4,
                b_seq: 4,
                summary: format!(
                    "callback updated /communications/calls/{CALL_NORM} established -> 202"
                )
            }
        );
        let text = render(&lines, 1);
        assert_eq!(
            text,
            format!(
                "  ... 1 unchanged event\n\
                 \x20     2     2  api POST /communications/calls/{CALL_NORM}/answer -> 202\n\
                 -     3        callback updated /communications/calls/{CALL_NORM} establishing -> 202\n\
                 \x20     4     4  callback updated /communications/calls/{CALL_NORM} established -> 202\n\
                 \x20 ... 2 unchanged events\n\
                 1 difference\n"
            )
        );
    }

    #[test]
    fn one_extra_event_is_one_line() {
        let a = session(CALL_UPPER);
        let mut b = session(CALL_UPPER);
        b.insert(
            4,
            api(
                40,
                "POST",
                &format!("/communications/calls/{CALL_UPPER}/mute"),
                200,
            ),
        );
        let lines = diff(&a, &b);
        assert_eq!(
            changes(&lines),
            [&DiffLine::OnlyB {
                b_seq: 40,
                summary: format!("api POST /communications/calls/{CALL_NORM}/mute -> 200")
            }]
        );
        assert!(render(&lines, 0).contains(&format!(
            "+          40  api POST /communications/calls/{CALL_NORM}/mute -> 200\n"
        )));
    }

    #[test]
    fn changed_status_is_a_removal_and_an_insertion() {
        let a = session(CALL_UPPER);
        let mut b = session(CALL_UPPER);
        b[1] = api(2, "POST", &format!("/app/calls/{CALL_UPPER}/answer"), 500);
        let lines = diff(&a, &b);
        let changed = changes(&lines);
        assert!(
            matches!(changed[0], DiffLine::OnlyA { a_seq: 2, summary } if summary.ends_with("-> 202"))
        );
        assert!(
            matches!(changed[1], DiffLine::OnlyB { b_seq: 2, summary } if summary.ends_with("-> 500"))
        );
        assert_eq!(changed.len(), 2);
        let text = render(&lines, 0);
        assert!(text.starts_with("  ... 1 unchanged event\n- "), "{text}");
        assert!(
            text.ends_with("  ... 4 unchanged events\n2 differences\n"),
            "{text}"
        );
    }

    #[test]
    fn large_context_shows_everything() {
        let a = session(CALL_UPPER);
        let lines = diff(&a, &a[..5]);
        let text = render(&lines, usize::MAX);
        assert_eq!(text.lines().count(), 7);
        assert!(!text.contains("..."));
    }

    #[test]
    fn greedy_alignment_agrees_on_insertions_and_deletions() {
        let a = [1, 2, 3, 4, 5, 6];
        let b = [1, 3, 4, 9, 5, 6, 7];
        assert_eq!(greedy_align(&a, &b), lcs_align(&a, &b));
        assert_eq!(
            greedy_align(&[1, 2], &[3, 1]),
            vec![Op::OnlyB(0), Op::Same(0, 1), Op::OnlyA(1)]
        );
        assert_eq!(greedy_align(&[8], &[9]), vec![Op::OnlyA(0), Op::OnlyB(0)]);
        assert_eq!(greedy_align(&[], &[9]), vec![Op::OnlyB(0)]);
    }

    #[test]
    fn alignment_covers_every_event_once_in_order() {
        let a = [1, 2, 3, 1, 2, 3, 4];
        let b = [2, 3, 1, 4, 4, 1];
        for ops in [align(&a, &b), greedy_align(&a, &b), lcs_align(&a, &b)] {
            let seen_a: Vec<usize> = ops
                .iter()
                .filter_map(|op| match *op {
                    Op::Same(i, _) | Op::OnlyA(i) => Some(i),
                    Op::OnlyB(_) => None,
                })
                .collect();
            let seen_b: Vec<usize> = ops
                .iter()
                .filter_map(|op| match *op {
                    Op::Same(_, j) | Op::OnlyB(j) => Some(j),
                    Op::OnlyA(_) => None,
                })
                .collect();
            assert_eq!(seen_a, (0..a.len()).collect::<Vec<_>>());
            assert_eq!(seen_b, (0..b.len()).collect::<Vec<_>>());
            for op in ops {
                if let Op::Same(i, j) = op {
                    assert_eq!(a[i], b[j]);
                }
            }
        }
        let same = align(&a, &b)
            .iter()
            .filter(|op| matches!(op, Op::Same(..)))
            .count();
        assert_eq!(same, 4, "LCS of the two");
    }

    #[test]
    fn json_lists_every_line_with_its_op() {
        let lines = vec![
            DiffLine::Same {
                a_seq: 1,
                b_seq: 1,
                summary: "api GET /me -> 200".into(),
            },
            DiffLine::OnlyA {
                a_seq: 2,
                summary: "api POST /x -> 201".into(),
            },
            DiffLine::OnlyB {
                b_seq: 2,
                summary: "api POST /x -> 404".into(),
            },
        ];
        let json = to_json("rec", "rec-replay-1", &lines);
        assert_eq!(
            json,
            serde_json::json!({
                "a": "rec",
                "b": "rec-replay-1",
                "differences": 2,
                "lines": [
                    {"op": "same", "a_seq": 1, "b_seq": 1, "summary": "api GET /me -> 200"},
                    {"op": "only_a", "a_seq": 2, "summary": "api POST /x -> 201"},
                    {"op": "only_b", "b_seq": 2, "summary": "api POST /x -> 404"},
                ]
            })
        );
    }
}
