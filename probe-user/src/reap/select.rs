//! Which sessions `hupwatch reap` would end, and which it must leave alone whatever the
//! flags say. Pure: the facts about each process come in through `look`.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    tracker::{ProcessView, SessionsView},
    verdict::VerdictKind,
};

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct Criteria {
    /// Any of these verdicts qualifies a process.
    pub verdicts: Vec<VerdictKind>,
    pub older_than: Option<Duration>,
    pub min_rss_bytes: Option<u64>,
    /// Used under 1% of a CPU for at least this long (a view that does not know says no).
    pub idle_at_least: Option<Duration>,
    /// Started in this program's terminal (`vscode`, `tmux`...), in any case.
    pub terminal_program: Option<String>,
    /// Working in this directory or below it (an absolute path).
    pub cwd: Option<PathBuf>,
    /// Other users' processes too (otherwise only those of the user who ran hupwatch).
    pub all_users: bool,
    /// Programs never to end (`--ignore`), beside those the view marks ignored.
    pub ignore: crate::matching::Ignored,
    /// The user named what to end (`--match`, `--match-cmdline`, `--pid`, top's `k`): the
    /// session keepers and the processes that asked to survive a hangup are theirs to end.
    pub named: bool,
    /// `--tree`: a qualifying process brings its whole session tree (wrappers, servers,
    /// members that moved to a session of their own), so nothing of the session survives.
    pub tree: bool,
}

impl Criteria {
    /// The sessions that outlived their terminal; detached and hangup-ignoring processes
    /// are often wanted (tmux, nohup) and must be asked for by name.
    pub const DEFAULT_VERDICTS: [VerdictKind; 2] =
        [VerdictKind::TerminalLost, VerdictKind::Orphaned];
}

pub use crate::host::Identity;

/// Who is reaping: what must never be touched on their behalf.
#[derive(Clone, Debug)]
pub struct Reaper {
    /// hupwatch and its ancestors (the shell, sudo, the terminal).
    pub protected_pids: Vec<u32>,
    /// The user whose processes may be ended without --all-users.
    pub uid: u32,
}

#[derive(Clone, Debug)]
pub struct Target {
    pub process: ProcessView,
    pub identity: Identity,
}

/// A session that matched the criteria but is left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spared {
    pub pid: u32,
    pub comm: String,
    pub reason: &'static str,
}

pub fn choose(
    view: &SessionsView,
    criteria: &Criteria,
    reaper: &Reaper,
    look: impl Fn(u32) -> Option<Identity>,
) -> (Vec<Target>, Vec<Spared>) {
    let mut targets = Vec::new();
    let mut spared = Vec::new();
    let candidates = if criteria.tree {
        whole_trees(view, criteria, &mut spared)
    } else {
        view.processes
            .iter()
            .filter(|p| qualifies(p, criteria))
            .collect()
    };
    for p in candidates {
        let spare = |reason| Spared {
            pid: p.pid,
            comm: p.comm.clone(),
            reason,
        };
        if p.pid <= 1 {
            spared.push(spare("init"));
            continue;
        }
        if reaper.protected_pids.contains(&p.pid) {
            spared.push(spare("hupwatch itself or one of its ancestors"));
            continue;
        }
        let named = criteria
            .ignore
            .matches(&p.comm, p.cmdline.as_deref().unwrap_or_default());
        if p.ignored || named.is_some() {
            spared.push(spare("ignored (--ignore): meant to outlive its terminal"));
            continue;
        }
        if !criteria.named && keeps_sessions(&p.comm, p.cmdline.as_deref().unwrap_or_default()) {
            spared.push(spare(
                "a session keeper (tmux, screen, zellij, dtach, abduco, mosh-server, emacs --daemon, an agent): meant to outlive its terminal; name it with --match to end it",
            ));
            continue;
        }
        if !criteria.named && asked_to_survive(p, criteria) {
            spared.push(spare(
                "it set SIGHUP to SIG_IGN before the hangup (nohup): it asked to outlive its terminal; name it with --match or ask for --verdict hangup_ignored to end it",
            ));
            continue;
        }
        if p.started_ns == 0 {
            spared.push(spare(
                "its start time is unknown, so its pid cannot be tied to it",
            ));
            continue;
        }
        let Some(identity) = look(p.pid) else {
            spared.push(spare("already gone"));
            continue;
        };
        if identity.kernel_thread {
            spared.push(spare("a kernel thread"));
        } else if identity.comm != p.comm || !identity.started_at(p.started_ns) {
            // The view is older than this look: its pid now names something else.
            spared.push(spare("its pid now belongs to another process"));
        } else if identity.uid != reaper.uid && !criteria.all_users {
            spared.push(spare("another user's (--all-users to include it)"));
        } else {
            targets.push(Target {
                process: p.clone(),
                identity,
            });
        }
    }
    (targets, spared)
}

