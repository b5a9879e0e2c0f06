//! Writing records into the ring buffer, counting the ones that do not fit.
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_ktime_get_boot_ns,
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

#[inline(always)]
pub fn current_comm() -> [u8; COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; COMM_LEN])
}

/// Sends a record built on the stack (small records only: the stack is 512 bytes).
#[inline(always)]
pub fn send<T: 'static>(kind: u16, record: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(0);
        }
        None => bump(u32::from(kind)),
    }
}
