//! Cutting a fixture out of a session: the events of some calls, or a range of
//! sequence numbers, renumbered from 1 and rebased to the first kept event, with a
//! provenance block saying where they came from.
//!
//! Pure: exchanges in, exchanges out. A notification POST that carries entries of
//! several calls keeps only the chosen calls' entries; its `value` array is rebuilt
//! from the kept entries' own bytes, so every kept notification stays byte-exact.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::provenance::PROVENANCE_KEY;
use crate::clock::format_unix_micros;
use crate::content_encoding::map_content;
use crate::exchange::{Direction, Exchange, StoredBody};
use crate::graph::{api_call, parse_notifications};
use crate::store::SessionInfo;

/// An inclusive range of sequence numbers; either end may be open (`A..`, `..B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SeqRange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
}

impl SeqRange {
    /// Parses `A..B`, `A..`, `..B` or a single `N` (messages name no flag: clap does).
    pub fn parse(text: &str) -> Result<SeqRange, String> {
        let num = |s: &str| -> Result<Option<u64>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{s:?} is not a sequence number"))
        };
        let (first, last) = match text.split_once("..") {
            Some((a, b)) => (num(a)?, num(b.strip_prefix('=').unwrap_or(b))?),
            None => {
                let n = num(text)?;
                if n.is_none() {
                    return Err("give a range like 3..17".into());
                }
                (n, n)
            }
        };
        if let (Some(a), Some(b)) = (first, last) {
            if a > b {
                return Err(format!("the range is empty ({a} > {b})"));
            }
        }
        Ok(SeqRange { first, last })
    }

    fn contains(&self, seq: u64) -> bool {
        self.first.is_none_or(|a| seq >= a) && self.last.is_none_or(|b| seq <= b)
    }
}

/// What to keep.
#[derive(Debug, Clone, Default)]
pub struct CutSpec {
    /// Lookup ids of the calls to keep; empty keeps every call.
    pub calls: Vec<String>,
    /// Only events in this range.
    pub seqs: Option<SeqRange>,
}

/// Why nothing could be cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutError {
    #[error("the cut keeps no events of session {session:?}")]
    Empty { session: String },
}

/// Where a cut came from: written into the session's config under [`PROVENANCE_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The session the events were cut from.
    pub source_session: String,
    /// Its start, RFC 3339 UTC.
    pub source_started_at: String,
    /// How many events it had.
    pub source_events: usize,
    /// The calls kept (lookup form); absent when the cut was by sequence only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// The range of source sequence numbers kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq_range: Option<SeqRange>,
    /// The source sequence number of each kept event: event `seq` N was `original_seqs[N-1]`.
    pub original_seqs: Vec<u64>,
    /// Microseconds subtracted from every offset (the first kept event's start).
    pub offset_us: i64,
    /// Notification POSTs whose `value` array lost the entries of other calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries_dropped: Vec<DroppedEntries>,
    /// The provenance of the source, when it was a cut itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
}

/// One rewritten notification POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedEntries {
    /// Its sequence number in the cut.
    pub seq: u64,
    pub original_seq: u64,
    /// Positions (in the original `value` array) kept and dropped.
    pub kept: Vec<usize>,
    pub dropped: Vec<usize>,
}

