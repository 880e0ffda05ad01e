//! The timeline as a Mermaid `sequenceDiagram`, which GitHub renders in issues and
//! pull requests: one participant per lane, one message per arrow, a note per finding
//! and divergence, placed after the last arrow it involves.

use super::model::{Kind, ViewModel};

/// The diagram of the whole model, or of one call's events (`call` in lookup form).
pub fn mermaid(model: &ViewModel, call: Option<&str>) -> String {
    let keep = |c: &Option<String>| call.is_none_or(|want| c.as_deref() == Some(want));
    let mut out = String::from("sequenceDiagram\n");
    for lane in model.lanes {
        out.push_str(&format!("    participant {lane}\n"));
    }
    let events: Vec<_> = model.events.iter().filter(|e| keep(&e.call)).collect();
    // A note goes after the last shown arrow that carries it.
    let last_of = |marks: &dyn Fn(&super::model::EventView) -> &Vec<usize>, i: usize| {
        events.iter().rposition(|e| marks(e).contains(&i))
    };
    let mut notes: Vec<(usize, String)> = Vec::new();
    for (i, f) in model.findings.iter().enumerate() {
        if !keep(&f.call) {
            continue;
        }
        let seqs: Vec<String> = f.seqs.iter().map(u64::to_string).collect();
        let text = format!(
            "⚠ {} {} (seq {}): {}",
            f.severity,
            f.rule,
            seqs.join(", "),
            f.message
        );
        notes.push((last_of(&|e| &e.findings, i).unwrap_or(usize::MAX), text));
    }
    for (i, d) in model.divergences.iter().enumerate() {
        let recorded = d
            .recorded_seq
            .map(|s| format!(" (recorded seq {s})"))
            .unwrap_or_default();
        let text = format!("✖ {}{recorded}: {}", d.kind, d.summary);
        let at = if d.seq.is_some() {
            last_of(&|e| &e.divergences, i)
        } else {
            None
        };
        if call.is_none() || at.is_some() {
            notes.push((at.unwrap_or(usize::MAX), text));
        }
    }
    notes.sort_by_key(|(at, _)| *at);
    let mut pending = notes.into_iter().peekable();
    let note = |out: &mut String, text: &str| {
        out.push_str(&format!(
            "    Note over {},{}: {}\n",
            model.lanes[0],
            model.lanes[2],
            text_of(text)
        ));
    };
    for (n, e) in events.iter().enumerate() {
        let arrow = match (e.kind, e.failed) {
            (Kind::Request | Kind::Notification, _) => "->>",
            (Kind::Response | Kind::Ack, false) => "-->>",
            (Kind::Response | Kind::Ack, true) => "--x",
        };
        out.push_str(&format!(
            "    {}{arrow}{}: {}\n",
            model.lanes[e.from],
            model.lanes[e.to],
            text_of(&format!("{} {}", e.seq, e.label))
        ));
        while let Some((_, text)) = pending.next_if(|(at, _)| *at == n) {
            note(&mut out, &text);
        }
    }
    for (_, text) in pending {
        note(&mut out, &text);
    }
    out
}

/// Message text Mermaid reads literally: one line, and the characters its grammar
/// gives a meaning (`;` ends a statement, `#` starts an entity, `<`/`>` are HTML)
/// written as entities.
fn text_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            ';' => out.push_str("#59;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '%' => out.push_str("#37;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::model::build;
    use crate::inspect::testutil::{seed_flow, session, CALL_B};

    #[test]
    fn one_message_per_arrow_and_participants() {
        let ex = seed_flow();
        let m = build(&session(), &ex, &crate::inspect::check(&ex), None);
        let text = mermaid(&m, None);
        assert!(text.starts_with("sequenceDiagram\n    participant Bot\n    participant graphtape\n    participant Graph\n"));
        let messages = text
            .lines()
            .filter(|l| l.contains(">>") || l.contains("--x"))
            .count();
        assert_eq!(messages, ex.len() * 2);
        assert!(text.contains("    Bot->>Graph: 2 POST /v1.0/communications/calls/"));
        assert!(text.contains("    Graph->>graphtape: 1 created /app/calls/"));
    }

    #[test]
    fn one_call_and_its_notes() {
        let ex = seed_flow();
        let b = CALL_B.to_ascii_lowercase();
        let m = build(&session(), &ex, &crate::inspect::check(&ex), None);
        let text = mermaid(&m, Some(&b));
        let shown = m
            .events
            .iter()
            .filter(|e| e.call.as_deref() == Some(&*b))
            .count();
        let messages = text
            .lines()
            .filter(|l| l.contains(">>") || l.contains("--x"))
            .count();
        assert_eq!(messages, shown);
        assert!(shown > 0 && shown < m.events.len());
    }

    #[test]
    fn text_cannot_break_the_grammar() {
        assert_eq!(text_of("a;b#c<d>\ne%%"), "a#59;b#35;c#lt;d#gt; e#37;#37;");
    }
}
