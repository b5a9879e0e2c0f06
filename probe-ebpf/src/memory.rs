//! RSS of tracked processes, aggregated in the `RSS` map rather than streamed: rss_stat
//! fires on page faults, so this is the hottest program and does the least.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use probe_common::{RssValue, counter};

use crate::{
    config::field,
    maps::{RSS, bump, is_tracked},
};

const MM_FILEPAGES: i32 = 0;
const MM_ANONPAGES: i32 = 1;
const MM_SHMEMPAGES: i32 = 3;

#[tracepoint]
pub fn rss_stat(ctx: TracePointContext) -> u32 {
    match try_rss_stat(&ctx) {
        Ok(r) | Err(r) => r,
    }
}

fn try_rss_stat(ctx: &TracePointContext) -> Result<u32, u32> {
    // The event names no process: only a change to the current task's own mm can be
    // attributed (the others are, e.g., reclaim, and are picked up at the next own fault).
    let curr = field!(ctx, rss_curr: u32 = 12)?;
    if curr == 0 {
        return Ok(0);
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(tgid) {
        return Ok(0);
    }
    let member = field!(ctx, rss_member: i32 = 16)?;
    if member != MM_FILEPAGES && member != MM_ANONPAGES && member != MM_SHMEMPAGES {
        return Ok(0);
    }
    let size = field!(ctx, rss_size: i64 = 24)?;
    let size = if size < 0 { 0 } else { size as u64 };

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
            _ => (*value).shmem = size,
        }
        let total = (*value).total();
        if total > (*value).peak {
            (*value).peak = total;
        }
    }
    Ok(0)
}
