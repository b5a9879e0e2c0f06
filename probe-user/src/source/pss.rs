//! The proportional-memory sampler (Linux): reads smaps_rollup for the processes the RSS
//! sampler watches, at its own slower cadence, and hands each reading on as a `pss` event.
//! Totals add PSS up; RSS, read every tick, stays the growth signal.
//!
//! smaps_rollup makes the kernel walk every page table of the process while holding its
//! memory map's lock, so a read costs in proportion to what the process maps (see
//! bench/RESULTS.md): each process is read once per `--pss-interval`, and the reads are
//! spread over the RSS ticks in between rather than made all at once. A process is read
//! sooner when it is new (a total waits for every member's PSS before it uses PSS) or
//! when its RSS moved a lot since its last read (a grower's PSS would otherwise lag).
use std::collections::HashMap;

use crate::{
    event::{Event, EventKind, Existing},
    host::Pss,
};

/// A reading is stale once RSS moved by this share of what it was at the read...
const MOVED_SHARE: u64 = 4;
/// ...and by at least this much: small processes wobble by a few pages all the time.
const MOVED_MIN: u64 = 16 << 20;
/// At least this many reads per tick, so a small watched set is read promptly.
const MIN_PER_TICK: usize = 64;

#[derive(Default)]
struct Watched {
    comm: String,
    /// When it was last read (whatever the read found); None until then.
    read_ns: Option<u64>,
    /// RSS plus swap at that read, and as last reported since.
    rss_at_read: Option<u64>,
    rss_now: Option<u64>,
}

impl Watched {
    fn moved(&self) -> bool {
        match (self.rss_at_read, self.rss_now) {
            (Some(then), Some(now)) => {
                let moved = now.abs_diff(then);
                moved >= MOVED_MIN && moved >= then / MOVED_SHARE
            }
            // Read before its RSS was first reported (a fork read at once): as if it had
            // been 0 then.
            (None, Some(now)) => self.read_ns.is_some() && now >= MOVED_MIN,
            _ => false,
        }
    }
}

/// Which processes to read, and when each was read last.
pub struct PssSampler {
    every_ns: u64,
    tick_ns: u64,
    watched: HashMap<u32, Watched>,
}

impl PssSampler {
    /// Reads each process every `every_ns`, on ticks `tick_ns` apart.
    pub fn new(every_ns: u64, tick_ns: u64) -> Self {
        Self {
            every_ns: every_ns.max(1),
            tick_ns: tick_ns.max(1),
            watched: HashMap::new(),
        }
    }

    /// Follows the events as the RSS sampler does: exec, fork and existing start a watch
    /// (an exec is a new image: read it soon), exit ends it; `rss` and `existing` say how
    /// far RSS moved since the last read.
    pub fn follow(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Exit { .. } => {
                self.watched.remove(&event.pid);
            }
            EventKind::Exec { .. } => {
                let watched = self.entry(event.pid, &event.comm);
                watched.read_ns = None;
                watched.rss_at_read = None;
            }
            EventKind::Fork { .. } => self.watch(event.pid, &event.comm),
            EventKind::Existing(Existing {
                rss_bytes,
                swap_bytes,
                ..
            }) => {
                let watched = self.entry(event.pid, &event.comm);
                watched.rss_now = Some(rss_bytes.saturating_add(swap_bytes.unwrap_or(0)));
            }
            EventKind::Rss {
                rss_bytes,
                swap_bytes,
                ..
            } => {
                if let Some(watched) = self.watched.get_mut(&event.pid) {
                    watched.rss_now = Some(rss_bytes.saturating_add(swap_bytes.unwrap_or(0)));
                }
            }
            _ => {}
        }
    }

    /// Starts watching `pid` (or renames it).
    pub fn watch(&mut self, pid: u32, comm: &str) {
        self.entry(pid, comm);
    }

    fn entry(&mut self, pid: u32, comm: &str) -> &mut Watched {
        let watched = self.watched.entry(pid).or_default();
        if watched.comm != comm {
            watched.comm = comm.to_string();
        }
        watched
    }

    /// Keeps only the processes `watched` still names (the RSS sampler forgets those it
    /// found gone, whose exit may never come).
    pub fn retain(&mut self, mut watched: impl FnMut(u32) -> bool) {
        self.watched.retain(|&pid, _| watched(pid));
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// One tick: reads with `read` the processes that are due, at most this tick's share,
    /// and appends a `pss` event for each that answered. Due, most urgent first: RSS moved
    /// a lot since the last read, never read, then last read `--pss-interval` ago or more,
    /// oldest first. A read that finds nothing (gone, unreadable) waits a whole interval.
    pub fn sample(
        &mut self,
        now_ns: u64,
        mut read: impl FnMut(u32) -> Option<Pss>,
        out: &mut Vec<Event>,
    ) {
        let mut due: Vec<(u8, u64, u32)> = self
            .watched
            .iter()
            .filter_map(|(&pid, w)| {
                let rank = if w.moved() {
                    0
                } else if w.read_ns.is_none() {
                    1
                } else if now_ns.saturating_sub(w.read_ns?) >= self.every_ns {
                    2
                } else {
                    return None;
                };
                Some((rank, w.read_ns.unwrap_or(0), pid))
            })
            .collect();
        let share = self.share();
        if due.len() > share {
            due.select_nth_unstable(share);
            due.truncate(share);
        }
        for (_, _, pid) in due {
            let Some(watched) = self.watched.get_mut(&pid) else {
                continue;
            };
            watched.read_ns = Some(now_ns);
            watched.rss_at_read = watched.rss_now;
            if let Some(pss) = read(pid) {
                out.push(Event {
                    kind: EventKind::Pss {
                        pss_bytes: pss.pss_bytes,
                        swap_pss_bytes: pss.swap_pss_bytes,
                    },
                    time_ns: now_ns,
                    pid,
                    comm: watched.comm.clone(),
                });
            }
        }
    }

    /// Reads per tick: twice the steady pace of one read per process per interval, so a
    /// backlog (every process at start, a burst of new ones) clears within half an
    /// interval.
    fn share(&self) -> usize {
        let ticks = (self.every_ns / self.tick_ns).max(1) as usize;
        (self.watched.len() * 2).div_ceil(ticks).max(MIN_PER_TICK)
    }
}

