//! The host's process table, one layer per OS (Linux: /proc; macOS: libproc and sysctl)
//! behind one API. The sources, the re-sync, `sessions` and `reap` read processes only
//! through it.
#[cfg(target_os = "macos")]
pub mod darwin;
pub mod darwin_data;
#[cfg(target_os = "macos")]
pub mod darwin_exits;
#[cfg(target_os = "macos")]
mod darwin_memory;
#[cfg(target_os = "macos")]
mod darwin_pressure;
pub mod linux;
pub mod linux_earlyoom;
pub mod linux_memory;
#[cfg(target_os = "linux")]
pub mod linux_oom;
pub mod linux_oomd;
pub mod linux_pss;
#[cfg(target_os = "linux")]
mod linux_sockets;
mod machine;
mod oom_killer;
mod process;
pub mod users;

pub use machine::MachineMemory;
pub use oom_killer::{Candidate, Earlyoom, ManagedUnit, OomKillers, SystemdOomd};
pub use process::{ProcInfo, ProcSnapshot, ProcessTree, Pss, Usage, disposition};

use crate::{
    decode::Clock,
    event::Disposition,
    origin::{self, Origin, TerminalEnv},
};

/// A process as `reap` re-reads it before ending it: who owns it and which life it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub comm: String,
    /// When it started, in the OS's own unit: (pid, start) names one life of a pid.
    pub start: u64,
    /// When it started, in Unix-epoch nanoseconds (at the OS's resolution: clock ticks on
    /// Linux), to hold against a sessions view's `started_ns`.
    pub started_epoch_ns: u64,
    pub kernel_thread: bool,
}

/// How far a start time taken earlier (a sessions view's) and the live one may differ and
/// still be one life of the pid: /proc counts in clock ticks, and each reading turned boot
/// time into epoch time with the clocks' offset as it stood then (NTP moves it by
/// milliseconds).
pub const SAME_START_NS: u64 = 1_000_000_000;

impl Identity {
    /// This is the life of its pid that started at `epoch_ns` (a view's `started_ns`).
    pub fn started_at(&self, epoch_ns: u64) -> bool {
        self.started_epoch_ns.abs_diff(epoch_ns) <= SAME_START_NS
    }
}

/// Every process with all the fields of [`ProcSnapshot`]; `started_boot_ns` plus
/// [`boot_epoch_ns`] is its start in Unix-epoch time.
pub fn processes() -> Vec<ProcSnapshot> {
    #[cfg(target_os = "macos")]
    return darwin::scan_snapshots();
    #[cfg(not(target_os = "macos"))]
    return linux::scan_snapshots();
}

/// Every process as a poll needs it: [`processes`] without command lines or environments
/// where leaving them out saves reads (Linux).
pub fn states() -> Vec<ProcSnapshot> {
    #[cfg(target_os = "macos")]
    return darwin::scan_snapshots();
    #[cfg(not(target_os = "macos"))]
    return linux::scan_states();
}

/// Whether a process's files and memory are readable to this hupwatch: all of them for
/// root or a user holding the capabilities `run --user` keeps; for anyone else, their own.
pub fn readable_uid() -> Option<u32> {
    // SAFETY: getuid has no preconditions.
    (!crate::privileges::reads_every_process()).then(|| unsafe { libc::getuid() })
}

/// Every process, with only what matching and trees need (cheaper than [`processes`]).
pub fn process_infos() -> Vec<ProcInfo> {
    #[cfg(target_os = "macos")]
    return darwin::scan_snapshots()
        .into_iter()
        .map(|p| p.info)
        .collect();
    #[cfg(not(target_os = "macos"))]
    return linux::scan();
}

/// What to add to a snapshot's `started_boot_ns` for Unix-epoch nanoseconds.
pub fn boot_epoch_ns(clock: &Clock) -> u64 {
    // libproc gives start times in epoch time already.
    if cfg!(target_os = "macos") {
        0
    } else {
        clock.to_epoch_ns(0)
    }
}

/// A controlling terminal's device number (as [`ProcInfo::tty_nr`] holds it) by name.
pub fn tty_name(dev: u32) -> Option<String> {
    #[cfg(target_os = "macos")]
    return darwin::tty_name(dev);
    #[cfg(not(target_os = "macos"))]
    return linux::tty_name(dev);
}

/// A live process's parent and name; None once it is gone.
pub fn parent_of(pid: u32) -> Option<(u32, String)> {
    #[cfg(target_os = "macos")]
    return darwin::bsd_info(pid).map(|info| (info.ppid, info.comm));
    #[cfg(not(target_os = "macos"))]
    return linux::read_stat(pid).map(|stat| (stat.ppid, stat.comm));
}

/// Its state letter as Linux writes it (`R`, `S`, `T`, `Z`, ...); None when it is gone.
pub fn state(pid: u32) -> Option<char> {
    #[cfg(target_os = "macos")]
    return darwin::kinfo(pid).map(|k| k.state);
    #[cfg(not(target_os = "macos"))]
    return linux::read_stat(pid).map(|stat| stat.state);
}

