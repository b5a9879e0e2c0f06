//! The kernel source: loads and attaches the eBPF programs, seeds the tracked set, and
//! turns ring-buffer records and RSS-map samples into events.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    io,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use probe_common::{RssValue, reason};
use tokio::{
    io::{Interest, unix::AsyncFd},
    time::Interval,
};

pub use super::LiveOptions;
use crate::{
    decode::{Clock, decode, is_tracked},
    ebpf::{Losses, Probes},
    event::{Event, EventKind},
    host::{self, linux as procfs},
    matching::Matcher,
    source::memory::{Reading, RssSampler, Usage},
};

/// How often the ring is read without a wake-up: the most a quiet event waits.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Most records decoded per call of `next`: what hupwatch holds at once stays bounded
/// however full the ring is (reading all of an 8 MiB ring at once grew the collector's
/// RSS by 3 MiB under 770,000 signals/s).
const MAX_BATCH: usize = 4096;
/// Batches read before a re-sync scan at most; a ring still full after them is being
/// overrun, and the re-sync waits for the storm to pass.
const RESCAN_DRAIN_BATCHES: usize = 4;
/// Bytes the smallest record takes in the ring: its header plus the ring's own 8.
const SMALLEST_RECORD: usize = size_of::<probe_common::Header>() + 8;

pub struct LiveSource {
    probes: Probes,
    ring: AsyncFd<RingBuf<MapData>>,
    decoder: Decoder,
    rss: RssSampler,
    /// Where the sampler reads memory: the programs' RSS map, or /proc where this kernel
    /// refused `rss_stat`.
    memory_from: MemoryFrom,
    tick: Interval,
    /// Reads the ring between the programs' wake-ups.
    drain_tick: Interval,
    /// Processes put in the tracked set from /proc at start (empty when tracing all).
    seeded: HashSet<u32>,
    losses: Losses,
    /// The last read stopped at `MAX_BATCH` with records still waiting.
    backlog: bool,
    /// Lost records counted at the last re-sync (or start).
    synced_losses: u64,
    /// The most records the ring can hold: all that can be queued at any one moment.
    ring_capacity: usize,
}

