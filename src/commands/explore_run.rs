//! One explore run: a fresh engine (plan, matcher, ids) swapped in behind the one API
//! listener, the bot's process started and stopped around it, the check command after
//! it, and its verdict.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::watch;

use super::replay::{finish_requests, wait_for_bot};
use crate::clock::SessionClock;
use crate::config::Upstream;
use crate::exchange::{Exchange, StoredBody};
use crate::explore::rules::{Delivery, Rules};
use crate::explore::strategy::Rng;
use crate::proxy::Forwarder;
use crate::replay::engine::{Replay, Settings};
use crate::replay::ids::IdMap;
use crate::replay::plan::{Plan, Step};
use crate::replay::report::{Divergence, Report};
use crate::replay::scheduler::{deliver_all, Delivery as Sending, Pace, RESPONSE_GRACE};

/// How long a stopped bot process has between SIGTERM and SIGKILL.
const BOT_STOP_GRACE: Duration = Duration::from_secs(5);

/// The outcome of one execution (a run or a shrink re-run).
pub(super) struct Outcome {
    pub(super) passed: bool,
    pub(super) report: Report,
    /// A failure that is not a divergence: the bot's process, --check-cmd.
    pub(super) other: Option<String>,
    pub(super) log: Option<PathBuf>,
    pub(super) ids: IdMap,
}

impl Outcome {
    /// One line about what went wrong, for the per-run line.
    pub(super) fn first_problem(&self) -> String {
        self.other
            .clone()
            .or_else(|| self.report.divergences.first().map(|d| d.message.clone()))
            .unwrap_or_default()
    }
}

/// Everything an execution needs, set up once.
pub(super) struct Explorer {
    pub(super) rules: Rules,
    pub(super) base: Plan,
    pub(super) recorded: Arc<Vec<Exchange<StoredBody>>>,
    pub(super) settings: Arc<Settings>,
    pub(super) clock: Arc<SessionClock>,
    /// The engine of the run under way, behind the one API listener. A std Mutex: it
    /// is held only to clone or swap the Arc, never across an await.
    pub(super) current: Arc<Mutex<Arc<Replay>>>,
    pub(super) bot: Upstream,
    pub(super) forwarder: Forwarder,
    pub(super) pace: Pace,
    pub(super) retry: bool,
    pub(super) wait: Duration,
    pub(super) settle: Duration,
    pub(super) bot_cmd: Option<String>,
    pub(super) check_cmd: Option<String>,
    pub(super) api_url: String,
    pub(super) api_listen: String,
    pub(super) dir: PathBuf,
    pub(super) ids: Vec<String>,
    /// The seed of the fresh ids: --seed mixed with the strategy and the recording.
    pub(super) id_seed: u64,
    pub(super) session: String,
    pub(super) stop: watch::Receiver<bool>,
}

impl Explorer {
    /// Fresh ids for execution `salt` of run `run`: never the same twice in one explore,
    /// and other ones for another strategy or recording (the same command gives the
    /// same ids, so that its schedule files are the same).
    pub(super) fn fresh_ids(&self, run: u64, salt: u64) -> IdMap {
        let mut rng = Rng::for_run(self.id_seed, run, salt + 1);
        IdMap::new(self.ids.iter().map(|id| (id.clone(), rng.guid())))
    }

    pub(super) fn execute(
        &self,
        rt: &tokio::runtime::Runtime,
        schedule: &[Delivery],
        ids: IdMap,
        label: &str,
    ) -> Outcome {
        rt.block_on(self.execute_async(schedule, ids, label))
    }

    async fn execute_async(&self, schedule: &[Delivery], ids: IdMap, label: &str) -> Outcome {
        let steps: Vec<Step> = schedule
            .iter()
            .map(|d| Step {
                position: d.position,
                response: d.response,
                delay_us: d.delay_us,
            })
            .collect();
        let replay = Arc::new(
            Replay::new(
                self.base.scheduled(&steps),
                self.recorded.clone(),
                self.settings.clone(),
                self.clock.clone(),
                None,
            )
            .with_ids(ids.clone()),
        );
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = replay.clone();
        let mut other = None;
        let log = (self.bot_cmd.is_some() || self.check_cmd.is_some())
            .then(|| self.dir.join("logs").join(format!("run-{label}.log")));
        let mut child = None;
        if let (Some(cmd), Some(log)) = (&self.bot_cmd, &log) {
            match self.start_bot(cmd, label, log).await {
                Ok(c) => child = Some(c),
                Err(e) => other = Some(format!("{e:#}")),
            }
        }
        if other.is_none() {
            let sending = Sending {
                bot: self.bot.clone(),
                forwarder: self.forwarder.clone(),
                pace: self.pace,
                progress: None,
                retry: self.retry,
                response_grace: match self.pace {
                    Pace::Fast => RESPONSE_GRACE,
                    Pace::Speed(_) => Duration::ZERO,
                },
            };
            deliver_all(
                replay.clone(),
                sending,
                tokio::time::Instant::now(),
                self.stop.clone(),
            )
            .await;
            finish_requests(&replay, self.wait, self.settle).await;
        }
        if let Some(child) = child {
            if let Some(problem) = stop_bot(child).await {
                other.get_or_insert(problem);
            }
        }
        if let (Some(cmd), Some(log), None) = (&self.check_cmd, &log, &other) {
            other = self.check(cmd, label, log).await;
        }
        if *self.stop.borrow() {
            replay.diverged(Divergence {
                kind: "interrupted",
                call: None,
                recorded_seq: None,
                replay_seq: None,
                message: "explore was interrupted during this run".into(),
            });
        }
        let report = replay.finish(&self.session, &format!("explore run {label}"));
        Outcome {
            passed: report.passed && other.is_none(),
            report,
            other,
            log,
            ids,
        }
    }