/// Cuts `exchanges` (a session's, in sequence order) as `spec` says. The returned
/// session carries its [`Provenance`] in its config.
pub fn cut(
    info: &SessionInfo,
    exchanges: &[Exchange<StoredBody>],
    spec: &CutSpec,
) -> Result<(SessionInfo, Vec<Exchange<StoredBody>>), CutError> {
    let mut kept: Vec<Exchange<StoredBody>> = Vec::new();
    let mut original_seqs = Vec::new();
    let mut entries_dropped = Vec::new();
    for ex in exchanges {
        if spec.seqs.is_some_and(|r| !r.contains(ex.seq)) {
            continue;
        }
        let mut ex = ex.clone();
        if !spec.calls.is_empty() {
            match ex.direction {
                Direction::Api => {
                    if !api_call(&ex).is_some_and(|c| spec.calls.contains(&c)) {
                        continue;
                    }
                }
                Direction::Callback => {
                    let Some(positions) = chosen_entries(&ex, &spec.calls) else {
                        continue;
                    };
                    if let Some(dropped) = keep_entries(&mut ex, &positions) {
                        entries_dropped.push(DroppedEntries {
                            seq: kept.len() as u64 + 1,
                            original_seq: ex.seq,
                            kept: positions,
                            dropped,
                        });
                    }
                }
            }
        }
        original_seqs.push(ex.seq);
        kept.push(ex);
    }
    let Some(offset_us) = kept.first().map(|e| e.timing.request_start_us) else {
        return Err(CutError::Empty {
            session: info.name.clone(),
        });
    };
    for (i, ex) in kept.iter_mut().enumerate() {
        ex.seq = i as u64 + 1;
        let t = &mut ex.timing;
        t.request_start_us -= offset_us;
        for at in [
            &mut t.request_end_us,
            &mut t.response_start_us,
            &mut t.response_end_us,
        ] {
            *at = at.map(|v| v - offset_us);
        }
    }
    let mut config = info.config.clone();
    let previous = config
        .as_object_mut()
        .and_then(|c| c.remove(PROVENANCE_KEY));
    let provenance = Provenance {
        source_session: info.name.clone(),
        source_started_at: format_unix_micros(info.started_unix_us),
        source_events: exchanges.len(),
        calls: spec.calls.clone(),
        seq_range: spec.seqs,
        original_seqs,
        offset_us,
        entries_dropped,
        previous,
    };
    let provenance = serde_json::to_value(provenance).unwrap_or(Value::Null);
    match &mut config {
        Value::Object(c) => {
            c.insert(PROVENANCE_KEY.into(), provenance);
        }
        other => {
            *other = serde_json::json!({ "recorded": other.take(), PROVENANCE_KEY: provenance })
        }
    }
    let session = SessionInfo {
        id: 0,
        name: format!("{}-cut", info.name),
        started_unix_us: info.started_unix_us + offset_us,
        ended_us: info.ended_us.map(|e| (e - offset_us).max(0)),
        config,
        unrecorded: info.unrecorded,
    };
    Ok((session, kept))
}

/// Positions of the entries about the chosen calls, or None when there is none (or
/// the body is no notification batch).
fn chosen_entries(ex: &Exchange<StoredBody>, calls: &[String]) -> Option<Vec<usize>> {
    let notes = parse_notifications(&ex.request.content()).ok()?;
    let positions: Vec<usize> = notes
        .iter()
        .filter(|n| n.call.as_ref().is_some_and(|c| calls.contains(&c.norm)))
        .map(|n| n.index)
        .collect();
    (!positions.is_empty()).then_some(positions)
}

/// Keeps only the entries at `positions` in the body's `value` array (and in the
/// forwarded body, if any); returns the positions dropped, or None if none were.
fn keep_entries(ex: &mut Exchange<StoredBody>, positions: &[usize]) -> Option<Vec<usize>> {
    let content = ex.request.content();
    let total = value_entries(&content)?.1.len();
    let dropped: Vec<usize> = (0..total).filter(|i| !positions.contains(i)).collect();
    if dropped.is_empty() {
        return None;
    }
    let headers = ex.request.headers.clone();
    let rewrite = |body: &StoredBody| {
        map_content(
            crate::exchange::header(&headers, "content-encoding"),
            &body.bytes,
            |c| filter_value_array(c, positions),
        )
        .map(|bytes| StoredBody::capture(&bytes, usize::MAX))
    };
    let new_body = rewrite(&ex.request.body)?;
    if let Some(forwarded) = ex.forwarded_body.take() {
        ex.forwarded_body = Some(rewrite(&forwarded).unwrap_or(forwarded));
    }
    let len = new_body.bytes.len().to_string().into_bytes();
    for (name, value) in &mut ex.request.headers {
        if name.eq_ignore_ascii_case("content-length") {
            *value = len.clone();
        }
    }
    ex.request.body = new_body;
    Some(dropped)
}

