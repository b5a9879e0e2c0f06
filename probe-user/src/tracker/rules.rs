//! When a finding becomes a verdict: the condition must still hold when it falls due, the
//! process must be a session (when only those count), and conditions a whole tree inherits
//! (a detach, SIG_IGN, a lost terminal) are given to the top of the tree only, so a daemon
//! with forty workers raises one alert, not forty-one.
use super::{Process, Tracker};
use crate::{event::Disposition, event::EventKind, event::SignalResult, verdict::VerdictKind};

pub(super) fn still_holds(t: &Tracker, pid: u32, kind: VerdictKind) -> bool {
    t.processes.get(&pid).is_some_and(|p| {
        !p.ignored && is_session(t, p) && condition(t, p, kind) && is_top(t, p, kind)
    })
}

/// The condition holds but the parent carries it: the child's turn comes if the parent
/// goes first.
pub(super) fn may_hold_later(t: &Tracker, pid: u32, kind: VerdictKind) -> bool {
    t.processes.get(&pid).is_some_and(|p| {
        !p.ignored && is_session(t, p) && condition(t, p, kind) && !is_top(t, p, kind)
    })
}

/// Whether the process can get verdicts at all.
pub fn is_session(t: &Tracker, p: &Process) -> bool {
    !t.config.require_terminal || p.lineage.is_some()
}

pub(super) fn condition(t: &Tracker, p: &Process, kind: VerdictKind) -> bool {
    match kind {
        VerdictKind::Detached => p.detach.is_some() && p.tty.is_none(),
        VerdictKind::HangupIgnored => p.hangup == Disposition::Ignore || saw_ignored_hangup(p),
        VerdictKind::HangupSurvived | VerdictKind::TerminalLost | VerdictKind::Orphaned => true,
        VerdictKind::RssGrowth => p
            .growth()
            .is_some_and(|g| g.sustained(t.config.rss_growth_bytes, t.config.rss_window_ns)),
        VerdictKind::CpuSpin => p.spin.is_some() && off_terminal(p, &super::states::OFF_TERMINAL),
        VerdictKind::Zombies => p.zombies >= t.config.zombies_min,
        VerdictKind::Stopped => {
            p.stopped.is_some()
                && off_terminal(p, &[VerdictKind::Orphaned, VerdictKind::TerminalLost])
        }
    }
}

fn off_terminal(p: &Process, kinds: &[VerdictKind]) -> bool {
    kinds.iter().any(|k| p.verdicts.contains_key(k))
}

fn is_top(t: &Tracker, p: &Process, kind: VerdictKind) -> bool {
    let Some(parent) = t.processes.get(&p.ppid).filter(|q| q.pid != p.pid) else {
        return true;
    };
    match kind {
        VerdictKind::Detached => parent.detach.is_none() || parent.detach != p.detach,
        VerdictKind::HangupIgnored => parent.hangup != Disposition::Ignore,
        // The parent carries it only when both lost the same terminal: a child that set up
        // a session on a terminal of its own has its own to lose.
        VerdictKind::TerminalLost => {
            let parent_lost =
                parent.findings.contains_key(&kind) || parent.verdicts.contains_key(&kind);
            !parent_lost || lineage_sid(parent) != lineage_sid(p)
        }
        VerdictKind::HangupSurvived
        | VerdictKind::Orphaned
        | VerdictKind::RssGrowth
        | VerdictKind::CpuSpin
        | VerdictKind::Zombies
        | VerdictKind::Stopped => true,
    }
}

fn lineage_sid(p: &Process) -> Option<u32> {
    p.lineage.as_ref().map(|l| l.sid)
}

fn saw_ignored_hangup(p: &Process) -> bool {
    p.findings
        .get(&VerdictKind::HangupIgnored)
        .is_some_and(|f| {
            f.evidence.iter().any(|e| {
                matches!(
                    e.kind,
                    EventKind::Signal {
                        result: SignalResult::Ignored,
                        ..
                    }
                )
            })
        })
}
