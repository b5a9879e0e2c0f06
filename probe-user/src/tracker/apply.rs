//! How each kind of event changes the tracker's state and which findings it opens.
use super::{Ending, HangupExit, SETTLE_NS, Tracker, process, process::Memory, trees};
use crate::{
    event::{Disposition, Event, EventKind, Origin, SignalResult},
    signals::SIGHUP,
    tracker::{Finding, Process, Terminal},
    verdict::{
        VerdictKind,
        reason::{Detach, Hangup, Ignoring, Reason},
    },
};

/// What a /proc snapshot of one process shows that can become a verdict.
pub(super) struct Seen {
    /// SIGHUP is SIG_IGN.
    pub ignores: bool,
    /// Its parent is gone and it now has this one.
    pub reparented_to: Option<u32>,
    /// It leads a session without a terminal, yet came from one.
    pub detached: bool,
    /// The leader of this session, which it came from, is gone and it has no terminal.
    pub lost_session: Option<u32>,
}

impl Seen {
    /// The session a process without a terminal, from one, outlived: its leader is gone.
    pub fn lost_session(
        pid: u32,
        sid: u32,
        terminal_gone: bool,
        leader_alive: bool,
    ) -> Option<u32> {
        // Session 0 is the kernel's: init and what it starts without setsid live in it. It
        // never had a leader, so it has none to lose.
        (terminal_gone && sid != 0 && sid != pid && !leader_alive).then_some(sid)
    }
}

/// A second hangup of the same session within this time is the same hangup.
const SAME_HANGUP_NS: u64 = 60_000_000_000;

impl Tracker {
    pub(super) fn on_existing(&mut self, event: &Event) {
        let EventKind::Existing(e) = &event.kind else {
            return;
        };
        let pid = event.pid;
        let mut p = Process::new(pid, e.started_ns, event.comm.clone());
        p.terminal_program = e.terminal_program.clone();
        p.cwd = e.cwd.clone();
        p.inferred = true;
        p.ppid = e.ppid;
        p.sid = Some(e.sid);
        p.tty = e.tty.clone();
        p.cmdline = Some(e.cmdline.clone()).filter(|c| !c.is_empty());
        p.ignored = self
            .config
            .ignore
            .matches(&event.comm, &e.cmdline)
            .is_some();
        p.hangup = e.hangup;
        if e.hangup != Disposition::Default {
            p.hangup_evidence = Some(event.clone());
        }
        if e.tty.is_some() || e.from_terminal {
            p.lineage = Some(Terminal::of_existing(e));
        }
        let detached = e.off_its_terminal() && e.sid == pid;
        if detached {
            p.detach = Some(event.clone());
        }
        // Snapshots list parents before their children, so the parent's group is known.
        p.group = self
            .config
            .groups
            .own_group(pid, &event.comm, &e.cmdline)
            .or_else(|| self.processes.get(&e.ppid).and_then(|q| q.group));
        p.tree = trees::tree_of_found(
            &p,
            self.processes.get(&e.ppid),
            e.session_marker.as_deref(),
            &mut self.markers,
        );
        p.sample_memory(
            event.time_ns,
            Memory::of_existing(e),
            self.config.rss_window_ns,
        );
        p.record(event);
        if !self.insert(p) {
            return;
        }
        if let Some(cpu_ns) = e.cpu_ns {
            // The first CPU reading: a spin is measured from here.
            self.check_spin(event, cpu_ns);
        }
        let seen = Seen {
            ignores: e.hangup == Disposition::Ignore,
            reparented_to: e.reparented.then_some(e.ppid),
            detached,
            lost_session: Seen::lost_session(
                pid,
                e.sid,
                e.off_its_terminal(),
                e.session_leader_alive,
            ),
        };
        self.open_inferred(pid, event, seen);
    }

