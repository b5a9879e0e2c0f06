//! Reading kernel structs of a task through offsets resolved from BTF by user space.
//! Every read tolerates an unresolved offset or a NULL pointer by returning a neutral value.
//!
//! The task comes from bpf_get_current_task_btf (5.11+, every kernel hupwatch supports),
//! so the verifier types it and each pointer read from it: a field is one fault-safe load
//! instead of a bpf_probe_read_kernel call (see [`crate::config::btf_load`]).
use aya_ebpf::helpers::generated::bpf_get_current_task_btf;
use probe_common::{COMM_LEN, EXIT_CODE_UNKNOWN, TTY_NAME_LEN, hangup};

use crate::config::{btf_load, config};

#[inline(always)]
pub fn current() -> *const u8 {
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

#[inline(always)]
fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() {
        return None;
    }
    btf_load(base, offset).ok()
}

const NAME_LEN: usize = 16;
const _: () = assert!(COMM_LEN == NAME_LEN && TTY_NAME_LEN == NAME_LEN);

/// A 16-byte name as two 8-byte loads (read as bytes, it was sixteen loads, each with the
/// guard the JIT puts before a fault-safe load), zeroed after its first NUL: kernels that
/// copy a new comm with strlcpy leave the old name's tail there, and a name is compared
/// whole (MATCH_COMMS) as bpf_get_current_comm's zero-padded copy was.
#[inline(always)]
fn read_name(base: *const u8, offset: u32) -> [u8; NAME_LEN] {
    let Some(low) = read::<u64>(base, offset) else {
        return [0; NAME_LEN];
    };
    let (low, ended) = up_to_nul(low);
    let high = if ended {
        0
    } else {
        up_to_nul(read::<u64>(base, offset.wrapping_add(8)).unwrap_or(0)).0
    };
    let mut name = [0; NAME_LEN];
    name[..8].copy_from_slice(&low.to_le_bytes());
    name[8..].copy_from_slice(&high.to_le_bytes());
    name
}

/// Eight bytes of a name (little-endian, as on every target) with those from the first NUL
/// on zeroed, and whether there was one. The lowest bit the zero-byte test sets marks the
/// first NUL exactly (a borrow only carries upward).
#[inline(always)]
fn up_to_nul(word: u64) -> (u64, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zeros = word.wrapping_sub(ONES) & !word & HIGHS;
    if zeros == 0 {
        return (word, false);
    }
    let first = zeros & zeros.wrapping_neg();
    (word & ((first >> 7) - 1), true)
}

#[inline(always)]
fn signal_struct(task: *const u8) -> *const u8 {
    read::<*const u8>(task, config!(task_signal)).unwrap_or(core::ptr::null())
}

/// The task's real parent (NULL when unknown), for reading its fields in turn.
#[inline(always)]
pub fn parent(task: *const u8) -> *const u8 {
    read::<*const u8>(task, config!(task_real_parent)).unwrap_or(core::ptr::null())
}

/// The task's process id (0 when unknown).
#[inline(always)]
pub fn tgid(task: *const u8) -> u32 {
    read::<u32>(task, config!(task_tgid)).unwrap_or(0)
}

/// The tgid of the task's real parent (0 when unknown).
#[inline(always)]
pub fn parent_tgid(task: *const u8) -> u32 {
    tgid(parent(task))
}

/// When the task was forked, CLOCK_BOOTTIME nanoseconds (0 when unknown).
#[inline(always)]
pub fn start_boottime(task: *const u8) -> u64 {
    read::<u64>(task, config!(task_start_boottime)).unwrap_or(0)
}

/// What SIGHUP does to the task: [`hangup`]'s values, from `sighand->action[0]`.
#[inline(always)]
pub fn hangup(task: *const u8) -> u32 {
    let sighand = read::<*const u8>(task, config!(task_sighand)).unwrap_or(core::ptr::null());
    match read::<u64>(sighand, config!(sighand_hup_handler)) {
        None => hangup::UNKNOWN,
        Some(0) => hangup::DEFAULT,
        Some(1) => hangup::IGNORE,
        Some(_) => hangup::HANDLER,
    }
}

/// The task's session id in the initial pid namespace (0 when unknown).
#[inline(always)]
pub fn session_id(task: *const u8) -> u32 {
    let sid_pid = read::<*const u8>(signal_struct(task), config!(signal_sid_pid))
        .unwrap_or(core::ptr::null());
    read::<u32>(sid_pid, config!(pid_nr)).unwrap_or(0)
}

/// The name of the task's controlling tty (`pts3`, `tty1`), all zero when it has none.
#[inline(always)]
pub fn tty_name(task: *const u8) -> [u8; TTY_NAME_LEN] {
    let tty =
        read::<*const u8>(signal_struct(task), config!(signal_tty)).unwrap_or(core::ptr::null());
    read_name(tty, config!(tty_name))
}

#[inline(always)]
pub fn exit_code(task: *const u8) -> u32 {
    read::<u32>(task, config!(task_exit_code)).unwrap_or(EXIT_CODE_UNKNOWN)
}

/// The task's name (all zero when unknown).
#[inline(always)]
pub fn comm(task: *const u8) -> [u8; COMM_LEN] {
    read_name(task, config!(task_comm))
}
