//! What every source does the same way, around its [`Tracer`]: the processes that exist at
//! start, where each process that execs was started (read once, at the exec), the one
//! memory sampler (and the machine's memory, read on its tick), loss reports, the re-sync
//! after a loss, parent checks for processes whose parent is not watched, and the ready
//! line. The daemon gets only [`Update`]s from it.
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::time::{Interval, MissedTickBehavior};

use super::{
    Rescan, SourceKind,
    memory::{Reading, RssSampler},
    pss::PssSampler,
    snapshot,
    tracer::{Memory, Tracer},
};
use crate::{
    decode::Clock,
    event::{Event, EventKind, Existing},
    host,
    stats::SourceStats,
};

/// How often processes whose parent is not watched are looked up for orphaning, and
/// losses checked.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Processes whose parents are remembered for those checks, at most (the tracker's bound).
const MAX_PARENTS: usize = 65_536;

/// What a source hands the daemon.
pub enum Update {
    Event(Event),
    /// The process table after lost events: the tracker re-syncs with it.
    Resync(Rescan),
    /// The source's own counters, absolute, for the metrics.
    Stats(SourceStats),
    /// The machine's memory as a whole, read with each memory tick, for the forecast.
    Machine(host::MachineMemory),
}

pub struct Source {
    tracer: Box<dyn Tracer>,
    clock: Clock,
    rss: RssSampler,
    rss_tick: Interval,
    /// Reads PSS at its own pace on the RSS ticks; None where there is none to read
    /// (macOS, a kernel without smaps_rollup) or it was not asked for.
    pss: Option<PssSampler>,
    /// The OOM killers, looked for at their own pace and handed on with each machine
    /// reading.
    killers: super::killer::KillerSampler,
    check_tick: Interval,
    /// pid -> ppid of the processes the events named, for the parent checks.
    parents: HashMap<u32, u32>,
    /// Whether parents that change unseen are looked up and reported as `reparented`.
    parent_checks: bool,
    /// Processes whose exit was seen and that may wait, as zombies, for their parent to
    /// reap them: pid -> (ppid, exit time).
    exited: HashMap<u32, (u32, u64)>,
    /// Forks whose parent's origin was missed get theirs read (see late_origin.rs).
    origins: super::late_origin::LateOrigins,
    /// The zombie count last reported per parent: (count, oldest exit).
    zombies: HashMap<u32, (u32, Option<u64>)>,
    batch: Vec<Event>,
    /// Lost events counted at the last re-sync.
    synced: u64,
    /// Lost events and drops said on stderr so far.
    reported_lost: u64,
    reported_dropped: Vec<(&'static str, u64)>,
}

impl Source {
    pub fn new(
        tracer: Box<dyn Tracer>,
        clock: Clock,
        rss_interval: Duration,
        rss_step: u64,
    ) -> Self {
        let mut check_tick = tokio::time::interval(CHECK_EVERY);
        check_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            tracer,
            clock,
            rss: RssSampler::new(rss_step),
            rss_tick: tokio::time::interval(rss_interval),
            pss: None,
            killers: Default::default(),
            check_tick,
            parents: HashMap::new(),
            parent_checks: true,
            exited: HashMap::new(),
            origins: Default::default(),
            zombies: HashMap::new(),
            batch: Vec::new(),
            synced: 0,
            reported_lost: 0,
            reported_dropped: Vec::new(),
        }
    }

    /// Reads every watched process's CPU time every `samples` memory samples.
    pub fn with_cpu_every(mut self, samples: u32) -> Self {
        self.rss = self.rss.with_cpu_every(samples);
        self
    }

    /// Reads each watched process's PSS every `every` (spread over the memory ticks,
    /// `rss_interval` apart), where this OS and kernel have it; never when `every` is 0.
    pub fn with_pss_every(mut self, every: Duration, rss_interval: Duration) -> Self {
        self.pss = (!every.is_zero() && crate::host::pss_supported())
            .then(|| PssSampler::new(nanos(every), nanos(rss_interval)));
        self
    }

