//! The kernel's tracked set, as user space writes and reads it: the `TRACKED` hash, which
//! user space reads back, and `TRACKED_FLAGS`, one byte per tgid, which the programs test.
//! The flags are mapped into this process so that setting one is a single byte store:
//! updating an eight-byte element through the bpf syscall would rewrite the seven
//! neighbouring flags, and could undo one a program set meanwhile.
use std::{
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU8, Ordering},
};

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use probe_common::{PID_MAX_LIMIT, TRACKED_FLAGS_PER_ENTRY, TrackedValue};

/// How many `TRACKED_FLAGS` elements cover the pids of a kernel whose pid_max is
/// `pid_max`; a tgid beyond them falls back to the hash in the kernel. When every process
/// is traced, the programs never look, and one element will do.
pub fn flag_entries(pid_max: Option<u32>, traces_everything: bool) -> u32 {
    if traces_everything {
        return 1;
    }
    let pids = pid_max.unwrap_or(PID_MAX_LIMIT).clamp(1, PID_MAX_LIMIT);
    pids.div_ceil(TRACKED_FLAGS_PER_ENTRY)
}

/// /proc/sys/kernel/pid_max, None when unreadable.
pub fn kernel_pid_max() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub struct TrackedSet {
    hash: BpfHashMap<MapData, u32, TrackedValue>,
    flags: Flags,
}

impl TrackedSet {
    pub fn new(hash: Map, flags: Map) -> anyhow::Result<Self> {
        let Map::Array(flags) = flags else {
            anyhow::bail!("the eBPF object's TRACKED_FLAGS is not an array");
        };
        Ok(Self {
            hash: BpfHashMap::try_from(hash)?,
            flags: Flags::map(flags)?,
        })
    }

    /// Adds a process: the hash first, then its flag, the order the programs use, so a
    /// flag is never set for a pid the hash lacks. False when the hash is full.
    pub fn insert(&mut self, pid: u32, reason: u32) -> bool {
        if self
            .hash
            .insert(pid, TrackedValue { reason, _pad: 0 }, 0)
            .is_err()
        {
            return false;
        }
        self.flags.set(pid);
        true
    }

    pub fn pids(&self) -> std::collections::HashSet<u32> {
        self.hash.keys().filter_map(Result::ok).collect()
    }
}

/// `TRACKED_FLAGS` mapped shared and writable: byte `pid` is the flag of tgid `pid`
/// (the array's elements lie end to end).
struct Flags {
    bytes: NonNull<AtomicU8>,
    len: usize,
    _map: MapData,
}

// SAFETY: the mapping is owned by this struct and every access is atomic.
unsafe impl Send for Flags {}

impl Flags {
    fn map(map: MapData) -> anyhow::Result<Self> {
        let info = map.info()?;
        let len = info.max_entries() as usize * info.value_size() as usize;
        // SAFETY: a new shared mapping of the map's own fd, at most its size; the kernel
        // refuses (and we report) a map that was not created mmapable.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            anyhow::bail!(
                "cannot map the tracked-set flags into memory: {}",
                std::io::Error::last_os_error()
            );
        }
        let bytes = NonNull::new(address.cast::<AtomicU8>())
            .ok_or_else(|| anyhow::anyhow!("mmap of the tracked-set flags returned NULL"))?;
        Ok(Self {
            bytes,
            len,
            _map: map,
        })
    }

    fn set(&self, pid: u32) {
        let index = pid as usize;
        if index < self.len {
            // SAFETY: within the mapping, which lives as long as self.
            unsafe { (*self.bytes.as_ptr().add(index)).store(1, Ordering::Release) };
        }
    }
}

impl Drop for Flags {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unused after this.
        unsafe { libc::munmap(self.bytes.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_cover_every_pid_below_pid_max() {
        assert_eq!(flag_entries(Some(32_768), false), 4_096);
        assert_eq!(flag_entries(Some(32_769), false), 4_097);
        assert_eq!(flag_entries(None, false), PID_MAX_LIMIT / 8);
        // A pid_max above Linux's limit cannot be; the map stays at its compiled size.
        assert_eq!(flag_entries(Some(u32::MAX), false), PID_MAX_LIMIT / 8);
        assert_eq!(flag_entries(Some(32_768), true), 1);
    }
}