/// A `pss` event for each process an `existing` event names whose PSS `read` can say, for
/// a one-shot look (`hupwatch sessions` without a daemon): read once, at `now_ns`.
pub fn read_existing(
    events: &[Event],
    now_ns: u64,
    mut read: impl FnMut(u32) -> Option<Pss>,
) -> Vec<Event> {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Existing(_)))
        .filter_map(|e| {
            let pss = read(e.pid)?;
            Some(Event {
                kind: EventKind::Pss {
                    pss_bytes: pss.pss_bytes,
                    swap_pss_bytes: pss.swap_pss_bytes,
                },
                time_ns: now_ns,
                pid: e.pid,
                comm: e.comm.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MIB: u64 = 1 << 20;

    fn fork(pid: u32) -> Event {
        Event {
            kind: EventKind::Fork { ppid: 1 },
            time_ns: 0,
            pid,
            comm: format!("p{pid}"),
        }
    }

    fn rss(pid: u32, rss_bytes: u64) -> Event {
        Event {
            kind: EventKind::Rss {
                rss_bytes,
                peak_rss_bytes: rss_bytes,
                swap_bytes: Some(0),
                cpu_ns: None,
                footprint_bytes: None,
            },
            ..fork(pid)
        }
    }

    fn pss(bytes: u64) -> impl FnMut(u32) -> Option<Pss> {
        move |_| {
            Some(Pss {
                pss_bytes: bytes,
                swap_pss_bytes: Some(0),
                pss_anon_bytes: None,
                pss_file_bytes: None,
                pss_shmem_bytes: None,
            })
        }
    }

    fn pids(events: &[Event]) -> Vec<u32> {
        let mut pids: Vec<u32> = events.iter().map(|e| e.pid).collect();
        pids.sort_unstable();
        pids
    }

    #[test]
    fn a_recorded_pss_line_reads_back_and_a_missing_swap_pss_is_unknown() {
        let line = r#"{"event":"pss","pss_bytes":261120,"swap_pss_bytes":0,"time_ns":1,"pid":7,"comm":"sleep"}"#;
        let event: Event = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), line);
        let older = r#"{"event":"pss","pss_bytes":4096,"time_ns":1,"pid":7,"comm":"sleep"}"#;
        let event: Event = serde_json::from_str(older).unwrap();
        assert!(matches!(
            event.kind,
            EventKind::Pss {
                pss_bytes: 4096,
                swap_pss_bytes: None
            }
        ));
    }

    #[test]
    fn a_one_shot_look_reads_each_existing_process_once() {
        let existing: Event = serde_json::from_value(serde_json::json!({
            "event": "existing", "ppid": 1, "sid": 7, "tty": null, "started_ns": 0,
            "cmdline": "x", "hangup": "default", "rss_bytes": 4096, "cpu_ns": null,
            "from_terminal": false, "reparented": false, "session_leader_alive": true,
            "time_ns": 0, "pid": 7, "comm": "x"
        }))
        .unwrap();
        let events = [existing, fork(8)];
        let read = read_existing(&events, 5, pss(MIB));
        assert_eq!(pids(&read), [7], "existing events only");
        assert_eq!(read[0].time_ns, 5);
        assert!(
            read_existing(&events, 5, |_| None).is_empty(),
            "unknown is no event"
        );
    }

    #[test]
    fn each_process_is_read_once_an_interval() {
        let mut sampler = PssSampler::new(30 * SECOND, SECOND);
        sampler.follow(&fork(7));
        let mut out = Vec::new();
        sampler.sample(SECOND, pss(5 * MIB), &mut out);
        assert_eq!(pids(&out), [7], "new: read at once");
        assert!(matches!(
            out[0].kind,
            EventKind::Pss {
                pss_bytes,
                swap_pss_bytes: Some(0)
            } if pss_bytes == 5 * MIB
        ));
        out.clear();
        for t in 2..31 {
            sampler.sample(t * SECOND, pss(5 * MIB), &mut out);
        }
        assert!(out.is_empty(), "not again within the interval: {out:?}");
        sampler.sample(31 * SECOND, pss(5 * MIB), &mut out);
        assert_eq!(pids(&out), [7]);
    }

    #[test]
    fn a_large_set_is_spread_over_the_ticks() {
        let mut sampler = PssSampler::new(30 * SECOND, SECOND);
        for pid in 1..=3000 {
            sampler.follow(&fork(pid));
        }
        let mut per_tick = Vec::new();
        for t in 1..=60 {
            let mut out = Vec::new();
            sampler.sample(t * SECOND, pss(MIB), &mut out);
            per_tick.push(out.len());
        }
        // 3000 * 2 / 30 = 200 a tick until all are read, then about 100 a tick.
        assert_eq!(per_tick[0], 200);
        assert!(per_tick.iter().all(|&n| n <= 200), "{per_tick:?}");
        let read: usize = per_tick[..30].iter().sum();
        assert!(
            read >= 3000,
            "everyone read within the first interval: {read}"
        );
    }

    #[test]
    fn a_process_whose_rss_moved_a_lot_is_read_again_soon() {
        let mut sampler = PssSampler::new(30 * SECOND, SECOND);
        sampler.follow(&fork(7));
        sampler.follow(&rss(7, 100 * MIB));
        let mut out = Vec::new();
        sampler.sample(SECOND, pss(60 * MIB), &mut out);
        sampler.follow(&rss(7, 110 * MIB));
        sampler.sample(2 * SECOND, pss(70 * MIB), &mut out);
        assert_eq!(out.len(), 1, "10 MiB is not a lot");
        sampler.follow(&rss(7, 200 * MIB));
        sampler.sample(3 * SECOND, pss(160 * MIB), &mut out);
        assert_eq!(out.len(), 2, "doubling is");
        // A fork read before its first RSS report, which then says 100 MiB.
        sampler.follow(&fork(8));
        sampler.sample(4 * SECOND, pss(MIB), &mut out);
        sampler.follow(&rss(8, 100 * MIB));
        sampler.sample(5 * SECOND, pss(90 * MIB), &mut out);
        assert_eq!(pids(&out[2..]), [8, 8]);
    }

    #[test]
    fn unreadable_waits_an_interval_and_exit_forgets() {
        let mut sampler = PssSampler::new(30 * SECOND, SECOND);
        sampler.follow(&fork(7));
        sampler.follow(&fork(8));
        let mut reads = 0;
        let mut out = Vec::new();
        for t in 1..=10 {
            sampler.sample(
                t * SECOND,
                |_| {
                    reads += 1;
                    None
                },
                &mut out,
            );
        }
        assert_eq!((reads, out.len()), (2, 0), "unknown is no event, not 0");
        let exit = Event {
            kind: EventKind::Exit {
                ppid: 1,
                exit_code: Some(0),
                exit_signal: None,
                core_dumped: false,
                peak_rss_bytes: None,
                swap_bytes: None,
            },
            ..fork(7)
        };
        sampler.follow(&exit);
        sampler.retain(|pid| pid != 8);
        assert_eq!(sampler.watched(), 0);
    }
}
