//! `graphtape prune` and `graphtape vacuum`: keeping a long-lived database small.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::PruneArgs;
use crate::clock::format_unix_micros;
use crate::config::parse_age;
use crate::store::{self, Access, PruneRule, Removed};

pub fn run(db: &Path, args: &PruneArgs) -> anyhow::Result<ExitCode> {
    let rule = match (&args.older_than, args.keep_last) {
        (Some(age), _) => PruneRule::OlderThan(parse_age("--older-than", age)?),
        (None, Some(n)) => PruneRule::KeepLast(n),
        (None, None) => anyhow::bail!("give --older-than AGE or --keep-last N"),
    };
    let conn = store::open(db, Access::Existing)?;
    let now = crate::clock::unix_micros(std::time::SystemTime::now());
    let pruned = store::prune(&conn, db, rule, now, args.dry_run)?;
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut out = std::io::stdout().lock();
    for r in &pruned.removed {
        writeln!(out, "{verb} {}", describe(r))?;
    }
    for name in &pruned.recording {
        eprintln!("graphtape: kept session {name}: it is being recorded");
    }
    let n = pruned.removed.len();
    writeln!(
        out,
        "{verb} {}, {} {}{}",
        crate::plural::count(n as u64, "session"),
        if args.dry_run { "would keep" } else { "kept" },
        pruned.kept,
        if args.dry_run || n == 0 {
            String::new()
        } else {
            format!(
                " (`graphtape vacuum --db {}` gives the space back)",
                db.display()
            )
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `session NAME (started ..., N exchanges)`, as `prune` and `sessions delete` print.
pub fn describe(r: &Removed) -> String {
    format!(
        "session {} (started {}, {})",
        r.name,
        format_unix_micros(r.started_unix_us),
        crate::plural::count(r.exchanges, "exchange")
    )
}

pub fn vacuum(db: &Path) -> anyhow::Result<ExitCode> {
    let conn = store::open(db, Access::Existing)?;
    let before = on_disk(db);
    store::vacuum(&conn, db)?;
    drop(conn);
    println!(
        "vacuumed {}: {} -> {}",
        db.display(),
        human(before),
        human(on_disk(db))
    );
    Ok(ExitCode::SUCCESS)
}

/// The database with its write-ahead log.
fn on_disk(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), wal.into()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
