//! Signals: generation (who sent what to a tracked process, and what the kernel did with
//! it), delivery (what the target's disposition was when it acted on it), and the
//! dispositions processes install for the hangup-related signals.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use probe_common::{SigactionRecord, SignalDeliverRecord, SignalRecord, kind};

use crate::{
    config::{btf_load, config, field, probe_load},
    emit::{current_comm, header, send},
    maps::{SIGACTION_SLOTS, SIGACTION_SLOTS_LEN, is_tracked},
    task,
};

const SIGHUP: u64 = 1;
const SIGINT: u64 = 2;
const SIGTERM: u64 = 15;

/// `TP_PROTO(int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
/// int result)`. BTF-typed like rss_stat: a classic tracepoint copies the target's comm and
/// the siginfo into a record on every signal, tracked or not.
#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    match try_signal_generate(&ctx) {
        Ok(r) | Err(r) => r as i32,
    }
}

fn try_signal_generate(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let task: *const u8 = ctx.arg(2);
    // The target's process, not the thread: a signal sent to one thread of a tracked
    // process (tgkill, pthread_kill) is the process's signal.
    let target = btf_load::<u32>(task, config!(task_tgid))?;
    if !is_tracked(target) {
        return Ok(0);
    }
    let comm = task::comm(task);
    let sender = bpf_get_current_pid_tgid();
    send(
        kind::SIGNAL,
        SignalRecord {
            header: header(kind::SIGNAL, target, comm),
            sig: ctx.arg(0),
            code: si_code(ctx.arg(1))?,
            result: ctx.arg(4),
            group: ctx.arg(3),
            sender_pid: (sender >> 32) as u32,
            sender_tid: sender as u32,
            sender_comm: current_comm(),
        },
    );
    Ok(0)
}

/// `TP_PROTO(int sig, struct kernel_siginfo *info, struct k_sigaction *ka)`.
#[btf_tracepoint(function = "signal_deliver")]
pub fn signal_deliver(ctx: BtfTracePointContext) -> i32 {
    match try_signal_deliver(&ctx) {
        Ok(r) | Err(r) => r as i32,
    }
}

fn try_signal_deliver(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let action: *const u8 = ctx.arg(2);
    send(
        kind::SIGNAL_DELIVER,
        SignalDeliverRecord {
            header: header(kind::SIGNAL_DELIVER, tgid, current_comm()),
            sig: ctx.arg(0),
            code: si_code(ctx.arg(1))?,
            handler: btf_load::<u64>(action, config!(ksigaction_handler))?,
            sa_flags: btf_load::<u64>(action, config!(ksigaction_flags))?,
        },
    );
    Ok(0)
}

/// The signal's si_code as the classic tracepoints report it: the kernel passes
/// SEND_SIG_NOINFO (0) for kill(2)-like sends, SEND_SIG_PRIV (1) for its own; anything
/// else is a siginfo, read with a probe read (see [`probe_load`]).
#[inline(always)]
fn si_code(info: *const u8) -> Result<i32, u32> {
    const SI_USER: i32 = 0;
    const SI_KERNEL: i32 = 0x80;
    match info as usize {
        0 => Ok(SI_USER),
        1 => Ok(SI_KERNEL),
        _ => probe_load::<i32>(info, config!(siginfo_code)),
    }
}

/// rt_sigaction(2)'s entry only notes which signal a tracked process is setting the
/// action of; the action is read at the return, from the kernel's own copy, and only when
/// the call succeeded. Read here from user memory, before the kernel copies it, a racing
/// thread could change it in between, and a failing call (a bad sigset size) would be
/// reported as if it had taken effect: either could fake or hide a SIG_IGN.
#[tracepoint]
pub fn sys_enter_rt_sigaction(ctx: TracePointContext) -> u32 {
    match try_sys_enter_rt_sigaction(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sys_enter_rt_sigaction(ctx: &TracePointContext) -> Result<u32, u32> {
    let sig = field!(ctx, sigaction_sig: u64 = 16)?;
    if sig != SIGHUP && sig != SIGINT && sig != SIGTERM {
        return Ok(0);
    }
    let act = field!(ctx, sigaction_act: u64 = 24)?;
    if act == 0 {
        // A query of the current disposition changes nothing.
        return Ok(0);
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if !is_tracked((pid_tgid >> 32) as u32) {
        return Ok(0);
    }
    let tid = pid_tgid as u32;
    let slot = SIGACTION_SLOTS
        .get_ptr_mut(tid % SIGACTION_SLOTS_LEN)
        .ok_or(0u32)?;
    // SAFETY: an array slot the map owns; a thread is in one syscall at a time.
    let slot = unsafe { &mut *slot };
    slot.tid = tid;
    slot.sig = sig as u32;
    Ok(0)
}

#[tracepoint]
pub fn sys_exit_rt_sigaction(ctx: TracePointContext) -> u32 {
    match try_sys_exit_rt_sigaction(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sys_exit_rt_sigaction(ctx: &TracePointContext) -> Result<u32, u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let slot = SIGACTION_SLOTS
        .get_ptr_mut(tid % SIGACTION_SLOTS_LEN)
        .ok_or(0u32)?;
    // SAFETY: as in sys_enter_rt_sigaction.
    let slot = unsafe { &mut *slot };
    if slot.tid != tid {
        return Ok(0);
    }
    slot.tid = 0;
    let sig = slot.sig;
    if field!(ctx, sigaction_ret: i64 = 16)? != 0 {
        // Refused: the action in force is the one before the call.
        return Ok(0);
    }
    // The kernel's copy: current->sighand->action[sig - 1].sa. The signal is a runtime
    // value, so the address is computed and read with a helper rather than a typed load.
    let sighand = probe_load::<u64>(task::current(), config!(task_sighand))?;
    let action = u64::from(config!(sighand_action))
        + u64::from(sig.saturating_sub(1)) * u64::from(config!(ksigaction_size));
    if sighand == 0
        || config!(sighand_action) == probe_common::UNKNOWN_OFFSET
        || config!(ksigaction_size) == probe_common::UNKNOWN_OFFSET
    {
        return Ok(0);
    }
    let at = (sighand + action) as *const u8;
    let tgid = (pid_tgid >> 32) as u32;
    send(
        kind::SIGACTION,
        SigactionRecord {
            header: header(kind::SIGACTION, tgid, current_comm()),
            sig,
            _pad: 0,
            handler: probe_load::<u64>(at, config!(ksigaction_handler))?,
            sa_flags: probe_load::<u64>(at, config!(ksigaction_flags)).unwrap_or(0),
        },
    );
    Ok(0)
}
