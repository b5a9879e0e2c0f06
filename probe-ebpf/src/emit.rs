//! Writing records into the ring buffer, counting the ones that do not fit.
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{bpf_get_current_pid_tgid, generated::bpf_ktime_get_boot_ns},
};
use probe_common::{COMM_LEN, Header};

use crate::maps::{EVENTS, bump};

/// A header for subject `pid`, stamped with the current thread and the boot-time clock.
#[inline(always)]
pub fn header(kind: u16, pid: u32, comm: [u8; COMM_LEN]) -> Header {
    Header {
        kind,
        flags: 0,
        pid,
        tid: bpf_get_current_pid_tgid() as u32,
        _pad: 0,
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        comm,
    }
}

/// The current task's name, loaded from its task_struct: bpf_get_current_comm cost 70-130
/// ns more per record in a fork+exec+exit loop (bpf_stats, 6.18).
#[inline(always)]
pub fn current_comm() -> [u8; COMM_LEN] {
    crate::task::comm(crate::task::current())
}

/// Sends a record built on the stack (small records only: the stack is 512 bytes).
#[inline(always)]
pub fn send<T: 'static>(kind: u16, record: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(wakeup());
        }
        None => bump(u32::from(kind)),
    }
}

/// Share of the ring (1/16) that must be waiting before a record wakes the reader.
const WAKE_SHIFT: u64 = 4;

/// Waking the reader for every record costs a cross-CPU wake-up, several microseconds in
/// the probed task for rare events (exec, exit, fork, setsid: measured in cargo xtask
/// bench). hupwatch drains the ring on a short timer instead, and is woken only when the
/// ring starts to fill, so a burst is still read at once.
#[inline(always)]
pub fn wakeup() -> u64 {
    let waiting = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let size = EVENTS.query(u64::from(BPF_RB_RING_SIZE));
    if waiting >= size >> WAKE_SHIFT {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}
