//! The tracker: pure state, no I/O. Fed one [`Event`] at a time from any source, it keeps
//! what is known about each live process and turns conditions into verdicts once they have
//! held long enough. Unit-tested from scripts of events (tests.rs).
mod apply;
mod existing;
mod forecast;
pub mod groups;
mod idle;
pub mod killer;
mod latency;
mod measure;
mod parents;
mod process;
mod resync;
mod rules;
mod states;
#[cfg(test)]
mod tests;
mod tree_ref;
pub mod trees;
mod view;

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
};

pub use forecast::MemoryForecast;
pub use groups::{GroupBy, SessionGroup};
pub use latency::{BUCKETS as LATENCY_BUCKETS, LatencyCounts};
pub use measure::{Held, MemoryMeasure, Total};
pub use process::{Finding, Process, Terminal};
pub use resync::Resync;
pub use tree_ref::TreeRef;
pub use trees::SessionTree;
pub use view::{GroupTotal, HangupExit, MetricsView, ProcessView, SessionsView};

use crate::verdict::reason::Reason;
use crate::{
    event::{Event, EventKind, Existing},
    matching::Matcher,
    verdict::{Verdict, VerdictKind},
};

/// How long a detach, an ignored hangup or an orphaning must stand before it is a verdict.
/// Terminal emulators, sshd and tmux call setsid and take a new terminal microseconds
/// apart; dying processes briefly look like they ignore signals.
pub const SETTLE_NS: u64 = 80_000_000;
/// Recent hangup-to-exit records kept for the API.
pub const HANGUP_EXITS_KEPT: usize = 256;

#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// How long a process may live after its SIGHUP handler ran before it "survived".
    pub hup_grace_ns: u64,
    pub rss_growth_bytes: u64,
    pub rss_window_ns: u64,
    /// When every process is watched, only those that came from a terminal are sessions
    /// that can get a verdict; services started by init are not.
    pub require_terminal: bool,
    /// Processes kept at most; more are counted in `dropped_processes`.
    pub max_processes: usize,
    /// What was asked for, to count each process under the flag that brought it in.
    pub groups: Matcher,
    /// The share of one CPU a process off its terminal must keep busy over
    /// `cpu_window_ns` to spin (`--cpu-spin`).
    pub cpu_spin_share: f64,
    pub cpu_window_ns: u64,
    /// How often the source reads every watched process's CPU time (0: unknown). Its
    /// readings are handed on only when they moved, so what one shows after a silence was
    /// used within this interval (see idle.rs).
    pub cpu_read_ns: u64,
    /// Unreaped exited children that make `zombies` (`--zombies`).
    pub zombies_min: u32,
    /// Programs meant to outlive their terminal (`--ignore`): they raise nothing.
    pub ignore: crate::matching::Ignored,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            hup_grace_ns: 10_000_000_000,
            rss_growth_bytes: 256 << 20,
            rss_window_ns: 30 * 60 * 1_000_000_000,
            require_terminal: false,
            max_processes: 65_536,
            groups: Matcher::default(),
            cpu_spin_share: 0.9,
            cpu_window_ns: 10 * 60 * 1_000_000_000,
            cpu_read_ns: 0,
            zombies_min: 50,
            ignore: crate::matching::Ignored::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Raised,
    Resolved,
}

/// A verdict raised, or a raised verdict resolved because its process is gone.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    pub status: AlertStatus,
    pub verdict: Verdict,
    pub pid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    pub started_ns: u64,
    pub age_seconds: f64,
    /// `None` until the source first read its memory.
    pub rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    /// macOS's physical footprint; None elsewhere.
    pub footprint_bytes: Option<u64>,
    /// Where it was started (see ProcessView); None when unknown.
    pub terminal_program: Option<String>,
    pub cwd: Option<String>,
}

