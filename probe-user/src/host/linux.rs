//! Linux's host layer: one-shot reads of /proc. Processes vanish between listing and
//! reading; such reads give `None` and are not errors.
use std::{fs, path::Path, sync::OnceLock};

use super::{ProcInfo, ProcSnapshot, Usage, disposition};
use crate::{event::Disposition, origin::TerminalEnv};

/// The fields of /proc/PID/stat this project uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub sid: u32,
    pub tty_nr: u32,
    /// The kernel's PF_* task flags.
    pub flags: u32,
    /// User plus system CPU time; `None` when those fields do not parse.
    pub cpu_ns: Option<u64>,
    pub start_ticks: u64,
}

impl Stat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// include/linux/sched.h; stable since Linux 2.6.
const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of /proc/PID/status this project uses.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Status {
    /// SigIgn: bit N-1 set when signal N is ignored.
    pub sig_ign: u64,
    /// SigCgt: bit N-1 set when signal N has a handler.
    pub sig_cgt: u64,
    /// VmRSS in bytes; `None` when absent (kernel threads and zombies have no memory map).
    pub rss_bytes: Option<u64>,
    /// VmSwap in bytes, likewise.
    pub swap_bytes: Option<u64>,
    /// VmHWM, the most it has been resident, likewise.
    pub peak_rss_bytes: Option<u64>,
    /// The real user id (the first of the `Uid:` line); `None` when absent.
    pub uid: Option<u32>,
}

impl Status {
    pub fn hangup(&self) -> Disposition {
        disposition(self.sig_ign, self.sig_cgt, libc::SIGHUP as u32)
    }
}

/// Parses /proc/PID/stat. The comm sits in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        tty_nr: field(7)?.parse::<i64>().ok()? as u32,
        flags: field(9)?.parse().ok()?,
        cpu_ns: cpu_ns(field(14)?, field(15)?),
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// utime + stime, in clock ticks, as nanoseconds.
fn cpu_ns(utime: &str, stime: &str) -> Option<u64> {
    let ticks = utime
        .parse::<u64>()
        .ok()?
        .checked_add(stime.parse().ok()?)?;
    Some(ticks_to_ns(ticks, clock_ticks_per_second()))
}

/// Parses /proc/PID/status; `None` when a signal mask is missing or malformed.
pub fn parse_status(text: &str) -> Option<Status> {
    let mut sig_ign = None;
    let mut sig_cgt = None;
    let (mut rss_bytes, mut swap_bytes, mut peak_rss_bytes) = (None, None, None);
    let mut uid = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "SigIgn" => sig_ign = u64::from_str_radix(value, 16).ok(),
            "SigCgt" => sig_cgt = u64::from_str_radix(value, 16).ok(),
            "VmRSS" => rss_bytes = parse_kib(value),
            "VmSwap" => swap_bytes = parse_kib(value),
            "VmHWM" => peak_rss_bytes = parse_kib(value),
            "Uid" => uid = value.split_whitespace().next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Some(Status {
        sig_ign: sig_ign?,
        sig_cgt: sig_cgt?,
        rss_bytes,
        swap_bytes,
        peak_rss_bytes,
        uid,
    })
}

/// `"1234 kB"` -> bytes. The kernel's "kB" means KiB.
fn parse_kib(value: &str) -> Option<u64> {
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    number.parse::<u64>().ok()?.checked_mul(1024)
}

pub fn read_status(pid: u32) -> Option<Status> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// What the environment says of where the process was started; None when unreadable
/// (other users' environments are readable only by root).
pub fn read_terminal_env(pid: u32) -> Option<TerminalEnv> {
    fs::read(format!("/proc/{pid}/environ"))
        .ok()
        .map(|raw| TerminalEnv::parse_block(&raw))
}

/// The working directory; None when unreadable (as the environment) or gone. A directory
/// removed since ends in ` (deleted)`, as the kernel says it.
pub fn read_cwd(pid: u32) -> Option<String> {
    let path = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    Some(path.to_string_lossy().into_owned())
}

