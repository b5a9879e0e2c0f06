//! The source that needs neither eBPF nor DTrace: it looks at the process table every
//! `--poll-interval` and reports the differences as events (see [`diff`]). Without root it
//! watches the user's own processes. It cannot see signals, so the verdicts that need them
//! are named in [`UNAVAILABLE`].
pub mod diff;

use std::{collections::HashMap, time::Duration};

use tokio::time::Interval;

use self::diff::{Seen, Table};
use super::{LiveOptions, memory::Reading, memory::RssSampler, snapshot};
use crate::{
    decode::Clock,
    event::Event,
    host::{self, ProcSnapshot, ProcessTree, Usage},
    matching::Matcher,
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
    rss: RssSampler,
    tick: Interval,
    interval: Duration,
    /// Set when not root: only this user's processes are readable, so only they are watched.
    only_uid: Option<u32>,
    /// The `existing` events of the first look, handed out once.
    first: Vec<Event>,
}

impl PollSource {
    pub fn start(options: &LiveOptions) -> anyhow::Result<Self> {
        let clock = Clock::now();
        let me = std::process::id();
        let only_uid = host::readable_uid();
        let now_ns = clock.epoch_now_ns();
        let procs = visible(host::processes(), only_uid, me);
        let watched: Vec<u32> = if options.matcher.traces_everything() {
            procs.iter().map(|p| p.info.pid).collect()
        } else {
            let infos: Vec<_> = procs.iter().map(|p| p.info.clone()).collect();
            options
                .matcher
                .seed(&infos, me)?
                .into_iter()
                .map(|(pid, _)| pid)
                .collect()
        };
        let boot_epoch_ns = host::boot_epoch_ns(&clock);
        let mut first =
            snapshot::existing_events(&procs, now_ns, boot_epoch_ns, me, host::tty_name);
        first.retain(|e| watched.contains(&e.pid));
        let seen = procs.iter().map(|p| seen(p, boot_epoch_ns)).collect();
        let mut tick = tokio::time::interval(options.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            clock,
            matcher: options.matcher.clone(),
            table: Table::new(seen, watched),
            rss: RssSampler::new(options.rss_step),
            tick,
            interval: options.poll_interval,
            only_uid,
            first,
        })
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// `existing` events for the watched processes of the first look.
    pub fn existing(&mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.first);
        events.iter_mut().for_each(|e| self.rss.follow(e));
        events
    }

    pub fn ready_line(&self) -> String {
        let whose = match self.only_uid {
            Some(uid) => format!(" of user {uid} (not root: other users' are not readable)"),
            None => String::new(),
        };
        format!(
            "hupwatch: ready: polling the process table every {}, watching {} processes{whose}; without signals these are unavailable: {}",
            crate::units::format_duration(
                u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX)
            ),
            self.table.watched(),
            UNAVAILABLE.join(", ")
        )
    }

    /// Waits for the next poll and appends what changed, memory included. Cancel-safe.
    pub async fn next(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        self.tick.tick().await;
        self.poll(out);
        Ok(())
    }

    fn poll(&mut self, out: &mut Vec<Event>) {
        let now_ns = self.clock.epoch_now_ns();
        let procs = visible(host::states(), self.only_uid, std::process::id());
        let boot_epoch_ns = host::boot_epoch_ns(&self.clock);
        let seen_now: Vec<Seen> = procs.iter().map(|p| seen(p, boot_epoch_ns)).collect();
        let matcher = &self.matcher;
        let first = out.len();
        self.table.update(
            seen_now,
            now_ns,
            |p, parent_watched| adopt(matcher, p, parent_watched),
            out,
        );
        out[first..].iter_mut().for_each(|e| self.rss.follow(e));
        let usage: HashMap<u32, Usage> = procs
            .iter()
            .filter(|p| self.table.is_watched(p.info.pid))
            .map(|p| (p.info.pid, usage_of(p)))
            .collect();
        let read = |pid| usage.get(&pid).copied().map_or(Reading::Gone, Reading::Now);
        self.rss.sample(now_ns, read, |_| None, out);
    }
}

/// Whether a new process is watched, and its command line when it is.
fn adopt(matcher: &Matcher, p: &Seen, parent_watched: bool) -> Option<Option<String>> {
    if parent_watched || matcher.traces_everything() {
        return Some(host::cmdline(p.pid));
    }
    let cmdline = if matcher.matches_cmdlines() {
        host::cmdline(p.pid)
    } else {
        None
    };
    matcher
        .matches(&p.comm, cmdline.as_deref().unwrap_or_default())
        .then_some(cmdline)
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
                && !matches!(p.state, 'Z' | 'X')
                && !mine.contains(&p.info.pid)
                && only_uid.is_none_or(|uid| p.uid == Some(uid))
        })
        .collect()
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
    }
}

fn usage_of(p: &ProcSnapshot) -> Usage {
    Usage {
        rss_bytes: p.rss_bytes,
        swap_bytes: p.swap_bytes,
        peak_rss_bytes: None,
        cpu_ns: p.cpu_ns,
    }
}
