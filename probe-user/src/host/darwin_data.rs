//! The pure half of the macOS host layer: the kernel's structures as Darwin lays them out,
//! and what turns them (and `ps` and `KERN_PROCARGS2` text) into values. Compiled on every
//! OS so that its tests run on Linux; the calls that fill these structures are in
//! `darwin.rs` and `darwin_exits.rs`, which only a Mac builds.
use std::{collections::HashMap, mem};

use super::disposition;
use crate::event::Disposition;

/// `e_tdev` of a process without a controlling terminal.
pub const NODEV: u32 = u32::MAX;

/// The arguments of a `KERN_PROCARGS2` buffer (argc, the executable path, padding, then
/// argc NUL-terminated arguments), joined by spaces.
pub fn parse_procargs(raw: &[u8]) -> String {
    let joined: Vec<String> = procargs_strings(raw)
        .map(|(argc, strings)| strings.take(argc).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    joined.join(" ")
}

/// The environment of a `KERN_PROCARGS2` buffer: the NUL-terminated strings after the
/// arguments, up to the empty one that ends them (what follows is the kernel's own
/// `key=value` strings for dyld, not the process's environment).
pub fn parse_procargs_env(raw: &[u8]) -> Vec<&[u8]> {
    let Some((argc, strings)) = procargs_strings(raw) else {
        return Vec::new();
    };
    strings
        .skip(argc)
        .take_while(|entry| !entry.is_empty())
        .collect()
}

/// argc and the strings from the first argument on.
fn procargs_strings(raw: &[u8]) -> Option<(usize, impl Iterator<Item = &[u8]>)> {
    let (argc, rest) = raw.split_first_chunk::<4>()?;
    let argc = i32::from_ne_bytes(*argc).max(0) as usize;
    let after_path = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let args = &rest[after_path..];
    let start = args.iter().position(|&b| b != 0).unwrap_or(args.len());
    let strings = args[start..].split(|&b| b == 0);
    Some((argc, strings))
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

/// What SIGHUP does, from Darwin's ignored and caught masks.
pub fn mask_disposition(ignored: u64, caught: u64) -> Disposition {
    // Darwin's masks put signal N at bit N-1, as Linux's SigIgn and SigCgt do.
    disposition(ignored, caught, crate::signals::SIGHUP)
}

/// A Darwin terminal device by name (`ttys003`).
pub fn tty_name(dev: u32) -> Option<String> {
    if dev == NODEV {
        return None;
    }
    dev_name(i64::from(dev as i32))
}

/// `ttysNNN` for macOS's pseudo-terminals (major 16), `dev:MAJOR,MINOR` otherwise; None
/// for -1 (no terminal).
pub fn dev_name(dev: i64) -> Option<String> {
    if dev < 0 {
        return None;
    }
    let (major, minor) = ((dev >> 24) & 0xff, dev & 0xff_ffff);
    Some(if major == 16 {
        format!("ttys{minor:03}")
    } else {
        format!("dev:{major},{minor}")
    })
}

/// `mach_timebase_info_data_t`: Mach absolute time times numer/denom is nanoseconds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timebase {
    pub numer: u32,
    pub denom: u32,
}

impl Timebase {
    /// What Intel Macs have, and the fallback when the kernel does not answer.
    pub const IDENTITY: Self = Self { numer: 1, denom: 1 };

    pub fn to_ns(self, ticks: u64) -> u64 {
        if self.denom == 0 {
            return ticks;
        }
        // In u128: the product overflows u64 long before the quotient does.
        (u128::from(ticks) * u128::from(self.numer) / u128::from(self.denom)) as u64
    }
}

/// `struct rusage_info_v4` from <sys/resource.h>, declared here rather than taken from
/// libc so that [`Rusage::from_raw`] builds, and is tested, on every OS.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RusageInfoV4 {
    pub ri_uuid: [u8; 16],
    /// Mach absolute time, like every `*_time` and `*_abstime` field.
    pub ri_user_time: u64,
    pub ri_system_time: u64,
    pub ri_pkg_idle_wkups: u64,
    pub ri_interrupt_wkups: u64,
    pub ri_pageins: u64,
    pub ri_wired_size: u64,
    pub ri_resident_size: u64,
    pub ri_phys_footprint: u64,
    pub ri_proc_start_abstime: u64,
    pub ri_proc_exit_abstime: u64,
    pub ri_child_user_time: u64,
    pub ri_child_system_time: u64,
    pub ri_child_pkg_idle_wkups: u64,
    pub ri_child_interrupt_wkups: u64,
    pub ri_child_pageins: u64,
    pub ri_child_elapsed_abstime: u64,
    pub ri_diskio_bytesread: u64,
    pub ri_diskio_byteswritten: u64,
    pub ri_cpu_time_qos_default: u64,
    pub ri_cpu_time_qos_maintenance: u64,
    pub ri_cpu_time_qos_background: u64,
    pub ri_cpu_time_qos_utility: u64,
    pub ri_cpu_time_qos_legacy: u64,
    pub ri_cpu_time_qos_user_initiated: u64,
    pub ri_cpu_time_qos_user_interactive: u64,
    pub ri_billed_system_time: u64,
    pub ri_serviced_system_time: u64,
    pub ri_logical_writes: u64,
    pub ri_lifetime_max_phys_footprint: u64,
    pub ri_instructions: u64,
    pub ri_cycles: u64,
    pub ri_billed_energy: u64,
    pub ri_serviced_energy: u64,
    pub ri_interval_max_phys_footprint: u64,
    pub ri_runnable_time: u64,
}

