//! Leaving or joining a terminal's session: setsid() (with the session and tty it had
//! before), ioctl(TIOCNOTTY) and ioctl(TIOCSCTTY), and prctl(PR_SET_PDEATHSIG).
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use probe_common::{PdeathsigRecord, SetsidRecord, TtyIoctlRecord, flags, kind};

use crate::{
    config::{config, field},
    emit::{current_comm, header, send},
    maps::{SETSID_SLOTS, SETSID_SLOTS_LEN, SetsidSlot, is_tracked, setsid_state},
    task,
};

const TIOCSCTTY: u64 = 0x540e;
const TIOCNOTTY: u64 = 0x5422;
const PR_SET_PDEATHSIG: u64 = 1;

fn ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// setsid is seen for every process, tracked or not: `setsid cmd` calls it in a process
/// that becomes tracked only at its next exec. A tracked caller's call is reported when
/// it returns; an untracked one's waits in its slot for that exec (`report_before_exec`).
#[tracepoint]
pub fn sys_enter_setsid(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    if tgid == config!(self_tgid) {
        return 0;
    }
    let Some(slot) = SETSID_SLOTS.get_ptr_mut(tid % SETSID_SLOTS_LEN) else {
        return 0;
    };
    let current = task::current();
    // SAFETY: the slot is this map's value; a thread only writes the slot of its own tid.
    unsafe {
        (*slot).tid = tid;
        (*slot).state = setsid_state::ENTERED;
        (*slot).old_sid = task::session_id(current);
        (*slot).tracked = u16::from(is_tracked(tgid));
        (*slot).ret = 0;
        (*slot).started = task::start_boottime(current);
        (*slot).old_tty = task::tty_name(current);
        (*slot).comm = task::comm(current);
    }
    0
}

#[tracepoint]
pub fn sys_exit_setsid(ctx: TracePointContext) -> u32 {
    match try_sys_exit_setsid(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sys_exit_setsid(ctx: &TracePointContext) -> Result<u32, u32> {
    let (tgid, tid) = ids();
    let slot = SETSID_SLOTS
        .get_ptr_mut(tid % SETSID_SLOTS_LEN)
        .ok_or(0u32)?;
    // SAFETY: as in sys_enter_setsid.
    let slot = unsafe { &mut *slot };
    if slot.tid != tid || slot.state != setsid_state::ENTERED {
        return Ok(0);
    }
    // setsid returns a pid or a negative errno: both fit an int.
    slot.ret = field!(ctx, setsid_ret: i64 = 16)? as i32;
    if slot.tracked == 0 {
        slot.state = setsid_state::RETURNED;
        return Ok(0);
    }
    slot.tid = 0;
    send_setsid(tgid, slot, true);
    Ok(0)
}

/// Reports the setsid() an untracked process `tgid` (forked at `started`) returned from
/// before the exec that now reports it (`tracked`, or sent for its command line). It is
/// stamped with the exec's time: stamping every untracked setsid would cost a clock read.
#[inline(always)]
pub fn report_before_exec(tgid: u32, started: u64, tracked: bool) {
    let Some(slot) = SETSID_SLOTS.get_ptr_mut(tgid % SETSID_SLOTS_LEN) else {
        return;
    };
    // SAFETY: as in sys_enter_setsid; only this process's threads use this slot.
    let slot = unsafe { &mut *slot };
    if slot.tid != tgid || slot.state != setsid_state::RETURNED || slot.started != started {
        return;
    }
    slot.tid = 0;
    send_setsid(tgid, slot, tracked);
}

#[inline(always)]
fn send_setsid(tgid: u32, slot: &SetsidSlot, tracked: bool) {
    let mut head = header(kind::SETSID, tgid, slot.comm);
    if tracked {
        head.flags = flags::TRACKED;
    }
    send(
        kind::SETSID,
        SetsidRecord {
            header: head,
            ret: i64::from(slot.ret),
            old_sid: slot.old_sid,
            _pad: 0,
            old_tty: slot.old_tty,
        },
    );
}

#[tracepoint]
pub fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    match try_sys_enter_ioctl(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sys_enter_ioctl(ctx: &TracePointContext) -> Result<u32, u32> {
    // ioctl is hot: test the command before anything else.
    let cmd = field!(ctx, ioctl_cmd: u64 = 24)?;
    // The kernel compares the command as an unsigned int, whatever the upper bits hold.
    let kind = match cmd & 0xffff_ffff {
        TIOCNOTTY => kind::DETACH_TTY,
        TIOCSCTTY => kind::ATTACH_TTY,
        _ => return Ok(0),
    };
    let (tgid, _) = ids();
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let fd = field!(ctx, ioctl_fd: u64 = 16)?;
    let current = task::current();
    send(
        kind,
        TtyIoctlRecord {
            header: header(kind, tgid, task::comm(current)),
            sid: task::session_id(current),
            fd: fd as u32,
            tty: task::tty_name(current),
        },
    );
    Ok(0)
}

#[tracepoint]
pub fn sys_enter_prctl(ctx: TracePointContext) -> u32 {
    match try_sys_enter_prctl(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sys_enter_prctl(ctx: &TracePointContext) -> Result<u32, u32> {
    let option = field!(ctx, prctl_option: u64 = 16)?;
    if option & 0xffff_ffff != PR_SET_PDEATHSIG {
        return Ok(0);
    }
    let (tgid, _) = ids();
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let signal = field!(ctx, prctl_arg2: u64 = 24)?;
    send(
        kind::PDEATHSIG,
        PdeathsigRecord {
            header: header(kind::PDEATHSIG, tgid, current_comm()),
            signal: signal as u32,
            _pad: 0,
        },
    );
    Ok(0)
}
