//! The tracker as the sessions API and table show it. Serialised as is for
//! `GET /api/sessions` and read back by `hupwatch sessions --from`.
use serde::{Deserialize, Serialize};

use super::{
    Held, LatencyCounts, Process, Tracker,
    groups::{self, GroupBy, Member, SessionGroup},
    rules::is_session,
    tree_ref::TreeRef,
    trees::{self, SessionTree, TreeMember},
};
use crate::{
    event::{Disposition, Event},
    verdict::{Verdict, VerdictKind, growth::Growth},
};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionsView {
    /// When the view was taken, Unix-epoch ns.
    pub time_ns: u64,
    /// Live sessions, largest RSS first.
    pub processes: Vec<ProcessView>,
    /// The most recent processes that exited after a hangup, oldest first.
    pub hangup_exits: Vec<HangupExit>,
    pub hangup_exit_total: u64,
    /// Processes not tracked because the tracker was full.
    pub dropped_processes: u64,
    /// The source the events came from (ebpf, dtrace, proc); null for a /proc snapshot
    /// or a recording.
    #[serde(default)]
    pub source: Option<String>,
    /// Verdicts and figures that source cannot give: absent from this view for that reason,
    /// not because nothing happened.
    #[serde(default)]
    pub unavailable: Vec<String>,
    /// Events the source lost so far (the sum of hupwatch_events_lost_total); null for a
    /// snapshot or a recording.
    #[serde(default)]
    pub events_lost: Option<u64>,
    /// The machine's memory and how long until it runs out at the pace the sessions
    /// grow; all null but a growth of 0 where nothing was read (a recording, or a daemon
    /// older than this field).
    #[serde(default)]
    pub memory: super::MemoryForecast,
    /// The sessions added up by `group_by`, largest memory first.
    #[serde(default)]
    pub groups: Vec<SessionGroup>,
    #[serde(default)]
    pub group_by: GroupBy,
    /// The session trees the processes make, the most memory first (empty from a daemon
    /// older than this field).
    #[serde(default)]
    pub trees: Vec<SessionTree>,
}

