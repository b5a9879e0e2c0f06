//! The macOS process table, as the same [`ProcSnapshot`]s /proc gives on Linux: libproc
//! (`proc_listallpids`, `proc_pidinfo(PROC_PIDTBSDINFO)`) for parent, group, terminal and
//! start time, `getsid` for the session, `KERN_PROCARGS2` for the command line and the
//! environment, `PROC_PIDVNODEPATHINFO` for the working directory, and one
//! `ps` for the ignored and caught signal masks, which libproc does not expose;
//! `proc_pid_rusage` for the physical footprint and `sysctl(KERN_PROC_PID)` for the run
//! state. What turns their answers into values is in `darwin_data`, tested on any OS.
use std::{collections::HashMap, mem, process::Command, sync::OnceLock};

pub use super::darwin_data::{
    KinfoProc, Rusage, parse_procargs, parse_procargs_env, parse_signal_masks, tty_name,
};
use super::{
    ProcInfo, ProcSnapshot, Usage,
    darwin_data::{RawKinfoProc, RusageInfoV4, Timebase, mask_disposition},
};
use crate::{event::Disposition, origin::TerminalEnv};

// The declaration in darwin_data is ours (so it builds on Linux); it must match libc's.
const _: () = assert!(mem::size_of::<RusageInfoV4>() == mem::size_of::<libc::rusage_info_v4>());

/// What `proc_pidinfo(PROC_PIDTBSDINFO)` says of one process.
pub struct BsdInfo {
    pub ppid: u32,
    pub comm: String,
    pub tty_dev: u32,
    pub started_epoch_ns: u64,
    /// Real user id.
    pub uid: u32,
}

pub fn bsd_info(pid: u32) -> Option<BsdInfo> {
    // SAFETY: proc_bsdinfo is plain data; all zeroes is a valid value.
    let mut info: libc::proc_bsdinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is writable and `size` bytes long.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTBSDINFO,
            0,
            (&raw mut info).cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    // pbi_name is the longer name when set; pbi_comm is cut at 16 bytes.
    let name = c_chars(&info.pbi_name);
    let comm = if name.is_empty() {
        c_chars(&info.pbi_comm)
    } else {
        name
    };
    Some(BsdInfo {
        ppid: info.pbi_ppid,
        comm,
        tty_dev: info.e_tdev,
        started_epoch_ns: info
            .pbi_start_tvsec
            .saturating_mul(1_000_000_000)
            .saturating_add(info.pbi_start_tvusec.saturating_mul(1000)),
        uid: info.pbi_ruid,
    })
}

fn c_chars(raw: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn all_pids() -> Vec<u32> {
    // SAFETY: a null buffer asks for the number of pids.
    let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if count <= 0 {
        return Vec::new();
    }
    // Room for processes started between the two calls.
    let mut pids = vec![0 as libc::c_int; count as usize + 64];
    let bytes = (pids.len() * mem::size_of::<libc::c_int>()) as libc::c_int;
    // SAFETY: `pids` is writable and `bytes` long.
    let got = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    pids.truncate(got.max(0) as usize);
    pids.into_iter()
        .filter(|&p| p > 0)
        .map(|p| p as u32)
        .collect()
}

/// The arguments of `pid` joined by spaces, from `KERN_PROCARGS2`: argc, the executable
/// path, padding, then argc NUL-terminated arguments.
pub fn cmdline(pid: u32) -> Option<String> {
    procargs(pid).map(|raw| parse_procargs(&raw))
}

/// What the environment says of where `pid` was started, from the strings that follow
/// its arguments in `KERN_PROCARGS2`. The kernel gives them for the caller's own
/// processes, and root's for all; None when it refuses.
pub fn terminal_env(pid: u32) -> Option<TerminalEnv> {
    procargs(pid).map(|raw| TerminalEnv::parse(parse_procargs_env(&raw)))
}

/// The raw `KERN_PROCARGS2` buffer of `pid`.
fn procargs(pid: u32) -> Option<Vec<u8>> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid as libc::c_int];
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = buffer.len();
    // SAFETY: `mib` names three levels; `buffer` is writable for `size` bytes.
    let status = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buffer.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 || size < 4 {
        return None;
    }
    buffer.truncate(size);
    Some(buffer)
}

