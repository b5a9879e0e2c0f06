//! Re-sync after lost events. When the kernel could not queue some records, the tracker may
//! hold processes whose exit it never saw, and believe things (a parent, a terminal, a
//! SIGHUP disposition) that stopped being true while it was blind. /proc shows what is true
//! now; it replaces those beliefs, and nothing raised on a belief /proc contradicts stays.
use std::collections::HashMap;

use super::{
    AlertStatus, Ending, Tracker, alert_for, apply::Seen, process, process::Memory, rules,
};
use crate::verdict::reason::{Contradiction, Reason};
use crate::{
    event::{Disposition, Event, EventKind, Existing},
    tracker::{Alert, Terminal},
    verdict::{Verdict, VerdictKind},
    watch::Watch,
};

/// What one re-sync changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resync {
    /// Tracked processes no longer in /proc: their exit was lost.
    pub gone: usize,
    /// Processes in /proc that are watched but were not tracked (their fork or exec was lost).
    pub added: usize,
    /// Raised verdicts that /proc now contradicts, resolved.
    pub withdrawn: usize,
}

/// Verdicts about a state that can end while the process lives. The others record that
/// something happened (a hangup survived, a parent lost, a terminal lost, growth), which
/// stays true for the rest of that life.
const ABOUT_THE_PRESENT: [VerdictKind; 2] = [VerdictKind::Detached, VerdictKind::HangupIgnored];

impl Tracker {
    /// Brings the tracker in line with `scan`: an `existing` event for every live process,
    /// from /proc, taken after events were lost. Tracked processes that are gone end (their
    /// verdicts resolved); processes that `watch` accepts and the tracker lacks come in,
    /// marked inferred; for the rest, what /proc shows replaces what the tracker believed,
    /// keeping their timelines and the verdicts /proc does not contradict.
    pub fn resync(&mut self, scan: &[Event], watch: &Watch) -> (Resync, Vec<Alert>) {
        let mut done = Resync::default();
        let alive: HashMap<u32, &Event> = scan
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Existing(Existing { .. })))
            .map(|e| (e.pid, e))
            .collect();
        if let Some(latest) = scan.iter().map(|e| e.time_ns).max() {
            self.now_ns = self.now_ns.max(latest);
        }
        let gone: Vec<u32> = self
            .processes
            .values()
            .filter(|p| alive.get(&p.pid).is_none_or(|e| !p.same_life(started(e))))
            .map(|p| p.pid)
            .collect();
        let mut recheck = Vec::new();
        for &pid in &gone {
            recheck.extend(self.children_of(pid));
            self.end(pid, Ending::Vanished);
        }
        done.gone = gone.len();
        // In scan order, so parents come before their children.
        for event in scan.iter().filter(|e| alive.contains_key(&e.pid)) {
            if self.processes.contains_key(&event.pid) {
                done.withdrawn += self.reconcile(event);
                recheck.push(event.pid);
            } else if self.watches(watch, event) {
                self.on_existing(event);
                done.added += usize::from(self.processes.contains_key(&event.pid));
            }
        }
        for pid in recheck {
            self.recheck_soon(pid);
        }
        (done, std::mem::take(&mut self.alerts))
    }

    fn watches(&self, watch: &Watch, event: &Event) -> bool {
        match (watch, &event.kind) {
            (Watch::Everything, _) => true,
            (Watch::Pids(pids), _) => pids.contains(&event.pid),
            (Watch::Descendants, EventKind::Existing(Existing { ppid, .. })) => {
                self.processes.contains_key(ppid)
            }
            (Watch::Descendants, _) => false,
        }
    }

    /// Takes what /proc shows of a tracked process; returns how many verdicts it withdrew.
    fn reconcile(&mut self, event: &Event) -> usize {
        let EventKind::Existing(e) = &event.kind else {
            return 0;
        };
        let (pid, window) = (event.pid, self.config.rss_window_ns);
        let Some(p) = self.processes.get_mut(&pid) else {
            return 0;
        };
        p.record(event);
        if p.started_ns == process::UNKNOWN_START {
            p.started_ns = e.started_ns;
        }
        // A lost exec leaves the old name and command line.
        p.comm = event.comm.clone();
        if !e.cmdline.is_empty() {
            p.cmdline = Some(e.cmdline.clone());
        }
        // Read once: a lost exec's image is the only reason to take them again.
        if p.terminal_program.is_none() {
            p.terminal_program = e.terminal_program.clone();
        }
        if p.cwd.is_none() {
            p.cwd = e.cwd.clone();
        }
        p.sample_memory(event.time_ns, Memory::of_existing(e), window);
        let old_ppid = std::mem::replace(&mut p.ppid, e.ppid);
        let new_parent = old_ppid != e.ppid;
        p.sid = Some(e.sid);
        match &e.tty {
            Some(tty) if p.tty.as_ref() != Some(tty) => p.attach(Some(e.sid), tty.clone()),
            Some(_) => {}
            None => p.tty = None,
        }
        let ignores_now = e.hangup == Disposition::Ignore && p.hangup != Disposition::Ignore;
        if p.hangup != e.hangup {
            p.hangup = e.hangup;
            p.hangup_evidence = (e.hangup != Disposition::Default).then(|| event.clone());
        }
        // One it was already known to come from counts too.
        let from_terminal = e.from_terminal || p.lineage.is_some();
        if from_terminal && p.lineage.is_none() {
            p.lineage = Some(Terminal::of_existing(e));
        }
        let detached = e.tty.is_none() && from_terminal && e.sid == pid && p.detach.is_none();
        if detached {
            p.detach = Some(event.clone());
        }
        self.by_parent.moved(pid, old_ppid, e.ppid);
        let seen = Seen {
            ignores: ignores_now,
            reparented_to: (new_parent && e.reparented).then_some(e.ppid),
            detached,
            lost_session: Seen::lost_session(
                pid,
                e.sid,
                e.tty.is_none() && from_terminal,
                e.session_leader_alive,
            ),
        };
        self.open_inferred(pid, event, seen);
        self.withdraw_contradicted(pid, event)
    }

    /// Resolves the verdicts about the present that no longer hold for `pid`.
    fn withdraw_contradicted(&mut self, pid: u32, evidence: &Event) -> usize {
        let contradicted: Vec<VerdictKind> = ABOUT_THE_PRESENT
            .into_iter()
            .filter(|&kind| {
                self.processes.get(&pid).is_some_and(|p| {
                    p.verdicts.contains_key(&kind) && !rules::condition(self, p, kind)
                })
            })
            .collect();
        let Some(p) = self.processes.get_mut(&pid) else {
            return 0;
        };
        for kind in &contradicted {
            let Some(verdict) = p.verdicts.remove(kind) else {
                continue;
            };
            let now = match kind {
                VerdictKind::Detached => Contradiction::HasTerminalAgain,
                _ => Contradiction::NoLongerIgnoresHangup,
            };
            let resolved = Verdict {
                time_ns: evidence.time_ns,
                reason: Reason::Contradicted(now),
                evidence: vec![evidence.clone()],
                ..verdict
            };
            let alert = alert_for(p, AlertStatus::Resolved, resolved);
            self.alerts.push(alert);
        }
        contradicted.len()
    }
}

fn started(existing: &Event) -> u64 {
    match existing.kind {
        EventKind::Existing(Existing { started_ns, .. }) => started_ns,
        _ => existing.time_ns,
    }
}
