//! Where events come from: the kernel (eBPF), /proc (processes that already exist) and
//! recorded files (replay). Each produces the same [`crate::event::Event`] stream.
pub mod dtrace;
#[cfg(target_os = "linux")]
pub mod live;
pub mod recording;
pub mod replay;
pub mod snapshot;

use std::time::Duration;

use crate::matching::Matcher;

/// What a live source is asked to watch and how (the eBPF source on Linux).
pub struct LiveOptions {
    pub matcher: Matcher,
    /// How often the RSS map is sampled.
    pub rss_interval: Duration,
    /// Smallest RSS change reported as an `rss` event.
    pub rss_step: u64,
    /// Size of the kernel's event ring buffer in bytes.
    pub ring_bytes: u32,
}

use crate::{event::Event, event::EventKind, procfs};

/// `reparented` events for the processes in `watch` ((pid, ppid) pairs) whose parent in
/// /proc is no longer the one given. Processes that are gone are skipped: their exit comes
/// from the kernel.
pub fn reparented(watch: &[(u32, u32)], now_ns: u64) -> Vec<Event> {
    watch
        .iter()
        .filter_map(|&(pid, old_ppid)| {
            let stat = procfs::read_stat(pid)?;
            (stat.ppid != old_ppid).then_some(Event {
                kind: EventKind::Reparented {
                    old_ppid,
                    ppid: stat.ppid,
                },
                time_ns: now_ns,
                pid,
                comm: stat.comm,
            })
        })
        .collect()
}
