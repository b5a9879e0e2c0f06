//! Reading kernel structs of a task through offsets resolved from BTF by user space.
//! Every read tolerates an unresolved offset or a NULL pointer by returning a neutral value.
use aya_ebpf::helpers::{bpf_probe_read_kernel, generated::bpf_get_current_task};
use probe_common::{COMM_LEN, EXIT_CODE_UNKNOWN, TTY_NAME_LEN, UNKNOWN_OFFSET, hangup};

use crate::config::config;

#[inline(always)]
pub fn current() -> *const u8 {
    unsafe { bpf_get_current_task() as *const u8 }
}

#[inline(always)]
fn read<T>(base: *const u8, offset: u32) -> Option<T> {
    if base.is_null() || offset == UNKNOWN_OFFSET {
        return None;
    }
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()) }.ok()
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
    read::<[u8; TTY_NAME_LEN]>(tty, config!(tty_name)).unwrap_or([0; TTY_NAME_LEN])
}

#[inline(always)]
pub fn exit_code(task: *const u8) -> u32 {
    read::<u32>(task, config!(task_exit_code)).unwrap_or(EXIT_CODE_UNKNOWN)
}

/// The task's name (all zero when unknown).
#[inline(always)]
pub fn comm(task: *const u8) -> [u8; COMM_LEN] {
    read::<[u8; COMM_LEN]>(task, config!(task_comm)).unwrap_or([0; COMM_LEN])
}