// 16 bytes of UUID and 35 u64s: the kernel copies exactly this many bytes.
const _: () = assert!(mem::size_of::<RusageInfoV4>() == 296);

/// What `proc_pid_rusage(RUSAGE_INFO_V4)` says of a process's memory and CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rusage {
    /// What Activity Monitor shows as Memory: dirty, compressed and swapped pages it owns,
    /// which resident size under-counts once the compressor holds them.
    pub phys_footprint_bytes: u64,
    pub resident_bytes: u64,
    /// User plus system CPU time.
    pub cpu_ns: u64,
}

impl Rusage {
    /// None for a process that has exited: the kernel answers for zombies with the
    /// figures it kept at exit (footprint zeroed, exit time set), which describe no memory
    /// held now.
    pub fn from_raw(raw: &RusageInfoV4, timebase: Timebase) -> Option<Self> {
        if raw.ri_proc_exit_abstime != 0 {
            return None;
        }
        Some(Self {
            phys_footprint_bytes: raw.ri_phys_footprint,
            resident_bytes: raw.ri_resident_size,
            cpu_ns: timebase.to_ns(raw.ri_user_time.saturating_add(raw.ri_system_time)),
        })
    }
}

/// `struct timeval` on 64-bit Darwin (the padding after tv_usec is implicit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeval {
    pub tv_sec: i64,
    pub tv_usec: i32,
}

/// `struct extern_proc` from <sys/proc.h>. Kernel pointers are `usize`: they are opaque
/// addresses, never followed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExternProc {
    /// A union of the run-queue links and `p_starttime`; 16 bytes either way.
    pub p_un: [u64; 2],
    pub p_vmspace: usize,
    pub p_sigacts: usize,
    pub p_flag: i32,
    pub p_stat: i8,
    pub p_pid: i32,
    pub p_oppid: i32,
    pub p_dupfd: i32,
    pub user_stack: usize,
    pub exit_thread: usize,
    pub p_debugger: i32,
    pub sigwait: i32,
    pub p_estcpu: u32,
    pub p_cpticks: i32,
    pub p_pctcpu: u32,
    pub p_wchan: usize,
    pub p_wmesg: usize,
    pub p_swtime: u32,
    pub p_slptime: u32,
    pub p_realtimer: [Timeval; 2],
    pub p_rtime: Timeval,
    pub p_uticks: u64,
    pub p_sticks: u64,
    pub p_iticks: u64,
    pub p_traceflag: i32,
    pub p_tracep: usize,
    pub p_siglist: i32,
    pub p_textvp: usize,
    pub p_holdcnt: i32,
    pub p_sigmask: u32,
    pub p_sigignore: u32,
    pub p_sigcatch: u32,
    pub p_priority: u8,
    pub p_usrpri: u8,
    pub p_nice: i8,
    pub p_comm: [u8; 17],
    pub p_pgrp: usize,
    pub p_addr: usize,
    pub p_xstat: u16,
    pub p_acflag: u16,
    pub p_ru: usize,
}

