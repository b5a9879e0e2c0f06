//! The one RSS sampler every source uses. Each tick it reads the watched processes, from
//! wherever the source has their memory (the eBPF programs' map where `rss_stat` is
//! attached; the process table otherwise, as on macOS or a kernel that refuses
//! `rss_stat`), and a change of at least a step becomes an `rss` event. It also gives an
//! exit the peak it saw when the source's exit record carries none.
use std::collections::HashMap;

use crate::event::{Event, EventKind, Existing};
pub use crate::host::Usage;

/// What one read of a watched process found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Now(Usage),
    /// Alive, but its memory is not known yet.
    Unknown,
    /// Gone (its exit may still be on its way): it is no longer watched.
    Gone,
}

impl From<Option<Usage>> for Reading {
    fn from(usage: Option<Usage>) -> Self {
        usage.map_or(Reading::Gone, Reading::Now)
    }
}

/// Reads that find a process gone before the sampler forgets it (and its peak) without
/// having seen its exit.
const GONE_READS_KEPT: u8 = 2;

/// What the sampler keeps per watched process.
#[derive(Default)]
struct Watched {
    comm: String,
    /// The RSS last reported; `None` before the first report.
    reported: Option<u64>,
    /// Swap last reported, so that a process paging out is reported too.
    reported_swap: Option<u64>,
    /// Footprint last reported (macOS): compressed memory grows it, not the RSS.
    reported_footprint: Option<u64>,
    /// The CPU time last read (reported or not).
    cpu_seen: Option<u64>,
    /// The last report showed the CPU time where the one before had left it: the tracker
    /// knows it stopped, and until it moves again nothing more needs saying.
    cpu_still_told: bool,
    /// Swap last read, for its exit.
    swap: Option<u64>,
    /// Reads in a row that found it gone.
    gone: u8,
    peak: Option<u64>,
}

/// Which processes to sample and what was last reported for each.
pub struct RssSampler {
    step: u64,
    watched: HashMap<u32, Watched>,
    /// Every this many samples, CPU time is read for every watched process, and one whose
    /// CPU time moved since the last read is reported though its memory holds still, as is
    /// one that just stopped, once: the tracker tells spinning and idle processes from
    /// these readings, which a memory change would never bring. A silence then means the
    /// CPU time held still.
    cpu_every: u32,
    samples: u32,
}

impl RssSampler {
    pub fn new(step: u64) -> Self {
        Self {
            step,
            watched: HashMap::new(),
            cpu_every: u32::MAX,
            samples: 0,
        }
    }

    /// Follows the processes the events name: exec, fork and existing start a watch, exit
    /// ends it, after giving the exit the peak seen if its source had none. Bounded by the
    /// processes alive, since each exit (or a read that finds it gone) removes its entry.
    pub fn follow(&mut self, event: &mut Event) {
        match &mut event.kind {
            EventKind::Exit {
                peak_rss_bytes,
                swap_bytes,
                ..
            } => {
                let seen = self.watched.remove(&event.pid).unwrap_or_default();
                *peak_rss_bytes = (*peak_rss_bytes).max(seen.peak);
                *swap_bytes = swap_bytes.or(seen.swap);
            }
            EventKind::Exec { .. } | EventKind::Fork { .. } => {
                self.watch(event.pid, &event.comm);
            }
            // It carries its memory and CPU time: that is the reading reported.
            EventKind::Existing(Existing {
                rss_bytes,
                swap_bytes,
                cpu_ns,
                ..
            }) => {
                self.watch(event.pid, &event.comm);
                if let Some(watched) = self.watched.get_mut(&event.pid) {
                    watched.reported = Some(*rss_bytes);
                    watched.reported_swap = *swap_bytes;
                    watched.peak = watched.peak.max(Some(*rss_bytes));
                    watched.cpu_seen = *cpu_ns;
                }
            }
            _ => {}
        }
    }

