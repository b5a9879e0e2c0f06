//! The macOS process table, as the same [`ProcSnapshot`]s /proc gives on Linux: libproc
//! (`proc_listallpids`, `proc_pidinfo(PROC_PIDTBSDINFO)`) for parent, group, terminal and
//! start time, `getsid` for the session, `KERN_PROCARGS2` for the command line, and one
//! `ps` for the ignored and caught signal masks, which libproc does not expose.
use std::{collections::HashMap, mem, process::Command};

use super::{ProcInfo, ProcSnapshot, Usage, disposition};
use crate::event::Disposition;

/// `e_tdev` of a process without a controlling terminal.
const NODEV: u32 = u32::MAX;

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
    Some(parse_procargs(&buffer[..size]))
}

/// The argument part of a `KERN_PROCARGS2` buffer, joined by spaces.
pub fn parse_procargs(raw: &[u8]) -> String {
    let Some((argc, rest)) = raw.split_first_chunk::<4>() else {
        return String::new();
    };
    let argc = i32::from_ne_bytes(*argc).max(0) as usize;
    let after_path = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let args = &rest[after_path..];
    let start = args.iter().position(|&b| b != 0).unwrap_or(args.len());
    let joined: Vec<String> = args[start..]
        .split(|&b| b == 0)
        .take(argc)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    joined.join(" ")
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

/// `ps -axo pid=,ignored=,caught=` lines: a pid and two hexadecimal masks.
pub fn parse_signal_masks(text: &str) -> HashMap<u32, (u64, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let pid = fields.next()?.parse().ok()?;
            let hex = |f: &str| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok();
            let ignored = hex(fields.next()?)?;
            let caught = hex(fields.next()?)?;
            Some((pid, (ignored, caught)))
        })
        .collect()
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
            Some(ProcSnapshot {
                info: ProcInfo {
                    pid,
                    ppid: info.ppid,
                    cmdline: cmdline(pid).unwrap_or_default(),
                    comm: info.comm,
                    sid: sid.max(0) as u32,
                    tty_nr: info.tty_dev,
                    start_ticks: 0,
                },
                state: 'S',
                kernel_thread: false,
                started_boot_ns: info.started_epoch_ns,
                cpu_ns: usage.and_then(|u| u.cpu_ns),
                rss_bytes: usage.map_or(0, |u| u.rss_bytes),
                swap_bytes: None,
                hangup: mask_disposition(ignored, caught),
                term_env: false,
                uid: Some(info.uid),
            })
        })
        .collect()
}

fn mask_disposition(ignored: u64, caught: u64) -> Disposition {
    // Darwin's masks put signal N at bit N-1, as Linux's SigIgn and SigCgt do.
    disposition(ignored, caught, crate::signals::SIGHUP)
}

/// A Darwin terminal device by name (`ttys003`).
pub fn tty_name(dev: u32) -> Option<String> {
    if dev == NODEV {
        return None;
    }
    crate::source::dtrace::format::tty_name(i64::from(dev as i32))
}

/// `proc_pidinfo(PROC_PIDTASKINFO)`: resident size in bytes, CPU time in Mach time units.
pub fn usage(pid: u32) -> Option<Usage> {
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
    })
}

/// Mach absolute time to nanoseconds (1:1 on Intel, 125:3 on Apple silicon).
fn mach_to_ns(ticks: u64) -> u64 {
    // libc marks its binding deprecated in favour of the mach2 crate; one call does not
    // justify a dependency, so it is declared here as <mach/mach_time.h> has it.
    #[repr(C)]
    struct Timebase {
        numer: u32,
        denom: u32,
    }
    unsafe extern "C" {
        fn mach_timebase_info(info: *mut Timebase) -> libc::c_int;
    }
    let mut base = Timebase { numer: 0, denom: 0 };
    // SAFETY: `base` is a writable mach_timebase_info_data_t.
    if unsafe { mach_timebase_info(&mut base) } != 0 || base.denom == 0 {
        return ticks;
    }
    (u128::from(ticks) * u128::from(base.numer) / u128::from(base.denom)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procargs_give_the_arguments_not_the_path() {
        let mut raw = 2i32.to_ne_bytes().to_vec();
        raw.extend_from_slice(b"/usr/bin/nohup\0\0\0\0nohup\0sleep 1\0PATH=/bin\0");
        assert_eq!(parse_procargs(&raw), "nohup sleep 1");
        assert_eq!(parse_procargs(b"\x01"), "");
    }

    #[test]
    fn ps_masks_are_hexadecimal() {
        let masks = parse_signal_masks("  1 0 0\n 4242 00000001 00004000\nbad line\n");
        assert_eq!(masks.get(&4242), Some(&(1, 0x4000)));
        assert_eq!(mask_disposition(1, 0), Disposition::Ignore);
        assert_eq!(tty_name(NODEV), None);
    }
}
