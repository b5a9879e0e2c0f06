//! What both ways a process is known from /proc take from its `Existing` payload: the
//! start-up scan (apply.rs) and the re-sync after lost events (resync.rs).
use super::process::{Memory, Terminal};
use crate::event::Existing;

impl Memory {
    /// The scan's reading: no peak (the scan reads none) and no footprint (Linux).
    pub(super) fn of_existing(e: &Existing) -> Self {
        Self {
            rss_bytes: e.rss_bytes,
            peak_rss_bytes: None,
            swap_bytes: e.swap_bytes,
            cpu_ns: e.cpu_ns,
            footprint_bytes: None,
        }
    }
}

impl Terminal {
    /// The session and terminal the scan found it in.
    pub(super) fn of_existing(e: &Existing) -> Self {
        Self {
            sid: e.sid,
            tty: e.tty.clone(),
        }
    }
}
