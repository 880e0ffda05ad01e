//! `graphtape show`: every event of a session, in global order.

use std::path::Path;
use std::process::ExitCode;

use super::output::{color, emit};
use super::source::{check_call, load};
use crate::cli::ShowArgs;
use crate::inspect::{event_json, render_line, timeline, Filter};

pub fn run(db: &Path, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let source = load(db, &args.session)?;
    if let Some(call) = &args.call {
        check_call(&source, call)?;
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
