//! The verdict of a replay: what the bot did differently, per call, with timing figures.

use std::collections::BTreeMap;

use serde::Serialize;

/// One way the bot behaved differently from the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Divergence {
    /// `unmatched-request`, `extra-request`, `missing-request`, `notification-status`,
    /// `notification-undelivered`, `notification-failed`, `held-response-timeout`,
    /// `interrupted`.
    pub kind: &'static str,
    pub call: Option<String>,
    /// The recorded event it is about, if any.
    pub recorded_seq: Option<u64>,
    /// The replay event it is about, if any.
    pub replay_seq: Option<u64>,
    pub message: String,
}

/// Counts for one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallReport {
    pub call: String,
    pub requests_matched: u64,
    pub requests_unmatched: u64,
    pub requests_missing: u64,
    pub requests_extra: u64,
    pub notifications_delivered: u64,
    pub notifications_status_mismatch: u64,
    pub notifications_undelivered: u64,
    /// Requests the bot made in another order than recorded (inversions).
    pub order_deviations: u64,
}

/// Actual minus planned send time of the notifications, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimingError {
    pub count: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl TimingError {
    /// Summarises samples (any order).
    pub fn from_samples(samples: &[f64]) -> TimingError {
        if samples.is_empty() {
            return TimingError::default();
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize];
        TimingError {
            count: sorted.len(),
            median_us: pct(50.0),
            p99_us: pct(99.0),
            max_us: sorted[sorted.len() - 1],
        }
    }
}

/// The whole verdict, as printed and as written by `--report`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub session: String,
    pub replay_session: String,
    pub passed: bool,
    pub requests_recorded: usize,
    pub notifications_recorded: usize,
    pub calls: Vec<CallReport>,
    pub divergences: Vec<Divergence>,
    pub timing_error: TimingError,
}

/// Collects outcomes while the replay runs.
#[derive(Debug, Default)]
pub struct ReportBuilder {
    calls: BTreeMap<String, CallReport>,
    divergences: Vec<Divergence>,
    timing: Vec<f64>,
    /// Per call: recorded ordinals in the order the bot made them.
    arrival_order: BTreeMap<String, Vec<usize>>,
}

/// The key used for events that name no call.
const NO_CALL: &str = "(no call)";

impl ReportBuilder {
    fn call(&mut self, call: &Option<String>) -> &mut CallReport {
        let key = call.clone().unwrap_or_else(|| NO_CALL.to_string());
        self.calls.entry(key.clone()).or_insert_with(|| CallReport {
            call: key,
            ..CallReport::default()
        })
    }

    /// The bot made recorded request `ordinal`.
    pub fn matched(&mut self, call: &Option<String>, ordinal: usize) {
        self.call(call).requests_matched += 1;
        let key = call.clone().unwrap_or_else(|| NO_CALL.to_string());
        self.arrival_order.entry(key).or_default().push(ordinal);
    }

    /// A notification reached the bot; `timing_error_us` is actual minus planned.
    pub fn delivered(&mut self, call: &Option<String>, timing_error_us: f64) {
        self.call(call).notifications_delivered += 1;
        self.timing.push(timing_error_us);
    }

    /// Records a divergence and counts it against its call.
    pub fn diverged(&mut self, d: Divergence) {
        let entry = self.call(&d.call);
        match d.kind {
            "unmatched-request" => entry.requests_unmatched += 1,
            "extra-request" => entry.requests_extra += 1,
            "missing-request" => entry.requests_missing += 1,
            "notification-status" => entry.notifications_status_mismatch += 1,
            "notification-undelivered" | "notification-failed" => {
                entry.notifications_undelivered += 1
            }
            _ => {}
        }
        self.divergences.push(d);
    }

    /// The final report.
    pub fn finish(
        mut self,
        session: &str,
        replay_session: &str,
        requests_recorded: usize,
        notifications_recorded: usize,
        request_order: bool,
    ) -> Report {
        for (call, order) in &self.arrival_order {
            let inversions = order
                .iter()
                .enumerate()
                .map(|(i, a)| order[i + 1..].iter().filter(|b| *b < a).count() as u64)
                .sum();
            if let Some(entry) = self.calls.get_mut(call) {
                entry.order_deviations = inversions;
            }
        }
        let ordered = request_order && self.calls.values().any(|c| c.order_deviations > 0);
        Report {
            session: session.to_string(),
            replay_session: replay_session.to_string(),
            passed: self.divergences.is_empty() && !ordered,
            requests_recorded,
            notifications_recorded,
            calls: self.calls.into_values().collect(),
            divergences: self.divergences,
            timing_error: TimingError::from_samples(&self.timing),
        }
    }
}

