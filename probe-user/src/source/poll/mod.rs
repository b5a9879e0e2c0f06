//! The source that needs neither eBPF nor DTrace: it looks at the process table every
//! `--poll-interval` and reports the differences as events (see [`diff`]). Without root it
//! watches the user's own processes. It cannot see signals, so the verdicts that need them
//! are named in [`UNAVAILABLE`].
pub mod diff;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use tokio::time::Interval;

use self::diff::{Seen, Table};
use super::{
    LiveOptions, SourceKind,
    shared::seed_pids,
    snapshot::Look,
    tracer::{Memory, Pending, Tracer},
};
use crate::{
    decode::Clock,
    event::Event,
    host::{self, ProcSnapshot, ProcessTree, Usage},
    matching::Matcher,
    watch::Watch,
};

/// What this source cannot judge, for lack of signals: said in the ready line, the
/// sessions API and a metric.
pub const UNAVAILABLE: [&str; 3] = [
    "hangup_survived",
    "hangup_exit_latency",
    "sighup_ignored_when_sent",
];

pub struct PollSource {
    clock: Clock,
    matcher: Matcher,
    table: Table,
    tick: Interval,
    interval: Duration,
    /// Set when not root: only this user's processes are readable, so only they are watched.
    only_uid: Option<u32>,
    /// The watched processes of the first look; `None` when every process is watched.
    seeded: Option<HashSet<u32>>,
    /// Memory and CPU of the watched processes at the last look.
    usage: HashMap<u32, Usage>,
    /// Zombies of watched parents at the last look that it never saw alive.
    zombies: Vec<(u32, u32)>,
    /// The look it started from, until the `existing` events take it.
    first_look: Option<Look>,
    /// macOS tells of a watched process's exit at once (kqueue); Linux waits for the look.
    #[cfg(target_os = "macos")]
    exits: Option<crate::host::darwin_exits::ExitWatch>,
}

impl PollSource {
    pub fn start(options: &LiveOptions, clock: Clock) -> anyhow::Result<Self> {
        let me = std::process::id();
        let only_uid = host::readable_uid();
        let first = Look::now(&clock);
        let procs = visible(first.procs().to_vec(), only_uid, me);
        let infos: Vec<_> = procs.iter().map(|p| p.info.clone()).collect();
        let seeded = seed_pids(&options.matcher, &infos)?;
        let watched: Vec<u32> = match &seeded {
            Some(seeded) => seeded.iter().copied().collect(),
            None => infos.iter().map(|p| p.pid).collect(),
        };
        let boot_epoch_ns = first.boot_epoch_ns();
        let seen = procs.iter().map(|p| seen(p, boot_epoch_ns)).collect();
        let mut tick = tokio::time::interval(options.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            clock,
            matcher: options.matcher.clone(),
            table: Table::new(seen, watched),
            tick,
            interval: options.poll_interval,
            only_uid,
            seeded,
            usage: HashMap::new(),
            zombies: Vec::new(),
            first_look: Some(first),
            #[cfg(target_os = "macos")]
            exits: None,
        }
        .with_exit_watch())
    }

    #[cfg(not(target_os = "macos"))]
    fn with_exit_watch(self) -> Self {
        self
    }

    #[cfg(target_os = "macos")]
    fn with_exit_watch(mut self) -> Self {
        match crate::host::darwin_exits::ExitWatch::new() {
            Ok(exits) => self.exits = Some(exits),
            Err(e) => eprintln!(
                "hupwatch: warning: no kqueue for exits ({e}); exits are seen at the next look"
            ),
        }
        let watched: Vec<u32> = self.table.watched_pids().collect();
        self.watch_exits(watched.into_iter());
        self
    }

    /// Registers the processes for exit notification; one already gone is left to the
    /// next look.
    #[cfg(target_os = "macos")]
    fn watch_exits(&mut self, pids: impl Iterator<Item = u32>) {
        if let Some(exits) = &mut self.exits {
            for pid in pids {
                let _ = exits.watch(pid);
            }
        }
    }

    /// Waits for the next look, or on macOS for a watched process's exit, and appends
    /// what it tells.
    async fn wait(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        #[cfg(target_os = "macos")]
        if let Some(exits) = &mut self.exits {
            tokio::select! {
                _ = self.tick.tick() => {}
                exited = exits.exited() => {
                    let now_ns = self.clock.epoch_now_ns();
                    for e in exited? {
                        out.extend(self.table.exited(e.pid, now_ns, e.code, e.signal));
                    }
                    return Ok(());
                }
            }
            let first = out.len();
            self.poll(out);
            let started: Vec<u32> = out[first..]
                .iter()
                .filter(|e| matches!(e.kind, crate::event::EventKind::Exec { .. }))
                .map(|e| e.pid)
                .collect();
            self.watch_exits(started.into_iter());
            return Ok(());
        }
        self.tick.tick().await;
        self.poll(out);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        let now_ns = self.clock.epoch_now_ns();
        let all = host::states();
        self.zombies = all
            .iter()
            .filter(|p| is_zombie(p) && self.table.is_watched(p.info.ppid))
            .filter(|p| !self.table.is_watched(p.info.pid))
            .map(|p| (p.info.pid, p.info.ppid))
            .collect();
        let procs = visible(all, self.only_uid, std::process::id());
        let boot_epoch_ns = host::boot_epoch_ns(&self.clock);
        let seen_now: Vec<Seen> = procs.iter().map(|p| seen(p, boot_epoch_ns)).collect();
        let matcher = &self.matcher;
        self.table.update(
            seen_now,
            now_ns,
            |p, parent_watched| adopt(matcher, p, parent_watched),
            out,
        );
        self.usage = procs
            .iter()
            .filter(|p| self.table.is_watched(p.info.pid))
            .filter_map(|p| Some((p.info.pid, usage_of(p)?)))
            .collect();
    }
}