    /// Opens the findings a /proc snapshot (`event`) shows, marked inferred.
    pub(super) fn open_inferred(&mut self, pid: u32, event: &Event, seen: Seen) {
        let inferred = |reason: Reason| Finding {
            inferred: true,
            ..Finding::after(event, 0, reason)
        };
        if seen.ignores {
            self.find(
                pid,
                VerdictKind::HangupIgnored,
                inferred(Reason::IgnoredInStatus),
            );
        }
        if let Some(ppid) = seen.reparented_to {
            let reason = Reason::ReparentedTo { ppid };
            self.find(pid, VerdictKind::Orphaned, inferred(reason));
        }
        if seen.detached {
            let reason = Reason::LeadsSessionFromTerminal;
            self.find(pid, VerdictKind::Detached, inferred(reason));
        }
        if let Some(sid) = seen.lost_session {
            let reason = Reason::LeaderGone { sid };
            self.find(pid, VerdictKind::TerminalLost, inferred(reason));
        }
    }

    pub(super) fn on_fork(&mut self, event: &Event, ppid: u32) {
        let pid = event.pid;
        let mut child = match self.processes.get(&ppid) {
            Some(parent) => Process::forked_from(parent, pid, event.time_ns, event.comm.clone()),
            None => {
                let mut p = Process::new(pid, event.time_ns, event.comm.clone());
                p.ppid = ppid;
                p
            }
        };
        child.tree = trees::tree_of(&child, self.processes.get(&ppid));
        child.record(event);
        let detach = child.detach.clone();
        let ignores = child.hangup == Disposition::Ignore;
        if !self.insert(child) {
            return;
        }
        // Inherited conditions: they become the child's verdicts only once it is the top of
        // its tree (its parent gone), which the rules check.
        if let Some(detach) = detach {
            self.open_detached(pid, &detach);
        }
        if ignores {
            self.open_hangup_ignored(pid, event.time_ns, Ignoring::Inherited);
        }
    }

    pub(super) fn on_exec(&mut self, event: &Event) {
        let EventKind::Exec {
            ppid,
            filename,
            sid,
            tty,
            parent_tty,
            forked_by,
            started_ns,
            cmdline,
            hangup,
            terminal_program,
            cwd,
            from_terminal,
        } = &event.kind
        else {
            return;
        };
        let pid = event.pid;
        let started = started_ns.unwrap_or(event.time_ns);
        let known = self
            .processes
            .get(&pid)
            .is_some_and(|p| started_ns.is_none() || p.same_life(started));
        if !known {
            let fresh = match self.processes.get(ppid) {
                Some(parent) => Process::forked_from(parent, pid, started, event.comm.clone()),
                None => Process::new(pid, started, event.comm.clone()),
            };
            if !self.insert(fresh) {
                return;
            }
        }
        let parent_sid = self.processes.get(ppid).and_then(|p| p.sid);
        let Some(p) = self.processes.get_mut(&pid) else {
            return;
        };
        p.record(event);
        let learned_start = p.started_ns == process::UNKNOWN_START;
        if learned_start {
            p.started_ns = started;
        }
        let old_ppid = std::mem::replace(&mut p.ppid, *ppid);
        p.comm = event.comm.clone();
        p.cmdline = cmdline.clone().or_else(|| Some(filename.clone()));
        // A new program: ignored or not by its own name (a tmux server's shells are not).
        p.ignored = self
            .config
            .ignore
            .matches(&p.comm, p.cmdline.as_deref().unwrap_or_default())
            .is_some();
        let own_group =
            self.config
                .groups
                .own_group(pid, &p.comm, p.cmdline.as_deref().unwrap_or_default());
        p.group = own_group.or(p.group);
        // exec resets handlers to the default; SIG_IGN survives it.
        if p.hangup == Disposition::Handler {
            p.hangup = Disposition::Default;
            p.hangup_evidence = None;
        }
        let newly_ignoring =
            *hangup == Some(Disposition::Ignore) && p.hangup != Disposition::Ignore;
        if let Some(hangup) = hangup {
            p.hangup = *hangup;
        }
        if newly_ignoring {
            p.hangup_evidence = Some(event.clone());
        }
        if let Some(sid) = sid {
            p.sid = Some(*sid);
        }
        match tty {
            Some(tty) => p.attach(*sid, tty.clone()),
            None if sid.is_some() => p.tty = None,
            None => {}
        }
        // Unknown (unreadable, or gone before it was read) keeps what the fork inherited.
        if terminal_program.is_some() {
            p.terminal_program = terminal_program.clone();
        }
        if cwd.is_some() {
            p.cwd = cwd.clone();
        }
        // Started from a terminal by its environment's word, as a process already running
        // at start is: a session, whichever parent it has.
        if *from_terminal && p.lineage.is_none() {
            p.lineage = Some(Terminal {
                sid: p.sid.unwrap_or(0),
                tty: p.tty.clone(),
            });
        }
        let started_detached =
            *sid == Some(pid) && tty.is_none() && parent_tty.is_some() && p.detach.is_none();
        if started_detached {
            let from = Terminal {
                sid: parent_sid.unwrap_or(0),
                tty: parent_tty.clone(),
            };
            p.detach_from(from, event);
            self.open_detached(pid, event);
        }
        self.by_parent.moved(pid, old_ppid, *ppid);
        let parent = self.processes.get(ppid).filter(|q| q.pid != pid);
        let tree = self
            .processes
            .get(&pid)
            .and_then(|p| trees::tree_of(p, parent));
        if let Some(p) = self.processes.get_mut(&pid) {
            p.tree = tree;
        }
        if newly_ignoring {
            self.open_hangup_ignored(pid, event.time_ns, Ignoring::StartedIgnoring);
        }
        if let Some(reason) = adopted_before_exec(pid, *ppid, *forked_by, *sid).filter(|_| !known) {
            self.find(
                pid,
                VerdictKind::Orphaned,
                Finding::after(event, SETTLE_NS, reason),
            );
        }
        if learned_start {
            // Its deadlines were filed under the unknown start.
            self.recheck_soon(pid);
        }
    }