    fn command(
        &self,
        cmd: &str,
        label: &str,
        log: &Path,
    ) -> anyhow::Result<tokio::process::Command> {
        let expanded = cmd
            .replace("{api_url}", &self.api_url)
            .replace("{api_listen}", &self.api_listen)
            .replace("{run}", label);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the run log {}", log.display()))?;
        let err = out.try_clone()?;
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(expanded)
            .env("GRAPHTAPE_API_URL", &self.api_url)
            .env("GRAPHTAPE_API_LISTEN", &self.api_listen)
            .env("GRAPHTAPE_RUN", label)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        Ok(c)
    }

    /// Starts the bot's process and waits until --bot-url accepts connections.
    async fn start_bot(
        &self,
        cmd: &str,
        label: &str,
        log: &Path,
    ) -> anyhow::Result<tokio::process::Child> {
        let mut command = self.command(cmd, label, log)?;
        // Its own process group, so stopping it stops whatever the shell started.
        command.process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("--bot-cmd: starting {cmd:?}"))?;
        tokio::select! {
            ready = wait_for_bot(&self.bot, self.wait) => ready.map(|()| child),
            status = child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                bail!("the bot's process ended before it accepted connections ({status}); see {}", log.display())
            }
        }
    }

    /// Runs --check-cmd; a failure in words if it did not exit 0.
    async fn check(&self, cmd: &str, label: &str, log: &Path) -> Option<String> {
        let mut command = match self.command(cmd, label, log) {
            Ok(c) => c,
            Err(e) => return Some(format!("--check-cmd: {e:#}")),
        };
        match command.status().await {
            Ok(s) if s.success() => None,
            Ok(s) => Some(format!("--check-cmd {s}")),
            Err(e) => Some(format!("--check-cmd could not start: {e}")),
        }
    }
}

/// Stops the bot's process group: SIGTERM, then SIGKILL after the grace period. A
/// failure in words if it had already exited non-zero (its own driver said so).
async fn stop_bot(mut child: tokio::process::Child) -> Option<String> {
    if let Ok(Some(status)) = child.try_wait() {
        return (!status.success())
            .then(|| format!("the bot's process exited before it was stopped ({status})"));
    }
    let group = child.id().map(|pid| -(pid as i32));
    if let Some(group) = group {
        // SAFETY: kill(2) with a process group id and a signal number has no
        // memory-safety preconditions.
        unsafe { libc::kill(group, libc::SIGTERM) };
    }
    // The shell's exit is not the bot's: dash forks a `-c` command rather than exec it,
    // and a bot still closing would hold --bot-url when the next run's bot binds it.
    let stopped = async {
        let _ = child.wait().await;
        group_gone(group).await;
    };
    if tokio::time::timeout(BOT_STOP_GRACE, stopped).await.is_err() {
        if let Some(group) = group {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
        }
        let _ = child.wait().await;
        let _ = tokio::time::timeout(BOT_STOP_GRACE, group_gone(group)).await;
    }
    None
}

/// Returns once no live process is left in the process group (`-pgid`, as `kill` takes
/// it). Orphans that have died but were not reaped (zombies, where nothing reaps them)
/// hold nothing and do not count. Linux's `/proc` has no event for this: polled.
async fn group_gone(group: Option<i32>) {
    let Some(group) = group else { return };
    while live_members(-group) > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Live processes in group `pgid` (none when `/proc` cannot be read).
fn live_members(pgid: i32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| {
            entry.file_name().to_str().is_some_and(|name| {
                name.bytes().all(|b| b.is_ascii_digit())
                    && std::fs::read_to_string(entry.path().join("stat"))
                        .is_ok_and(|stat| live_in_group(&stat, pgid))
            })
        })
        .count()
}

/// Whether a `/proc/PID/stat` line is of a live (not zombie) process in group `pgid`.
/// The command name is in parentheses and may hold anything, so fields are read after
/// the last `)`: state, parent, group.
fn live_in_group(stat: &str, pgid: i32) -> bool {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let (Some(state), Some(_parent), Some(group)) = (fields.next(), fields.next(), fields.next())
    else {
        return false;
    };
    state != "Z" && state != "X" && group.parse() == Ok(pgid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_command_name() {
        assert!(live_in_group("4242 (bot) S 4240 4240 4240 0 -1", 4240));
        assert!(!live_in_group("4242 (bot) S 4240 4241 4241 0 -1", 4240));
        assert!(
            !live_in_group("4242 (bot) Z 1 4240 4240 0 -1", 4240),
            "a zombie"
        );
        // A name that looks like fields: only what follows the last `)` counts.
        assert!(live_in_group("4242 (a) Z 1 9 (x) R 1 4240 4240", 4240));
        assert!(!live_in_group("4242 bot", 4240));
        assert!(!live_in_group("4242 (bot) S", 4240));
    }

    #[tokio::test]
    async fn stopping_waits_for_what_the_shell_forked() {
        // `; :` makes dash fork rather than exec; the inner shell and its sleep ignore
        // SIGTERM, so they outlive the outer shell by the sleep.
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(r#"sh -c 'trap "" TERM; sleep 0.3; :'; :"#)
            .process_group(0);
        let child = command.spawn().unwrap();
        let group = child.id().unwrap() as i32;
        // The outer shell, the inner one and its sleep.
        while live_members(group) < 3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(stop_bot(child).await, None);
        assert_eq!(live_members(group), 0, "the forked sleep is gone too");
    }
}
