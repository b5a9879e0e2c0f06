//! Conditions that a process's state holds while it lives and can give up again: stopped,
//! busy on a CPU, holding zombies. Each counts once the process is off its terminal (or
//! at once, for zombies), and its verdict resolves when the state ends.
use super::{Tracker, process::Finding};
use crate::{
    event::{Event, EventKind},
    tracker::AlertStatus,
    verdict::{Verdict, VerdictKind, reason::Reason},
};

/// The verdicts that say a process no longer answers to a terminal.
pub(super) const OFF_TERMINAL: [VerdictKind; 3] = [
    VerdictKind::Detached,
    VerdictKind::Orphaned,
    VerdictKind::TerminalLost,
];

impl Tracker {
    pub(super) fn on_stopped(&mut self, event: &Event) {
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        p.stopped.get_or_insert_with(|| event.clone());
        self.open_stopped(event.pid);
    }

    pub(super) fn on_continued(&mut self, event: &Event) {
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        if p.stopped.take().is_some() {
            p.findings.remove(&VerdictKind::Stopped);
            self.withdraw(event.pid, VerdictKind::Stopped, Reason::Continued, event);
        }
    }

    pub(super) fn on_zombies(&mut self, event: &Event) {
        let EventKind::Zombies {
            count,
            oldest_exit_ns,
        } = &event.kind
        else {
            return;
        };
        let threshold = self.config.zombies_min;
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        p.zombies = *count;
        if *count >= threshold {
            let reason = Reason::Zombies {
                count: *count,
                oldest_exit_ns: *oldest_exit_ns,
            };
            self.find(
                event.pid,
                VerdictKind::Zombies,
                Finding::after(event, 0, reason),
            );
        } else {
            p.findings.remove(&VerdictKind::Zombies);
            let reason = Reason::Reaped { count: *count };
            self.withdraw(event.pid, VerdictKind::Zombies, reason, event);
        }
    }

    /// After a sample that carried CPU time: a process busy over the whole CPU window
    /// spins once it is off its terminal; one that calmed down resolves. The same reading
    /// tells how long it has been idle.
    pub(super) fn check_spin(&mut self, event: &Event, cpu_ns: u64) {
        let (window, share) = (self.config.cpu_window_ns, self.config.cpu_spin_share);
        let read_every = self.config.cpu_read_ns;
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.sample_cpu(event.time_ns, cpu_ns, window, share);
        p.idle.read(event.time_ns, cpu_ns, read_every);
        if p.spin.is_some() {
            self.open_spin(event.pid, event);
        } else if p.verdicts.contains_key(&VerdictKind::CpuSpin) {
            self.withdraw(event.pid, VerdictKind::CpuSpin, Reason::Calmed, event);
        }
    }

    /// It has just been found off its terminal: the states it is already in count now.
    pub(super) fn went_off_terminal(&mut self, pid: u32, now_ns: u64) {
        self.open_stopped(pid);
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        if p.spin.is_some()
            && let Some(last) = p.timeline.back().cloned()
        {
            let evidence = Event {
                time_ns: now_ns.max(last.time_ns),
                ..last
            };
            self.open_spin(pid, &evidence);
        }
    }

    fn open_stopped(&mut self, pid: u32) {
        let grace = self.config.hup_grace_ns;
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        let Some(stop) = p.stopped.clone() else {
            return;
        };
        if !(p.verdicts.contains_key(&VerdictKind::Orphaned)
            || p.verdicts.contains_key(&VerdictKind::TerminalLost))
        {
            return;
        }
        let reason = Reason::Stopped {
            since_ns: stop.time_ns,
            grace_ns: grace,
        };
        self.find(
            pid,
            VerdictKind::Stopped,
            Finding::after(&stop, grace, reason),
        );
        self.recheck_soon(pid);
    }

    fn open_spin(&mut self, pid: u32, evidence: &Event) {
        let window = self.config.cpu_window_ns;
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        let Some(cpu_seconds) = p.spin else {
            return;
        };
        if !OFF_TERMINAL.iter().any(|k| p.verdicts.contains_key(k)) {
            return;
        }
        let reason = Reason::CpuSpin {
            cpu_seconds,
            window_ns: window,
        };
        self.find(
            pid,
            VerdictKind::CpuSpin,
            Finding::after(evidence, 0, reason),
        );
        self.recheck_soon(pid);
    }

    /// Resolves a live process's verdict of `kind`, if it has one: its condition ended.
    fn withdraw(&mut self, pid: u32, kind: VerdictKind, reason: Reason, evidence: &Event) {
        let Some(p) = self.processes.get_mut(&pid) else {
            return;
        };
        let Some(verdict) = p.verdicts.remove(&kind) else {
            return;
        };
        let resolved = Verdict {
            time_ns: evidence.time_ns,
            reason,
            evidence: vec![evidence.clone()],
            ..verdict
        };
        let alert = super::alert_for(p, AlertStatus::Resolved, resolved);
        self.alerts.push(alert);
    }
}
