//! macOS's machine-wide memory: RAM from `hw.memsize`, what is left from the VM
//! statistics of `host_statistics64(HOST_VM_INFO64)`. macOS has no PSI; its swap files
//! grow on demand, so swap counts on neither side.
use std::{mem, sync::OnceLock};

use super::MachineMemory;

pub fn read() -> MachineMemory {
    let ram = super::darwin::memory_total();
    MachineMemory {
        ram_bytes: ram,
        total_bytes: ram,
        available_bytes: available(),
        ..MachineMemory::default()
    }
}

/// Free, inactive and purgeable pages: what the kernel hands out without compressing or
/// swapping anything. `free_count` includes the speculative pages (vm_stat subtracts them
/// to print "Pages free").
fn available() -> Option<u64> {
    // SAFETY: vm_statistics64 is plain data; all zeroes is a valid value.
    let mut stats: libc::vm_statistics64 = unsafe { mem::zeroed() };
    let mut count = libc::HOST_VM_INFO64_COUNT;
    // SAFETY: `stats` is writable and `count` integers long, as host_statistics64 expects.
    let status = unsafe {
        libc::host_statistics64(
            host(),
            libc::HOST_VM_INFO64,
            (&raw mut stats).cast(),
            &mut count,
        )
    };
    if status != libc::KERN_SUCCESS {
        return None;
    }
    // SAFETY: vm_page_size is a constant the kernel sets before any program runs.
    let page = unsafe { libc::vm_page_size } as u64;
    let pages = u64::from(stats.free_count)
        + u64::from(stats.inactive_count)
        + u64::from(stats.purgeable_count);
    pages.checked_mul(page)
}

/// The host port, asked for once: each `mach_host_self` adds a reference to the port name,
/// and this is read every --rss-interval for as long as hupwatch runs.
fn host() -> libc::mach_port_t {
    static HOST: OnceLock<libc::mach_port_t> = OnceLock::new();
    // libc points at the mach2 crate for this call; one call does not need a dependency.
    #[allow(deprecated)]
    // SAFETY: mach_host_self has no preconditions.
    *HOST.get_or_init(|| unsafe { libc::mach_host_self() })
}
