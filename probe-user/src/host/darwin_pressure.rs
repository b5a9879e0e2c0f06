//! macOS's OOM killer is the kernel's memorystatus (jetsam): it ends processes as the
//! memory pressure level rises, by its own priority bands, with no threshold a user sets.
//! What can be read is the level: `kern.memorystatus_vm_pressure_level`, 1 normal, 2 warn,
//! 4 critical (the values of the kernel's `kVMPressure*` levels that Activity Monitor's
//! green, yellow and red show).
use std::{ffi::CStr, mem};

use super::oom_killer::OomKillers;

pub fn read() -> OomKillers {
    OomKillers {
        macos_pressure_level: pressure_level(),
        ..OomKillers::default()
    }
}

fn pressure_level() -> Option<u32> {
    const NAME: &CStr = c"kern.memorystatus_vm_pressure_level";
    let mut level: libc::c_int = 0;
    let mut size = mem::size_of::<libc::c_int>();
    // SAFETY: NAME is NUL-terminated; `level` is a writable int, as the sysctl is.
    let status = unsafe {
        libc::sysctlbyname(
            NAME.as_ptr(),
            (&raw mut level).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    (status == 0 && size == mem::size_of::<libc::c_int>())
        .then(|| u32::try_from(level).ok())
        .flatten()
}