/// Memory now; None when the process is gone (or a zombie, which holds none).
pub fn usage(pid: u32) -> Option<Usage> {
    #[cfg(target_os = "macos")]
    return darwin::usage(pid);
    #[cfg(target_os = "linux")]
    return linux::usage(pid);
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    return {
        let _ = pid;
        None
    };
}

/// Proportional memory now (Linux's smaps_rollup); None when gone, unreadable, or where
/// the OS has no such figure (macOS, whose footprint stands in for it).
pub fn pss(pid: u32) -> Option<Pss> {
    #[cfg(target_os = "linux")]
    return linux_pss::read(pid);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = pid;
        None
    };
}

/// Whether [`pss`] can ever answer here: Linux with smaps_rollup (4.14+).
pub fn pss_supported() -> bool {
    cfg!(target_os = "linux") && linux_pss::supported()
}

/// CPU time for a reading that had none (on macOS [`usage`] carries it already).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    return linux::read_cpu_ns(pid);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = pid;
        None
    };
}

/// The command line, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    #[cfg(target_os = "macos")]
    return darwin::cmdline(pid);
    #[cfg(not(target_os = "macos"))]
    return linux::read_cmdline(pid);
}

/// What the environment says of where the process was started; None when unreadable.
pub fn terminal_env(pid: u32) -> Option<TerminalEnv> {
    #[cfg(target_os = "macos")]
    return darwin::terminal_env(pid);
    #[cfg(not(target_os = "macos"))]
    return linux::read_terminal_env(pid);
}

/// The working directory; None when unreadable or gone.
pub fn cwd(pid: u32) -> Option<String> {
    #[cfg(target_os = "macos")]
    return darwin::cwd(pid);
    #[cfg(not(target_os = "macos"))]
    return linux::read_cwd(pid);
}

/// Where a live process was started: its environment and working directory, and, when
/// its environment does not name its terminal's program, its ancestors' names.
pub fn origin(pid: u32) -> Origin {
    let env = terminal_env(pid);
    Origin {
        terminal_program: origin::terminal_program(env.as_ref(), origin::ancestors(pid, parent_of)),
        cwd: cwd(pid),
        from_terminal: env.is_some_and(|e| e.from_terminal()),
    }
}

/// The machine's memory as a whole, now: what there is, what is left, and (Linux) how
/// much tasks stall waiting for it.
pub fn machine_memory() -> MachineMemory {
    #[cfg(target_os = "macos")]
    return darwin_memory::read();
    #[cfg(target_os = "linux")]
    return linux_memory::read();
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    return MachineMemory::default();
}

/// The OOM killers in force now and whom the kernel's order picks first (Linux: a pass
/// over /proc and the killers' own files; macOS: the memory pressure level). Costs a read
/// or two per process: the source calls it every 30 s, not with every memory reading.
pub fn oom_killers() -> OomKillers {
    #[cfg(target_os = "macos")]
    return darwin_pressure::read();
    #[cfg(target_os = "linux")]
    return linux_oom::read(std::path::Path::new("/"));
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    return OomKillers::default();
}

/// The uid of the local process on the other end of a loopback TCP connection to `server`
/// from `peer`; None where the OS does not say (macOS) or the connection is not listed.
pub fn tcp_peer_uid(server: std::net::SocketAddr, peer: std::net::SocketAddr) -> Option<u32> {
    #[cfg(target_os = "linux")]
    return linux_sockets::tcp_peer_uid(server, peer);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = (server, peer);
        None
    };
}

/// What SIGHUP does to the process now.
pub fn hangup(pid: u32) -> Option<Disposition> {
    #[cfg(target_os = "macos")]
    return darwin::hangup(pid);
    #[cfg(not(target_os = "macos"))]
    return linux::read_status(pid).map(|s| s.hangup());
}

/// Owner, name and start of a live process, read now.
pub fn identity(pid: u32) -> Option<Identity> {
    #[cfg(target_os = "macos")]
    return darwin::bsd_info(pid).map(|info| Identity {
        uid: info.uid,
        comm: info.comm,
        start: info.started_epoch_ns / 1000,
        started_epoch_ns: info.started_epoch_ns,
        // The kernel (pid 0) is the only one; launchd is pid 1.
        kernel_thread: pid == 0,
    });
    #[cfg(not(target_os = "macos"))]
    return {
        let stat = linux::read_stat(pid)?;
        Some(Identity {
            uid: linux::read_status(pid)?.uid?,
            kernel_thread: stat.is_kernel_thread(),
            comm: stat.comm,
            start: stat.start_ticks,
            started_epoch_ns: crate::decode::Clock::now().to_epoch_ns(linux::ticks_to_ns(
                stat.start_ticks,
                linux::clock_ticks_per_second(),
            )),
        })
    };
}