/// `struct _pcred` from <sys/sysctl.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pcred {
    pub pc_lock: [u8; 72],
    pub pc_ucred: usize,
    pub p_ruid: u32,
    pub p_svuid: u32,
    pub p_rgid: u32,
    pub p_svgid: u32,
    pub p_refcnt: i32,
}

/// `struct _ucred` from <sys/sysctl.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ucred {
    pub cr_ref: i32,
    pub cr_uid: u32,
    pub cr_ngroups: i16,
    pub cr_groups: [u32; 16],
}

/// `struct vmspace` as user space sees it (<sys/vm.h>): placeholders only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vmspace {
    pub dummy: i32,
    pub dummy2: usize,
    pub dummy3: [i32; 5],
    pub dummy4: [usize; 3],
}

/// `struct eproc` from <sys/sysctl.h>.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eproc {
    pub e_paddr: usize,
    pub e_sess: usize,
    pub e_pcred: Pcred,
    pub e_ucred: Ucred,
    pub e_vm: Vmspace,
    pub e_ppid: i32,
    pub e_pgid: i32,
    pub e_jobc: i16,
    /// `dev_t`; NODEV (-1) without a controlling terminal.
    pub e_tdev: i32,
    pub e_tpgid: i32,
    pub e_tsess: usize,
    pub e_wmesg: [u8; 8],
    pub e_xsize: i32,
    pub e_xrssize: i16,
    pub e_xccount: i16,
    pub e_xswrss: i16,
    pub e_flag: i32,
    pub e_login: [u8; 12],
    pub e_spare: [i32; 4],
}

/// `struct kinfo_proc` from <sys/sysctl.h>, what `sysctl(KERN_PROC_PID)` fills. libc does
/// not declare it for Apple targets.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawKinfoProc {
    pub kp_proc: ExternProc,
    pub kp_eproc: Eproc,
}

// Both Darwin targets are 64-bit; these are the sizes and offsets <sys/sysctl.h> gives
// there, so a field out of place fails the build rather than reading a neighbour.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(mem::size_of::<ExternProc>() == 296);
    assert!(mem::size_of::<Eproc>() == 352);
    assert!(mem::size_of::<RawKinfoProc>() == 648);
    assert!(mem::offset_of!(ExternProc, p_flag) == 32);
    assert!(mem::offset_of!(ExternProc, p_stat) == 36);
    assert!(mem::offset_of!(ExternProc, p_sigignore) == 232);
    assert!(mem::offset_of!(ExternProc, p_comm) == 243);
    assert!(mem::offset_of!(Eproc, e_ppid) == 264);
    assert!(mem::offset_of!(Eproc, e_pgid) == 268);
    assert!(mem::offset_of!(Eproc, e_tdev) == 276);
};

impl RawKinfoProc {
    /// An all-zero buffer for sysctl to fill.
    pub fn zeroed() -> Self {
        // SAFETY: every field is an integer or an array of integers; zero is valid for all.
        unsafe { mem::zeroed() }
    }
}

/// What `sysctl(KERN_PROC_PID)` says of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KinfoProc {
    /// The state as a Linux /proc letter (see [`state_char`]).
    pub state: char,
    pub ppid: u32,
    pub pgid: u32,
    /// The controlling terminal's `dev_t`, [`NODEV`] for none (as `proc_bsdinfo` has it).
    pub tty_dev: u32,
    /// `p_flag`: the `P_*` bits.
    pub flag: i32,
    /// The signal masks `ps -o ignored,caught` prints: signal N at bit N-1.
    pub ignored_signals: u32,
    pub caught_signals: u32,
}

