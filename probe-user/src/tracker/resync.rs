//! Re-sync after lost events. When the kernel could not queue some records, the tracker may
//! hold processes whose exit it never saw, and believe things (a parent, a terminal, a
//! SIGHUP disposition) that stopped being true while it was blind. /proc shows what is true
//! now; it replaces those beliefs, and nothing raised on a belief /proc contradicts stays.
use std::collections::{HashMap, HashSet};

use super::{
    AlertStatus, Ending, Tracker, alert_for, apply::Seen, process, process::Memory, rules,
};
use crate::verdict::reason::{Contradiction, Reason};
use crate::{
    event::{Disposition, Event, EventKind},
    tracker::{Alert, Terminal},
    verdict::{Verdict, VerdictKind},
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

/// Which processes in /proc the tracker should know, besides those it already does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    Everything,
    /// The kernel's tracked set, read after the loss.
    Pids(HashSet<u32>),
    /// Children of tracked processes, and theirs (when the tracked set lives where it
    /// cannot be read, in a DTrace script).
    Descendants,
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
            .filter(|e| matches!(e.kind, EventKind::Existing { .. }))
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
            (Watch::Descendants, EventKind::Existing { ppid, .. }) => {
                self.processes.contains_key(ppid)
            }
            (Watch::Descendants, _) => false,
        }
    }

    /// Takes what /proc shows of a tracked process; returns how many verdicts it withdrew.
    fn reconcile(&mut self, event: &Event) -> usize {
        let EventKind::Existing {
            ppid,
            sid,
            tty,
            started_ns,
            cmdline,
            hangup,
            rss_bytes,
            swap_bytes,
            cpu_ns,
            from_terminal,
            reparented,
            session_leader_alive,
            terminal_program,
            cwd,
        } = &event.kind
        else {
            return 0;
        };
        let (pid, window) = (event.pid, self.config.rss_window_ns);
        let Some(p) = self.processes.get_mut(&pid) else {
            return 0;
        };
        p.record(event);
        if p.started_ns == process::UNKNOWN_START {
            p.started_ns = *started_ns;
        }
        // A lost exec leaves the old name and command line.
        p.comm = event.comm.clone();
        if !cmdline.is_empty() {
            p.cmdline = Some(cmdline.clone());
        }
        // Read once: a lost exec's image is the only reason to take them again.
        if p.terminal_program.is_none() {
            p.terminal_program = terminal_program.clone();
        }
        if p.cwd.is_none() {
            p.cwd = cwd.clone();
        }
        let memory = Memory {
            rss_bytes: *rss_bytes,
            peak_rss_bytes: None,
            swap_bytes: *swap_bytes,
            footprint_bytes: None,
            cpu_ns: *cpu_ns,
        };
        p.sample_memory(event.time_ns, memory, window);
        let old_ppid = std::mem::replace(&mut p.ppid, *ppid);
        let new_parent = old_ppid != *ppid;
        p.sid = Some(*sid);
        match tty {
            Some(tty) if p.tty.as_ref() != Some(tty) => p.attach(Some(*sid), tty.clone()),
            Some(_) => {}
            None => p.tty = None,
        }
        let ignores_now = *hangup == Disposition::Ignore && p.hangup != Disposition::Ignore;
        if p.hangup != *hangup {
            p.hangup = *hangup;
            p.hangup_evidence = (*hangup != Disposition::Default).then(|| event.clone());
        }
        let from_terminal = *from_terminal || p.lineage.is_some();
        if from_terminal && p.lineage.is_none() {
            p.lineage = Some(Terminal {
                sid: *sid,
                tty: tty.clone(),
            });
        }
        let detached = tty.is_none() && from_terminal && *sid == pid && p.detach.is_none();
        if detached {
            p.detach = Some(event.clone());
        }
        self.by_parent.moved(pid, old_ppid, *ppid);
        let seen = Seen {
            ignores: ignores_now,
            reparented_to: (new_parent && *reparented).then_some(*ppid),
            detached,
            lost_session: Seen::lost_session(
                pid,
                *sid,
                tty.is_none() && from_terminal,
                *session_leader_alive,
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
        EventKind::Existing { started_ns, .. } => started_ns,
        _ => existing.time_ns,
    }
}
