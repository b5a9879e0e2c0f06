//! Giving up privileges once the programs are attached. Loading and attaching need CAP_BPF
//! and CAP_PERFMON (or root's full set); afterwards hupwatch only reads its maps through
//! fds it already holds, and /proc, where other users' environ needs CAP_SYS_PTRACE and
//! their unreadable files CAP_DAC_READ_SEARCH. Everything else is dropped for good, so a
//! bug in the HTTP server or a parser cannot load programs or write anywhere root can.

/// The capabilities kept after attaching (linux/capability.h numbers).
#[cfg(target_os = "linux")]
pub const KEPT: [u32; 2] = [CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE];
#[cfg(target_os = "linux")]
const CAP_DAC_READ_SEARCH: u32 = 2;
#[cfg(target_os = "linux")]
const CAP_SETPCAP: u32 = 8;
#[cfg(target_os = "linux")]
const CAP_SYS_PTRACE: u32 = 19;

/// Drops every capability but `KEPT` from the effective, permitted and inheritable sets
/// and, where allowed, from the bounding set, and sets no_new_privs. An error says what
/// could not be dropped; hupwatch goes on (it has at most what it started with).
#[cfg(target_os = "linux")]
pub fn drop_after_attach() -> Result<(), String> {
    let keep: u64 = KEPT.iter().fold(0, |mask, cap| mask | 1 << cap);
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and two data slots, as capget(2) version 3 expects.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    let permitted = u64::from(data[0].permitted) | u64::from(data[1].permitted) << 32;
    if permitted & 1 << CAP_SETPCAP != 0 {
        // Only with CAP_SETPCAP, which systemd's bounding set for hupwatch leaves out:
        // there the bounding set is already small.
        for cap in 0..64u32 {
            if keep & 1 << cap == 0 {
                // SAFETY: prctl with integer arguments; EINVAL past the last capability.
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            }
        }
    }
    let kept = permitted & keep;
    let set = |word: usize| CapData {
        effective: (kept >> (32 * word)) as u32,
        permitted: (kept >> (32 * word)) as u32,
        inheritable: 0,
    };
    let data = [set(0), set(1)];
    // SAFETY: as above; the kernel only reads.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[cfg(target_os = "linux")]
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[cfg(target_os = "linux")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