pub struct Tracker {
    config: TrackerConfig,
    /// `config.groups.group_names()`, indexed by [`Process::group`].
    group_names: Vec<String>,
    processes: HashMap<u32, Process>,
    /// Children by parent, kept with every change of a process's `ppid`.
    by_parent: parents::ByParent,
    /// The tree each session marker joined first, for processes whose parents are gone.
    markers: trees::Markers,
    /// (due, pid, started) of findings to check; stale entries are skipped when popped.
    deadlines: BinaryHeap<Reverse<(u64, u32, u64)>>,
    /// Sessions whose terminal is known to have hung up, so a storm of SIGHUPs to one
    /// session is handled once.
    hung_up: VecDeque<(u32, u64)>,
    hangup_exits: VecDeque<HangupExit>,
    hangup_exit_total: u64,
    /// Every hangup exit's latency, counted when it happens.
    hangup_latency: LatencyCounts,
    dropped_processes: u64,
    /// The machine's memory as the source last read it, for the forecast.
    machine: crate::host::MachineMemory,
    alerts: Vec<Alert>,
    now_ns: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            group_names: config.groups.group_names(),
            config,
            processes: HashMap::new(),
            by_parent: parents::ByParent::default(),
            markers: trees::Markers::default(),
            deadlines: BinaryHeap::new(),
            hung_up: VecDeque::new(),
            hangup_exits: VecDeque::new(),
            hangup_exit_total: 0,
            hangup_latency: LatencyCounts::default(),
            dropped_processes: 0,
            machine: crate::host::MachineMemory::default(),
            alerts: Vec::new(),
            now_ns: 0,
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.processes.values()
    }

    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// Processes not kept because `max_processes` was reached.
    pub fn dropped_processes(&self) -> u64 {
        self.dropped_processes
    }

    pub fn hangup_exits(&self) -> impl Iterator<Item = &HangupExit> {
        self.hangup_exits.iter()
    }

    pub fn hangup_exit_total(&self) -> u64 {
        self.hangup_exit_total
    }

    /// The earliest time at which `advance` may raise something.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Takes in one event; returns the alerts it caused at once (growth, exits).
    pub fn apply(&mut self, event: &Event) -> Vec<Alert> {
        self.now_ns = self.now_ns.max(event.time_ns);
        match &event.kind {
            EventKind::Existing(Existing { .. }) => self.on_existing(event),
            EventKind::Fork { ppid } => self.on_fork(event, *ppid),
            EventKind::Exec { .. } => self.on_exec(event),
            EventKind::Exit { .. } => self.on_exit(event),
            EventKind::Setsid { .. } | EventKind::DetachTty { .. } => self.on_detach(event),
            EventKind::AttachTty { sid, .. } => {
                let sid = *sid;
                self.with_process(event, |p| {
                    p.attach(Some(sid).filter(|s| *s != 0), "?".into());
                    // A pane or a login of its own: it leaves the tree it was started in.
                    if trees::leads_a_terminal(p) {
                        p.tree = None;
                    }
                });
            }
            EventKind::Signal { .. } => self.on_signal(event),
            EventKind::SignalDeliver { .. } => self.on_deliver(event),
            EventKind::Sigaction { .. } => self.on_sigaction(event),
            EventKind::Rss { .. } => self.on_rss(event),
            EventKind::Pss {
                pss_bytes,
                swap_pss_bytes,
            } => {
                // Read for the totals only: no timeline entry, no finding.
                if let Some(p) = self.processes.get_mut(&event.pid) {
                    p.pss_bytes = Some(*pss_bytes);
                    p.swap_pss_bytes = *swap_pss_bytes;
                }
            }
            EventKind::Reparented { ppid, .. } => self.on_reparented(event, *ppid),
            EventKind::Pdeathsig { .. } => self.with_process(event, |_| ()),
            EventKind::Stopped {} => self.on_stopped(event),
            EventKind::Continued {} => self.on_continued(event),
            EventKind::Zombies { .. } => self.on_zombies(event),
            EventKind::Origin {
                terminal_program,
                cwd,
            } => {
                if let Some(p) = self.processes.get_mut(&event.pid) {
                    p.terminal_program = p.terminal_program.take().or(terminal_program.clone());
                    p.cwd = p.cwd.take().or(cwd.clone());
                }
            }
        }
        std::mem::take(&mut self.alerts)
    }

    /// Moves time to `now_ns` and raises every finding that is due and still holds.
    pub fn advance(&mut self, now_ns: u64) -> Vec<Alert> {
        self.now_ns = self.now_ns.max(now_ns);
        while let Some(&Reverse((due, pid, started))) = self.deadlines.peek() {
            if due > self.now_ns {
                break;
            }
            self.deadlines.pop();
            self.check_findings(pid, started);
        }
        std::mem::take(&mut self.alerts)
    }

    /// Processes whose parent is not watched, so its exit will not be seen: (pid, ppid).
    /// The caller looks them up in /proc now and then and reports a changed parent as a
    /// `reparented` event.
    pub fn unwatched_parents(&self) -> Vec<(u32, u32)> {
        self.processes
            .values()
            .filter(|p| p.ppid > 1 && !self.processes.contains_key(&p.ppid))
            .map(|p| (p.pid, p.ppid))
            .collect()
    }

    /// Takes the source's latest reading of the machine's memory.
    pub fn set_machine_memory(&mut self, machine: crate::host::MachineMemory) {
        self.machine = machine;
    }

    /// How long until memory runs out at the pace the sessions grow, as of `now_ns`.
    pub fn memory(&self, now_ns: u64) -> MemoryForecast {
        forecast::forecast(self, now_ns)
    }

    /// Everything that is live, for the sessions API and table.
    pub fn view(&self, now_ns: u64) -> SessionsView {
        view::build(self, now_ns)
    }

    /// What `/metrics` needs, with at most `limit` flagged processes in full.
    pub fn metrics_view(&self, now_ns: u64, limit: usize) -> MetricsView {
        view::build_metrics(self, now_ns, limit)
    }

    fn with_process(&mut self, event: &Event, change: impl FnOnce(&mut Process)) {
        if let Some(process) = self.processes.get_mut(&event.pid) {
            process.record(event);
            change(process);
        }
    }

    fn insert(&mut self, process: Process) -> bool {
        if let Some(old) = self.processes.get(&process.pid) {
            if old.same_life(process.started_ns) {
                return false;
            }
            // Its exit was never seen (lost, or it ended before the probes attached).
            self.end(process.pid, Ending::PidReused);
        }
        if self.processes.len() >= self.config.max_processes {
            self.dropped_processes += 1;
            return false;
        }
        self.by_parent.add(process.ppid, process.pid);
        self.processes.insert(process.pid, process);
        true
    }

    /// Schedules a finding for one kind of verdict, unless one is already open.
    fn find(&mut self, pid: u32, kind: VerdictKind, finding: Finding) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        // The first evidence of a condition stands; a later sighting of the same one (the
        // /proc parent check after the parent's exit was seen) adds nothing.
        if process.verdicts.contains_key(&kind) || process.findings.contains_key(&kind) {
            return;
        }
        let due = finding.due_ns;
        let started = process.started_ns;
        process.findings.insert(kind, finding);
        self.deadlines.push(Reverse((due, pid, started)));
    }

    /// Files every finding of `pid` again, due now at the earliest (its parent left, so it
    /// may now be the top of what it belongs to; or its start time became known).
    fn recheck_soon(&mut self, pid: u32) {
        let Some(process) = self.processes.get(&pid) else {
            return;
        };
        let now = self.now_ns;
        let started = process.started_ns;
        for finding in process.findings.values() {
            let due = finding.due_ns.max(now);
            self.deadlines.push(Reverse((due, pid, started)));
        }
    }

    fn check_findings(&mut self, pid: u32, started: u64) {
        let Some(process) = self.processes.get(&pid) else {
            return;
        };
        if process.started_ns != started {
            return;
        }
        let due: Vec<VerdictKind> = process
            .findings
            .iter()
            .filter(|(_, f)| f.due_ns <= self.now_ns)
            .map(|(kind, _)| *kind)
            .collect();
        for kind in due {
            if rules::still_holds(self, pid, kind) {
                self.raise(pid, kind);
            } else if !rules::may_hold_later(self, pid, kind)
                && let Some(p) = self.processes.get_mut(&pid)
            {
                p.findings.remove(&kind);
            }
        }
    }

    fn raise(&mut self, pid: u32, kind: VerdictKind) {
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        let Some(finding) = process.findings.remove(&kind) else {
            return;
        };
        let growth = match kind {
            VerdictKind::RssGrowth => process.growth().cloned(),
            _ => None,
        };
        let verdict = Verdict {
            kind,
            time_ns: finding.due_ns.max(process.started_ns),
            reason: finding.reason,
            evidence: finding.evidence,
            inferred: finding.inferred,
            growth,
        };
        process.verdicts.insert(kind, verdict.clone());
        let alert = alert_for(process, AlertStatus::Raised, verdict);
        self.alerts.push(alert);
        if states::OFF_TERMINAL.contains(&kind) {
            self.went_off_terminal(pid, self.now_ns);
        }
    }

    /// Forgets a process; each verdict it had is resolved, saying how it ended.
    fn end(&mut self, pid: u32, ending: Ending) {
        let Some(process) = self.processes.remove(&pid) else {
            return;
        };
        self.by_parent.remove(process.ppid, pid);
        let (time_ns, reason, evidence) = match ending {
            Ending::Exit(exit) => (exit.time_ns, Reason::Exited, vec![exit.clone()]),
            Ending::PidReused => (self.now_ns, Reason::PidReused, Vec::new()),
            Ending::Vanished => (self.now_ns, Reason::Vanished, Vec::new()),
        };
        for verdict in process.verdicts.values() {
            let resolved = Verdict {
                time_ns,
                reason: reason.clone(),
                evidence: evidence.clone(),
                ..verdict.clone()
            };
            self.alerts
                .push(alert_for(&process, AlertStatus::Resolved, resolved));
        }
    }

    fn remember_hangup_exit(&mut self, record: HangupExit) {
        if self.hangup_exits.len() == HANGUP_EXITS_KEPT {
            self.hangup_exits.pop_front();
        }
        self.hangup_latency.observe(record.latency_seconds);
        self.hangup_exits.push_back(record);
        self.hangup_exit_total += 1;
    }

    fn children_of(&self, pid: u32) -> Vec<u32> {
        let children = self.by_parent.children(pid);
        #[cfg(debug_assertions)]
        {
            // Every test that ends a process checks the index against the scan it replaced.
            let mut scanned: Vec<u32> = self
                .processes
                .values()
                .filter(|p| p.ppid == pid && p.pid != pid)
                .map(|p| p.pid)
                .collect();
            let mut indexed = children.clone();
            scanned.sort_unstable();
            indexed.sort_unstable();
            debug_assert_eq!(indexed, scanned, "the index of {pid}'s children");
        }
        children
    }
}

/// How the tracker learned that a process is gone.
enum Ending<'a> {
    Exit(&'a Event),
    /// Its pid came back as another life.
    PidReused,
    /// A re-sync after lost events did not find it in /proc.
    Vanished,
}

fn alert_for(process: &Process, status: AlertStatus, verdict: Verdict) -> Alert {
    Alert {
        status,
        pid: process.pid,
        comm: process.comm.clone(),
        cmdline: process.cmdline.clone(),
        started_ns: process.started_ns,
        age_seconds: process.age_seconds(verdict.time_ns),
        rss_bytes: process.rss_bytes,
        swap_bytes: process.swap_bytes,
        footprint_bytes: process.footprint_bytes,
        terminal_program: process.terminal_program.clone(),
        cwd: process.cwd.clone(),
        verdict,
    }
}