#[cfg(test)]
impl SessionsView {
    /// A view of `processes` taken at time 0, and nothing else: no hangup exits, groups,
    /// source or memory figures. A test sets what it is about with `..`.
    pub(crate) fn with_sessions(processes: Vec<ProcessView>) -> Self {
        Self {
            time_ns: 0,
            processes,
            hangup_exits: Vec::new(),
            hangup_exit_total: 0,
            dropped_processes: 0,
            source: None,
            unavailable: Vec::new(),
            events_lost: None,
            memory: Default::default(),
            groups: Vec::new(),
            group_by: Default::default(),
            trees: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessView {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    pub started_ns: u64,
    pub age_seconds: f64,
    /// attached, detached, terminal_lost, orphaned or no_terminal.
    pub state: String,
    pub tty: Option<String>,
    pub sid: Option<u32>,
    /// The terminal it came from, when it is no longer on it.
    pub came_from_tty: Option<String>,
    pub hangup: Disposition,
    /// Null until its memory was first read.
    pub rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    /// Its memory in swap; null when unknown.
    #[serde(default)]
    pub swap_bytes: Option<u64>,
    /// macOS's physical footprint (Activity Monitor's Memory), beside the RSS; absent on
    /// Linux.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footprint_bytes: Option<u64>,
    /// PSS and SwapPss (Linux's smaps_rollup), read every `--pss-interval`: its share of
    /// the pages it shares with others, what totals add up; null until read, and off Linux.
    #[serde(default)]
    pub pss_bytes: Option<u64>,
    #[serde(default)]
    pub swap_pss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub growth: Option<Growth>,
    pub verdicts: Vec<Verdict>,
    pub inferred: bool,
    /// Named by `--ignore`: meant to outlive its terminal, so it raises nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
    /// The match group it counts under in metrics (see `Matcher::group_names`), or
    /// `other` when it came in through a parent hupwatch never saw.
    #[serde(default)]
    pub group: String,
    /// The program hosting the terminal it was started in (`vscode`, `iTerm.app`,
    /// `Apple_Terminal`, `tmux`, `ssh`, a terminal emulator); null when unknown.
    #[serde(default)]
    pub terminal_program: Option<String>,
    /// Its working directory (its project) when first seen; null when unreadable.
    #[serde(default)]
    pub cwd: Option<String>,
    /// How long it has used under 1% of a CPU: 0 while busy, null until two CPU readings
    /// (a one-shot look never knows).
    #[serde(default)]
    pub idle_seconds: Option<f64>,
    /// The session tree it belongs to; null when it is in none (not from a terminal).
    #[serde(default)]
    pub tree: Option<TreeRef>,
    /// What happened to it, oldest first; given only for processes with a verdict.
    pub timeline: Vec<Event>,
}

#[cfg(test)]
impl ProcessView {
    /// A live orphan-like process with one verdict, for the tests of what shows views;
    /// each test changes what it is about.
    pub fn example(pid: u32, rss_bytes: u64, verdict: VerdictKind) -> Self {
        Self {
            pid,
            ppid: 1,
            comm: format!("p{pid}"),
            cmdline: None,
            started_ns: 0,
            age_seconds: 1.0,
            state: "orphaned".into(),
            tty: None,
            sid: None,
            came_from_tty: None,
            hangup: Disposition::Default,
            rss_bytes: Some(rss_bytes),
            peak_rss_bytes: Some(rss_bytes),
            swap_bytes: None,
            footprint_bytes: None,
            pss_bytes: None,
            swap_pss_bytes: None,
            ignored: false,
            cpu_seconds: None,
            growth: None,
            verdicts: vec![Verdict {
                kind: verdict,
                time_ns: 0,
                reason: crate::verdict::reason::Reason::Said(String::new()),
                evidence: Vec::new(),
                inferred: false,
                growth: None,
            }],
            inferred: false,
            group: "all".into(),
            terminal_program: None,
            cwd: None,
            idle_seconds: None,
            tree: None,
            timeline: Vec::new(),
        }
    }
}

/// A process that exited after a hangup, and how long it took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HangupExit {
    pub pid: u32,
    pub comm: String,
    pub hangup_ns: u64,
    pub exit_ns: u64,
    pub latency_seconds: f64,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<u32>,
}

pub(super) fn build(t: &Tracker, now_ns: u64) -> SessionsView {
    let mut processes: Vec<ProcessView> = t
        .processes
        .values()
        .filter(|p| is_session(t, p))
        .map(|p| process_view(p, now_ns, &t.group_names))
        .collect();
    processes.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
    let groups = groups::group(processes.iter().map(ProcessView::member), GroupBy::Name);
    SessionsView {
        time_ns: now_ns,
        trees: trees::trees(processes.iter().map(ProcessView::tree_member).collect()),
        groups,
        group_by: GroupBy::Name,
        processes,
        hangup_exits: t.hangup_exits.iter().cloned().collect(),
        hangup_exit_total: t.hangup_exit_total,
        dropped_processes: t.dropped_processes,
        source: None,
        unavailable: Vec::new(),
        events_lost: None,
        memory: t.memory(now_ns),
    }
}

/// What `/metrics` shows: totals over every session, and the flagged ones in full. Built
/// without a view of every process: with 10,000 tracked, the full view took 4 to 10 ms of
/// each scrape, under the tracker's lock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsView {
    /// Processes and their RSS (of those whose RSS is known) per match group, for the
    /// groups that have any.
    pub groups: Vec<GroupTotal>,
    /// How many live sessions have each verdict, for the verdicts that any has.
    pub with_verdict: Vec<(VerdictKind, u64)>,
    /// Sessions with a verdict, largest RSS first, at most the limit asked for.
    pub flagged: Vec<ProcessView>,
    /// The sessions per program, largest memory first.
    pub programs: Vec<SessionGroup>,
    /// The sessions in session trees, per the program at their tree's root.
    pub tree_roots: Vec<SessionGroup>,
    /// Every hangup exit's latency so far (from a sessions document: of the exits it
    /// lists).
    pub hangup_latency: LatencyCounts,
    pub dropped_processes: u64,
    /// The machine's memory and its forecast.
    pub memory: super::MemoryForecast,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupTotal {
    pub group: String,
    pub processes: u64,
    pub rss_bytes: u64,
}

impl MetricsView {
    fn add(&mut self, group: &str, rss_bytes: u64, verdicts: impl Iterator<Item = VerdictKind>) {
        match self.groups.iter_mut().find(|g| g.group == group) {
            Some(total) => {
                total.processes += 1;
                total.rss_bytes += rss_bytes;
            }
            None => self.groups.push(GroupTotal {
                group: group.to_string(),
                processes: 1,
                rss_bytes,
            }),
        }
        for kind in verdicts {
            match self.with_verdict.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => self.with_verdict.push((kind, 1)),
            }
        }
    }
}

impl SessionsView {
    /// The groups again, by `by` (`hupwatch sessions --group-by`).
    pub fn regroup(&mut self, by: GroupBy) {
        self.groups = groups::group(self.processes.iter().map(ProcessView::member), by);
        self.group_by = by;
    }

