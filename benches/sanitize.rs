//! What sanitising costs per exchange on the writer thread: the seed's example
//! recordings (join, invite, rosters, incoming calls) sanitised with `--redact-pii`,
//! repeated, and the time per exchange printed (median and p99 of rounds).
//!
//! `cargo bench --bench sanitize`. Bounded (a few hundred ms); no network.

use std::path::Path;
use std::time::Instant;

use graphtape::recording::read_recording;
use graphtape::sanitize::{Rules, RulesFile, Sanitizer};

const ROUNDS: usize = 200;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings");
    let mut exchanges = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            exchanges.extend(read_recording(&path).unwrap().exchanges);
        }
    }
    let bytes: usize = exchanges
        .iter()
        .map(|e| e.request.body.bytes.len() + e.response.as_ref().map_or(0, |r| r.body.bytes.len()))
        .sum();
    let mut per_exchange_us = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let rules = Rules::build(RulesFile {
            pii: true,
            ..RulesFile::default()
        })
        .unwrap();
        // A fresh sanitiser per round: it learns the ids again, as a new session does.
        let mut sanitizer = Sanitizer::new(rules, &[7; 32]);
        let batch = exchanges.clone();
        let start = Instant::now();
        for ex in batch {
            std::hint::black_box(sanitizer.apply(ex));
        }
        per_exchange_us.push(start.elapsed().as_secs_f64() * 1e6 / exchanges.len() as f64);
    }
    per_exchange_us.sort_by(f64::total_cmp);
    let at = |q: f64| per_exchange_us[((per_exchange_us.len() - 1) as f64 * q) as usize];
    println!(
        "sanitize --redact-pii: {} exchanges ({} body bytes) x {ROUNDS} rounds",
        exchanges.len(),
        bytes
    );
    println!(
        "  per exchange: median {:.1} us, p99 {:.1} us",
        at(0.5),
        at(0.99)
    );
}