/// USER_HZ: the unit of the tick counts in /proc/PID/stat.
pub fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        // Linux has reported 100 on every architecture for decades; a failure here
        // should not make every time zero.
        if hz > 0 { hz as u64 } else { 100 }
    })
}

pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// User plus system CPU time of a process so far.
pub fn read_cpu_ns(pid: u32) -> Option<u64> {
    read_stat(pid)?.cpu_ns
}

/// The name of a terminal from its device number (`tty_nr` in /proc/PID/stat), spelled
/// as the kernel names it in tty_struct so both sources agree.
pub fn tty_name(tty_nr: u32) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("tty{major}:{minor}"),
    })
}

pub fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The command line with NUL separators turned into spaces (empty for kernel threads).
pub fn read_cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(join_cmdline(&raw))
}

pub fn join_cmdline(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(&[0]).unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

pub fn read_process(pid: u32) -> Option<ProcInfo> {
    Some(proc_info(pid, read_stat(pid)?))
}

fn proc_info(pid: u32, stat: Stat) -> ProcInfo {
    ProcInfo {
        pid,
        ppid: stat.ppid,
        cmdline: read_cmdline(pid).unwrap_or_default(),
        comm: stat.comm,
        sid: stat.sid,
        tty_nr: stat.tty_nr,
        start_ticks: stat.start_ticks,
    }
}

/// [`read_snapshot`] without the command line and the environment: the two files of a
/// process that change state (stat, status), for a poll that reads every process.
pub fn read_state(pid: u32) -> Option<ProcSnapshot> {
    let stat = read_stat(pid)?;
    let status = read_status(pid)?;
    Some(ProcSnapshot {
        state: stat.state,
        kernel_thread: stat.is_kernel_thread(),
        started_boot_ns: ticks_to_ns(stat.start_ticks, clock_ticks_per_second()),
        cpu_ns: stat.cpu_ns,
        rss_bytes: status.rss_bytes.unwrap_or(0),
        swap_bytes: status.swap_bytes,
        hangup: status.hangup(),
        terminal_env: None,
        cwd: None,
        uid: status.uid,
        info: ProcInfo {
            pid,
            ppid: stat.ppid,
            comm: stat.comm,
            cmdline: String::new(),
            sid: stat.sid,
            tty_nr: stat.tty_nr,
            start_ticks: stat.start_ticks,
        },
    })
}

/// Every process in /proc as [`read_state`] gives it.
pub fn scan_states() -> Vec<ProcSnapshot> {
    list_pids(Path::new("/proc"))
        .into_iter()
        .filter_map(read_state)
        .collect()
}

/// Everything [`ProcSnapshot`] holds for one process; `None` when it is gone.
pub fn read_snapshot(pid: u32) -> Option<ProcSnapshot> {
    let mut p = read_state(pid)?;
    p.info.cmdline = read_cmdline(pid).unwrap_or_default();
    p.terminal_env = read_terminal_env(pid);
    p.cwd = read_cwd(pid);
    Some(p)
}

/// The pids (thread-group leaders) listed in `root`, ascending.
fn list_pids(root: &Path) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// Every process (thread-group leader) visible in `root`, normally /proc.
pub fn scan_in(root: &Path) -> Vec<ProcInfo> {
    list_pids(root)
        .into_iter()
        .filter_map(read_process)
        .collect()
}

pub fn scan() -> Vec<ProcInfo> {
    scan_in(Path::new("/proc"))
}

/// Every process in /proc with the fields of [`ProcSnapshot`].
pub fn scan_snapshots() -> Vec<ProcSnapshot> {
    list_pids(Path::new("/proc"))
        .into_iter()
        .filter_map(read_snapshot)
        .collect()
}

pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Reads `/proc/PID/status` (VmRSS, VmSwap, VmHWM); None when the process is gone. A
/// zombie has no memory map left, so it reads as gone too. The CPU time is another file
/// (`stat`): [`read_cpu_ns`] reads it only for the samples that are reported.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = read_status(pid)?;
    let rss_bytes = status.rss_bytes?;
    Some(Usage {
        rss_bytes,
        swap_bytes: status.swap_bytes,
        peak_rss_bytes: status.peak_rss_bytes,
        cpu_ns: None,
        footprint_bytes: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_hostile_comm() {
        let text = "1234 (a) b (c)) S 1 1234 1234 34817 1234 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.sid, 1234);
        assert_eq!(stat.tty_nr, 34817);
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn parses_state_flags_and_cpu_time() {
        let text = "1234 (a) b (c)) S 1 1234 1234 34817 1234 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.flags, 4194560);
        assert!(!stat.is_kernel_thread());
        let tick = ticks_to_ns(1, clock_ticks_per_second());
        assert_eq!(stat.cpu_ns, Some(3 * tick));
    }

    #[test]
    fn counts_fields_after_the_last_paren_even_with_fake_fields_in_comm() {
        let text = "77 (x) R 9 9 9 0 (\n) Z 5 ) S 3 77 77 0 -1 2129984 0 0 0 0 40 60 0 0 20 0 1 0 5000 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "x) R 9 9 9 0 (\n) Z 5 ");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 3);
        assert_eq!(stat.sid, 77);
        assert_eq!(stat.tty_nr, 0);
        assert_eq!(
            stat.cpu_ns,
            Some(ticks_to_ns(100, clock_ticks_per_second()))
        );
        assert_eq!(stat.start_ticks, 5000);
    }

    #[test]
    fn tells_kernel_threads_by_their_flag() {
        let text = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0";
        assert!(parse_stat(text).unwrap().is_kernel_thread());
    }

    #[test]
    fn unparsable_cpu_time_is_unknown_not_fatal() {
        let text = "5 (x) S 1 5 5 0 -1 0 0 0 0 0 - 2 0 0 20 0 1 0 700 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!((stat.cpu_ns, stat.start_ticks), (None, 700));
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn joins_command_line_arguments() {
        assert_eq!(
            join_cmdline(b"node\0/usr/bin/claude\0--resume\0"),
            "node /usr/bin/claude --resume"
        );
        assert_eq!(join_cmdline(b""), "");
    }

    const STATUS: &str = "Name:\tsleep\nState:\tS (sleeping)\nUid:\t1000\t0\t0\t0\nVmPeak:\t    8000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\nVmSwap:\t     512 kB\nSigQ:\t0/63438\nSigPnd:\t0000000000000001\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000006\nSigCgt:\t0000000000004001\n";

    #[test]
    fn parses_status_masks_and_rss() {
        let status = parse_status(STATUS).unwrap();
        assert_eq!(status.sig_ign, 0x6);
        assert_eq!(status.sig_cgt, 0x4001);
        assert_eq!(status.rss_bytes, Some(1536 * 1024));
        assert_eq!(status.swap_bytes, Some(512 * 1024));
        assert_eq!(
            status.peak_rss_bytes,
            Some(2048 * 1024),
            "VmHWM, not VmPeak"
        );
        assert_eq!(status.uid, Some(1000), "the real uid, not the effective");
        assert_eq!(
            status.hangup(),
            Disposition::Handler,
            "SigPnd must not be read"
        );
    }

    #[test]
    fn hangup_disposition_from_masks() {
        let hup = |ign, cgt| disposition(ign, cgt, 1);
        assert_eq!(hup(0, 0), Disposition::Default);
        assert_eq!(hup(1, 0), Disposition::Ignore);
        assert_eq!(hup(0, 1), Disposition::Handler);
        assert_eq!(
            hup(1, 1),
            Disposition::Ignore,
            "ignored wins, as the kernel shows"
        );
        assert_eq!(
            hup(!1, !1),
            Disposition::Default,
            "other signals do not count"
        );
        assert_eq!(disposition(1 << 63, 0, 64), Disposition::Ignore);
        assert_eq!(disposition(u64::MAX, 0, 0), Disposition::Default);
        assert_eq!(disposition(u64::MAX, 0, 65), Disposition::Default);
    }

    #[test]
    fn status_without_rss_is_a_kernel_thread_or_zombie() {
        let text = "Name:\tkthreadd\nSigIgn:\tffffffffffffffff\nSigCgt:\t0000000000000000\n";
        let status = parse_status(text).unwrap();
        assert_eq!(status.rss_bytes, None);
        assert_eq!(status.swap_bytes, None);
        assert_eq!(status.uid, None);
        assert_eq!(status.hangup(), Disposition::Ignore);
    }

    #[test]
    fn status_without_masks_is_rejected() {
        assert_eq!(parse_status("Name:\tx\nVmRSS:\t4 kB\n"), None);
        assert_eq!(parse_status("SigIgn:\tzz\nSigCgt:\t0\n"), None);
    }

    fn dev(major: u32, minor: u32) -> u32 {
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }

    #[test]
    fn names_terminals_from_device_numbers() {
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(34817).as_deref(), Some("pts/1"));
        assert_eq!(tty_name(dev(136, 0)).as_deref(), Some("pts/0"));
        assert_eq!(tty_name(dev(136, 300)).as_deref(), Some("pts/300"));
        assert_eq!(tty_name(dev(137, 5)).as_deref(), Some("pts/261"));
        assert_eq!(tty_name(dev(143, 255)).as_deref(), Some("pts/2047"));
        assert_eq!(tty_name(dev(4, 1)).as_deref(), Some("tty1"));
        assert_eq!(tty_name(dev(4, 63)).as_deref(), Some("tty63"));
        assert_eq!(tty_name(dev(4, 64)).as_deref(), Some("ttyS0"));
        assert_eq!(tty_name(dev(4, 65)).as_deref(), Some("ttyS1"));
        assert_eq!(tty_name(dev(188, 0)).as_deref(), Some("tty188:0"));
        assert_eq!(tty_name(dev(144, 0)).as_deref(), Some("tty144:0"));
    }

    #[test]
    fn converts_ticks_to_nanoseconds() {
        assert_eq!(ticks_to_ns(100, 100), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 100), 10_000_000);
        assert_eq!(ticks_to_ns(3, 300), 10_000_000);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(
            ticks_to_ns(5, 0),
            5_000_000_000,
            "a zero rate must not divide by zero"
        );
        assert!(clock_ticks_per_second() > 0);
    }

    fn own_hangup_disposition() -> Disposition {
        // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only reads.
        let old = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old);
            old
        };
        Disposition::from_handler(old.sa_sigaction as u64)
    }

    #[test]
    fn snapshots_this_test_process() {
        let me = read_snapshot(std::process::id()).unwrap();
        assert_eq!(me.info, read_process(std::process::id()).unwrap());
        // The state is the main thread's, which waits while a worker runs this test.
        assert!("RSD".contains(me.state), "state {:?}", me.state);
        assert!(!me.kernel_thread);
        assert!(me.rss_bytes > 0);
        assert!(me.started_boot_ns > 0);
        assert_eq!(me.hangup, own_hangup_disposition());
        assert_eq!(
            me.terminal_env.as_ref().map(|e| e.term.is_some()),
            Some(std::env::var_os("TERM").is_some())
        );
        let here = std::env::current_dir().unwrap();
        assert_eq!(me.cwd.as_deref(), here.to_str());
        assert!(me.cpu_ns.is_some());
        assert!(read_cpu_ns(std::process::id()) >= me.cpu_ns);
        assert!(scan_snapshots().iter().any(|p| p.info.pid == me.info.pid));
    }

    #[test]
    fn reads_this_test_process() {
        let me = read_process(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(!me.cmdline.is_empty());
        assert!(scan().iter().any(|p| p.pid == me.pid));
    }
}