    /// The trees again, from the processes (a document from a daemon older than them, or
    /// after some processes were left out).
    pub fn rebuild_trees(&mut self) {
        self.trees = trees::trees(
            self.processes
                .iter()
                .map(ProcessView::tree_member)
                .collect(),
        );
    }

    /// Only the processes `keep` accepts, with the groups made of them alone; the exits
    /// after a hangup, which name processes no longer there to ask about, are left out.
    pub fn keep_only(&mut self, keep: impl Fn(&ProcessView) -> bool) {
        self.processes.retain(|p| keep(p));
        self.hangup_exits.clear();
        self.regroup(self.group_by);
        let flagged = self.processes.iter().filter(|p| !p.verdicts.is_empty());
        self.memory
            .set_flagged(flagged.map(ProcessView::held).collect());
        self.memory.set_flagged_trees(trees::flagged_trees_total(
            self.processes
                .iter()
                .map(|p| (p.tree.as_ref(), !p.verdicts.is_empty(), p.held())),
        ));
        self.rebuild_trees();
    }

    /// The metrics of this view (a `sessions --from` result, or a test's).
    pub fn metrics(&self, limit: usize) -> MetricsView {
        let mut out = MetricsView {
            hangup_latency: self.hangup_exits.iter().fold(
                LatencyCounts::default(),
                |mut counts, exit| {
                    counts.observe(exit.latency_seconds);
                    counts
                },
            ),
            dropped_processes: self.dropped_processes,
            memory: self.memory.clone(),
            ..MetricsView::default()
        };
        for p in &self.processes {
            out.add(
                &p.group,
                p.rss_bytes.unwrap_or(0),
                p.verdicts.iter().map(|v| v.kind),
            );
        }
        // `processes` is sorted by RSS, largest first.
        let flagged = self.processes.iter().filter(|p| !p.verdicts.is_empty());
        out.flagged = flagged.take(limit).cloned().collect();
        out.programs = groups::group(
            self.processes.iter().map(ProcessView::member),
            GroupBy::Name,
        );
        out.tree_roots = groups::group(
            self.processes
                .iter()
                .filter(|p| p.tree.is_some())
                .map(ProcessView::member),
            GroupBy::TreeRoot,
        );
        out
    }
}

impl ProcessView {
    /// What it holds in memory ([`groups::memory_bytes`]).
    pub fn memory_bytes(&self) -> Option<u64> {
        groups::memory_bytes(self.rss_bytes, self.swap_bytes, self.footprint_bytes)
    }

    fn tree_member(&self) -> TreeMember<'_> {
        TreeMember {
            pid: self.pid,
            started_ns: self.started_ns,
            comm: &self.comm,
            tree: self.tree.as_ref(),
            held: self.held(),
            growth_bytes_per_second: self.growth.as_ref().map(|g| g.slope_bytes_per_second),
            idle_seconds: self.idle_seconds,
            verdicts: self.verdicts.iter().map(|v| v.kind.name()).collect(),
        }
    }

    /// What it holds by each measure read, for totals ([`super::Total`]).
    pub fn held(&self) -> Held {
        Held::new(
            self.rss_bytes,
            self.swap_bytes,
            self.pss_bytes,
            self.swap_pss_bytes,
            self.footprint_bytes,
        )
    }