    pub(super) fn on_exit(&mut self, event: &Event) {
        let EventKind::Exit {
            exit_code,
            exit_signal,
            ..
        } = &event.kind
        else {
            return;
        };
        let pid = event.pid;
        let Some(p) = self.processes.get_mut(&pid) else {
            return;
        };
        p.record(event);
        let hangup = hangup_time(p);
        let leader_tty = (p.sid == Some(pid)).then(|| p.tty.clone()).flatten();
        let comm = p.comm.clone();
        if let Some(hangup_ns) = hangup {
            let record = HangupExit {
                pid,
                comm: comm.clone(),
                hangup_ns,
                exit_ns: event.time_ns,
                latency_seconds: event.time_ns.saturating_sub(hangup_ns) as f64 / 1e9,
                exit_code: *exit_code,
                exit_signal: *exit_signal,
            };
            self.remember_hangup_exit(record);
        }
        if let Some(tty) = leader_tty {
            let how = Hangup::LeaderExited {
                comm: comm.clone(),
                pid,
                tty,
            };
            self.hang_up_session(pid, event, how);
        }
        for child in self.children_of(pid) {
            let finding = Finding::after(
                event,
                SETTLE_NS,
                Reason::ParentExited {
                    comm: comm.clone(),
                    pid,
                },
            );
            self.find(child, VerdictKind::Orphaned, finding);
            self.recheck_soon(child);
        }
        self.end(pid, Ending::Exit(event));
    }

    pub(super) fn on_reparented(&mut self, event: &Event, ppid: u32) {
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        let old = std::mem::replace(&mut p.ppid, ppid);
        self.by_parent.moved(event.pid, old, ppid);
        let finding = Finding::after(
            event,
            0,
            Reason::ParentReplaced {
                old_ppid: old,
                ppid,
            },
        );
        self.find(event.pid, VerdictKind::Orphaned, finding);
    }

    pub(super) fn on_detach(&mut self, event: &Event) {
        if !self.processes.contains_key(&event.pid) {
            // `setsid cmd`: the kernel source passes on a setsid of a process it did not
            // track right before the exec that makes it tracked; its start comes with it.
            let unknown = Process::new(event.pid, process::UNKNOWN_START, event.comm.clone());
            if !self.insert(unknown) {
                return;
            }
        }
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        let left = match &event.kind {
            EventKind::Setsid {
                ok: true,
                sid,
                old_sid,
                old_tty,
                ..
            } => {
                p.sid = *sid;
                p.tty = None;
                old_tty.clone().map(|tty| Terminal {
                    sid: *old_sid,
                    tty: Some(tty),
                })
            }
            EventKind::DetachTty { sid, tty, .. } => tty.clone().map(|tty| Terminal {
                sid: *sid,
                tty: Some(tty),
            }),
            _ => None,
        };
        if let Some(from) = left {
            p.detach_from(from, event);
            self.open_detached(event.pid, event);
        }
    }

