//! Leaving or joining a terminal's session: setsid() (with the session and tty it had
//! before), ioctl(TIOCNOTTY) and ioctl(TIOCSCTTY), and prctl(PR_SET_PDEATHSIG).
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use probe_common::{PdeathsigRecord, SetsidRecord, TtyIoctlRecord, flags, kind};

use crate::{
    config::{config, field},
    emit::{current_comm, header, send},
    maps::{SETSID_BEFORE, SessionBefore, is_tracked},
    task,
};

const TIOCSCTTY: u64 = 0x540e;
const TIOCNOTTY: u64 = 0x5422;
const PR_SET_PDEATHSIG: u64 = 1;

fn ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

/// setsid is reported for every process, tracked or not: it is rare, and `setsid cmd`
/// calls it in a process that becomes tracked only at its next exec. User space keeps the
/// untracked ones briefly for that exec.
#[tracepoint]
pub fn sys_enter_setsid(_ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    if tgid == config!(self_tgid) {
        return 0;
    }
    let current = task::current();
    let before = SessionBefore {
        sid: task::session_id(current),
        tracked: u32::from(is_tracked(tgid)),
        tty: task::tty_name(current),
    };
    // A full map only costs the "before" fields of this one call; exit reports it as unknown.
    let _ = SETSID_BEFORE.insert(&tid, &before, 0);
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
    let Some(before) = (unsafe { SETSID_BEFORE.get(&tid) }).copied() else {
        return Ok(0);
    };
    let _ = SETSID_BEFORE.remove(&tid);
    let ret = field!(ctx, setsid_ret: i64 = 16)?;
    let mut head = header(kind::SETSID, tgid, current_comm());
    if before.tracked != 0 {
        head.flags = flags::TRACKED;
    }
    send(
        kind::SETSID,
        SetsidRecord {
            header: head,
            ret,
            old_sid: before.sid,
            _pad: 0,
            old_tty: before.tty,
        },
    );
    Ok(0)
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
            header: header(kind, tgid, current_comm()),
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
