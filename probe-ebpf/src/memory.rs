//! RSS of tracked processes, aggregated in the `RSS` map rather than streamed: rss_stat
//! fires on page faults, so this is the hottest program and does the least.
//!
//! It is a BTF-typed raw tracepoint. A classic tracepoint first fills a trace record for
//! the program (hashing the mm pointer, reading the counter) on every fault, tracked or
//! not; this one is handed the tracepoint's two arguments, and reads the counter only for
//! tracked tasks. The arguments are typed by the kernel's BTF, so the verifier lets the
//! program load struct members directly (fault-safe loads) instead of calling
//! bpf_probe_read_kernel, which cost as much again.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task_btf},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use probe_common::{RssValue, counter};

use crate::{
    config::{btf_load, config},
    maps::{RSS, bump, is_tracked},
};

const MM_FILEPAGES: i32 = 0;
const MM_ANONPAGES: i32 = 1;
const MM_SWAPENTS: i32 = 2;
const MM_SHMEMPAGES: i32 = 3;

/// `TP_PROTO(struct mm_struct *mm, int member)`; before 6.2 `(mm, member, long count)`.
#[btf_tracepoint(function = "rss_stat")]
pub fn rss_stat(ctx: BtfTracePointContext) -> i32 {
    match try_rss_stat(&ctx) {
        Ok(r) | Err(r) => r as i32,
    }
}

fn try_rss_stat(ctx: &BtfTracePointContext) -> Result<u32, u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let member: i32 = ctx.arg(1);
    if !(MM_FILEPAGES..=MM_SHMEMPAGES).contains(&member) {
        return Ok(0);
    }
    // The event names no process: only a change to the current task's own mm can be
    // attributed (the others are, e.g., reclaim, and are picked up at the next own fault).
    let mm: *const u8 = ctx.arg(0);
    let current = unsafe { bpf_get_current_task_btf() } as *const u8;
    if btf_load::<*const u8>(current, config!(task_mm))? != mm {
        return Ok(0);
    }
    let pages: i64 = if config!(rss_count_arg) == 1 {
        // Before 6.2 the tracepoint passes the counter's new value. The verifier sees the
        // frozen config, so on a two-argument kernel this branch is never checked.
        ctx.arg(2)
    } else {
        // What get_mm_counter() reports: the per-CPU counter's shared approximate count.
        // One load per member: the verifier accepts only constant offsets into a BTF
        // struct.
        let (base, stride) = (config!(mm_rss_count), config!(rss_counter_stride));
        let at = |index: i32| base.wrapping_add(stride.wrapping_mul(index as u32));
        match member {
            MM_FILEPAGES => btf_load::<i64>(mm, at(MM_FILEPAGES))?,
            MM_ANONPAGES => btf_load::<i64>(mm, at(MM_ANONPAGES))?,
            MM_SWAPENTS => btf_load::<i64>(mm, at(MM_SWAPENTS))?,
            _ => btf_load::<i64>(mm, at(MM_SHMEMPAGES))?,
        }
    };
    let size = (pages.max(0) as u64) << (config!(page_shift) & 63);

    let value = match RSS.get_ptr_mut(&tgid) {
        Some(value) => value,
        None => {
            if RSS.insert(&tgid, &RssValue::default(), 0).is_err() {
                bump(counter::RSS_MAP_FULL);
                return Ok(0);
            }
            RSS.get_ptr_mut(&tgid).ok_or(0u32)?
        }
    };
    // Racing updates from threads on other CPUs can only make one member briefly stale:
    // each write is an absolute value the kernel computed, never an increment.
    unsafe {
        match member {
            MM_FILEPAGES => (*value).file = size,
            MM_ANONPAGES => (*value).anon = size,
            MM_SWAPENTS => (*value).swap = size,
            _ => (*value).shmem = size,
        }
        let total = (*value).total();
        if total > (*value).peak {
            (*value).peak = total;
        }
    }
    Ok(0)
}