impl Report {
    /// The human-readable verdict.
    pub fn render(&self) -> String {
        let mut out = format!(
            "replay of {} (recorded as {}): {}\n",
            self.session,
            self.replay_session,
            if self.passed { "PASS" } else { "FAIL" }
        );
        out.push_str(&format!(
            "{:<34} {:>7} {:>9} {:>7} {:>5} {:>9} {:>9} {:>11} {:>5}\n",
            "CALL",
            "MATCHED",
            "UNMATCHED",
            "MISSING",
            "EXTRA",
            "DELIVERED",
            "STATUS≠",
            "UNDELIVERED",
            "ORDER"
        ));
        for c in &self.calls {
            out.push_str(&format!(
                "{:<34} {:>7} {:>9} {:>7} {:>5} {:>9} {:>9} {:>11} {:>5}\n",
                c.call,
                c.requests_matched,
                c.requests_unmatched,
                c.requests_missing,
                c.requests_extra,
                c.notifications_delivered,
                c.notifications_status_mismatch,
                c.notifications_undelivered,
                c.order_deviations
            ));
        }
        for d in &self.divergences {
            let seq = match (d.recorded_seq, d.replay_seq) {
                (Some(r), Some(p)) => format!("recorded #{r}, replay #{p}"),
                (Some(r), None) => format!("recorded #{r}"),
                (None, Some(p)) => format!("replay #{p}"),
                (None, None) => String::new(),
            };
            out.push_str(&format!(
                "divergence {} [{}] {}: {}\n",
                d.kind,
                d.call.as_deref().unwrap_or(NO_CALL),
                seq,
                d.message
            ));
        }
        let t = &self.timing_error;
        // Nothing delivered, nothing timed: no line rather than a row of zeros.
        if t.count > 0 {
            out.push_str(&format!(
                "timing error over {}: median {:.0} us, p99 {:.0} us, max {:.0} us\n",
                crate::plural::count(t.count as u64, "notification"),
                t.median_us,
                t.p99_us,
                t.max_us
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timing_line_appears_only_when_something_was_timed() {
        let mut one = ReportBuilder::default();
        one.delivered(&Some("abc".to_string()), 120.0);
        let text = one.finish("s", "s-replay-1", 0, 1, true).render();
        assert!(
            text.contains("timing error over 1 notification: median"),
            "{text}"
        );
        let none = ReportBuilder::default()
            .finish("s", "s-replay-1", 1, 0, true)
            .render();
        assert!(!none.contains("timing error"), "{none}");
    }

    #[test]
    fn a_clean_run_passes_and_a_divergence_fails_naming_the_call() {
        let mut clean = ReportBuilder::default();
        let call = Some("abc".to_string());
        clean.matched(&call, 0);
        clean.delivered(&call, 120.0);
        let report = clean.finish("s", "s-replay-1", 1, 1, true);
        assert!(report.passed);
        assert!(report.render().contains("PASS"));

        let mut bad = ReportBuilder::default();
        bad.diverged(Divergence {
            kind: "missing-request",
            call: call.clone(),
            recorded_seq: Some(4),
            replay_seq: None,
            message: "POST /communications/calls/abc/answer was never made".into(),
        });
        let report = bad.finish("s", "s-replay-2", 1, 0, true);
        assert!(!report.passed);
        assert_eq!(report.calls[0].requests_missing, 1);
        let text = report.render();
        assert!(
            text.contains("divergence missing-request [abc] recorded #4"),
            "{text}"
        );
    }

    #[test]
    fn requests_out_of_recorded_order_count_as_deviations() {
        let mut b = ReportBuilder::default();
        let call = Some("abc".to_string());
        for ordinal in [1, 0, 2] {
            b.matched(&call, ordinal);
        }
        let report = b.finish("s", "r", 3, 0, true);
        assert_eq!(report.calls[0].order_deviations, 1);
        assert!(!report.passed);
        let mut b = ReportBuilder::default();
        for ordinal in [1, 0, 2] {
            b.matched(&call, ordinal);
        }
        let report = b.finish("s", "r", 3, 0, false);
        assert_eq!(report.calls[0].order_deviations, 1);
        assert!(report.passed, "order-insensitive within a call");
    }

    #[test]
    fn timing_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let t = TimingError::from_samples(&samples);
        assert_eq!(t.count, 100);
        assert_eq!(t.median_us, 51.0);
        assert_eq!(t.p99_us, 99.0);
        assert_eq!(t.max_us, 100.0);
    }
}
