//! Maps shared by the programs. Capacities are upper bounds; user space may lower the ring
//! buffer's and the tracked flags' sizes at load time.
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use probe_common::{
    COMM_LEN, PID_MAX_LIMIT, RssValue, TRACKED_FLAGS_PER_ENTRY, TTY_NAME_LEN, TrackedValue,
    counter, reason,
};

use crate::config::config;

/// The tracked set: tgids of the processes hupwatch reports on (unused when tracing all).
#[map]
pub static TRACKED: HashMap<u32, TrackedValue> = HashMap::with_max_entries(65_536, 0);

/// The tracked set again, one byte per tgid, for the test every hot program makes first:
/// an array lookup, which the verifier inlines, where a hash lookup hashes the key and
/// walks a bucket (per run on an untracked task, from bpf_stats: rss_stat 88-108 -> 63-73
/// ns, signal_generate 105-109 -> 56-68, where an empty program costs 50). Bytes, not
/// bits, so that programs on other CPUs and user space (through mmap) each store their
/// own byte without rewriting a neighbour's. User space sizes it to the kernel's pid_max
/// at load; a tgid beyond it (pid_max raised later) is looked up in TRACKED instead.
/// TRACKED stays the set user space reads back.
#[map]
pub static TRACKED_FLAGS: Array<u64> = Array::with_max_entries(
    PID_MAX_LIMIT / TRACKED_FLAGS_PER_ENTRY,
    BPF_F_MMAPABLE as u32,
);

/// Process names (`comm`, NUL-padded) that put a process in the tracked set when it execs.
#[map]
pub static MATCH_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(256, 0);

/// Memory counters of tracked processes, by tgid. Aggregated here, sampled by user space.
#[map]
pub static RSS: HashMap<u32, RssValue> = HashMap::with_max_entries(65_536, 0);

/// Who forked each process, until it execs as a tracked one: a watched program whose parent
/// exited before its exec (`sh -c 'agent &'`, a wrapper that sleeps then execs) is already
/// init's at the exec, and only this tells it from one init started. Slot `pid %
/// FORKED_BY_SLOTS` holds `pid << 32 | forker` in one store: an array store the verifier
/// inlines costs about 30 ns per fork, where an LRU hash insert cost about 750. A slot is
/// overwritten only after FORKED_BY_SLOTS more pids, far more than a fork-to-exec takes.
#[map]
pub static FORKED_BY: Array<u64> = Array::with_max_entries(FORKED_BY_SLOTS, 0);

const FORKED_BY_SLOTS: u32 = 8_192;

/// Notes that `forker` forked `child` (0: a forker that is not its parent).
#[inline(always)]
pub fn note_forker(child: u32, forker: u32) {
    if let Some(slot) = FORKED_BY.get_ptr_mut(child % FORKED_BY_SLOTS) {
        unsafe { core::ptr::write_volatile(slot, (u64::from(child) << 32) | u64::from(forker)) };
    }
}

/// Who forked `pid`, 0 when unknown (forked before hupwatch started, or long ago).
#[inline(always)]
pub fn forker_of(pid: u32) -> u32 {
    let Some(slot) = FORKED_BY.get_ptr_mut(pid % FORKED_BY_SLOTS) else {
        return 0;
    };
    let noted = unsafe { core::ptr::read_volatile(slot) };
    if (noted >> 32) as u32 == pid {
        noted as u32
    } else {
        0
    }
}

/// What a thread had before it called setsid(), by `tid % SETSID_SLOTS`: kept until the
/// syscall returns, and for an untracked caller until its next exec, which reports it if
/// that exec makes the process tracked (`setsid agent` with `--match agent`). An array
/// slot the verifier inlines, not a hash map: in a process just forked (where setsid is
/// called) every hash update, lookup and delete met cold caches and cost 300-450 ns each
/// (bpf_stats, fork+setsid+exit on the 6.18 build machine), where the whole program
/// should cost little more than an empty one (73 ns). Two threads a multiple of
/// SETSID_SLOTS apart in setsid() at once would share a slot: the later one wins and the
/// other's call is reported with no old session.
#[map]
pub static SETSID_SLOTS: Array<SetsidSlot> = Array::with_max_entries(SETSID_SLOTS_LEN, 0);