    pub(super) fn on_signal(&mut self, event: &Event) {
        let EventKind::Signal {
            signal,
            origin,
            result,
            sender_pid,
            sender_comm,
            ..
        } = &event.kind
        else {
            return;
        };
        // SIGCONT continues a stopped process when it is sent, whatever the kernel then
        // reports (it counts a SIGCONT without a handler as ignored).
        if let EventKind::Signal { signal_name, .. } = &event.kind
            && signal_name == "SIGCONT"
        {
            return self.on_continued(event);
        }
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        if *signal != SIGHUP {
            return;
        }
        p.first_hangup.get_or_insert_with(|| event.clone());
        let sid = p.sid;
        if *result == SignalResult::Ignored {
            let finding = Finding::after(
                event,
                SETTLE_NS,
                Reason::IgnoredSignal {
                    sender_comm: sender_comm.clone(),
                    sender_pid: *sender_pid,
                },
            );
            self.find(event.pid, VerdictKind::HangupIgnored, finding);
        }
        // The kernel sends SIGHUP when a terminal hangs up; a shell that gets it passes it
        // on to its jobs, so SIGHUP from the session leader means the same.
        let from_leader = sid == Some(*sender_pid) && *sender_pid != event.pid;
        if let Some(sid) = sid
            && (*origin == Origin::Kernel || from_leader)
        {
            let how = match origin {
                Origin::Kernel => Hangup::Kernel,
                Origin::User => Hangup::LeaderPassedOn {
                    comm: sender_comm.clone(),
                    pid: *sender_pid,
                },
            };
            self.hang_up_session(sid, event, how);
        }
    }

    pub(super) fn on_deliver(&mut self, event: &Event) {
        let EventKind::SignalDeliver {
            signal,
            disposition,
            ..
        } = &event.kind
        else {
            return;
        };
        if let EventKind::SignalDeliver { signal_name, .. } = &event.kind
            && crate::signals::is_stop_name(signal_name)
            && *disposition == Disposition::Default
        {
            // Its default action stops the process.
            return self.on_stopped(event);
        }
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        if *signal != SIGHUP || *disposition != Disposition::Handler {
            return;
        }
        let grace = self.config.hup_grace_ns;
        let finding = Finding::after(event, grace, Reason::HandlerSurvived { grace_ns: grace });
        self.find(event.pid, VerdictKind::HangupSurvived, finding);
    }

    pub(super) fn on_sigaction(&mut self, event: &Event) {
        let EventKind::Sigaction {
            signal,
            disposition,
            ..
        } = &event.kind
        else {
            return;
        };
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        p.record(event);
        if *signal != SIGHUP {
            return;
        }
        p.hangup = *disposition;
        p.hangup_evidence = Some(event.clone());
        if *disposition == Disposition::Ignore {
            self.open_hangup_ignored(event.pid, event.time_ns, Ignoring::SetIgnore);
        }
    }

    pub(super) fn on_rss(&mut self, event: &Event) {
        let EventKind::Rss {
            rss_bytes,
            peak_rss_bytes,
            swap_bytes,
            cpu_ns,
            footprint_bytes,
        } = &event.kind
        else {
            return;
        };
        let window = self.config.rss_window_ns;
        let threshold = self.config.rss_growth_bytes;
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        let memory = Memory {
            rss_bytes: *rss_bytes,
            peak_rss_bytes: Some(*peak_rss_bytes),
            swap_bytes: *swap_bytes,
            cpu_ns: *cpu_ns,
            footprint_bytes: *footprint_bytes,
        };
        p.sample_memory(event.time_ns, memory, window);
        if let Some(cpu_ns) = cpu_ns {
            self.check_spin(event, *cpu_ns);
        }
        let Some(p) = self.processes.get_mut(&event.pid) else {
            return;
        };
        if p.verdicts.contains_key(&VerdictKind::RssGrowth) {
            return;
        }
        let Some(growth) = p.growth().filter(|g| g.sustained(threshold, window)) else {
            return;
        };
        let reason = Reason::Growth {
            footprint: p.footprint_bytes.is_some(),
            from_bytes: growth.from_bytes,
            to_bytes: growth.to_bytes,
            span_ns: (growth.span_seconds * 1e9) as u64,
            slope_bytes_per_second: growth.slope_bytes_per_second,
            idle: growth.idle == Some(true),
        };
        let finding = Finding::after(event, 0, reason);
        self.find(event.pid, VerdictKind::RssGrowth, finding);
    }

