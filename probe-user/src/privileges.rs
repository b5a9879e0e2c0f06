//! Giving up privileges once the programs are attached. Loading and attaching need CAP_BPF
//! and CAP_PERFMON (or root's full set); afterwards hupwatch only reads its maps through
//! fds it already holds, and /proc, where other users' environ needs CAP_SYS_PTRACE and
//! their unreadable files CAP_DAC_READ_SEARCH. Everything else is dropped for good, so a
//! bug in the HTTP server or a parser cannot load programs or write anywhere root can.
//! `run --user` goes further: hupwatch also stops being root, so root's files are out of
//! reach too, keeping only the two capabilities across the change of user.

/// The capabilities kept after attaching (linux/capability.h numbers).
#[cfg(target_os = "linux")]
pub const KEPT: [u32; 2] = [CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE];
#[cfg(target_os = "linux")]
const CAP_DAC_READ_SEARCH: u32 = 2;
#[cfg(target_os = "linux")]
const CAP_KILL: u32 = 5;
#[cfg(target_os = "linux")]
const CAP_SETPCAP: u32 = 8;
#[cfg(target_os = "linux")]
const CAP_SYS_PTRACE: u32 = 19;

/// The user hupwatch becomes after attaching (`run --user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchTo {
    pub uid: u32,
    pub gid: u32,
}

/// What could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// The change of user failed: hupwatch would run with more than it was asked to.
    #[error("cannot become uid {uid}: {why}")]
    Switch { uid: u32, why: String },
    /// Capabilities could not be dropped; hupwatch has at most what it started with.
    #[error("{0}")]
    Capabilities(String),
}

/// Becomes `switch`'s user if given (keeping `KEPT` across the change), drops every
/// capability but `KEPT` (and CAP_KILL with `keep_kill`: `--reap-before`) from the effective, permitted and inheritable sets and, where
/// allowed, from the bounding set, and sets no_new_privs.
#[cfg(target_os = "linux")]
pub fn drop_after_attach(switch: Option<SwitchTo>, keep_kill: bool) -> Result<(), DropError> {
    let caps = DropError::Capabilities;
    let keep: u64 = KEPT.iter().fold(0, |mask, cap| mask | 1 << cap)
        | if keep_kill { 1 << CAP_KILL } else { 0 };
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and two data slots, as capget(2) version 3 expects.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(caps(format!("capget: {}", std::io::Error::last_os_error())));
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
    if let Some(to) = switch {
        become_user(to).map_err(|why| DropError::Switch { uid: to.uid, why })?;
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
        return Err(caps(format!("capset: {}", std::io::Error::last_os_error())));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(caps(format!(
            "no_new_privs: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// setresuid clears the effective set and, without PR_SET_KEEPCAPS, the permitted one:
/// with it the permitted set survives, and the caller's capset raises `KEPT` again.
#[cfg(target_os = "linux")]
fn become_user(to: SwitchTo) -> Result<(), String> {
    let last = || std::io::Error::last_os_error();
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(format!("keepcaps: {}", last()));
    }
    let groups = [to.gid];
    // SAFETY: one gid, as the length says. Root's supplementary groups must not stay.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
        return Err(format!(
            "setgroups: {} (CAP_SETGID is needed until then)",
            last()
        ));
    }
    // SAFETY: setresgid/setresuid take plain ids; the group first, while still root.
    if unsafe { libc::setresgid(to.gid, to.gid, to.gid) } != 0 {
        return Err(format!("setresgid: {}", last()));
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(to.uid, to.uid, to.uid) } != 0 {
        return Err(format!(
            "setresuid: {} (CAP_SETUID is needed until then)",
            last()
        ));
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    Ok(())
}

/// The effective capability set, as /proc/self/status says it (0 when unreadable).
#[cfg(target_os = "linux")]
fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Whether this process may signal other users' processes (root's own count anyway).
#[cfg(target_os = "linux")]
pub fn may_kill_others() -> bool {
    effective() & 1 << CAP_KILL != 0
}

/// Whether this process may read every process's /proc files: root before the drop, or
/// any user holding both `KEPT` capabilities (hupwatch after `run --user`).
pub fn reads_every_process() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        let effective = effective();
        KEPT.iter().all(|cap| effective & 1 << cap != 0)
    }
    #[cfg(not(target_os = "linux"))]
    false
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