    fn member(&self) -> Member<'_> {
        Member {
            comm: &self.comm,
            cwd: self.cwd.as_deref(),
            terminal_program: self.terminal_program.as_deref(),
            memory: self.held(),
            flagged: !self.verdicts.is_empty(),
            started_ns: self.started_ns,
            tree_root: self.tree.as_ref().map(|t| t.root_comm.as_str()),
        }
    }
}

pub(super) fn build_metrics(t: &Tracker, now_ns: u64, limit: usize) -> MetricsView {
    let mut out = MetricsView {
        hangup_latency: t.hangup_latency.clone(),
        dropped_processes: t.dropped_processes,
        memory: t.memory(now_ns),
        ..MetricsView::default()
    };
    let mut flagged = Vec::new();
    let sessions = || t.processes.values().filter(|p| is_session(t, p));
    out.programs = groups::group(sessions().map(member), GroupBy::Name);
    out.tree_roots = groups::group(
        sessions().filter(|p| p.tree.is_some()).map(member),
        GroupBy::TreeRoot,
    );
    for p in sessions() {
        out.add(
            group_name(p, &t.group_names),
            p.rss_bytes.unwrap_or(0),
            p.verdicts.keys().copied(),
        );
        if !p.verdicts.is_empty() {
            flagged.push(p);
        }
    }
    flagged.sort_by(|a, b| b.rss_bytes.cmp(&a.rss_bytes).then(a.pid.cmp(&b.pid)));
    out.flagged = flagged
        .into_iter()
        .take(limit)
        .map(|p| process_view(p, now_ns, &t.group_names))
        .collect();
    out
}

fn member(p: &Process) -> Member<'_> {
    Member {
        comm: &p.comm,
        cwd: p.cwd.as_deref(),
        terminal_program: p.terminal_program.as_deref(),
        memory: p.held(),
        flagged: !p.verdicts.is_empty(),
        started_ns: p.started_ns,
        tree_root: p.tree.as_ref().map(|t| t.root_comm.as_str()),
    }
}

fn group_name<'a>(p: &Process, group_names: &'a [String]) -> &'a str {
    p.group
        .and_then(|g| group_names.get(usize::from(g)))
        .map_or(GROUP_OTHER, String::as_str)
}

/// The group of a process that came in through a parent hupwatch never saw.
pub const GROUP_OTHER: &str = "other";

fn process_view(p: &Process, now_ns: u64, group_names: &[String]) -> ProcessView {
    let verdicts: Vec<Verdict> = p.verdicts.values().cloned().collect();
    ProcessView {
        pid: p.pid,
        ppid: p.ppid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        started_ns: p.started_ns,
        age_seconds: p.age_seconds(now_ns),
        state: state(p).into(),
        tty: p.tty.clone(),
        sid: p.sid,
        came_from_tty: p
            .lineage
            .as_ref()
            .and_then(|l| l.tty.clone())
            .filter(|tty| p.tty.as_ref() != Some(tty)),
        hangup: p.hangup,
        rss_bytes: p.rss_bytes,
        peak_rss_bytes: p.peak_rss_bytes,
        swap_bytes: p.swap_bytes,
        footprint_bytes: p.footprint_bytes,
        pss_bytes: p.pss_bytes,
        swap_pss_bytes: p.swap_pss_bytes,
        ignored: p.ignored,
        cpu_seconds: p.cpu_ns.map(|ns| ns as f64 / 1e9),
        growth: p.growth().cloned(),
        timeline: if verdicts.is_empty() {
            Vec::new()
        } else {
            p.timeline.iter().cloned().collect()
        },
        verdicts,
        inferred: p.inferred,
        group: group_name(p, group_names).to_string(),
        terminal_program: p.terminal_program.clone(),
        cwd: p.cwd.clone(),
        idle_seconds: p.idle.seconds(now_ns),
        tree: p.tree.clone(),
    }
}

fn state(p: &Process) -> &'static str {
    let has = |kind| p.verdicts.contains_key(&kind) || p.findings.contains_key(&kind);
    if has(VerdictKind::TerminalLost) {
        "terminal_lost"
    } else if p.detach.is_some() && p.tty.is_none() {
        "detached"
    } else if p.tty.is_some() {
        "attached"
    } else if has(VerdictKind::Orphaned) {
        "orphaned"
    } else {
        "no_terminal"
    }
}
