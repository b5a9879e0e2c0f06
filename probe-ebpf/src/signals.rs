//! Signals: generation (who sent what to a tracked process, and what the kernel did with
//! it), delivery (what the target's disposition was when it acted on it), and the
//! dispositions processes install for the hangup-related signals.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use probe_common::{COMM_LEN, SigactionRecord, SignalDeliverRecord, SignalRecord, kind};

use crate::{
    config::{config, field, offset},
    emit::{current_comm, header, send},
    maps::is_tracked,
};

const SIGHUP: u64 = 1;
const SIGINT: u64 = 2;
const SIGTERM: u64 = 15;

#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    match try_signal_generate(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_signal_generate(ctx: &TracePointContext) -> Result<u32, u32> {
    let target = field!(ctx, sg_pid: u32 = 36)?;
    if !is_tracked(target) {
        return Ok(0);
    }
    let comm: [u8; COMM_LEN] =
        unsafe { ctx.read_at(offset(config!(sg_comm))?) }.unwrap_or([0; COMM_LEN]);
    let sender = bpf_get_current_pid_tgid();
    send(
        kind::SIGNAL,
        SignalRecord {
            header: header(kind::SIGNAL, target, comm),
            sig: field!(ctx, sg_sig: i32 = 8)?,
            code: field!(ctx, sg_code: i32 = 16)?,
            result: field!(ctx, sg_result: i32 = 44)?,
            group: field!(ctx, sg_group: i32 = 40)?,
            sender_pid: (sender >> 32) as u32,
            sender_tid: sender as u32,
            sender_comm: current_comm(),
        },
    );
    Ok(0)
}

#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    match try_signal_deliver(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_signal_deliver(ctx: &TracePointContext) -> Result<u32, u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let sig = field!(ctx, sd_sig: i32 = 8)?;
    let code = field!(ctx, sd_code: i32 = 16)?;
    let handler = field!(ctx, sd_sa_handler: u64 = 24)?;
    let sa_flags = field!(ctx, sd_sa_flags: u64 = 32)?;
    send(
        kind::SIGNAL_DELIVER,
        SignalDeliverRecord {
            header: header(kind::SIGNAL_DELIVER, tgid, current_comm()),
            sig,
            code,
            handler,
            sa_flags,
        },
    );
    Ok(0)
}

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
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(tgid) {
        return Ok(0);
    }
    // The kernel's struct sigaction as rt_sigaction(2) takes it: handler, then flags.
    let act = act as *const u64;
    let handler = unsafe { bpf_probe_read_user(act) }.map_err(|_| 0u32)?;
    let sa_flags = unsafe { bpf_probe_read_user(act.add(1)) }.unwrap_or(0);
    send(
        kind::SIGACTION,
        SigactionRecord {
            header: header(kind::SIGACTION, tgid, current_comm()),
            sig: sig as u32,
            _pad: 0,
            handler,
            sa_flags,
        },
    );
    Ok(0)
}
