//! Process lifecycle: new processes (task_newtask, which unlike sched_process_fork carries
//! the clone flags, so threads can be told apart), exec and exit. Keeps the tracked set:
//! fork inherits, exec re-evaluates the name match, exit removes.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use probe_common::{COMM_LEN, ExecRecord, ExitRecord, ForkRecord, flags, kind, reason};

use crate::{
    config::{config, field, offset},
    emit::{header, send, wakeup},
    maps::{
        EVENTS, RSS, bump, forker_of, is_tracked, note_forker, track, track_if_comm_matches,
        untrack,
    },
    session, task,
};

const CLONE_THREAD: u64 = 0x0001_0000;
const CLONE_PARENT: u64 = 0x0000_8000;

#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    match try_task_newtask(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_task_newtask(ctx: &TracePointContext) -> Result<u32, u32> {
    let clone_flags = field!(ctx, newtask_clone_flags: u64 = 32)?;
    if clone_flags & CLONE_THREAD != 0 {
        return Ok(0);
    }
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    let child = field!(ctx, newtask_pid: u32 = 8)?;
    // With CLONE_PARENT the child is its caller's sibling: its parent is not the forker.
    note_forker(
        child,
        if clone_flags & CLONE_PARENT == 0 {
            parent
        } else {
            0
        },
    );
    if !is_tracked(parent) {
        return Ok(0);
    }
    if config!(trace_all) == 0 {
        track(child, reason::INHERITED);
    }
    let comm: [u8; COMM_LEN] =
        unsafe { ctx.read_at(offset(config!(newtask_comm))?) }.unwrap_or([0; COMM_LEN]);
    send(
        kind::FORK,
        ForkRecord {
            header: header(kind::FORK, child, comm),
            ppid: parent,
            _pad: 0,
            clone_flags,
        },
    );
    Ok(0)
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    match try_sched_process_exec(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sched_process_exec(ctx: &TracePointContext) -> Result<u32, u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == config!(self_tgid) {
        return Ok(0);
    }
    let current = task::current();
    let comm = task::comm(current);
    let was_tracked = is_tracked(tgid);
    let tracked = was_tracked || track_if_comm_matches(tgid, &comm);
    let mut forked_by = 0;
    if tracked {
        forked_by = forker_of(tgid);
        // The old image's counters (rss_stat fires for it while exec tears it down) must
        // not stand for the new one until each of its own counters has moved.
        let _ = RSS.remove(&tgid);
    }
    if !tracked && config!(exec_all) == 0 {
        return Ok(0);
    }
    let started = task::start_boottime(current);
    // A process tracked before this exec had its setsid() reported when it returned (and
    // when tracing every process none waits): the slot is only read, a cold cache line,
    // for one this exec may make tracked.
    if !was_tracked {
        session::report_before_exec(tgid, started, tracked);
    }
    let filename_loc = field!(ctx, exec_filename: u32 = 8)?;
    let Some(mut entry) = EVENTS.reserve::<ExecRecord>(0) else {
        bump(u32::from(kind::EXEC));
        return Ok(0);
    };
    // Built in place: the record is too large for the bpf stack.
    let record = entry.as_mut_ptr();
    unsafe {
        let mut head = header(kind::EXEC, tgid, comm);
        if tracked {
            head.flags = flags::TRACKED;
        }
        (*record).header = head;
        let parent = task::parent(current);
        (*record).ppid = task::tgid(parent);
        (*record).forked_by = forked_by;
        (*record)._pad = 0;
        (*record).sid = task::session_id(current);
        (*record).hangup = task::hangup(current);
        (*record).start_time_ns = started;
        (*record).tty = task::tty_name(current);
        (*record).parent_tty = task::tty_name(parent);
        let src = (ctx.as_ptr() as *const u8).add((filename_loc & 0xffff) as usize);
        let len = match bpf_probe_read_kernel_str_bytes(src, &mut (*record).filename) {
            Ok(bytes) => bytes.len() as u32,
            Err(_) => 0,
        };
        (*record).filename_len = len;
    }
    entry.submit(wakeup());
    Ok(0)
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    match try_sched_process_exit(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_sched_process_exit(ctx: &TracePointContext) -> Result<u32, u32> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // Only the end of the whole process counts, not of one of its threads.
    let process_gone = match field!(ctx, exit_group_dead: u8 = 32) {
        Ok(dead) => dead != 0,
        Err(_) => tid == tgid,
    };
    if !process_gone || !is_tracked(tgid) {
        return Ok(0);
    }
    let (peak_rss_bytes, swap_bytes) =
        unsafe { RSS.get(&tgid) }.map_or((0, 0), |rss| (rss.peak, rss.swap));
    let _ = RSS.remove(&tgid);
    if config!(trace_all) == 0 {
        untrack(tgid);
    }
    let current = task::current();
    send(
        kind::EXIT,
        ExitRecord {
            header: header(kind::EXIT, tgid, task::comm(current)),
            ppid: task::parent_tgid(current),
            exit_code: task::exit_code(current),
            peak_rss_bytes,
            swap_bytes,
        },
    );
    Ok(0)
}
