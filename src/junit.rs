//! JUnit XML, the report format CI systems show as test results: `<testsuites>` of
//! `<testsuite>`s of `<testcase>`s, each with any number of `<failure>`s.
//!
//! Pure: a small model and its serialisation. `replay --junit`, `check --junit` (and
//! `explore --junit`) each build [`Suite`]s from their own results. Written by hand
//! rather than with `quick-junit`: that crate gives a testcase one status, where
//! graphtape reports every divergence of a call as a failure of its own.

use std::fmt::Write;

/// One `<testsuite>`: a replay, a check of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    pub name: String,
    /// Wall time it took, in seconds, if measured.
    pub time_s: Option<f64>,
    /// `<properties>`: facts about the run (session names, counts).
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

/// One `<testcase>`: a call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    pub name: String,
    pub classname: String,
    pub failures: Vec<Failure>,
    /// `<system-out>`: what is worth reading even when the case passed.
    pub output: Option<String>,
}

/// One `<failure>`: `type` is the divergence kind or rule id, `message` one line, the
/// text the details.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failure {
    pub kind: String,
    pub message: String,
    pub text: String,
}

impl Suite {
    /// Failures in all cases (each `<failure>` element counts, as JUnit readers count).
    pub fn failures(&self) -> usize {
        self.cases.iter().map(|c| c.failures.len()).sum()
    }
}

/// The whole document: `<testsuites name=...>` around `suites`, UTF-8, with totals.
pub fn to_xml(name: &str, suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let time: f64 = suites.iter().filter_map(|s| s.time_s).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{}\">",
        attr(name),
        seconds(time)
    );
    for suite in suites {
        write_suite(&mut out, suite);
    }
    out.push_str("</testsuites>\n");
    out
}

fn write_suite(out: &mut String, suite: &Suite) {
    let _ = write!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\"",
        attr(&suite.name),
        suite.cases.len(),
        suite.failures()
    );
    if let Some(time) = suite.time_s {
        let _ = write!(out, " time=\"{}\"", seconds(time));
    }
    out.push_str(">\n");
    if !suite.properties.is_empty() {
        out.push_str("    <properties>\n");
        for (name, value) in &suite.properties {
            let _ = writeln!(
                out,
                "      <property name=\"{}\" value=\"{}\"/>",
                attr(name),
                attr(value)
            );
        }
        out.push_str("    </properties>\n");
    }
    for case in &suite.cases {
        let _ = write!(
            out,
            "    <testcase name=\"{}\" classname=\"{}\"",
            attr(&case.name),
            attr(&case.classname)
        );
        if case.failures.is_empty() && case.output.is_none() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for failure in &case.failures {
            let _ = writeln!(
                out,
                "      <failure type=\"{}\" message=\"{}\">{}</failure>",
                attr(&failure.kind),
                attr(&failure.message),
                text(&failure.text)
            );
        }
        if let Some(output) = &case.output {
            let _ = writeln!(out, "      <system-out>{}</system-out>", text(output));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n");
}

/// Non-negative seconds with millisecond precision (JUnit's `time` is a decimal).
fn seconds(s: f64) -> String {
    let s = if s.is_finite() && s > 0.0 { s } else { 0.0 };
    format!("{s:.3}")
}

/// Character data: markup characters as entities, and the characters XML 1.0 cannot
/// carry at all (most C0 controls) written as `\u{..}` text, so recorded bytes can
/// never make the document invalid.
fn text(s: &str) -> String {
    escape(s, false)
}

/// An attribute value: as [`text`], plus quotes, and line breaks and tabs as character
/// references so they survive attribute normalisation.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if in_attr => out.push_str("&quot;"),
            '\n' if in_attr => out.push_str("&#10;"),
            '\r' if in_attr => out.push_str("&#13;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if allowed(c) => out.push(c),
            c => out.push_str(&c.escape_unicode().to_string()),
        }
    }
    out
}

/// XML 1.0's `Char` production.
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Suite> {
        vec![Suite {
            name: "replay incoming".into(),
            time_s: Some(1.5),
            properties: vec![("replay_session".into(), "incoming-replay-1".into())],
            cases: vec![
                Case {
                    name: "call abc".into(),
                    classname: "graphtape.replay.incoming".into(),
                    failures: vec![
                        Failure {
                            kind: "missing-request".into(),
                            message: "recorded #4: POST /answer was never made".into(),
                            text: "kind: missing-request\nrecorded seq: 4".into(),
                        },
                        Failure {
                            kind: "extra-request".into(),
                            message: "replay #9: <b> & \"q\"".into(),
                            text: "a < b && c > d".into(),
                        },
                    ],
                    output: None,
                },
                Case {
                    name: "call def".into(),
                    classname: "graphtape.replay.incoming".into(),
                    failures: vec![],
                    output: None,
                },
            ],
        }]
    }

    #[test]
    fn a_document_with_totals_cases_and_failures() {
        let xml = to_xml("graphtape replay", &sample());
        let want = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="graphtape replay" tests="2" failures="2" errors="0" time="1.500">
  <testsuite name="replay incoming" tests="2" failures="2" errors="0" skipped="0" time="1.500">
    <properties>
      <property name="replay_session" value="incoming-replay-1"/>
    </properties>
    <testcase name="call abc" classname="graphtape.replay.incoming">
      <failure type="missing-request" message="recorded #4: POST /answer was never made">kind: missing-request
recorded seq: 4</failure>
      <failure type="extra-request" message="replay #9: &lt;b&gt; &amp; &quot;q&quot;">a &lt; b &amp;&amp; c &gt; d</failure>
    </testcase>
    <testcase name="call def" classname="graphtape.replay.incoming"/>
  </testsuite>
</testsuites>
"#;
        assert_eq!(xml, want);
    }

    #[test]
    fn characters_xml_cannot_carry_are_written_as_text() {
        assert_eq!(text("a\u{1b}[0m\u{0}b\tc\n"), "a\\u{1b}[0m\\u{0}b\tc\n");
        assert_eq!(attr("x\ny\t\"z\""), "x&#10;y&#9;&quot;z&quot;");
        assert_eq!(text("\u{FFFE}é😀"), "\\u{fffe}é😀");
        assert_eq!(seconds(f64::NAN), "0.000");
        assert_eq!(seconds(-1.0), "0.000");
    }

    #[test]
    fn empty_suites_are_still_a_document() {
        let xml = to_xml(
            "x",
            &[Suite {
                name: "check s".into(),
                ..Suite::default()
            }],
        );
        assert!(
            xml.contains(
                r#"<testsuite name="check s" tests="0" failures="0" errors="0" skipped="0">"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"time="0.000""#));
    }
}