/// The working directory, from `proc_pidinfo(PROC_PIDVNODEPATHINFO)`; None for another
/// user's process without root, or one that is gone.
pub fn cwd(pid: u32) -> Option<String> {
    // SAFETY: proc_vnodepathinfo is plain data; all zeroes is a valid value.
    let mut info: libc::proc_vnodepathinfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::proc_vnodepathinfo>() as libc::c_int;
    // SAFETY: `info` is writable and `size` bytes long.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            (&raw mut info).cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    Some(c_chars(info.pvi_cdir.vip_path.as_flattened())).filter(|path| !path.is_empty())
}

/// The machine's RAM (`hw.memsize`).
pub fn memory_total() -> Option<u64> {
    let mut mib = [libc::CTL_HW, libc::HW_MEMSIZE];
    let mut bytes: u64 = 0;
    let mut size = mem::size_of::<u64>();
    // SAFETY: `mib` names two levels; `bytes` is a writable u64, as hw.memsize is.
    let status = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&raw mut bytes).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    (status == 0 && size == mem::size_of::<u64>()).then_some(bytes)
}

/// pid → (ignored, caught) signal masks, from one `ps`. Empty when ps fails: the
/// dispositions are then unknown and read as the default.
fn signal_masks() -> HashMap<u32, (u64, u64)> {
    ps_masks(&["-axo", "pid=,ignored=,caught="])
}

/// What SIGHUP does to one process, from its `ps` masks (libproc does not expose them).
pub fn hangup(pid: u32) -> Option<Disposition> {
    let masks = ps_masks(&["-o", "pid=,ignored=,caught=", "-p", &pid.to_string()]);
    let (ignored, caught) = masks.get(&pid).copied()?;
    Some(mask_disposition(ignored, caught))
}

fn ps_masks(args: &[&str]) -> HashMap<u32, (u64, u64)> {
    let Ok(output) = Command::new("/bin/ps").args(args).output() else {
        return HashMap::new();
    };
    parse_signal_masks(&String::from_utf8_lossy(&output.stdout))
}

/// Every process but the kernel's own (pid 0), as snapshots whose `started_boot_ns` is
/// already Unix-epoch time and whose `tty_nr` is the Darwin `dev_t` (see [`tty_name`]).
pub fn scan_snapshots() -> Vec<ProcSnapshot> {
    let masks = signal_masks();
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let info = bsd_info(pid)?;
            // SAFETY: getsid has no memory preconditions.
            let sid = unsafe { libc::getsid(pid as libc::pid_t) };
            let (ignored, caught) = masks.get(&pid).copied().unwrap_or((0, 0));
            let usage = usage(pid);
            // 'S' (what this said before sysctl was asked) when the process went between
            // the two reads: the next scan drops it.
            let state = kinfo(pid).map_or('S', |k| k.state);
            // One read gives the arguments and the environment.
            let args = procargs(pid);
            Some(ProcSnapshot {
                info: ProcInfo {
                    pid,
                    ppid: info.ppid,
                    cmdline: args.as_deref().map(parse_procargs).unwrap_or_default(),
                    comm: info.comm,
                    sid: sid.max(0) as u32,
                    tty_nr: info.tty_dev,
                    start_ticks: 0,
                },
                state,
                kernel_thread: false,
                started_boot_ns: info.started_epoch_ns,
                cpu_ns: usage.and_then(|u| u.cpu_ns),
                rss_bytes: usage.map_or(0, |u| u.rss_bytes),
                swap_bytes: None,
                hangup: mask_disposition(ignored, caught),
                terminal_env: args
                    .as_deref()
                    .map(|raw| TerminalEnv::parse(parse_procargs_env(raw))),
                cwd: cwd(pid),
                uid: Some(info.uid),
            })
        })
        .collect()
}