impl Tracer for PollSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Proc
    }

    fn first_look(&mut self) -> Option<Look> {
        self.first_look.take()
    }

    fn describe(&self) -> String {
        let every = u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX);
        format!(
            "polling the process table every {}",
            crate::units::format_duration(every)
        )
    }

    fn note(&self) -> String {
        let whose = match self.only_uid {
            Some(uid) => format!(" of user {uid} (not root: other users' are not readable)"),
            None => String::new(),
        };
        format!(
            "{whose}; without signals these are unavailable: {}",
            UNAVAILABLE.join(", ")
        )
    }

    fn unavailable(&self) -> &'static [&'static str] {
        &UNAVAILABLE
    }

    fn seeded(&self) -> Option<&HashSet<u32>> {
        self.seeded.as_ref()
    }

    fn watch(&self) -> Watch {
        Watch::Everything
    }

    fn sees_reparenting(&self) -> bool {
        true
    }

    /// Waits for the next look and appends what changed. Cancel-safe.
    fn next<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, anyhow::Result<()>> {
        Box::pin(self.wait(out))
    }

    /// Nothing is queued between two looks.
    fn drain<'a>(&'a mut self, _out: &'a mut Vec<Event>) -> Pending<'a, bool> {
        Box::pin(async { false })
    }

    fn memory(&mut self) -> Memory {
        Memory::Known(self.usage.clone())
    }

    fn unseen_zombies(&self) -> Vec<(u32, u32)> {
        self.zombies.clone()
    }
}

/// Whether a new process is watched, and its command line when it is.
fn adopt(matcher: &Matcher, p: &Seen, parent_watched: bool) -> Option<Option<String>> {
    if parent_watched || matcher.traces_everything() {
        return Some(host::cmdline(p.pid));
    }
    // The name alone decides without reading a file; a command-line regex needs the file.
    if matcher.matches(&p.comm, "") {
        return Some(host::cmdline(p.pid));
    }
    if !matcher.matches_cmdlines() {
        return None;
    }
    let cmdline = host::cmdline(p.pid)?;
    matcher.matches(&p.comm, &cmdline).then_some(Some(cmdline))
}

/// The processes this source reports on: no kernel threads, no zombies (they have exited;
/// a zombie's exit is reported when it is seen so), not hupwatch, and when not root only
/// the user's own.
fn visible(procs: Vec<ProcSnapshot>, only_uid: Option<u32>, me: u32) -> Vec<ProcSnapshot> {
    let mine = ProcessTree::new(procs.iter().map(|p| &p.info)).subtree(me);
    procs
        .into_iter()
        .filter(|p| {
            !p.kernel_thread
                && !is_zombie(p)
                && !mine.contains(&p.info.pid)
                && only_uid.is_none_or(|uid| p.uid == Some(uid))
        })
        .collect()
}

fn is_zombie(p: &ProcSnapshot) -> bool {
    matches!(p.state, 'Z' | 'X')
}

fn seen(p: &ProcSnapshot, boot_epoch_ns: u64) -> Seen {
    Seen {
        pid: p.info.pid,
        started_ns: boot_epoch_ns.saturating_add(p.started_boot_ns),
        ppid: p.info.ppid,
        sid: p.info.sid,
        tty: host::tty_name(p.info.tty_nr),
        comm: p.info.comm.clone(),
        hangup: p.hangup,
        stopped: p.state == 'T',
    }
}

/// Linux's look read memory and CPU already; macOS's physical footprint is one more call.
fn usage_of(p: &ProcSnapshot) -> Option<Usage> {
    if cfg!(target_os = "macos") {
        return host::usage(p.info.pid);
    }
    Some(Usage {
        rss_bytes: p.rss_bytes,
        swap_bytes: p.swap_bytes,
        peak_rss_bytes: None,
        cpu_ns: p.cpu_ns,
        footprint_bytes: None,
    })
}