    fn open_detached(&mut self, pid: u32, detach: &Event) {
        let how = match &detach.kind {
            _ if detach.pid != pid => Detach::Ancestor {
                comm: detach.comm.clone(),
                pid: detach.pid,
            },
            EventKind::Setsid {
                old_sid, old_tty, ..
            } => Detach::Setsid {
                old_sid: *old_sid,
                old_tty: old_tty.clone(),
            },
            EventKind::DetachTty { tty, .. } => Detach::GaveUp { tty: tty.clone() },
            EventKind::Exec { parent_tty, .. } => Detach::StartedDetached {
                parent_tty: parent_tty.clone(),
            },
            _ => Detach::Unknown,
        };
        let finding = Finding::after(detach, SETTLE_NS, Reason::Detached(how));
        self.find(pid, VerdictKind::Detached, finding);
    }

    fn open_hangup_ignored(&mut self, pid: u32, time_ns: u64, how: Ignoring) {
        let Some(p) = self.processes.get(&pid) else {
            return;
        };
        let finding = Finding {
            due_ns: time_ns.saturating_add(SETTLE_NS),
            reason: Reason::IgnoresHangup(how),
            evidence: p.hangup_evidence.iter().cloned().collect(),
            inferred: false,
        };
        self.find(pid, VerdictKind::HangupIgnored, finding);
    }

    /// The terminal of session `sid` hung up or went away: everything that came from that
    /// session and still lives after the grace period outlived it.
    fn hang_up_session(&mut self, sid: u32, evidence: &Event, how: Hangup) {
        if sid == 0 {
            return;
        }
        let now = evidence.time_ns;
        if self
            .hung_up
            .iter()
            .any(|(s, t)| *s == sid && now.saturating_sub(*t) < SAME_HANGUP_NS)
        {
            return;
        }
        if self.hung_up.len() == 256 {
            self.hung_up.pop_front();
        }
        self.hung_up.push_back((sid, now));
        let grace = self.config.hup_grace_ns;
        let affected: Vec<u32> = self
            .processes
            .values_mut()
            .filter(|p| p.sid == Some(sid) || p.lineage.as_ref().is_some_and(|l| l.sid == sid))
            .map(|p| {
                if p.sid == Some(sid) {
                    p.tty = None;
                }
                p.pid
            })
            .collect();
        for pid in affected {
            let reason = Reason::HungUp {
                how: how.clone(),
                sid,
                grace_ns: grace,
            };
            let finding = Finding::after(evidence, grace, reason);
            self.find(pid, VerdictKind::TerminalLost, finding);
        }
    }
}

/// When the process was first told to hang up: a SIGHUP, or its terminal going away.
fn hangup_time(p: &Process) -> Option<u64> {
    let signal = p.first_hangup.as_ref().map(|e| e.time_ns);
    let terminal = p
        .findings
        .get(&VerdictKind::TerminalLost)
        .and_then(|f| f.evidence.first())
        .map(|e| e.time_ns);
    match (signal, terminal) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// First seen at its exec, already someone else's child: its parent died before the exec
/// (`sh -c 'agent &'` when only agent is watched, or a wrapper that execs it later). When
/// the source saw the fork, the forker says so. Otherwise only init adopting a process of
/// a session init did not start tells: init's own children stay in its session (0 or 1)
/// or lead their own; a session that is 0 from where hupwatch runs tells nothing.
fn adopted_before_exec(
    pid: u32,
    ppid: u32,
    forked_by: Option<u32>,
    sid: Option<u32>,
) -> Option<Reason> {
    match forked_by {
        Some(forked_by) => {
            (forked_by != ppid).then_some(Reason::ForkerGoneBeforeExec { forked_by, ppid })
        }
        None => sid
            .filter(|&s| s > 1 && s != pid && ppid == 1)
            .map(|session| Reason::AdoptedBeforeStart { session }),
    }
}
