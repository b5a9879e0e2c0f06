//! What the self-test starts, what each test process must earn, and the short thresholds
//! that make a run take seconds: the one place to change when a rule changes.
use std::time::Duration;

use crate::verdict::VerdictKind;

/// `--hup-grace` for the in-process watcher: how long after the hangup `hangup_survived`
/// and `terminal_lost` fall due.
pub const HUP_GRACE: Duration = Duration::from_secs(1);
/// `--rss-growth` and `--rss-window`: the grower passes 32 MiB in about a second, and its
/// growth covers the quarter of the window (1.25 s) the rule asks for.
pub const RSS_GROWTH: u64 = 32 << 20;
pub const RSS_WINDOW: Duration = Duration::from_secs(5);
/// `--rss-interval` and `--poll-interval`: often enough that sampling adds little to the
/// latencies measured.
pub const RSS_INTERVAL: Duration = Duration::from_millis(100);
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
pub const RSS_STEP: u64 = 1 << 20;
/// The grower: 2 MiB touched every 40 ms (about 50 MiB/s), up to 128 MiB, then it holds
/// still, so that its memory can be compared with the OS's.
pub const GROW_STEP: usize = 2 << 20;
pub const GROW_EVERY: Duration = Duration::from_millis(40);
pub const GROW_STEPS: usize = 64;
/// How long the orphan's parent lives after starting it: three polls, so that polling
/// sees the parent before it goes (a child first seen already adopted by a subreaper is
/// not called orphaned by /proc alone).
pub const ORPHAN_PARENT_LIVES: Duration = Duration::from_millis(600);
/// How long each phase may wait for what it expects. Only a failing run waits this long;
/// a slow emulated guest needs much of it.
pub const PHASE_LIMIT: Duration = Duration::from_secs(30);
/// The in-process watcher takes SIGINT, SIGTERM and SIGHUP too and stops: when it ends or
/// a look at it fails, the self-test waits this long for the stop request that may be why.
pub const STOP_PENDING: Duration = Duration::from_millis(200);
/// How often the watcher's sessions are read while waiting: the latencies measured are
/// up to this much late.
pub const TICK: Duration = Duration::from_millis(50);

/// The test processes, by what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The terminal's session leader, as a login shell: it starts the others, and the
    /// hangup ends it.
    Shell,
    /// Calls setsid() and lives on.
    Setsid,
    /// Runs under the system's nohup.
    Nohup,
    /// Catches SIGHUP and stays.
    Catcher,
    /// Keeps growing in memory, then holds it.
    Grower,
    /// Its parent exits 600 ms after starting it.
    Orphan,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Self::Shell,
        Self::Setsid,
        Self::Nohup,
        Self::Catcher,
        Self::Grower,
        Self::Orphan,
    ];

    /// Its name in the reports file, the JSON and the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Setsid => "setsid",
            Self::Nohup => "nohup",
            Self::Catcher => "catcher",
            Self::Grower => "grower",
            Self::Orphan => "orphan",
        }
    }
}

/// What causes a verdict, timed by whoever saw it happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The setsid child, right before its setsid().
    Setsid,
    /// The shell, right before it started nohup (which then sets SIGHUP to SIG_IGN).
    NohupStarted,
    /// The orphan's parent, right before it exits.
    ParentExit,
    /// The grower, right before its first allocation.
    GrowthBegan,
    /// The self-test, closing the terminal's master side.
    Hangup,
}

impl Cause {
    pub fn words(self) -> &'static str {
        match self {
            Self::Setsid => "its setsid()",
            Self::NohupStarted => "nohup started it",
            Self::ParentExit => "its parent's exit",
            Self::GrowthBegan => "its growth began",
            Self::Hangup => "the hangup",
        }
    }
}

/// One verdict the self-test provokes, on which process, from what.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub verdict: VerdictKind,
    pub role: Role,
    pub cause: Cause,
}

impl Check {
    /// Raised only after the terminal hangs up.
    pub fn after_hangup(&self) -> bool {
        self.cause == Cause::Hangup
    }
}

/// The verdicts provoked, each on the process whose rule it tests. The others get more
/// once the shell is gone (all are orphaned then, and outlive the terminal); those are
/// listed per process, not checked. cpu_spin (minutes of a busy CPU), zombies (fifty
/// unreaped children) and stopped are not provoked.
pub const CHECKS: [Check; 6] = [
    Check {
        verdict: VerdictKind::Detached,
        role: Role::Setsid,
        cause: Cause::Setsid,
    },
    Check {
        verdict: VerdictKind::HangupIgnored,
        role: Role::Nohup,
        cause: Cause::NohupStarted,
    },
    Check {
        verdict: VerdictKind::Orphaned,
        role: Role::Orphan,
        cause: Cause::ParentExit,
    },
    Check {
        verdict: VerdictKind::RssGrowth,
        role: Role::Grower,
        cause: Cause::GrowthBegan,
    },
    Check {
        verdict: VerdictKind::HangupSurvived,
        role: Role::Catcher,
        cause: Cause::Hangup,
    },
    Check {
        verdict: VerdictKind::TerminalLost,
        role: Role::Nohup,
        cause: Cause::Hangup,
    },
];

/// Why a verdict is not expected from the source in use: it names the verdict among what
/// it cannot give (`unavailable` of the sessions document), e.g. polling, which sees no
/// signal being delivered, for hangup_survived.
pub fn not_expected(verdict: VerdictKind, source: &str, unavailable: &[String]) -> Option<String> {
    unavailable
        .iter()
        .any(|what| what == verdict.name())
        .then(|| format!("not expected from this source: --source {source} names it unavailable"))
}

/// The nohup to run: the system's own, /usr/bin/nohup, else the first on PATH (busybox's
/// applet where that is all there is).
pub fn nohup() -> Option<std::path::PathBuf> {
    let system = std::path::Path::new("/usr/bin/nohup");
    if system.is_file() {
        return Some(system.to_path_buf());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nohup"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_names_a_verdict_once_per_process() {
        for (i, a) in CHECKS.iter().enumerate() {
            for b in &CHECKS[i + 1..] {
                assert!(a.verdict != b.verdict || a.role != b.role);
            }
        }
    }

    #[test]
    fn a_verdict_the_source_names_unavailable_is_not_expected() {
        let unavailable = vec!["hangup_survived".to_string(), "hangup_exit_latency".into()];
        assert!(not_expected(VerdictKind::HangupSurvived, "proc", &unavailable).is_some());
        assert!(not_expected(VerdictKind::Detached, "proc", &unavailable).is_none());
    }

    #[test]
    fn the_grower_passes_the_threshold_within_the_window() {
        let grown = (GROW_STEP * GROW_STEPS) as u64;
        assert!(grown > 2 * RSS_GROWTH);
        let per_second = GROW_STEP as f64 / GROW_EVERY.as_secs_f64();
        assert!(RSS_GROWTH as f64 / per_second < RSS_WINDOW.as_secs_f64() / 2.0);
    }
}