/// Resident size, physical footprint and CPU time from [`rusage`]; from
/// `proc_pidinfo(PROC_PIDTASKINFO)`, without the footprint, where rusage does not answer.
pub fn usage(pid: u32) -> Option<Usage> {
    if let Some(r) = rusage(pid) {
        return Some(Usage {
            rss_bytes: r.resident_bytes,
            swap_bytes: None,
            peak_rss_bytes: None,
            cpu_ns: Some(r.cpu_ns),
            footprint_bytes: Some(r.phys_footprint_bytes),
        });
    }
    // SAFETY: proc_taskinfo is plain data; all zeroes is a valid value.
    let mut info: libc::proc_taskinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
    // SAFETY: `info` is a writable proc_taskinfo of the size given.
    let written = unsafe {
        libc::proc_pidinfo(
            pid as libc::c_int,
            libc::PROC_PIDTASKINFO,
            0,
            (&raw mut info).cast(),
            size,
        )
    };
    if written != size {
        return None;
    }
    let mach = info.pti_total_user.saturating_add(info.pti_total_system);
    Some(Usage {
        rss_bytes: info.pti_resident_size,
        swap_bytes: None,
        peak_rss_bytes: None,
        cpu_ns: Some(mach_to_ns(mach)),
        footprint_bytes: None,
    })
}

/// `proc_pid_rusage(RUSAGE_INFO_V4)`: the physical footprint, which taskinfo lacks, with
/// resident size and CPU time. None when the process is gone, a zombie, or not ours to
/// read.
pub fn rusage(pid: u32) -> Option<Rusage> {
    let mut info = RusageInfoV4::default();
    // SAFETY: `info` is a writable rusage_info_v4 (the size is asserted above); the
    // binding's `*mut rusage_info_t` is C's `void *` to the buffer.
    let status = unsafe {
        libc::proc_pid_rusage(
            pid as libc::c_int,
            libc::RUSAGE_INFO_V4,
            (&raw mut info).cast(),
        )
    };
    if status != 0 {
        return None;
    }
    Rusage::from_raw(&info, timebase())
}

/// `sysctl(CTL_KERN, KERN_PROC, KERN_PROC_PID, pid)`: run state, parent, group and
/// terminal. None when the process is gone.
pub fn kinfo(pid: u32) -> Option<KinfoProc> {
    let mut mib = [
        libc::CTL_KERN,
        libc::KERN_PROC,
        libc::KERN_PROC_PID,
        pid as libc::c_int,
    ];
    let mut info = RawKinfoProc::zeroed();
    let mut size = mem::size_of::<RawKinfoProc>();
    // SAFETY: `mib` names four levels; `info` is writable for `size` bytes.
    let status = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as libc::c_uint,
            (&raw mut info).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    // For a pid that does not exist sysctl succeeds and writes nothing.
    (status == 0 && size == mem::size_of::<RawKinfoProc>()).then(|| KinfoProc::from_raw(&info))
}

/// Mach absolute time to nanoseconds (1:1 on Intel, 125:3 on Apple silicon).
fn mach_to_ns(ticks: u64) -> u64 {
    timebase().to_ns(ticks)
}

/// The timebase is fixed for the machine's uptime: asked once.
fn timebase() -> Timebase {
    // libc marks its binding deprecated in favour of the mach2 crate; one call does not
    // justify a dependency, so it is declared here as <mach/mach_time.h> has it.
    unsafe extern "C" {
        fn mach_timebase_info(info: *mut Timebase) -> libc::c_int;
    }
    static BASE: OnceLock<Timebase> = OnceLock::new();
    *BASE.get_or_init(|| {
        let mut base = Timebase { numer: 0, denom: 0 };
        // SAFETY: `base` is a writable mach_timebase_info_data_t.
        if unsafe { mach_timebase_info(&mut base) } != 0 || base.denom == 0 {
            return Timebase::IDENTITY;
        }
        base
    })
}
