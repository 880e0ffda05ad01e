//! What every subcommand's `--help` ends with: its exit codes where they carry a
//! verdict, then one example. One table for all subcommands, applied to the clap
//! definitions of [`crate::cli`] at start-up, so a new subcommand without an example
//! fails the unit test below instead of shipping without one.

use clap::{Command, CommandFactory};

use crate::cli::Cli;

/// The epilogue of one subcommand (`path` is its name, `sessions delete` for a nested
/// one).
struct Epilogue {
    path: &'static str,
    exit_codes: Option<&'static str>,
    example: &'static str,
}

/// Where "2" always means the same thing.
const USAGE_ERROR: &str =
    "2  usage or input error (bad flag, unreadable file or database, unknown session)";

const EPILOGUES: &[Epilogue] = &[
    Epilogue {
        path: "record",
        exit_codes: Some("0  every exchange was recorded\n  1  some exchanges could not be stored (--on-store-error forward)"),
        example: "graphtape record --session incoming-call --callback-listen 0.0.0.0:8443 --tls-self-signed \\\n      --public-url https://rec.example.com:8443 --bot-url http://127.0.0.1:3978",
    },
    Epilogue {
        path: "sessions",
        exit_codes: None,
        example: "graphtape sessions --db graphtape.db --json",
    },
    Epilogue {
        path: "sessions delete",
        exit_codes: None,
        example: "graphtape sessions delete incoming-call-replay-1 incoming-call-replay-2",
    },
    Epilogue {
        path: "export",
        exit_codes: None,
        example: "graphtape export incoming-call --call 57dab8b1-894c-409a-b240-bd8beae78896 -o recordings/one-call.json",
    },
    Epilogue {
        path: "import",
        exit_codes: None,
        example: "graphtape import recordings/incoming-call.json --as incoming-call-2",
    },
    Epilogue {
        path: "replay",
        exit_codes: Some("0  the bot behaved as recorded\n  1  it did not: a divergence (the report names the call and the seqs), or the replay was interrupted"),
        example: "graphtape replay recordings/incoming-call.json --bot-url http://127.0.0.1:3978 --fast \\\n      --report replay-report.json --junit replay-junit.xml",
    },
    Epilogue {
        path: "explore",
        exit_codes: Some("0  every run passed\n  1  a run failed (its schedule, shrunk, is in --schedules)"),
        example: "graphtape explore recordings/incoming-call.json --bot-url http://127.0.0.1:3978 \\\n      --api-listen 127.0.0.1:7080 --runs 200 --seed 7 --schedules failing/",
    },
    Epilogue {
        path: "diff",
        exit_codes: Some("0  the sessions match event by event\n  1  they differ"),
        example: "graphtape diff recordings/incoming-call.json incoming-call-replay-1",
    },
    Epilogue {
        path: "calls",
        exit_codes: None,
        example: "graphtape calls recordings/racy-invite.json",
    },
    Epilogue {
        path: "show",
        exit_codes: None,
        example: "graphtape show recordings/racy-invite.json --seq 4..5",
    },
    Epilogue {
        path: "check",
        exit_codes: Some("0  no finding at or above --fail-on\n  1  at least one"),
        example: "graphtape check recordings/racy-invite.json --fail-on error --junit check-junit.xml",
    },
    Epilogue {
        path: "ui",
        exit_codes: None,
        example: "graphtape ui --db graphtape.db --listen 127.0.0.1:4040",
    },
    Epilogue {
        path: "prune",
        exit_codes: None,
        example: "graphtape prune --older-than 7d --dry-run",
    },
    Epilogue {
        path: "vacuum",
        exit_codes: None,
        example: "graphtape vacuum --db graphtape.db",
    },
    Epilogue {
        path: "demo",
        exit_codes: None,
        example: "graphtape demo",
    },
];

/// The command line definition with every subcommand's epilogue appended to whatever
/// `after_help` it already has (`check` lists its rules there).
pub fn command() -> Command {
    EPILOGUES.iter().fold(Cli::command(), |cmd, e| {
        let path: Vec<&str> = e.path.split(' ').collect();
        with_epilogue(cmd, &path, e)
    })
}

fn with_epilogue(cmd: Command, path: &[&str], e: &Epilogue) -> Command {
    match path {
        [] => {
            let mut text = cmd
                .get_after_help()
                .map(|h| format!("{h}\n\n"))
                .unwrap_or_default();
            if let Some(codes) = e.exit_codes {
                text.push_str(&format!("Exit codes:\n  {codes}\n  {USAGE_ERROR}\n\n"));
            }
            text.push_str(&format!("Example:\n  {}", e.example));
            cmd.after_help(text)
        }
        [first, rest @ ..] => {
            if cmd.find_subcommand(first).is_none() {
                return cmd;
            }
            cmd.mut_subcommand(*first, |sub| with_epilogue(sub, rest, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's path, nested ones as `parent child`; clap's own `help` aside.
    fn paths(cmd: &Command, prefix: &str, out: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let path = format!("{prefix}{}", sub.get_name());
            out.push(path.clone());
            paths(sub, &format!("{path} "), out);
        }
    }

    fn find<'c>(cmd: &'c Command, path: &str) -> Option<&'c Command> {
        path.split(' ')
            .try_fold(cmd, |c, name| c.find_subcommand(name))
    }

    #[test]
    fn every_subcommand_ends_with_one_example() {
        let cmd = command();
        let mut all = Vec::new();
        paths(&cmd, "", &mut all);
        let listed: Vec<&str> = EPILOGUES.iter().map(|e| e.path).collect();
        for path in &all {
            assert!(
                listed.contains(&path.as_str()),
                "{path}: no example in EPILOGUES"
            );
            let help = find(&cmd, path)
                .and_then(Command::get_after_help)
                .map(ToString::to_string)
                .unwrap_or_default();
            let tail = help.rsplit("Example:\n  ").next().unwrap_or_default();
            assert_eq!(help.matches("Example:").count(), 1, "{path}: {help}");
            assert!(
                tail.starts_with(&format!("graphtape {path}")),
                "{path}: {help}"
            );
        }
        for e in EPILOGUES {
            assert!(
                all.iter().any(|p| p == e.path),
                "{}: no such subcommand",
                e.path
            );
        }
    }

    #[test]
    fn verdict_commands_state_their_exit_codes() {
        let cmd = command();
        for path in ["replay", "diff", "check"] {
            let help = find(&cmd, path)
                .and_then(Command::get_after_help)
                .map(ToString::to_string)
                .unwrap_or_default();
            for code in ["\n  0  ", "\n  1  ", "\n  2  usage or input error"] {
                assert!(help.contains(code), "{path}: {help}");
            }
        }
        // check keeps its rule table ahead of the exit codes.
        let check = find(&cmd, "check")
            .and_then(Command::get_after_help)
            .map(ToString::to_string)
            .unwrap_or_default();
        let rules = check.find("Rules (as `check --rules` prints them):");
        assert!(
            rules.is_some_and(|r| Some(r) < check.find("Exit codes:")),
            "{check}"
        );
        // The definition itself stays valid for clap.
        cmd.debug_assert();
    }
}