/// With `--tree`: every member of each tree that has a qualifying member, tree by tree
/// (the processes in no tree stand alone, as without it). A tree is judged whole: one
/// with a member still on its terminal is in use, and `--idle` and `--min-rss` take the
/// tree's idle time (its least idle member's) and total.
fn whole_trees<'v>(
    view: &'v SessionsView,
    criteria: &Criteria,
    spared: &mut Vec<Spared>,
) -> Vec<&'v ProcessView> {
    let per_process = Criteria {
        idle_at_least: None,
        min_rss_bytes: None,
        ..criteria.clone()
    };
    let mut out = Vec::new();
    let mut taken = std::collections::HashSet::new();
    for tree in &view.trees {
        let members: Vec<&ProcessView> = tree
            .members
            .iter()
            .filter_map(|pid| view.processes.iter().find(|p| p.pid == *pid))
            .collect();
        if !members.iter().any(|p| qualifies(p, &per_process)) {
            continue;
        }
        if members.iter().any(|p| p.tty.is_some()) {
            let reason = "its session tree has a member still on a terminal: in use";
            spared.extend(members.iter().map(|p| Spared {
                pid: p.pid,
                comm: p.comm.clone(),
                reason,
            }));
            continue;
        }
        let idle_enough = criteria.idle_at_least.is_none_or(|idle| {
            tree.idle_seconds
                .is_some_and(|seconds| seconds >= idle.as_secs_f64())
        });
        let large_enough = criteria
            .min_rss_bytes
            .is_none_or(|min| tree.memory_bytes >= min);
        if idle_enough && large_enough {
            taken.extend(members.iter().map(|p| p.pid));
            out.extend(members);
        }
    }
    out.extend(
        view.processes
            .iter()
            .filter(|p| p.tree.is_none() && !taken.contains(&p.pid) && qualifies(p, criteria)),
    );
    out
}

/// Programs whose job is to keep sessions alive after their terminal closes, matched as
/// `--ignore` matches names (docs/commands.md lists them; `--ignore` adds more).
pub const SESSION_KEEPERS: [&str; 8] = [
    "tmux",
    "screen",
    "zellij",
    "dtach",
    "abduco",
    "mosh-server",
    "ssh-agent",
    "gpg-agent",
];

/// A session keeper: one of [`SESSION_KEEPERS`], or Emacs running as a server.
fn keeps_sessions(comm: &str, cmdline: &str) -> bool {
    let keepers: Vec<String> = SESSION_KEEPERS.iter().map(|k| k.to_string()).collect();
    if crate::matching::Ignored::new(&keepers)
        .matches(comm, cmdline)
        .is_some()
    {
        return true;
    }
    let emacs = crate::matching::Ignored::new(&["emacs".to_string()]);
    emacs.matches(comm, cmdline).is_some()
        && cmdline.split_whitespace().any(|arg| {
            ["--daemon", "--bg-daemon", "--fg-daemon"]
                .iter()
                .any(|flag| arg == *flag || arg.starts_with(&format!("{flag}=")))
        })
}

