//! Where events come from: the kernel (eBPF), /proc (processes that already exist) and
//! recorded files (replay). Each produces the same [`crate::event::Event`] stream.
pub mod dtrace;
pub mod killer;
mod late_origin;
#[cfg(target_os = "linux")]
pub mod live;
pub mod memory;
pub mod poll;
pub mod pss;
pub mod recording;
pub mod replay;
pub mod select;
pub mod shared;
pub mod snapshot;
pub mod tracer;

use std::time::Duration;

use crate::matching::Matcher;

/// Where live events come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// eBPF programs (Linux; root or CAP_BPF)
    Ebpf,
    /// DTrace (macOS; root, and System Integrity Protection must allow dtrace)
    Dtrace,
    /// Polling the process table (any OS, any user; no signals)
    Proc,
}

impl SourceKind {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ebpf => "ebpf",
            Self::Dtrace => "dtrace",
            Self::Proc => "proc",
        }
    }

    /// eBPF on Linux, DTrace on macOS.
    pub const fn native() -> Self {
        if cfg!(target_os = "macos") {
            Self::Dtrace
        } else {
            Self::Ebpf
        }
    }
}

/// `--pss-interval`'s default: smaps_rollup walks page tables (about 35 µs a small
/// process and 8 to 11 ms a resident GiB in bench/RESULTS.md), so every minute keeps 10,000
/// processes under 1 % of one CPU where 30 s did not; totals move slowly next to the
/// growth RSS shows every tick, and new and fast-moving processes are read sooner anyway.
pub const DEFAULT_PSS_INTERVAL: Duration = Duration::from_secs(60);

/// What a live source is asked to watch and how.
#[derive(Clone)]
pub struct LiveOptions {
    /// The source asked for; `None` picks this OS's tracer and falls back to polling.
    pub source: Option<SourceKind>,
    /// How often the proc source looks at the process table.
    pub poll_interval: Duration,
    pub matcher: Matcher,
    /// How often the RSS map is sampled.
    pub rss_interval: Duration,
    /// How often CPU time is read for every watched process (for `cpu_spin`).
    pub cpu_interval: Duration,
    /// How often each watched process's proportional memory (PSS) is read, on Linux.
    pub pss_interval: Duration,
    /// Smallest RSS change reported as an `rss` event.
    pub rss_step: u64,
    /// Size of the kernel's event ring buffer in bytes (eBPF only).
    pub ring_bytes: u32,
    /// Print a refused program's verifier log instead of writing it to a file.
    pub verbose: bool,
    /// The user to become once attached (`run --user`); None stays who it is.
    pub run_as: Option<crate::privileges::SwitchTo>,
    /// Keep CAP_KILL after attaching (`run --reap-before` ends processes).
    pub keep_kill: bool,
}

use crate::{event::Event, event::EventKind, watch::Watch};

/// /proc as it was right after the events queued before it were read, taken because the
/// kernel lost some: what the tracker re-syncs with.
pub struct Rescan {
    /// An `existing` event for every live process.
    pub scan: Vec<Event>,
    /// Which of them are watched.
    pub watch: Watch,
    /// Events lost since the previous re-sync.
    pub lost: u64,
}

impl Rescan {
    /// Scans the process table with the source's clock, for a source that has lost `lost`
    /// events in all and had re-synced after `synced` of them; `synced` moves up to `lost`.
    pub fn take(lost: u64, synced: &mut u64, clock: &crate::decode::Clock, watch: Watch) -> Self {
        let scan = snapshot::scan_existing_with(clock, std::process::id());
        let rescan = Self {
            scan,
            watch,
            lost: lost.saturating_sub(*synced),
        };
        *synced = lost;
        rescan
    }
}

/// `reparented` events for the processes in `watch` ((pid, ppid) pairs) whose parent in
/// /proc is no longer the one given. Processes that are gone are skipped: their exit comes
/// from the kernel.
pub fn reparented(watch: &[(u32, u32)], now_ns: u64) -> Vec<Event> {
    watch
        .iter()
        .filter_map(|&(pid, old_ppid)| {
            let (ppid, comm) = crate::host::parent_of(pid)?;
            (ppid != old_ppid).then_some(Event {
                kind: EventKind::Reparented { old_ppid, ppid },
                time_ns: now_ns,
                pid,
                comm,
            })
        })
        .collect()
}