impl LiveSource {
    /// Loads and attaches the programs and seeds the tracked set. Warnings go to stderr.
    pub fn start(options: LiveOptions) -> anyhow::Result<Self> {
        let mut probes = Probes::load(&options.matcher, options.ring_bytes, options.verbose)?;
        for warning in &probes.warnings {
            eprintln!("hupwatch: warning: {warning}");
        }
        let seeded = seed_tracked_set(&mut probes, &options.matcher)?;
        // The warning that rss_stat is missing says so.
        let memory_from = if probes.attached.iter().any(|p| p.program == "rss_stat") {
            MemoryFrom::KernelMap
        } else {
            MemoryFrom::Proc
        };
        let events = probes.take_events().expect("the ring buffer is taken once");
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
        // AsyncFd (which owns the ring buffer) is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            probes,
            ring,
            decoder: Decoder {
                clock: Clock::now(),
                matcher: options.matcher,
                decode_errors: 0,
                setsids: HashMap::new(),
                setsid_order: VecDeque::new(),
            },
            rss: RssSampler::new(options.rss_step),
            memory_from,
            tick: tokio::time::interval(options.rss_interval),
            drain_tick: {
                let mut tick = tokio::time::interval(DRAIN_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            },
            seeded,
            losses: Losses::default(),
            backlog: false,
            synced_losses: 0,
            ring_capacity: options.ring_bytes as usize / SMALLEST_RECORD,
        })
    }

    pub fn clock(&self) -> Clock {
        self.decoder.clock
    }

    /// Every program hupwatch has, and whether it is attached.
    pub fn programs(&self) -> Vec<(&'static str, bool)> {
        crate::ebpf::resolve::PROGRAMS
            .iter()
            .map(|spec| {
                let attached = self
                    .probes
                    .attached
                    .iter()
                    .any(|a| a.program == spec.program);
                (spec.program, attached)
            })
            .collect()
    }

    /// Per attached program: time spent in it and its runs (kernel.bpf_stats_enabled).
    pub fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        self.probes.program_stats()
    }

    /// Records lost so far, by kind, as the kernel counts them.
    pub fn losses(&self) -> Losses {
        self.probes.losses()
    }

    pub fn programs_attached(&self) -> usize {
        self.probes.attached.len()
    }

    /// The line that tells a person (and the tests) that hupwatch is watching.
    pub fn ready_line(&self) -> String {
        let what = if self.decoder.matcher.traces_everything() {
            "every process".to_string()
        } else {
            format!(
                "{} existing processes and what they start",
                self.seeded.len()
            )
        };
        format!(
            "hupwatch: ready: {} programs attached, tracing {what}",
            self.programs_attached()
        )
    }

    /// `existing` events for the processes being traced that were alive at start; their
    /// memory is sampled from now on.
    pub fn existing(&mut self) -> Vec<Event> {
        let me = std::process::id();
        let mut events = crate::source::snapshot::scan_existing(me);
        if !self.decoder.matcher.traces_everything() {
            events.retain(|e| self.seeded.contains(&e.pid));
        }
        events.iter_mut().for_each(|e| self.rss.follow(e));
        events
    }

    /// Waits for kernel records or the RSS sampling tick and appends what they say to
    /// `out`, at most `MAX_BATCH` records' worth. Cancel-safe: nothing is lost if the
    /// future is dropped while waiting.
    pub async fn next(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        if self.backlog {
            // Records are known to be waiting: no wake-up or tick will say so again.
            tokio::task::yield_now().await;
            self.backlog = Self::drain(
                self.ring.get_mut(),
                &mut self.decoder,
                &mut self.probes,
                &mut self.rss,
                out,
            );
            return Ok(());
        }
        tokio::select! {
            ready = self.ring.readable_mut() => {
                let mut guard = ready?;
                self.backlog = Self::drain(guard.get_inner_mut(), &mut self.decoder, &mut self.probes, &mut self.rss, out);
                guard.clear_ready();
            }
            // The programs wake hupwatch only when the ring starts to fill (see
            // probe-ebpf's emit.rs); everything else is read here.
            _ = self.drain_tick.tick() => {
                self.backlog = Self::drain(self.ring.get_mut(), &mut self.decoder, &mut self.probes, &mut self.rss, out);
            }
            _ = self.tick.tick() => {
                self.sample_rss(out);
                self.report_losses();
            }
        }
        Ok(())
    }

    /// When records were lost since the last re-sync (`lost` is the kernel's total so
    /// far): reads what is queued into `out`,
    /// then scans /proc. Records queued before the scan must not be applied after it, or a
    /// process whose exit was lost could come back from its fork record.
    pub fn rescan(&mut self, lost: u64, out: &mut Vec<Event>) -> Option<super::Rescan> {
        if lost <= self.synced_losses {
            return None;
        }
        let mut batches = 0;
        loop {
            self.backlog = Self::drain(
                self.ring.get_mut(),
                &mut self.decoder,
                &mut self.probes,
                &mut self.rss,
                out,
            );
            batches += 1;
            if !self.backlog || batches == RESCAN_DRAIN_BATCHES {
                break;
            }
        }
        if self.backlog {
            return None;
        }
        let watch = if self.decoder.matcher.traces_everything() {
            crate::tracker::Watch::Everything
        } else {
            crate::tracker::Watch::Pids(self.probes.tracked_pids())
        };
        Some(super::Rescan::take(
            lost,
            &mut self.synced_losses,
            &self.decoder.clock,
            watch,
        ))
    }

    /// Reads what the kernel queued before hupwatch was asked to leave, handing `each` at
    /// most `MAX_BATCH` events at a time. Stops after as many records as the ring holds:
    /// everything queued when it was called has been read by then, and programs that go
    /// on filling the ring cannot hold the exit up.
    pub fn drain_queued(
        &mut self,
        mut each: impl FnMut(&mut Vec<Event>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::new();
        for _ in 0..self.ring_capacity.div_ceil(MAX_BATCH) {
            let more = Self::drain(
                self.ring.get_mut(),
                &mut self.decoder,
                &mut self.probes,
                &mut self.rss,
                &mut batch,
            );
            each(&mut batch)?;
            if !more {
                break;
            }
        }
        Ok(())
    }

    fn drain(
        ring: &mut RingBuf<MapData>,
        decoder: &mut Decoder,
        probes: &mut Probes,
        rss: &mut RssSampler,
        out: &mut Vec<Event>,
    ) -> bool {
        let first = out.len();
        let mut read = 0;
        while read < MAX_BATCH {
            let Some(record) = ring.next() else { break };
            decoder.on_record(&record, probes, out);
            read += 1;
        }
        out[first..].iter_mut().for_each(|e| rss.follow(e));
        // Just exec'd, so the kernel map has nothing for them yet: /proc.
        let now = decoder.clock.epoch_now_ns();
        rss.read_execs(first, now, |pid| host::usage(pid).into(), host::cpu_ns, out);
        read == MAX_BATCH
    }

    fn sample_rss(&mut self, out: &mut Vec<Event>) {
        let now = self.decoder.clock.epoch_now_ns();
        match self.memory_from {
            MemoryFrom::Proc => {
                let read = |pid| host::usage(pid).into();
                self.rss.sample(now, read, host::cpu_ns, out);
            }
            MemoryFrom::KernelMap => {
                let map: HashMap<u32, RssValue> = self.probes.rss_snapshot().into_iter().collect();
                // A process in the map that no event named (a re-sync added it, or it
                // faulted before its record was read) is sampled too.
                let me = std::process::id();
                for &pid in map.keys().filter(|&&pid| pid != me) {
                    if !self.rss.is_watched(pid)
                        && let Some(stat) = procfs::read_stat(pid)
                    {
                        self.rss.watch(pid, &stat.comm);
                    }
                }
                self.rss
                    .sample(now, |pid| from_map(&map, pid), host::cpu_ns, out);
            }
        }
    }

    /// Says on stderr how many records the kernel could not queue since the last report.
    pub fn report_losses(&mut self) {
        let now = self.probes.losses();
        let new = now.lost_events().saturating_sub(self.losses.lost_events());
        if new > 0 {
            let detail: Vec<String> = now
                .since(&self.losses)
                .into_iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect();
            eprintln!(
                "hupwatch: lost {new} events (ring buffer full): {}; {} lost since start",
                detail.join(" "),
                now.lost_events()
            );
        }
        if now.tracked_map_full > self.losses.tracked_map_full {
            eprintln!(
                "hupwatch: {} processes could not be tracked (tracked-set map full)",
                now.tracked_map_full - self.losses.tracked_map_full
            );
        }
        if now.rss_map_full > self.losses.rss_map_full {
            eprintln!(
                "hupwatch: {} RSS updates dropped (RSS map full)",
                now.rss_map_full - self.losses.rss_map_full
            );
        }
        self.losses = now;
    }
}

