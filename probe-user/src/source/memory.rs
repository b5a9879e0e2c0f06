//! RSS by sampling, for sources whose kernel side cannot report it (DTrace on macOS has no
//! probe for resident memory): each tick, the watched processes are read and a change of at
//! least a step becomes an `rss` event, as the eBPF source's map samples do.
use std::collections::HashMap;

use crate::event::{Event, EventKind};

/// A process's memory and CPU time, read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub rss_bytes: u64,
    pub cpu_ns: Option<u64>,
}

/// Reads `/proc/PID/statm` and `stat`; None when the process is gone.
#[cfg(target_os = "linux")]
pub fn usage(pid: u32) -> Option<Usage> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    Some(Usage {
        rss_bytes: pages.saturating_mul(page),
        cpu_ns: crate::procfs::read_cpu_ns(pid),
    })
}

/// `proc_pidinfo(PROC_PIDTASKINFO)`: resident size in bytes, CPU time in Mach time units.
#[cfg(target_os = "macos")]
pub fn usage(pid: u32) -> Option<Usage> {
    let mut info: libc::proc_taskinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
    // SAFETY: `info` is a writable proc_taskinfo of the size given.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTASKINFO,
            0,
            (&raw mut info).cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    let mach = info.pti_total_user.saturating_add(info.pti_total_system);
    Some(Usage {
        rss_bytes: info.pti_resident_size,
        cpu_ns: Some(mach_to_ns(mach)),
    })
}

/// Mach absolute time to nanoseconds (1:1 on Intel, 125:3 on Apple silicon).
#[cfg(target_os = "macos")]
fn mach_to_ns(ticks: u64) -> u64 {
    // libc marks its binding deprecated in favour of the mach2 crate; one call does not
    // justify a dependency, so it is declared here as <mach/mach_time.h> has it.
    #[repr(C)]
    struct Timebase {
        numer: u32,
        denom: u32,
    }
    unsafe extern "C" {
        fn mach_timebase_info(info: *mut Timebase) -> libc::c_int;
    }
    let mut base = Timebase { numer: 0, denom: 0 };
    // SAFETY: `base` is a writable mach_timebase_info_data_t.
    if unsafe { mach_timebase_info(&mut base) } != 0 || base.denom == 0 {
        return ticks;
    }
    (u128::from(ticks) * u128::from(base.numer) / u128::from(base.denom)) as u64
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn usage(_pid: u32) -> Option<Usage> {
    None
}

/// Which processes to sample and what was last reported for each.
pub struct RssSampler {
    step: u64,
    /// pid → (comm, last reported RSS, highest RSS seen).
    watched: HashMap<u32, (String, Option<u64>, u64)>,
}

impl RssSampler {
    pub fn new(step: u64) -> Self {
        Self {
            step,
            watched: HashMap::new(),
        }
    }

    /// Follows the processes the events name: exec, fork and existing start a watch, exit
    /// ends it. Bounded by the processes alive, since each exit removes its entry.
    pub fn follow(&mut self, event: &Event) {
        match event.kind {
            EventKind::Exit { .. } => {
                self.watched.remove(&event.pid);
            }
            EventKind::Exec { .. } | EventKind::Fork { .. } | EventKind::Existing { .. } => {
                let entry = self
                    .watched
                    .entry(event.pid)
                    .or_insert_with(|| (String::new(), None, 0));
                entry.0.clone_from(&event.comm);
            }
            _ => {}
        }
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Reads every watched process with `read` and appends an `rss` event for each whose
    /// RSS moved by at least the step since the last one. A process that can no longer be
    /// read is gone (its exit may still be on its way) and is dropped.
    pub fn sample(
        &mut self,
        now_ns: u64,
        read: impl Fn(u32) -> Option<Usage>,
        out: &mut Vec<Event>,
    ) {
        let step = self.step;
        self.watched.retain(|&pid, (comm, last, peak)| {
            let Some(now) = read(pid) else {
                return false;
            };
            *peak = (*peak).max(now.rss_bytes);
            let changed = match *last {
                None => now.rss_bytes > 0,
                Some(last) => now.rss_bytes.abs_diff(last) >= step,
            };
            if changed {
                *last = Some(now.rss_bytes);
                out.push(Event {
                    kind: EventKind::Rss {
                        rss_bytes: now.rss_bytes,
                        peak_rss_bytes: *peak,
                        cpu_ns: now.cpu_ns,
                    },
                    time_ns: now_ns,
                    pid,
                    comm: comm.clone(),
                });
            }
            true
        });
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

    fn rss_of(events: &[Event]) -> Vec<(u32, u64, u64)> {
        events
            .iter()
            .map(|e| match e.kind {
                EventKind::Rss {
                    rss_bytes,
                    peak_rss_bytes,
                    ..
                } => (e.pid, rss_bytes, peak_rss_bytes),
                _ => panic!("not rss: {e:?}"),
            })
            .collect()
    }

    #[test]
    fn a_change_of_at_least_the_step_is_reported_with_the_peak() {
        let mut sampler = RssSampler::new(100);
        sampler.follow(&fork(7));
        let mut out = Vec::new();
        let at = |bytes| {
            move |_| {
                Some(Usage {
                    rss_bytes: bytes,
                    cpu_ns: None,
                })
            }
        };
        sampler.sample(1, at(1000), &mut out);
        sampler.sample(2, at(1050), &mut out);
        sampler.sample(3, at(1200), &mut out);
        sampler.sample(4, at(900), &mut out);
        assert_eq!(
            rss_of(&out),
            vec![(7, 1000, 1000), (7, 1200, 1200), (7, 900, 1200)]
        );
        assert_eq!(out[0].comm, "grower");
    }

    #[test]
    fn exited_and_vanished_processes_stop_being_sampled() {
        let mut sampler = RssSampler::new(1);
        sampler.follow(&fork(7));
        sampler.follow(&fork(8));
        sampler.follow(&Event {
            kind: EventKind::Exit {
                ppid: 1,
                exit_code: Some(0),
                exit_signal: None,
                core_dumped: false,
                peak_rss_bytes: 0,
            },
            ..fork(7)
        });
        assert_eq!(sampler.watched(), 1);
        sampler.sample(1, |_| None, &mut Vec::new());
        assert_eq!(sampler.watched(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let me = usage(std::process::id()).expect("readable");
        assert!(me.rss_bytes > 1 << 20, "{me:?}");
        assert!(me.cpu_ns.is_some());
        assert_eq!(usage(u32::MAX), None);
    }
}