impl KinfoProc {
    pub fn from_raw(raw: &RawKinfoProc) -> Self {
        let (proc, eproc) = (&raw.kp_proc, &raw.kp_eproc);
        Self {
            state: state_char(proc.p_stat),
            ppid: u32::try_from(eproc.e_ppid).unwrap_or(0),
            pgid: u32::try_from(eproc.e_pgid).unwrap_or(0),
            // Same bits: NODEV (-1) becomes u32::MAX.
            tty_dev: eproc.e_tdev as u32,
            flag: proc.p_flag,
            ignored_signals: proc.p_sigignore,
            caught_signals: proc.p_sigcatch,
        }
    }
}

/// `p_stat` (SIDL, SRUN, SSLEEP, SSTOP, SZOMB in <sys/proc.h>) as the letter Linux's
/// /proc uses for the same state, so callers filter zombies and idle processes one way.
/// Unknown values read as `?`.
pub fn state_char(p_stat: i8) -> char {
    match p_stat {
        1 => 'I',
        2 => 'R',
        3 => 'S',
        4 => 'T',
        5 => 'Z',
        _ => '?',
    }
}

/// The exit code and the terminating signal in a wait(2)-style status, as
/// `NOTE_EXITSTATUS` delivers it: an exit code when the low 7 bits are zero, else those
/// bits are the signal. Only the low 16 bits are the status. A stop status (0x7f) is not
/// an exit and gives neither.
pub fn exit_status(raw: i64) -> (Option<i32>, Option<u32>) {
    let status = raw & 0xffff;
    match status & 0x7f {
        0 => (Some(((status >> 8) & 0xff) as i32), None),
        0x7f => (None, None),
        signal => (None, Some(signal as u32)),
    }
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
        // A negative argc from a garbled buffer gives nothing rather than everything.
        let mut negative = (-1i32).to_ne_bytes().to_vec();
        negative.extend_from_slice(b"/bin/sh\0sh\0");
        assert_eq!(parse_procargs(&negative), "");
    }

    #[test]
    fn procargs_give_the_environment_up_to_the_kernels_own_strings() {
        let mut raw = 2i32.to_ne_bytes().to_vec();
        raw.extend_from_slice(
            b"/opt/node/bin/node\0\0\0node\0/usr/local/bin/claude\0TERM=xterm-256color\0TERM_PROGRAM=vscode\0HOME=/Users/a\0\0ptr_munge=\0executable_path=/opt/node/bin/node\0",
        );
        let env = parse_procargs_env(&raw);
        assert_eq!(
            env,
            [
                &b"TERM=xterm-256color"[..],
                b"TERM_PROGRAM=vscode",
                b"HOME=/Users/a"
            ]
        );
        let origin = crate::origin::TerminalEnv::parse(env);
        assert_eq!(origin.term_program.as_deref(), Some("vscode"));
        assert_eq!(parse_procargs(&raw), "node /usr/local/bin/claude");
        // Arguments only (another user's process as a normal user shows no environment).
        let mut bare = 1i32.to_ne_bytes().to_vec();
        bare.extend_from_slice(b"/bin/sleep\0sleep\0");
        assert!(parse_procargs_env(&bare).is_empty());
        assert!(parse_procargs_env(b"\x01\x00").is_empty());
    }

    #[test]
    fn ps_masks_are_hexadecimal() {
        let masks = parse_signal_masks("  1 0 0\n 4242 00000001 00004000\nbad line\n7 0x2 z\n");
        assert_eq!(masks.get(&4242), Some(&(1, 0x4000)));
        assert_eq!(masks.get(&1), Some(&(0, 0)));
        assert_eq!(masks.len(), 2);
        assert_eq!(mask_disposition(1, 0), Disposition::Ignore);
        assert_eq!(mask_disposition(0, 1), Disposition::Handler);
        assert_eq!(mask_disposition(2, 2), Disposition::Default);
    }

    #[test]
    fn terminals_are_named_from_their_device_number() {
        assert_eq!(tty_name(NODEV), None);
        assert_eq!(tty_name((16 << 24) | 3).as_deref(), Some("ttys003"));
    }

    #[test]
    fn mach_time_converts_with_the_timebase() {
        let apple_silicon = Timebase {
            numer: 125,
            denom: 3,
        };
        assert_eq!(apple_silicon.to_ns(24_000_000), 1_000_000_000);
        assert_eq!(Timebase::IDENTITY.to_ns(12345), 12345);
        assert_eq!(Timebase { numer: 1, denom: 0 }.to_ns(7), 7);
        // The product would overflow u64; the quotient does not.
        assert_eq!(apple_silicon.to_ns(3 << 57), 125 << 57);
    }

    #[test]
    fn rusage_takes_footprint_resident_size_and_both_cpu_times() {
        let raw = RusageInfoV4 {
            ri_user_time: 2_400,
            ri_system_time: 600,
            ri_resident_size: 50 << 20,
            ri_phys_footprint: 80 << 20,
            ri_lifetime_max_phys_footprint: 90 << 20,
            ri_child_user_time: 999_999,
            ..RusageInfoV4::default()
        };
        let timebase = Timebase {
            numer: 125,
            denom: 3,
        };
        assert_eq!(
            Rusage::from_raw(&raw, timebase),
            Some(Rusage {
                phys_footprint_bytes: 80 << 20,
                resident_bytes: 50 << 20,
                cpu_ns: 125_000,
            })
        );
    }

    #[test]
    fn a_zombie_s_kept_rusage_is_no_reading() {
        let raw = RusageInfoV4 {
            ri_resident_size: 50 << 20,
            ri_proc_start_abstime: 1_000,
            ri_proc_exit_abstime: 2_000,
            ..RusageInfoV4::default()
        };
        assert_eq!(Rusage::from_raw(&raw, Timebase::IDENTITY), None);
    }

    #[test]
    fn kinfo_proc_gives_state_parent_group_and_terminal() {
        let mut raw = RawKinfoProc::zeroed();
        raw.kp_proc.p_stat = 5;
        raw.kp_proc.p_flag = 0x4004;
        raw.kp_proc.p_sigignore = 1;
        raw.kp_proc.p_sigcatch = 1 << 14;
        raw.kp_eproc.e_ppid = 1;
        raw.kp_eproc.e_pgid = 4242;
        raw.kp_eproc.e_tdev = (16 << 24) | 3;
        assert_eq!(
            KinfoProc::from_raw(&raw),
            KinfoProc {
                state: 'Z',
                ppid: 1,
                pgid: 4242,
                tty_dev: (16 << 24) | 3,
                flag: 0x4004,
                ignored_signals: 1,
                caught_signals: 1 << 14,
            }
        );
        raw.kp_eproc.e_tdev = -1;
        raw.kp_eproc.e_ppid = -1;
        let detached = KinfoProc::from_raw(&raw);
        assert_eq!(detached.tty_dev, NODEV);
        assert_eq!(tty_name(detached.tty_dev), None);
        assert_eq!(detached.ppid, 0);
    }

    #[test]
    fn p_stat_maps_to_the_linux_letters() {
        let letters: String = (0..=6).map(state_char).collect();
        assert_eq!(letters, "?IRSTZ?");
        assert_eq!(state_char(-1), '?');
    }

    #[test]
    fn exit_statuses_decode_as_wait_does() {
        assert_eq!(exit_status(0), (Some(0), None));
        assert_eq!(exit_status(3 << 8), (Some(3), None));
        assert_eq!(exit_status(255 << 8), (Some(255), None));
        // SIGHUP, SIGKILL, and SIGSEGV with the core-dump bit (0x80) set.
        assert_eq!(exit_status(1), (None, Some(1)));
        assert_eq!(exit_status(9), (None, Some(9)));
        assert_eq!(exit_status(0x80 | 11), (None, Some(11)));
        // Stopped is not exited; bits above the 16-bit status are not part of it.
        assert_eq!(exit_status((19 << 8) | 0x7f), (None, None));
        assert_eq!(exit_status((1 << 20) | (2 << 8)), (Some(2), None));
    }
}
