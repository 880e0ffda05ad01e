//! `graphtape show`: every event of a session, in global order, or chosen exchanges in
//! full (`--seq`).

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use super::output::{color, emit};
use super::source::{check_call, load, Source};
use crate::cli::ShowArgs;
use crate::inspect::{detail_json, detail_lines, event_json, render_line, timeline, Filter};

pub fn run(db: &Path, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let source = load(db, &args.session)?;
    if let Some(call) = &args.call {
        check_call(&source, call)?;
    }
    if !args.seqs.is_empty() {
        return show_in_full(&source, args);
    }
    let filter = Filter {
        call: args.call.clone(),
        since_seq: args.since,
    };
    let all = timeline(&source.exchanges);
    let last = all.iter().map(|e| e.seq).max();
    let events = filter.apply(all);
    if let (Some(since), true) = (args.since, events.is_empty()) {
        match last {
            Some(last) if since > last => eprintln!(
                "graphtape: --since {since} is past the end: session {} ends at seq {last}",
                source.info.name
            ),
            None => eprintln!("graphtape: session {} has no events", source.info.name),
            Some(_) => {}
        }
    }
    if args.json {
        emit(events.iter().map(|e| event_json(e).to_string()), false)?;
    } else {
        let color = color();
        emit(events.iter().map(|e| render_line(e, color)), !args.no_pager)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--seq`: the chosen exchanges in full, in sequence order, blank-line separated.
fn show_in_full(source: &Source, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let ranges = args
        .seqs
        .iter()
        .map(|s| parse_seqs(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for range in &ranges {
        if !source.exchanges.iter().any(|ex| range.contains(&ex.seq)) {
            let last = source.exchanges.last().map_or(0, |ex| ex.seq);
            bail!(
                "--seq {}: no such event in session {} (its events are seq 1..{last})",
                show_range(range),
                source.info.name
            );
        }
    }
    // With --call, only the chosen exchanges about that call.
    let filter = Filter {
        call: args.call.clone(),
        since_seq: None,
    };
    let about: HashSet<u64> = filter
        .apply(timeline(&source.exchanges))
        .iter()
        .map(|e| e.seq)
        .collect();
    let chosen: Vec<_> = source
        .exchanges
        .iter()
        .filter(|ex| ranges.iter().any(|r| r.contains(&ex.seq)) && about.contains(&ex.seq))
        .collect();
    if let (true, Some(call)) = (chosen.is_empty(), &args.call) {
        bail!(
            "--seq {}: none of these events is about call {call}",
            args.seqs.join(" --seq ")
        );
    }
    let chosen = chosen.into_iter();
    if args.json {
        emit(chosen.map(|ex| detail_json(ex).to_string()), false)?;
    } else {
        let mut lines = Vec::new();
        for (i, ex) in chosen.enumerate() {
            if i > 0 {
                lines.push(String::new());
            }
            lines.extend(detail_lines(ex));
        }
        emit(lines.into_iter(), !args.no_pager)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show_range(range: &RangeInclusive<u64>) -> String {
    if range.start() == range.end() {
        range.start().to_string()
    } else {
        format!("{}..{}", range.start(), range.end())
    }
}

/// `N` or `A..B` (inclusive, A ≤ B).
fn parse_seqs(text: &str) -> anyhow::Result<RangeInclusive<u64>> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| anyhow::anyhow!("--seq {text}: give a sequence number or a range A..B"))
    };
    let range = match text.split_once("..") {
        Some((a, b)) => number(a)?..=number(b)?,
        None => {
            let n = number(text)?;
            n..=n
        }
    };
    if range.is_empty() {
        bail!("--seq {text}: the range ends before it starts");
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::parse_seqs;

    #[test]
    fn seqs_are_a_number_or_a_range() {
        assert_eq!(parse_seqs("4").unwrap(), 4..=4);
        assert_eq!(parse_seqs("2..5").unwrap(), 2..=5);
        assert_eq!(parse_seqs(" 3 .. 3").unwrap(), 3..=3);
        for bad in ["", "x", "5..2", "1..", "-1", "1...3"] {
            assert!(parse_seqs(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_seqs("5..2").unwrap_err().to_string(),
            "--seq 5..2: the range ends before it starts"
        );
    }
}