    /// Starts watching `pid` (or renames it).
    pub fn watch(&mut self, pid: u32, comm: &str) {
        let watched = self.watched.entry(pid).or_default();
        if watched.comm != comm {
            watched.comm = comm.to_string();
        }
    }

    /// Reads CPU time every `samples` samples (see [`RssSampler::cpu_every`]).
    pub fn with_cpu_every(mut self, samples: u32) -> Self {
        self.cpu_every = samples.max(1);
        self
    }

    pub fn is_watched(&self, pid: u32) -> bool {
        self.watched.contains_key(&pid)
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Reads every watched process with `read` and appends an `rss` event for each whose
    /// RSS or swap moved by at least the step since the last one; `cpu` completes the
    /// readings without a CPU time, for those events only.
    pub fn sample(
        &mut self,
        now_ns: u64,
        mut read: impl FnMut(u32) -> Reading,
        mut cpu: impl FnMut(u32) -> Option<u64>,
        out: &mut Vec<Event>,
    ) {
        let step = self.step;
        self.samples = self.samples.wrapping_add(1);
        let cpu_due = self.samples.is_multiple_of(self.cpu_every);
        self.watched.retain(|&pid, watched| match read(pid) {
            Reading::Now(mut now) => {
                watched.gone = 0;
                let cpu_news = cpu_due && {
                    now.cpu_ns = now.cpu_ns.or_else(|| cpu(pid));
                    watched.cpu_news(now.cpu_ns)
                };
                out.extend(watched.take(pid, now, step, now_ns, &mut cpu, cpu_news));
                true
            }
            Reading::Unknown => true,
            // A process that just exited is a zombie whose exit record may still be
            // queued: its peak waits for that record a little.
            Reading::Gone => {
                watched.gone += 1;
                watched.gone <= GONE_READS_KEPT
            }
        });
    }

    /// Reads at once the processes that the events from `first` on show exec'ing, and
    /// appends their `rss` events: their memory is known from their start, not from the
    /// next tick, which a short-lived process may never see.
    pub fn read_execs(
        &mut self,
        first: usize,
        now_ns: u64,
        mut read: impl FnMut(u32) -> Reading,
        mut cpu: impl FnMut(u32) -> Option<u64>,
        out: &mut Vec<Event>,
    ) {
        let execs: Vec<u32> = out[first..]
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Exec { .. }))
            .map(|e| e.pid)
            .collect();
        for pid in execs {
            if let (Some(watched), Reading::Now(now)) = (self.watched.get_mut(&pid), read(pid)) {
                out.extend(watched.take(pid, now, self.step, now_ns, &mut cpu, false));
            }
        }
    }
}

impl Watched {
    /// Whether a CPU read is worth reporting: the CPU time moved since the last read, or
    /// it stopped and that was not said yet.
    fn cpu_news(&self, cpu_ns: Option<u64>) -> bool {
        cpu_ns.is_some_and(|cpu| self.cpu_seen != Some(cpu) || !self.cpu_still_told)
    }