/// The byte range of the top-level `value` array and its entries' raw text.
fn value_entries(body: &[u8]) -> Option<(std::ops::Range<usize>, Vec<&RawValue>)> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        value: &'a RawValue,
    }
    let text = std::str::from_utf8(body).ok()?;
    let top: Top<'_> = serde_json::from_str(text).ok()?;
    let raw = top.value.get();
    let start = raw.as_ptr() as usize - text.as_ptr() as usize;
    let entries: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
    Some((start..start + raw.len(), entries))
}

/// The body with its `value` array holding only the entries at `positions`; every
/// other byte (and each kept entry) as it was.
fn filter_value_array(body: &[u8], positions: &[usize]) -> Option<Vec<u8>> {
    let (range, entries) = value_entries(body)?;
    let kept: Vec<&str> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| positions.contains(i))
        .map(|(_, e)| e.get())
        .collect();
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(&body[..range.start]);
    out.push(b'[');
    out.extend_from_slice(kept.join(",").as_bytes());
    out.push(b']');
    out.extend_from_slice(&body[range.end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::testutil::{api, call_state_body, callback, session};

    const A: &str = "57DAB8B1894C409AB240BD8BEAE78896";
    const B: &str = "90ED37DCD8E34E119DE330A955DDA06F";

    fn norm(id: &str) -> String {
        crate::graph::normalize_id(id).unwrap()
    }

    fn mixed_body() -> String {
        let a: Value = serde_json::from_str(&call_state_body(A, "established")).unwrap();
        let b: Value = serde_json::from_str(&call_state_body(B, "established")).unwrap();
        format!(
            r#"{{"@odata.type":"x", "value": [ {}, {} ]}}"#,
            serde_json::to_string(&b["value"][0]).unwrap(),
            serde_json::to_string(&a["value"][0]).unwrap()
        )
    }

    fn two_calls() -> Vec<Exchange<StoredBody>> {
        vec![
            callback(1, 10, &call_state_body(A, "incoming")).build(),
            api(
                2,
                20,
                "POST",
                &format!("/v1.0/communications/calls/{A}/answer"),
            )
            .build(),
            api(3, 25, "GET", &format!("/v1.0/communications/calls/{B}")).build(),
            callback(4, 30, &mixed_body()).build(),
            api(5, 40, "GET", "/v1.0/me").build(),
            callback(6, 50, &call_state_body(B, "terminated")).build(),
        ]
    }

    #[test]
    fn seq_ranges_parse() {
        assert_eq!(
            SeqRange::parse("3..17").unwrap(),
            SeqRange {
                first: Some(3),
                last: Some(17)
            }
        );
        assert_eq!(SeqRange::parse("4..").unwrap().last, None);
        assert_eq!(SeqRange::parse("..=9").unwrap().last, Some(9));
        assert_eq!(SeqRange::parse("5").unwrap().first, Some(5));
        assert!(SeqRange::parse("9..3").unwrap_err().contains("empty"));
        assert!(SeqRange::parse("a..3").unwrap_err().contains("\"a\""));
        assert!(SeqRange::parse("").is_err());
    }

    #[test]
    fn a_call_keeps_its_exchanges_and_its_entries_only() {
        let spec = CutSpec {
            calls: vec![norm(A)],
            seqs: None,
        };
        let (info, out) = cut(&session(), &two_calls(), &spec).unwrap();
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(out[0].timing.request_start_us, 0);
        assert_eq!(out[1].timing.request_start_us, 10_000);
        let body = String::from_utf8(out[2].request.body.bytes.clone()).unwrap();
        assert!(body.contains(A) && !body.contains(B), "{body}");
        assert!(
            body.starts_with(r#"{"@odata.type":"x", "value": [{"#),
            "{body}"
        );
        assert_eq!(out[2].request.body.len, body.len() as u64);
        let p = &info.config[PROVENANCE_KEY];
        assert_eq!(p["source_session"], session().name);
        assert_eq!(p["original_seqs"], serde_json::json!([1, 2, 4]));
        assert_eq!(p["offset_us"], 10_000);
        assert_eq!(
            p["entries_dropped"],
            serde_json::json!([{"seq": 3, "original_seq": 4, "kept": [1], "dropped": [0]}])
        );
        assert_eq!(info.started_unix_us, session().started_unix_us + 10_000);
    }

    #[test]
    fn a_seq_range_keeps_everything_in_it_unchanged() {
        let spec = CutSpec {
            calls: vec![],
            seqs: Some(SeqRange::parse("3..5").unwrap()),
        };
        let source = two_calls();
        let (info, out) = cut(&session(), &source, &spec).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].request.body, source[3].request.body);
        assert_eq!(
            info.config[PROVENANCE_KEY]["original_seqs"],
            serde_json::json!([3, 4, 5])
        );
        assert!(info.config[PROVENANCE_KEY].get("entries_dropped").is_none());
    }

    #[test]
    fn a_cut_of_a_cut_keeps_the_earlier_provenance() {
        let spec = CutSpec {
            calls: vec![norm(B)],
            seqs: None,
        };
        let (info, out) = cut(&session(), &two_calls(), &spec).unwrap();
        let again = CutSpec {
            calls: vec![],
            seqs: Some(SeqRange::parse("2..").unwrap()),
        };
        let (info2, _) = cut(&info, &out, &again).unwrap();
        let p = &info2.config[PROVENANCE_KEY];
        assert_eq!(p["previous"]["source_session"], session().name);
        assert_eq!(p["original_seqs"], serde_json::json!([2, 3]));
    }

    #[test]
    fn nothing_kept_is_an_error() {
        let spec = CutSpec {
            calls: vec!["feedbeef".into()],
            seqs: None,
        };
        assert!(matches!(
            cut(&session(), &two_calls(), &spec),
            Err(CutError::Empty { .. })
        ));
    }

    #[test]
    fn provenance_is_a_top_level_block_that_import_keeps() {
        let spec = CutSpec {
            calls: vec![norm(A)],
            seqs: None,
        };
        let (info, out) = cut(&session(), &two_calls(), &spec).unwrap();
        let doc = crate::recording::to_document(&info, &out);
        assert!(doc.session.config.get(PROVENANCE_KEY).is_none());
        let text = crate::recording::to_pretty(&serde_json::to_value(&doc).unwrap());
        let top: Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&String> = top.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["format", "session", "provenance", "events"]);
        let (back, events) = crate::recording::parse_recording(text.as_bytes(), "f").unwrap();
        assert_eq!(back.config, info.config);
        let again = crate::recording::to_pretty(
            &serde_json::to_value(crate::recording::to_document(&back, &events)).unwrap(),
        );
        assert_eq!(again, text);
        let clash = text.replace(r#""config": {"#, r#""config": {"provenance": 1,"#);
        let err = crate::recording::parse_recording(clash.as_bytes(), "f").unwrap_err();
        assert!(err.to_string().contains("at provenance"), "{err}");
    }

    #[test]
    fn a_gzip_batch_is_cut_inside_and_encoded_again() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(mixed_body().as_bytes()).unwrap();
        let mut batch = callback(4, 30, "").build();
        batch
            .request
            .headers
            .push(("content-encoding".into(), b"gzip".to_vec()));
        batch.request.body = StoredBody::capture(&gz.finish().unwrap(), usize::MAX);
        let spec = CutSpec {
            calls: vec![norm(B)],
            seqs: None,
        };
        let (_, out) = cut(&session(), &[batch], &spec).unwrap();
        let content = String::from_utf8(out[0].request.content().into_owned()).unwrap();
        assert!(content.contains(B) && !content.contains(A), "{content}");
    }
}
