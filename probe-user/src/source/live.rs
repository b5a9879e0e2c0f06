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
use super::{
    SourceKind,
    tracer::{Memory, Pending, Tracer},
};
use crate::{
    decode::{Clock, decode, is_tracked},
    ebpf::{Losses, Probes},
    event::{Event, EventKind},
    host::{self, Usage, linux as procfs},
    matching::Matcher,
    watch::Watch,
};

/// How often the ring is read without a wake-up: the most a quiet event waits.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// Most records decoded per call of `next`: what hupwatch holds at once stays bounded
/// however full the ring is (reading all of an 8 MiB ring at once grew the collector's
/// RSS by 3 MiB under 770,000 signals/s).
const MAX_BATCH: usize = 4096;
/// Bytes the smallest record takes in the ring: its header plus the ring's own 8.
const SMALLEST_RECORD: usize = size_of::<probe_common::Header>() + 8;

pub struct LiveSource {
    probes: Probes,
    ring: AsyncFd<RingBuf<MapData>>,
    decoder: Decoder,
    /// Where memory is read: the programs' RSS map, or /proc where this kernel refused
    /// `rss_stat`.
    rss_map: bool,
    /// Reads the ring between the programs' wake-ups.
    drain_tick: Interval,
    /// Processes put in the tracked set at start; `None` when tracing all.
    seeded: Option<HashSet<u32>>,
    /// The last read stopped at `MAX_BATCH` with records still waiting.
    backlog: bool,
    /// The most records the ring can hold: all that can be queued at any one moment.
    ring_capacity: usize,
}

impl LiveSource {
    /// Loads and attaches the programs and seeds the tracked set. Warnings go to stderr.
    pub fn start(options: &LiveOptions, clock: Clock) -> anyhow::Result<Self> {
        let mut probes = Probes::load(&options.matcher, options.ring_bytes, options.verbose)?;
        for warning in &probes.warnings {
            eprintln!("hupwatch: warning: {warning}");
        }
        let seeded = seed_tracked_set(&mut probes, &options.matcher)?;
        // The warning that rss_stat is missing says so.
        let rss_map = probes.attached.iter().any(|p| p.program == "rss_stat");
        let events = probes.take_events().expect("the ring buffer is taken once");
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
        // AsyncFd (which owns the ring buffer) is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            probes,
            ring,
            decoder: Decoder {
                clock,
                matcher: options.matcher.clone(),
                decode_errors: 0,
                setsids: HashMap::new(),
                setsid_order: VecDeque::new(),
            },
            rss_map,
            drain_tick: {
                let mut tick = tokio::time::interval(DRAIN_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick
            },
            seeded,
            backlog: false,
            ring_capacity: options.ring_bytes as usize / SMALLEST_RECORD,
        })
    }

    /// Waits for kernel records and appends what they say to `out`, at most `MAX_BATCH`
    /// records' worth. Cancel-safe: nothing is lost if the future is dropped while waiting.
    async fn read(&mut self, out: &mut Vec<Event>) -> io::Result<()> {
        if self.backlog {
            // Records are known to be waiting: no wake-up or tick will say so again.
            tokio::task::yield_now().await;
            self.backlog = Self::drain_ring(
                self.ring.get_mut(),
                &mut self.decoder,
                &mut self.probes,
                out,
            );
            return Ok(());
        }
        tokio::select! {
            ready = self.ring.readable_mut() => {
                let mut guard = ready?;
                self.backlog = Self::drain_ring(guard.get_inner_mut(), &mut self.decoder, &mut self.probes, out);
                guard.clear_ready();
            }
            // The programs wake hupwatch only when the ring starts to fill (see
            // probe-ebpf's emit.rs); everything else is read here.
            _ = self.drain_tick.tick() => {
                self.backlog = Self::drain_ring(self.ring.get_mut(), &mut self.decoder, &mut self.probes, out);
            }
        }
        Ok(())
    }

    fn drain_ring(
        ring: &mut RingBuf<MapData>,
        decoder: &mut Decoder,
        probes: &mut Probes,
        out: &mut Vec<Event>,
    ) -> bool {
        let mut read = 0;
        while read < MAX_BATCH {
            let Some(record) = ring.next() else { break };
            decoder.on_record(&record, probes, out);
            read += 1;
        }
        read == MAX_BATCH
    }
}

impl Tracer for LiveSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Ebpf
    }

    fn describe(&self) -> String {
        format!("{} programs attached", self.probes.attached.len())
    }

    fn seeded(&self) -> Option<&HashSet<u32>> {
        self.seeded.as_ref()
    }

    fn watch(&self) -> Watch {
        match self.seeded {
            None => Watch::Everything,
            Some(_) => Watch::Pids(self.probes.tracked_pids()),
        }
    }

    fn programs(&self) -> Vec<(&'static str, bool)> {
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

    fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        self.probes.program_stats()
    }

    fn losses(&self) -> Vec<(&'static str, u64)> {
        self.probes.losses().by_kind
    }

    fn loss_cause(&self) -> &'static str {
        "ring buffer full"
    }

    fn dropped(&self) -> Vec<(&'static str, u64)> {
        let losses: Losses = self.probes.losses();
        vec![
            (
                "processes could not be tracked (tracked-set map full)",
                losses.tracked_map_full,
            ),
            ("RSS updates dropped (RSS map full)", losses.rss_map_full),
        ]
    }

    fn next<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.read(out).await?) })
    }

    fn drain<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, bool> {
        Box::pin(async move {
            self.backlog = Self::drain_ring(
                self.ring.get_mut(),
                &mut self.decoder,
                &mut self.probes,
                out,
            );
            self.backlog
        })
    }

    fn queue_batches(&self) -> usize {
        self.ring_capacity.div_ceil(MAX_BATCH)
    }

    fn memory(&mut self) -> Memory {
        if !self.rss_map {
            return Memory::Host;
        }
        Memory::Known(
            self.probes
                .rss_snapshot()
                .into_iter()
                .map(|(pid, rss)| (pid, from_map(&rss)))
                .collect(),
        )
    }
}

/// A process's memory as the `RSS` map holds it.
fn from_map(rss: &RssValue) -> Usage {
    Usage {
        rss_bytes: rss.total(),
        swap_bytes: Some(rss.swap),
        peak_rss_bytes: Some(rss.peak),
        cpu_ns: None,
        footprint_bytes: None,
    }
}

/// setsid calls of untracked processes kept for their next exec, at most this many.
const UNTRACKED_SETSIDS: usize = 1024;

/// Turns records into events: exec records get the command line and SIGHUP disposition;
/// exec records of untracked processes (sent only when command lines are matched) are
/// adopted or dropped; the setsid record such an exec's program sends just before it (the
/// call the process made while untracked, `setsid cmd`) waits for that exec's verdict and
/// comes out just before it when the process is adopted.
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
/// children forked by them before their entry was in the kernel map. `None` when tracing
/// every process.
fn seed_tracked_set(
    probes: &mut Probes,
    matcher: &Matcher,
) -> anyhow::Result<Option<HashSet<u32>>> {
    let mut seeded = HashSet::new();
    for _pass in 0..2 {
        let Some(chosen) = super::shared::seeds(matcher, &host::process_infos())? else {
            return Ok(None);
        };
        for (pid, why) in chosen {
            if probes.track(pid, why) {
                seeded.insert(pid);
            }
        }
    }
    Ok(Some(seeded))
}