    /// Takes a reading; the `rss` event to report when RSS or swap moved by `step` or
    /// more since the last one, or when `cpu_news`.
    fn take(
        &mut self,
        pid: u32,
        now: Usage,
        step: u64,
        now_ns: u64,
        cpu: &mut impl FnMut(u32) -> Option<u64>,
        cpu_news: bool,
    ) -> Option<Event> {
        let peak = now.peak_rss_bytes.unwrap_or(0).max(now.rss_bytes);
        self.peak = self.peak.max(Some(peak));
        self.swap = now.swap_bytes.or(self.swap);
        // The first reading is reported whatever it says: 0 is what the kernel counts (a
        // process that just exec'd, or one whose faults before 6.2 sit in its threads'
        // caches until 64 of them are synced), and known, which unknown is not.
        let moved = |last: Option<u64>, now: Option<u64>| match (last, now) {
            (Some(last), Some(now)) => now.abs_diff(last) >= step,
            (None, Some(_)) => true,
            _ => false,
        };
        if !cpu_news
            && !moved(self.reported, Some(now.rss_bytes))
            && !moved(self.reported_swap, now.swap_bytes)
            && !moved(self.reported_footprint, now.footprint_bytes)
        {
            return None;
        }
        self.reported = Some(now.rss_bytes);
        self.reported_swap = now.swap_bytes;
        self.reported_footprint = now.footprint_bytes;
        let cpu_ns = now.cpu_ns.or_else(|| cpu(pid));
        if let Some(cpu_ns) = cpu_ns {
            self.cpu_still_told = self.cpu_seen == Some(cpu_ns);
            self.cpu_seen = Some(cpu_ns);
        }
        Some(Event {
            kind: EventKind::Rss {
                rss_bytes: now.rss_bytes,
                peak_rss_bytes: self.peak.unwrap_or(peak),
                swap_bytes: now.swap_bytes,
                cpu_ns,
                footprint_bytes: now.footprint_bytes,
            },
            time_ns: now_ns,
            pid,
            comm: self.comm.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(pid: u32) -> Event {
        Event {
            kind: EventKind::Fork { ppid: 1 },
            time_ns: 0,
            pid,
            comm: "grower".into(),
        }
    }

    fn exit(pid: u32, peak_rss_bytes: Option<u64>) -> Event {
        Event {
            kind: EventKind::Exit {
                ppid: 1,
                exit_code: Some(0),
                exit_signal: None,
                core_dumped: false,
                peak_rss_bytes,
                swap_bytes: None,
            },
            ..fork(pid)
        }
    }

    fn rss_of(events: &[Event]) -> Vec<(u32, u64, u64, Option<u64>)> {
        events
            .iter()
            .map(|e| match e.kind {
                EventKind::Rss {
                    rss_bytes,
                    peak_rss_bytes,
                    swap_bytes,
                    ..
                } => (e.pid, rss_bytes, peak_rss_bytes, swap_bytes),
                _ => panic!("not rss: {e:?}"),
            })
            .collect()
    }

    fn no_cpu(_: u32) -> Option<u64> {
        None
    }

    fn at(rss_bytes: u64, swap_bytes: u64) -> impl FnMut(u32) -> Reading {
        move |_| {
            Reading::Now(Usage {
                rss_bytes,
                swap_bytes: Some(swap_bytes),
                peak_rss_bytes: None,
                cpu_ns: None,
                footprint_bytes: None,
            })
        }
    }

    #[test]
    fn a_change_of_at_least_the_step_is_reported_with_the_peak() {
        let mut sampler = RssSampler::new(100);
        sampler.follow(&mut fork(7));
        let mut out = Vec::new();
        sampler.sample(1, at(1000, 0), no_cpu, &mut out);
        sampler.sample(2, at(1050, 0), no_cpu, &mut out);
        sampler.sample(3, at(1200, 0), no_cpu, &mut out);
        sampler.sample(4, at(900, 0), no_cpu, &mut out);
        assert_eq!(
            rss_of(&out),
            vec![
                (7, 1000, 1000, Some(0)),
                (7, 1200, 1200, Some(0)),
                (7, 900, 1200, Some(0))
            ]
        );
        assert_eq!(out[0].comm, "grower");
    }

    /// The seconds of the `rss` events of a sampler read every second with the given CPU
    /// times (seconds), memory flat, CPU read every second sample.
    fn cpu_reports(cpu_seconds: &[f64]) -> Vec<(u64, Option<u64>)> {
        let mut sampler = RssSampler::new(100).with_cpu_every(2);
        sampler.follow(&mut fork(7));
        let mut out = Vec::new();
        for (i, &cpu_s) in cpu_seconds.iter().enumerate() {
            let now = (i as u64 + 1) * 1_000_000_000;
            let cpu = move |_| Some((cpu_s * 1e9) as u64);
            sampler.sample(now, at(1000, 0), cpu, &mut out);
        }
        out.iter()
            .map(|e| match e.kind {
                EventKind::Rss { cpu_ns, .. } => (e.time_ns / 1_000_000_000, cpu_ns),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn a_process_using_cpu_is_reported_on_cpu_reads_though_its_memory_holds_still() {
        // 0.8 s of CPU per second: the first reading, then every CPU read (2, 4, 6).
        let busy = cpu_reports(&[0.0, 0.8, 1.6, 2.4, 3.2, 4.0]);
        let times: Vec<u64> = busy.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [1, 2, 4, 6]);
        assert_eq!(busy[2].1, Some(2_400_000_000));
        // A trickle moves the CPU time too: it is reported, for the tracker to call it idle.
        let trickle = cpu_reports(&[0.0, 0.001, 0.002, 0.003, 0.004]);
        assert_eq!(trickle.len(), 3, "{trickle:?}");
    }

    #[test]
    fn a_process_that_stops_using_cpu_is_reported_once_then_not_until_it_moves() {
        let reports = cpu_reports(&[0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2]);
        // 2 and 4 moved; 6 is the first still read, said once; 8 is silent; 10 moved.
        let times: Vec<u64> = reports.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [1, 2, 4, 6, 10], "{reports:?}");
        assert_eq!(
            reports[3].1, reports[2].1,
            "the still reading shows no change"
        );
        // Idle from the start: the first reading, then one still read.
        let idle = cpu_reports(&[0.0; 8]);
        let times: Vec<u64> = idle.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [1, 2]);
    }

    #[test]
    fn an_existing_process_is_judged_from_the_cpu_time_it_came_with() {
        let mut sampler = RssSampler::new(100).with_cpu_every(1);
        let mut existing = Event {
            kind: EventKind::Existing(Existing {
                ppid: 1,
                sid: 7,
                tty: None,
                started_ns: 0,
                cmdline: String::new(),
                hangup: crate::event::Disposition::Default,
                rss_bytes: 1000,
                swap_bytes: Some(0),
                cpu_ns: Some(5),
                from_terminal: false,
                terminal_program: None,
                cwd: None,
                reparented: false,
                session_leader_alive: true,
                session_marker: None,
            }),
            ..fork(7)
        };
        sampler.follow(&mut existing);
        let mut out = Vec::new();
        for t in 1..=3 {
            sampler.sample(t, at(1000, 0), |_| Some(5), &mut out);
        }
        assert_eq!(out.len(), 1, "one still reading, then silence: {out:?}");
    }

    #[test]
    fn a_first_reading_of_zero_is_reported_so_the_size_is_known() {
        let mut sampler = RssSampler::new(100);
        sampler.follow(&mut fork(7));
        let mut out = Vec::new();
        sampler.sample(1, at(0, 0), no_cpu, &mut out);
        sampler.sample(2, at(50, 0), no_cpu, &mut out);
        assert_eq!(rss_of(&out), vec![(7, 0, 0, Some(0))]);
    }

    #[test]
    fn paging_out_is_reported_though_the_rss_holds_still() {
        let mut sampler = RssSampler::new(100);
        sampler.follow(&mut fork(7));
        let mut out = Vec::new();
        sampler.sample(1, at(1000, 0), no_cpu, &mut out);
        sampler.sample(2, at(1000, 50), no_cpu, &mut out);
        sampler.sample(3, at(1000, 500), no_cpu, &mut out);
        assert_eq!(
            rss_of(&out),
            vec![(7, 1000, 1000, Some(0)), (7, 1000, 1000, Some(500))]
        );
    }

    #[test]
    fn the_os_peak_counts_when_it_is_higher_than_any_sample() {
        let mut sampler = RssSampler::new(1);
        sampler.follow(&mut fork(7));
        let mut out = Vec::new();
        let hwm = |_| {
            Reading::Now(Usage {
                rss_bytes: 10,
                swap_bytes: None,
                peak_rss_bytes: Some(300),
                cpu_ns: None,
                footprint_bytes: None,
            })
        };
        sampler.sample(1, hwm, |_| Some(5), &mut out);
        assert_eq!(rss_of(&out), vec![(7, 10, 300, None)]);
        assert!(
            matches!(
                out[0].kind,
                EventKind::Rss {
                    cpu_ns: Some(5),
                    ..
                }
            ),
            "a reported sample gets its CPU time"
        );
    }

    #[test]
    fn an_exit_without_a_peak_gets_the_one_sampled_and_one_with_a_peak_keeps_the_higher() {
        let mut sampler = RssSampler::new(1);
        sampler.follow(&mut fork(7));
        sampler.follow(&mut fork(8));
        sampler.follow(&mut fork(9));
        sampler.sample(1, at(4096, 0), no_cpu, &mut Vec::new());
        let peak = |mut event: Event| match event.kind {
            EventKind::Exit { .. } => {
                sampler.follow(&mut event);
                match event.kind {
                    EventKind::Exit { peak_rss_bytes, .. } => peak_rss_bytes,
                    _ => unreachable!(),
                }
            }
            _ => unreachable!(),
        };
        let mut peak = peak;
        assert_eq!(peak(exit(7, None)), Some(4096));
        assert_eq!(peak(exit(8, Some(8192))), Some(8192));
        // Never sampled: still unknown, not 0.
        assert_eq!(peak(exit(10, None)), None);
    }

    #[test]
    fn an_exec_is_read_at_once() {
        let mut sampler = RssSampler::new(1);
        let mut out = vec![Event {
            kind: EventKind::Exec {
                ppid: 1,
                filename: "/bin/sleep".into(),
                sid: None,
                tty: None,
                parent_tty: None,
                forked_by: None,
                started_ns: None,
                cmdline: None,
                terminal_program: None,
                cwd: None,
                from_terminal: false,
                hangup: None,
            },
            ..fork(7)
        }];
        sampler.follow(&mut out[0]);
        sampler.read_execs(0, 5, at(2048, 0), no_cpu, &mut out);
        assert_eq!(rss_of(&out[1..]), vec![(7, 2048, 2048, Some(0))]);
        assert_eq!(out[1].time_ns, 5);
    }

    #[test]
    fn an_exit_read_after_its_zombie_still_gets_the_peak() {
        let mut sampler = RssSampler::new(1);
        sampler.follow(&mut fork(7));
        sampler.sample(1, at(4096, 0), no_cpu, &mut Vec::new());
        sampler.sample(2, |_| Reading::Gone, no_cpu, &mut Vec::new());
        let mut exit = exit(7, None);
        sampler.follow(&mut exit);
        assert!(matches!(
            exit.kind,
            EventKind::Exit {
                peak_rss_bytes: Some(4096),
                ..
            }
        ));
    }

    #[test]
    fn unknown_keeps_watching_and_gone_stops() {
        let mut sampler = RssSampler::new(1);
        sampler.follow(&mut fork(7));
        sampler.follow(&mut fork(8));
        sampler.follow(&mut exit(7, None));
        assert_eq!(sampler.watched(), 1);
        sampler.sample(1, |_| Reading::Unknown, no_cpu, &mut Vec::new());
        assert_eq!(sampler.watched(), 1, "alive, memory not known yet");
        for _ in 0..GONE_READS_KEPT {
            sampler.sample(1, |_| Reading::Gone, no_cpu, &mut Vec::new());
        }
        assert_eq!(sampler.watched(), 1, "its exit may still be queued");
        sampler.sample(1, |_| Reading::Gone, no_cpu, &mut Vec::new());
        assert_eq!(sampler.watched(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let me = crate::host::usage(std::process::id()).expect("readable");
        assert!(me.rss_bytes > 1 << 20, "{me:?}");
        assert!(me.peak_rss_bytes.unwrap() >= me.rss_bytes, "{me:?}");
        assert!(me.swap_bytes.is_some(), "{me:?}");
        assert!(crate::host::cpu_ns(std::process::id()).is_some());
        assert_eq!(crate::host::usage(u32::MAX), None);
    }
}