pub const SETSID_SLOTS_LEN: u32 = 4_096;

/// The signal a thread is setting the action of, by `tid % SIGACTION_SLOTS_LEN`, from
/// rt_sigaction's entry to its return, where the action is read as the kernel then holds
/// it. An array slot, like SETSID_SLOTS; two threads a multiple apart in rt_sigaction at
/// once share a slot, and the later one's signal is the one read for both (each read is
/// still the kernel's own).
#[map]
pub static SIGACTION_SLOTS: Array<SigactionSlot> = Array::with_max_entries(SIGACTION_SLOTS_LEN, 0);

pub const SIGACTION_SLOTS_LEN: u32 = 4_096;

#[derive(Clone, Copy)]
#[repr(C)]
pub struct SigactionSlot {
    /// The thread in rt_sigaction(); 0 when the slot is free.
    pub tid: u32,
    pub sig: u32,
}

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Per-CPU counters: lost records by kind and the other slots of `probe_common::counter`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::SLOTS, 0);

/// One cache line: a slot touched by a new thread is a miss, and a second line a second one.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct SetsidSlot {
    /// The thread in setsid(); 0 when the slot is free.
    pub tid: u32,
    /// [`setsid_state`]'s values.
    pub state: u16,
    /// 1 when the caller was tracked at entry.
    pub tracked: u16,
    pub old_sid: u32,
    /// The syscall's return (a session id or a negative errno), once it returned.
    pub ret: i32,
    /// The caller's fork time, which tells its exec from a later process's with the same
    /// pid.
    pub started: u64,
    pub old_tty: [u8; TTY_NAME_LEN],
    /// The caller's name then (`setsid`), which the exec will have replaced.
    pub comm: [u8; COMM_LEN],
}

pub mod setsid_state {
    /// In the syscall.
    pub const ENTERED: u16 = 1;
    /// Returned in a process that was not tracked: waiting for its exec.
    pub const RETURNED: u16 = 2;
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
    if config!(trace_all) != 0 {
        return true;
    }
    match tracked_flag(tgid) {
        Some(flag) => unsafe { *flag != 0 },
        None => unsafe { TRACKED.get(&tgid) }.is_some(),
    }
}

/// The byte of `TRACKED_FLAGS` that says whether `tgid` is tracked; None beyond the map.
#[inline(always)]
fn tracked_flag(tgid: u32) -> Option<*mut u8> {
    let entry = TRACKED_FLAGS.get_ptr_mut(tgid / TRACKED_FLAGS_PER_ENTRY)?;
    Some(unsafe {
        entry
            .cast::<u8>()
            .add((tgid % TRACKED_FLAGS_PER_ENTRY) as usize)
    })
}

/// Adds `tgid` to the tracked set: TRACKED first, then the flag, so a flag is only ever
/// set for a tgid TRACKED holds (user space reads TRACKED back).
#[inline(always)]
pub fn track(tgid: u32, why: u32) {
    let value = TrackedValue {
        reason: why,
        _pad: 0,
    };
    if TRACKED.insert(&tgid, &value, 0).is_err() {
        bump(counter::TRACKED_MAP_FULL);
        return;
    }
    if let Some(flag) = tracked_flag(tgid) {
        unsafe { core::ptr::write_volatile(flag, 1) };
    }
}

/// Takes `tgid` out of the tracked set, flag first (the reverse of `track`).
#[inline(always)]
pub fn untrack(tgid: u32) {
    if let Some(flag) = tracked_flag(tgid) {
        unsafe { core::ptr::write_volatile(flag, 0) };
    }
    let _ = TRACKED.remove(&tgid);
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
