//! Maps shared by the programs. Capacities are upper bounds; user space may lower the ring
//! buffer's size at load time.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use probe_common::{COMM_LEN, RssValue, TTY_NAME_LEN, TrackedValue, counter, reason};

use crate::config::config;

/// The tracked set: tgids of the processes hupwatch reports on (unused when tracing all).
#[map]
pub static TRACKED: HashMap<u32, TrackedValue> = HashMap::with_max_entries(65_536, 0);

/// Process names (`comm`, NUL-padded) that put a process in the tracked set when it execs.
#[map]
pub static MATCH_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(256, 0);

/// Memory counters of tracked processes, by tgid. Aggregated here, sampled by user space.
#[map]
pub static RSS: HashMap<u32, RssValue> = HashMap::with_max_entries(65_536, 0);

/// What a thread had before it called setsid(), until the syscall returns.
#[map]
pub static SETSID_BEFORE: HashMap<u32, SessionBefore> = HashMap::with_max_entries(4_096, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Per-CPU counters: lost records by kind and the other slots of `probe_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::SLOTS, 0);

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SessionBefore {
    pub sid: u32,
    /// 1 when the caller was tracked at entry.
    pub tracked: u32,
    pub tty: [u8; TTY_NAME_LEN],
}

#[inline(always)]
pub fn bump(slot: u32) {
    if let Some(value) = COUNTERS.get_ptr_mut(slot) {
        unsafe { *value += 1 };
    }
}

/// Whether events of process `tgid` are reported. hupwatch itself never is.
#[inline(always)]
pub fn is_tracked(tgid: u32) -> bool {
    if tgid == config!(self_tgid) {
        return false;
    }
    config!(trace_all) != 0 || unsafe { TRACKED.get(&tgid) }.is_some()
}

#[inline(always)]
pub fn track(tgid: u32, why: u32) {
    let value = TrackedValue {
        reason: why,
        _pad: 0,
    };
    if TRACKED.insert(&tgid, &value, 0).is_err() {
        bump(counter::TRACKED_MAP_FULL);
    }
}

/// Adds `tgid` to the tracked set when its (new) comm is one of the matched names.
#[inline(always)]
pub fn track_if_comm_matches(tgid: u32, comm: &[u8; COMM_LEN]) -> bool {
    if unsafe { MATCH_COMMS.get(comm) }.is_some() {
        track(tgid, reason::MATCHED_COMM);
        return true;
    }
    false
}