/// It ignored SIGHUP already when its terminal hung up (SIG_IGN set before, as nohup
/// does): what it asked for, unless the user asked for such processes by verdict.
fn asked_to_survive(p: &ProcessView, criteria: &Criteria) -> bool {
    if criteria.verdicts.contains(&VerdictKind::HangupIgnored) {
        return false;
    }
    let at = |kind| {
        p.verdicts
            .iter()
            .find(|v| v.kind == kind)
            .map(|v| v.time_ns)
    };
    match (
        at(VerdictKind::HangupIgnored),
        at(VerdictKind::TerminalLost),
    ) {
        (Some(ignored), Some(lost)) => ignored <= lost,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn qualifies(p: &ProcessView, criteria: &Criteria) -> bool {
    p.verdicts
        .iter()
        .any(|v| criteria.verdicts.contains(&v.kind))
        && criteria
            .older_than
            .is_none_or(|age| p.age_seconds >= age.as_secs_f64())
        && criteria
            .min_rss_bytes
            .is_none_or(|min| p.rss_bytes.is_some_and(|rss| rss >= min))
        && criteria.idle_at_least.is_none_or(|idle| {
            p.idle_seconds
                .is_some_and(|seconds| seconds >= idle.as_secs_f64())
        })
        && criteria.terminal_program.as_deref().is_none_or(|wanted| {
            p.terminal_program
                .as_deref()
                .is_some_and(|program| program.eq_ignore_ascii_case(wanted))
        })
        && criteria
            .cwd
            .as_deref()
            .is_none_or(|under| p.cwd.as_deref().is_some_and(|cwd| within(cwd, under)))
}

/// `cwd` is `dir` or below it, component by component (`/src/app2` is not under `/src/app`).
fn within(cwd: &str, dir: &Path) -> bool {
    Path::new(cwd).starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    /// When the test's processes started, as the views and the live looks both say.
    const STARTED_NS: u64 = 1_780_000_000_000_000_000;

    fn process(pid: u32, verdict: VerdictKind, age: f64, rss: u64) -> ProcessView {
        ProcessView {
            age_seconds: age,
            started_ns: STARTED_NS,
            ..ProcessView::example(pid, rss, verdict)
        }
    }

    fn criteria() -> Criteria {
        Criteria {
            verdicts: Criteria::DEFAULT_VERDICTS.to_vec(),
            older_than: None,
            min_rss_bytes: None,
            idle_at_least: None,
            terminal_program: None,
            cwd: None,
            all_users: false,
            ignore: Default::default(),
            named: false,
            tree: false,
        }
    }

    const REAPER: Reaper = Reaper {
        protected_pids: Vec::new(),
        uid: 1000,
    };

    fn mine(pid: u32) -> Option<Identity> {
        Some(Identity {
            uid: 1000,
            comm: format!("p{pid}"),
            start: 7,
            started_epoch_ns: STARTED_NS + 4_000_000,
            kernel_thread: false,
        })
    }

    fn pids(targets: &[Target]) -> Vec<u32> {
        targets.iter().map(|t| t.process.pid).collect()
    }

    #[test]
    fn only_the_asked_verdicts_age_and_size_qualify() {
        let v = SessionsView::with_sessions(vec![
            process(10, VerdictKind::Orphaned, 100.0, 50),
            process(11, VerdictKind::Detached, 100.0, 50),
            process(12, VerdictKind::TerminalLost, 5.0, 50),
            process(13, VerdictKind::TerminalLost, 100.0, 5),
        ]);
        let (targets, _) = choose(&v, &criteria(), &REAPER, mine);
        assert_eq!(pids(&targets), [10, 12, 13], "detached is not a default");
        let narrow = Criteria {
            older_than: Some(Duration::from_secs(60)),
            min_rss_bytes: Some(10),
            ..criteria()
        };
        let (targets, spared) = choose(&v, &narrow, &REAPER, mine);
        assert_eq!(pids(&targets), [10]);
        assert!(spared.is_empty(), "not qualifying is not being spared");
        let detached = Criteria {
            verdicts: vec![VerdictKind::Detached],
            ..criteria()
        };
        assert_eq!(pids(&choose(&v, &detached, &REAPER, mine).0), [11]);
    }

    #[test]
    fn idle_time_terminal_program_and_directory_narrow_the_choice() {
        let from = |pid, program: Option<&str>, cwd: Option<&str>, idle: Option<f64>| ProcessView {
            terminal_program: program.map(Into::into),
            cwd: cwd.map(Into::into),
            idle_seconds: idle,
            ..process(pid, VerdictKind::Orphaned, 100.0, 50)
        };
        let v = SessionsView::with_sessions(vec![
            from(10, Some("vscode"), Some("/home/a/web"), Some(7200.0)),
            from(11, Some("vscode"), Some("/home/a/web/src"), Some(60.0)),
            from(12, Some("iTerm.app"), Some("/home/a/web2"), None),
            from(13, None, None, Some(9000.0)),
        ]);
        let chosen = |criteria: Criteria| pids(&choose(&v, &criteria, &REAPER, mine).0);
        let vscode = Criteria {
            terminal_program: Some("VSCode".into()),
            ..criteria()
        };
        assert_eq!(chosen(vscode), [10, 11], "the name in any case");
        let web = Criteria {
            cwd: Some("/home/a/web".into()),
            ..criteria()
        };
        assert_eq!(chosen(web), [10, 11], "web2 is not below web");
        let slash = Criteria {
            cwd: Some("/home/a/web/".into()),
            ..criteria()
        };
        assert_eq!(chosen(slash), [10, 11]);
        let idle = Criteria {
            idle_at_least: Some(Duration::from_secs(3600)),
            ..criteria()
        };
        assert_eq!(chosen(idle), [10, 13], "not known is not idle");
        let all = Criteria {
            idle_at_least: Some(Duration::from_secs(3600)),
            terminal_program: Some("vscode".into()),
            cwd: Some("/home/a".into()),
            ..criteria()
        };
        assert_eq!(chosen(all), [10]);
    }

    #[test]
    fn init_kernel_threads_itself_and_its_ancestors_are_never_chosen() {
        let v = SessionsView::with_sessions(vec![
            process(1, VerdictKind::Orphaned, 1.0, 1),
            process(2, VerdictKind::Orphaned, 1.0, 1),
            process(300, VerdictKind::Orphaned, 1.0, 1),
            process(400, VerdictKind::Orphaned, 1.0, 1),
        ]);
        let reaper = Reaper {
            protected_pids: vec![300],
            uid: 1000,
        };
        let look = |pid| {
            mine(pid).map(|i| Identity {
                kernel_thread: pid == 2,
                ..i
            })
        };
        let all = Criteria {
            all_users: true,
            ignore: Default::default(),
            ..criteria()
        };
        let (targets, spared) = choose(&v, &all, &reaper, look);
        assert_eq!(pids(&targets), [400]);
        let reasons: Vec<_> = spared.iter().map(|s| (s.pid, s.reason)).collect();
        assert_eq!(
            reasons,
            [
                (1, "init"),
                (2, "a kernel thread"),
                (300, "hupwatch itself or one of its ancestors")
            ]
        );
    }

    #[test]
    fn other_users_processes_need_all_users() {
        let v = SessionsView::with_sessions(vec![process(10, VerdictKind::Orphaned, 1.0, 1)]);
        let theirs = |pid| mine(pid).map(|i| Identity { uid: 0, ..i });
        let (targets, spared) = choose(&v, &criteria(), &REAPER, theirs);
        assert!(targets.is_empty());
        assert_eq!(
            spared[0].reason,
            "another user's (--all-users to include it)"
        );
        let all = Criteria {
            all_users: true,
            ignore: Default::default(),
            ..criteria()
        };
        assert_eq!(pids(&choose(&v, &all, &REAPER, theirs).0), [10]);
    }

    #[test]
    fn a_pid_that_now_names_another_process_or_nothing_is_spared() {
        let v = SessionsView::with_sessions(vec![
            process(10, VerdictKind::Orphaned, 1.0, 1),
            process(11, VerdictKind::Orphaned, 1.0, 1),
        ]);
        let look = |pid| match pid {
            10 => mine(pid).map(|i| Identity {
                comm: "other".into(),
                ..i
            }),
            _ => None,
        };
        let (targets, spared) = choose(&v, &criteria(), &REAPER, look);
        assert!(targets.is_empty());
        assert_eq!(spared[0].reason, "its pid now belongs to another process");
        assert_eq!(spared[1].reason, "already gone");
    }

    #[test]
    fn a_pid_reused_by_the_same_program_is_spared() {
        // The view's process exited; a new one with the same name took its pid an hour
        // later: the name alone cannot tell them apart, the start time can.
        let v = SessionsView::with_sessions(vec![
            process(10, VerdictKind::Orphaned, 1.0, 1),
            process(11, VerdictKind::Orphaned, 1.0, 1),
        ]);
        let look = |pid| match pid {
            10 => mine(pid).map(|i| Identity {
                started_epoch_ns: STARTED_NS + 3600 * 1_000_000_000,
                ..i
            }),
            _ => mine(pid),
        };
        let (targets, spared) = choose(&v, &criteria(), &REAPER, look);
        assert_eq!(
            pids(&targets),
            [11],
            "within the clocks' tolerance it is the same"
        );
        assert_eq!(spared[0].pid, 10);
        assert_eq!(spared[0].reason, "its pid now belongs to another process");
        let unknown = SessionsView::with_sessions(vec![ProcessView {
            started_ns: 0,
            ..process(12, VerdictKind::Orphaned, 1.0, 1)
        }]);
        let (targets, spared) = choose(&unknown, &criteria(), &REAPER, mine);
        assert!(targets.is_empty());
        assert_eq!(
            spared[0].reason,
            "its start time is unknown, so its pid cannot be tied to it"
        );
    }

    #[test]
    fn session_keepers_and_nohup_jobs_are_spared_unless_named() {
        let with = |pid, comm: &str, cmdline: &str| ProcessView {
            comm: comm.into(),
            cmdline: Some(cmdline.into()),
            ..process(pid, VerdictKind::Orphaned, 1.0, 1)
        };
        let v = SessionsView::with_sessions(vec![
            with(10, "tmux: server", "tmux new -d"),
            with(11, "mosh-server", "mosh-server new"),
            with(12, "emacs", "emacs --daemon"),
            with(13, "emacs", "emacs notes.txt"),
            with(14, "node", "node server.js"),
        ]);
        let look = |pid| {
            v.processes.iter().find(|p| p.pid == pid).and_then(|p| {
                mine(pid).map(|i| Identity {
                    comm: p.comm.clone(),
                    ..i
                })
            })
        };
        let (targets, spared) = choose(&v, &criteria(), &REAPER, look);
        assert_eq!(pids(&targets), [13, 14]);
        assert_eq!(
            spared.iter().map(|s| s.pid).collect::<Vec<_>>(),
            [10, 11, 12]
        );
        assert!(
            spared[0].reason.starts_with("a session keeper"),
            "{spared:?}"
        );
        let named = Criteria {
            named: true,
            ..criteria()
        };
        assert_eq!(
            pids(&choose(&v, &named, &REAPER, look).0),
            [10, 11, 12, 13, 14]
        );

        // SIG_IGN before the hangup (nohup) is spared; set after it, it is not.
        let lost_at = |pid, ignored_ns: u64| {
            let mut p = process(pid, VerdictKind::TerminalLost, 1.0, 1);
            let lost = p.verdicts[0].clone();
            p.verdicts.push(Verdict {
                kind: VerdictKind::HangupIgnored,
                time_ns: ignored_ns,
                ..lost
            });
            p
        };
        let lost_ns = ProcessView::example(1, 1, VerdictKind::TerminalLost).verdicts[0].time_ns;
        let v = SessionsView::with_sessions(vec![
            lost_at(20, lost_ns.saturating_sub(10_000_000_000)),
            lost_at(21, lost_ns + 1),
        ]);
        let (targets, spared) = choose(&v, &criteria(), &REAPER, mine);
        assert_eq!(pids(&targets), [21]);
        assert!(
            spared[0].reason.contains("SIG_IGN before the hangup"),
            "{spared:?}"
        );
        let asked = Criteria {
            verdicts: vec![VerdictKind::TerminalLost, VerdictKind::HangupIgnored],
            ..criteria()
        };
        assert_eq!(pids(&choose(&v, &asked, &REAPER, mine).0), [20, 21]);
    }
}