    /// No `reparented` events from parent checks: what `trace` prints is what the tracer saw.
    pub fn without_parent_checks(mut self) -> Self {
        self.parent_checks = false;
        self
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn kind(&self) -> SourceKind {
        self.tracer.kind()
    }

    pub fn unavailable(&self) -> &'static [&'static str] {
        self.tracer.unavailable()
    }

    /// Events lost so far, by kind.
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        self.tracer.losses()
    }

    pub fn programs(&self) -> Vec<(&'static str, bool)> {
        self.tracer.programs()
    }

    /// `existing` events for the watched processes alive now; their memory is sampled
    /// from now on.
    pub fn existing(&mut self) -> Vec<Event> {
        let look = self
            .tracer
            .first_look()
            .unwrap_or_else(|| snapshot::Look::now(&self.clock));
        let mut events = look.existing(std::process::id());
        if let Some(seeded) = self.tracer.seeded() {
            events.retain(|e| seeded.contains(&e.pid));
        }
        for event in &mut events {
            self.rss.follow(event);
            if let Some(pss) = &mut self.pss {
                pss.follow(event);
            }
            note_parent(&mut self.parents, event);
        }
        events
    }

    /// The line that tells a person (and the tests) that hupwatch is watching.
    pub fn ready_line(&self) -> String {
        let what = match self.tracer.seeded() {
            None => "every process".to_string(),
            Some(seeded) => format!("{} existing processes and what they start", seeded.len()),
        };
        format!(
            "hupwatch: ready: {}, tracing {what}{}",
            self.tracer.describe(),
            self.tracer.note()
        )
    }

    /// Waits for the tracer's events, the memory tick or the check tick, and appends what
    /// they give. Cancel-safe.
    pub async fn next(&mut self, out: &mut Vec<Update>) -> anyhow::Result<()> {
        tokio::select! {
            read = self.tracer.next(&mut self.batch) => {
                read?;
                self.hand_on(out);
            }
            _ = self.rss_tick.tick() => {
                self.sample(out);
                self.report_losses();
            }
            _ = self.check_tick.tick() => self.check(out).await,
        }
        Ok(())
    }

    /// Before leaving: what the tracer queued before the stop request, in bounded batches.
    pub async fn drain_queued(
        &mut self,
        mut each: impl FnMut(&mut Vec<Update>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut out = Vec::new();
        for _ in 0..self.tracer.queue_batches() {
            let more = self.tracer.drain(&mut self.batch).await;
            self.hand_on(&mut out);
            each(&mut out)?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Says on stderr what was lost or dropped since the last report.
    pub fn report_losses(&mut self) {
        let losses = self.tracer.losses();
        let total: u64 = losses.iter().map(|(_, n)| n).sum();
        if total > self.reported_lost {
            let detail: Vec<String> = losses
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| format!("{kind}={n}"))
                .collect();
            eprintln!(
                "hupwatch: lost {} events ({}): {}; {total} lost since start",
                total - self.reported_lost,
                self.tracer.loss_cause(),
                detail.join(" "),
            );
            self.reported_lost = total;
        }
        let dropped = self.tracer.dropped();
        for &(what, n) in &dropped {
            let before = self
                .reported_dropped
                .iter()
                .find(|(w, _)| *w == what)
                .map_or(0, |(_, n)| *n);
            if n > before {
                eprintln!("hupwatch: {} {what}", n - before);
            }
        }
        self.reported_dropped = dropped;
    }

    /// Events from the tracker go on as updates, after the sampler and the parent list
    /// have seen them; a process that just exec'd has its memory read at once.
    fn hand_on(&mut self, out: &mut Vec<Update>) {
        let mut late = Vec::new();
        for event in &mut self.batch {
            read_origin(event);
            self.origins.follow(event, &mut late);
            self.rss.follow(event);
            if let Some(pss) = &mut self.pss {
                pss.follow(event);
            }
            note_parent(&mut self.parents, event);
            if let EventKind::Exit { ppid, .. } = event.kind
                && self.exited.len() < MAX_PARENTS
            {
                self.exited.insert(event.pid, (ppid, event.time_ns));
            }
        }
        let now = self.clock.epoch_now_ns();
        let read = |pid| host::usage(pid).into();
        self.rss
            .read_execs(0, now, read, host::cpu_ns, &mut self.batch);
        // After the forks they follow, so the tracker knows each process by then.
        self.batch.append(&mut late);
        out.extend(self.batch.drain(..).map(Update::Event));
    }

    fn sample(&mut self, out: &mut Vec<Update>) {
        let now = self.clock.epoch_now_ns();
        let mut events = Vec::new();
        match self.tracer.memory() {
            Memory::Host => {
                let read = |pid| host::usage(pid).into();
                self.rss.sample(now, read, host::cpu_ns, &mut events);
            }
            Memory::Known(known) => {
                // A process the tracer holds that no event named (a re-sync added it, or
                // it faulted before its record was read) is sampled too.
                let me = std::process::id();
                for &pid in known.keys().filter(|&&pid| pid != me) {
                    if !self.rss.is_watched(pid)
                        && let Some((_, comm)) = host::parent_of(pid)
                    {
                        self.rss.watch(pid, &comm);
                        if let Some(pss) = &mut self.pss {
                            pss.watch(pid, &comm);
                        }
                    }
                }
                let read = |pid| match known.get(&pid) {
                    Some(usage) => Reading::Now(*usage),
                    None => host::usage(pid).into(),
                };
                self.rss.sample(now, read, host::cpu_ns, &mut events);
            }
        }
        if let Some(pss) = &mut self.pss {
            for event in &events {
                pss.follow(event);
            }
            let rss = &self.rss;
            pss.retain(|pid| rss.is_watched(pid));
            pss.sample(now, host::pss, &mut events);
        }
        out.extend(events.into_iter().map(Update::Event));
        let mut machine = host::machine_memory();
        machine.killers = Some(self.killers.latest(now, host::oom_killers));
        out.push(Update::Machine(machine));
    }

    /// Losses (and the re-sync they call for), parents that changed unseen, and the
    /// counters for the metrics.
    async fn check(&mut self, out: &mut Vec<Update>) {
        let lost: Vec<(&'static str, u64)> = self.tracer.losses();
        let total: u64 = lost.iter().map(|(_, n)| n).sum();
        if total > self.synced && self.drained_for_rescan(out).await {
            let watch = self.tracer.watch();
            let rescan = Rescan::take(total, &mut self.synced, &self.clock, watch);
            for event in &rescan.scan {
                self.parents.insert(event.pid, parent(event).unwrap_or(0));
            }
            out.push(Update::Resync(rescan));
        }
        if self.parent_checks && !self.tracer.sees_reparenting() {
            let now = self.clock.epoch_now_ns();
            let events = super::reparented(&self.unwatched_parents(), now);
            for event in &events {
                note_parent(&mut self.parents, event);
            }
            out.extend(events.into_iter().map(Update::Event));
        }
        self.count_zombies(out);
        out.push(Update::Stats(SourceStats {
            lost,
            bpf_stats_enabled: bpf_stats_enabled(),
            programs: self.tracer.program_stats(),
        }));
    }

    /// Which exited processes still wait to be reaped, per parent; a parent whose count
    /// changed gets a `zombies` event. A reaped process is gone from the table (or, reused
    /// since, no longer a zombie).
    fn count_zombies(&mut self, out: &mut Vec<Update>) {
        let seen_ns = self.clock.epoch_now_ns();
        for (pid, ppid) in self.tracer.unseen_zombies() {
            if self.exited.len() < MAX_PARENTS {
                self.exited.entry(pid).or_insert((ppid, seen_ns));
            }
        }
        self.exited
            .retain(|&pid, _| matches!(host::state(pid), Some('Z' | 'X')));
        let time_ns = self.clock.epoch_now_ns();
        // A child its parent reaps within a check is the normal case, not worth an event.
        let lingering = time_ns.saturating_sub(CHECK_EVERY.as_nanos() as u64);
        let mut now: HashMap<u32, (u32, Option<u64>)> = HashMap::new();
        for &(ppid, exit_ns) in self.exited.values().filter(|(_, t)| *t <= lingering) {
            let (count, oldest) = now.entry(ppid).or_default();
            *count += 1;
            *oldest = Some(oldest.map_or(exit_ns, |t: u64| t.min(exit_ns)));
        }
        let changed: Vec<(u32, (u32, Option<u64>))> = now
            .iter()
            .filter(|(ppid, z)| self.zombies.get(ppid) != Some(z))
            .map(|(&ppid, &z)| (ppid, z))
            .chain(
                self.zombies
                    .keys()
                    .filter(|ppid| !now.contains_key(ppid))
                    .map(|&ppid| (ppid, (0, None))),
            )
            .collect();
        for (ppid, (count, oldest_exit_ns)) in changed {
            let comm = host::parent_of(ppid)
                .map(|(_, comm)| comm)
                .unwrap_or_default();
            out.push(Update::Event(Event {
                kind: EventKind::Zombies {
                    count,
                    oldest_exit_ns,
                },
                time_ns,
                pid: ppid,
                comm,
            }));
        }
        self.zombies = now;
    }

    /// Reads what is queued, so that no record older than the scan is applied after it (a
    /// process whose exit was lost could come back from its fork record). False when the
    /// queue is still full after a few batches: the re-sync waits for the storm to pass.
    async fn drained_for_rescan(&mut self, out: &mut Vec<Update>) -> bool {
        const BATCHES: usize = 4;
        for _ in 0..BATCHES {
            let more = self.tracer.drain(&mut self.batch).await;
            self.hand_on(out);
            if !more {
                return true;
            }
        }
        false
    }

    /// Processes whose parent is not watched, so its exit will not be seen: (pid, ppid).
    fn unwatched_parents(&self) -> Vec<(u32, u32)> {
        self.parents
            .iter()
            .filter(|&(_, &ppid)| ppid > 1 && !self.parents.contains_key(&ppid))
            .map(|(&pid, &ppid)| (pid, ppid))
            .collect()
    }
}

/// Where a process that just exec'd was started (its terminal's program, its directory,
/// whether its environment says it came from a terminal), read once, here, for every
/// tracer: the same process counts as a session however hupwatch came to see it.
fn read_origin(event: &mut Event) {
    if let EventKind::Exec {
        terminal_program,
        cwd,
        from_terminal,
        ..
    } = &mut event.kind
    {
        let found = host::origin(event.pid);
        *terminal_program = found.terminal_program;
        *cwd = found.cwd;
        *from_terminal = found.from_terminal;
    }
}

/// Keeps `parents` up to date with what `event` says of its process.
fn note_parent(parents: &mut HashMap<u32, u32>, event: &Event) {
    match &event.kind {
        EventKind::Exit { .. } => {
            parents.remove(&event.pid);
        }
        EventKind::Reparented { ppid, .. } => {
            if let Some(p) = parents.get_mut(&event.pid) {
                *p = *ppid;
            }
        }
        _ => {
            if let Some(ppid) = parent(event)
                && (parents.len() < MAX_PARENTS || parents.contains_key(&event.pid))
            {
                parents.insert(event.pid, ppid);
            }
        }
    }
}

/// The parent an event names, for the events that start a process's life.
fn parent(event: &Event) -> Option<u32> {
    match &event.kind {
        EventKind::Fork { ppid }
        | EventKind::Exec { ppid, .. }
        | EventKind::Existing(Existing { ppid, .. }) => Some(*ppid),
        _ => None,
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether the kernel counts time spent in eBPF programs (sysctl kernel.bpf_stats_enabled).
fn bpf_stats_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1")
}

/// The processes of `procs` the matcher picks at start (with their descendants), each
/// with why (a `probe_common::reason`), never hupwatch itself; `None` when it watches
/// every process.
pub fn seeds(
    matcher: &crate::matching::Matcher,
    procs: &[host::ProcInfo],
) -> Result<Option<Vec<(u32, u32)>>, crate::matching::MatchError> {
    if matcher.traces_everything() {
        return Ok(None);
    }
    Ok(Some(matcher.seed(procs, std::process::id())?))
}

/// [`seeds`] as a set of pids.
pub fn seed_pids(
    matcher: &crate::matching::Matcher,
    procs: &[host::ProcInfo],
) -> Result<Option<HashSet<u32>>, crate::matching::MatchError> {
    Ok(seeds(matcher, procs)?.map(|chosen| chosen.into_iter().map(|(pid, _)| pid).collect()))
}