/// Where the eBPF source learns the watched processes' memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemoryFrom {
    /// The `RSS` map rss_stat keeps current on every page fault.
    KernelMap,
    /// /proc, every tick: for kernels where rss_stat cannot be attached.
    Proc,
}

/// A process's memory from the `RSS` map. One that has not faulted since it was tracked
/// is not in it yet: /proc tells whether it is alive, and what it holds.
fn from_map(map: &HashMap<u32, RssValue>, pid: u32) -> Reading {
    match map.get(&pid) {
        Some(rss) => Reading::Now(Usage {
            rss_bytes: rss.total(),
            swap_bytes: Some(rss.swap),
            peak_rss_bytes: Some(rss.peak),
            cpu_ns: None,
        }),
        None => host::usage(pid).into(),
    }
}

/// setsid calls of untracked processes kept for their next exec, at most this many.
const UNTRACKED_SETSIDS: usize = 1024;

/// Turns records into events: exec records get the command line and SIGHUP disposition;
/// exec records of untracked processes (sent only when command lines are matched) are
/// adopted or dropped; setsid records of untracked processes wait for an exec that makes
/// the process tracked (`setsid cmd`), then come out just before it.
struct Decoder {
    clock: Clock,
    matcher: Matcher,
    decode_errors: u64,
    setsids: HashMap<u32, Event>,
    setsid_order: VecDeque<u32>,
}

impl Decoder {
    fn on_record(&mut self, record: &[u8], probes: &mut Probes, out: &mut Vec<Event>) {
        let mut event = match decode(record, &self.clock) {
            Ok(event) => event,
            Err(err) => {
                self.decode_errors += 1;
                if self.decode_errors == 1 {
                    eprintln!("hupwatch: warning: skipping undecodable record: {err}");
                }
                return;
            }
        };
        match event.kind {
            EventKind::Setsid { .. } if !is_tracked(record) => {
                self.keep_setsid(event);
                return;
            }
            EventKind::Exec { .. } => {
                let read = procfs::read_cmdline(event.pid);
                if !is_tracked(record)
                    && !adopt_by_cmdline(probes, &self.matcher, &event, read.as_deref())
                {
                    return;
                }
                if let EventKind::Exec {
                    cmdline, hangup, ..
                } = &mut event.kind
                {
                    *cmdline = read;
                    // /proc is read later than the exec happened and may show a later
                    // sigaction; it serves only kernels where the offsets are unknown.
                    if hangup.is_none() {
                        *hangup = procfs::read_status(event.pid).map(|s| s.hangup());
                    }
                }
                if let Some(setsid) = self.setsids.remove(&event.pid) {
                    out.push(setsid);
                }
            }
            _ => {}
        }
        out.push(event);
    }

    fn keep_setsid(&mut self, event: Event) {
        if self.setsid_order.len() == UNTRACKED_SETSIDS
            && let Some(oldest) = self.setsid_order.pop_front()
        {
            self.setsids.remove(&oldest);
        }
        self.setsid_order.push_back(event.pid);
        self.setsids.insert(event.pid, event);
    }
}

fn adopt_by_cmdline(
    probes: &mut Probes,
    matcher: &Matcher,
    event: &Event,
    cmdline: Option<&str>,
) -> bool {
    let Some(cmdline) = cmdline else {
        return false;
    };
    if !matcher.matches(&event.comm, cmdline) {
        return false;
    }
    if !probes.track(event.pid, reason::MATCHED_CMDLINE) {
        eprintln!(
            "hupwatch: warning: tracked-set map is full; pid {} is not tracked",
            event.pid
        );
    }
    true
}

/// Puts the processes that already exist into the tracked set, then looks once more for
/// children forked by them before their entry was in the kernel map.
fn seed_tracked_set(probes: &mut Probes, matcher: &Matcher) -> anyhow::Result<HashSet<u32>> {
    if matcher.traces_everything() {
        return Ok(HashSet::new());
    }
    let me = std::process::id();
    let mut seeded = HashSet::new();
    for _pass in 0..2 {
        for (pid, why) in matcher.seed(&procfs::scan(), me)? {
            if probes.track(pid, why) {
                seeded.insert(pid);
            }
        }
    }
    Ok(seeded)
}
