//! What the tracker knows about one life of one process.
use std::collections::{BTreeMap, VecDeque};

use super::{idle::Idle, measure::Held};
use crate::verdict::reason::Reason;
use crate::{
    event::{Disposition, Event, EventKind},
    verdict::{
        Verdict, VerdictKind,
        growth::{Growth, RssSeries},
    },
};

/// Events kept per process for its timeline; older ones are dropped.
pub const TIMELINE_LEN: usize = 32;

/// `started_ns` of a process first seen in an event that does not carry its start.
pub const UNKNOWN_START: u64 = 0;

/// The terminal session a process came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminal {
    pub sid: u32,
    pub tty: Option<String>,
}

/// A condition that will become a verdict at `due_ns` if it still holds then.
#[derive(Clone, Debug)]
pub struct Finding {
    pub due_ns: u64,
    pub reason: Reason,
    pub evidence: Vec<Event>,
    pub inferred: bool,
}

impl Finding {
    /// A condition `event` showed, due `delay_ns` after it.
    pub fn after(event: &Event, delay_ns: u64, reason: Reason) -> Self {
        Self {
            due_ns: event.time_ns.saturating_add(delay_ns),
            reason,
            evidence: vec![event.clone()],
            inferred: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Process {
    pub pid: u32,
    /// Start time, Unix-epoch ns; with `pid` it names one life of a process.
    pub started_ns: u64,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    pub sid: Option<u32>,
    /// The controlling terminal; `Some("?")` when it took one whose name is not known yet.
    pub tty: Option<String>,
    /// The terminal session it descends from, kept after it detached or the terminal died.
    pub lineage: Option<Terminal>,
    /// The setsid/TIOCNOTTY (its own or an ancestor's) that took it off its terminal.
    pub detach: Option<Event>,
    pub hangup: Disposition,
    /// Why `hangup` is what it is (a sigaction, an exec, a /proc snapshot).
    pub hangup_evidence: Option<Event>,
    /// The first SIGHUP sent to it, for the hangup-to-exit latency.
    pub first_hangup: Option<Event>,
    /// RSS samples within the window; changed only through [`Process::sample_rss`].
    rss: RssSeries,
    /// The fit over `rss`, refreshed with each sample: the API, metrics and rules read it
    /// far more often than samples arrive, and the fit is quadratic in the samples.
    growth: Option<Growth>,
    /// Unknown (`None`) until its source first reports its memory.
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    /// macOS's physical footprint, as last read; None elsewhere.
    pub footprint_bytes: Option<u64>,
    /// PSS and SwapPss (Linux's smaps_rollup) as last read, every `--pss-interval`: what
    /// totals add up. None until read, and always off Linux.
    pub pss_bytes: Option<u64>,
    pub swap_pss_bytes: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub timeline: VecDeque<Event>,
    pub findings: BTreeMap<VerdictKind, Finding>,
    pub verdicts: BTreeMap<VerdictKind, Verdict>,
    /// Known only from a /proc snapshot taken when hupwatch started.
    pub inferred: bool,
    /// The match group it counts under: its own match, else its parent's.
    pub group: Option<u16>,
    /// Named by `--ignore`: it raises nothing.
    pub ignored: bool,
    /// The stop it is in, while it is stopped.
    pub stopped: Option<Event>,
    /// Its exited children not reaped, as last counted.
    pub zombies: u32,
    /// (time, CPU time) readings over the CPU window and one before it, for `cpu_spin`.
    cpu: VecDeque<(u64, u64)>,
    /// CPU seconds over the whole CPU window, when it kept the share busy.
    pub spin: Option<f64>,
    /// How long it has used under 1% of a CPU, from the same readings.
    pub idle: Idle,
    /// The program hosting the terminal it was started in, as its source found it.
    pub terminal_program: Option<String>,
    /// Its working directory when its source read it (at its exec, or when first seen).
    pub cwd: Option<String>,
    /// The session tree it was started in (trees.rs), kept through reparenting.
    pub tree: Option<super::tree_ref::TreeRef>,
}

/// One reading of a process's memory, as an event carries it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_bytes: u64,
    pub peak_rss_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    pub cpu_ns: Option<u64>,
    /// macOS's physical footprint; None elsewhere.
    pub footprint_bytes: Option<u64>,
}

impl Process {
    pub fn new(pid: u32, started_ns: u64, comm: String) -> Self {
        Self {
            pid,
            started_ns,
            ppid: 0,
            comm,
            cmdline: None,
            sid: None,
            tty: None,
            lineage: None,
            detach: None,
            hangup: Disposition::Default,
            hangup_evidence: None,
            first_hangup: None,
            rss: RssSeries::default(),
            growth: None,
            rss_bytes: None,
            peak_rss_bytes: None,
            swap_bytes: None,
            footprint_bytes: None,
            pss_bytes: None,
            swap_pss_bytes: None,
            cpu_ns: None,
            timeline: VecDeque::new(),
            findings: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            inferred: false,
            group: None,
            ignored: false,
            stopped: None,
            zombies: 0,
            cpu: VecDeque::new(),
            spin: None,
            idle: Idle::default(),
            terminal_program: None,
            cwd: None,
            tree: None,
        }
    }

    /// A child as fork makes it: same session, terminal, lineage and dispositions.
    pub fn forked_from(parent: &Process, pid: u32, started_ns: u64, comm: String) -> Self {
        let mut child = Self::new(pid, started_ns, comm);
        child.ppid = parent.pid;
        child.cmdline = parent.cmdline.clone();
        child.sid = parent.sid;
        child.tty = parent.tty.clone();
        child.lineage = parent.lineage.clone();
        child.detach = parent.detach.clone();
        child.hangup = parent.hangup;
        child.hangup_evidence = parent.hangup_evidence.clone();
        child.group = parent.group;
        // The same program until it execs.
        child.ignored = parent.ignored;
        // A fork shares its parent's environment and directory.
        child.terminal_program = parent.terminal_program.clone();
        child.cwd = parent.cwd.clone();
        child
    }

    /// Adds `event` to the timeline. When it is full, the oldest event that is not part of
    /// the process's lifecycle makes room (a runtime that signals its own threads on every
    /// collection, or SIGCHLD per child, would otherwise push out its fork, exec and setsid);
    /// only when every kept event is a lifecycle event does the oldest go.
    pub fn record(&mut self, event: &Event) {
        if self.timeline.len() == TIMELINE_LEN {
            let routine = self.timeline.iter().position(|e| !is_lifecycle(e));
            match routine {
                Some(i) => {
                    self.timeline.remove(i);
                }
                None => {
                    self.timeline.pop_front();
                }
            }
        }
        self.timeline.push_back(event.clone());
    }

    /// Takes `tty` as its controlling terminal, which also makes that its lineage.
    pub fn attach(&mut self, sid: Option<u32>, tty: String) {
        self.detach = None;
        self.findings.remove(&VerdictKind::Detached);
        if let Some(sid) = sid.or(self.sid) {
            self.lineage = Some(Terminal {
                sid,
                tty: Some(tty.clone()),
            });
        }
        self.tty = Some(tty);
    }

    /// Leaves its terminal session (setsid, TIOCNOTTY) while on `from`.
    pub fn detach_from(&mut self, from: Terminal, evidence: &Event) {
        self.lineage = Some(from);
        self.tty = None;
        self.detach = Some(evidence.clone());
    }

    /// Takes a reading of its memory (and CPU, when known) into its state and RSS series.
    pub fn sample_memory(&mut self, t_ns: u64, memory: Memory, window_ns: u64) {
        self.rss_bytes = Some(memory.rss_bytes);
        self.peak_rss_bytes = self
            .peak_rss_bytes
            .max(memory.peak_rss_bytes)
            .max(Some(memory.rss_bytes));
        if memory.swap_bytes.is_some() {
            self.swap_bytes = memory.swap_bytes;
        }
        if memory.footprint_bytes.is_some() {
            self.footprint_bytes = memory.footprint_bytes;
        }
        self.cpu_ns = memory.cpu_ns.or(self.cpu_ns);
        // What growth is judged on: a leak that pages out still grows.
        let judged = memory
            .footprint_bytes
            .unwrap_or(memory.rss_bytes + memory.swap_bytes.unwrap_or(0));
        self.rss.push(t_ns, judged, memory.cpu_ns, window_ns);
        self.growth = self.rss.growth();
    }

    /// Takes a CPU-time reading and decides whether it kept `share` of a CPU busy over the
    /// whole `window_ns` (it must have been watched that long).
    pub fn sample_cpu(&mut self, t_ns: u64, cpu_ns: u64, window_ns: u64, share: f64) {
        const KEPT: usize = 64;
        if self.cpu.back().is_some_and(|&(t, _)| t >= t_ns) {
            return;
        }
        self.cpu.push_back((t_ns, cpu_ns));
        let edge = t_ns.saturating_sub(window_ns);
        // The first kept reading stays the last one at or before the window's start.
        while self.cpu.get(1).is_some_and(|&(t, _)| t <= edge) {
            self.cpu.pop_front();
        }
        if self.cpu.len() > KEPT {
            // Only the ends matter; the middle thins.
            self.cpu.remove(KEPT / 2);
        }
        self.spin = self.cpu.front().and_then(|&(t0, cpu0)| {
            let over = t_ns - t0;
            let used = cpu_ns.saturating_sub(cpu0) as f64;
            (t0 <= edge && over > 0 && used >= share * over as f64).then(|| {
                // Scaled to exactly the window, as the verdict states it.
                used / over as f64 * window_ns as f64 / 1e9
            })
        });
    }

    /// The RSS fit as of the last sample; None with fewer than three samples.
    pub fn growth(&self) -> Option<&Growth> {
        self.growth.as_ref()
    }

    /// When its memory last rose among the samples in the window.
    pub fn last_rise_ns(&self) -> Option<u64> {
        self.rss.last_rise_ns()
    }

    pub fn age_seconds(&self, now_ns: u64) -> f64 {
        now_ns.saturating_sub(self.started_ns) as f64 / 1e9
    }

    /// The process's life is the same as one started at `started_ns` (start times from
    /// /proc have clock-tick resolution, the kernel's are exact).
    pub fn same_life(&self, started_ns: u64) -> bool {
        const TOLERANCE_NS: u64 = 50_000_000;
        self.started_ns == UNKNOWN_START || self.started_ns.abs_diff(started_ns) <= TOLERANCE_NS
    }
}

impl Process {
    /// What it holds by each measure its source has read, for totals (measure.rs).
    pub fn held(&self) -> Held {
        Held::new(
            self.rss_bytes,
            self.swap_bytes,
            self.pss_bytes,
            self.swap_pss_bytes,
            self.footprint_bytes,
        )
    }
}

/// Events that change what a process is or where it stands: its start, image, session,
/// terminal, parent, SIGHUP/SIGINT/SIGTERM handling, a hangup, a stop, its end. Memory
/// samples and other signals are routine.
pub fn is_lifecycle(event: &Event) -> bool {
    // By name: DTrace reports macOS's numbers, which differ from Linux's past SIGTERM.
    match &event.kind {
        EventKind::Rss { .. } | EventKind::Pss { .. } => false,
        EventKind::Signal { signal_name, .. } | EventKind::SignalDeliver { signal_name, .. } => {
            signal_name == "SIGHUP"
                || signal_name == "SIGCONT"
                || crate::signals::is_stop_name(signal_name)
        }
        EventKind::Sigaction { signal_name, .. } => {
            matches!(signal_name.as_str(), "SIGHUP" | "SIGINT" | "SIGTERM")
        }
        _ => true,
    }
}
