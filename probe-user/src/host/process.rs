//! What every OS's process table says about a process, in one shape: the types the host
//! layers fill and the sources, `sessions`, `reap` and the re-sync read.
use std::collections::{HashMap, HashSet};

use crate::{event::Disposition, origin::TerminalEnv};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Arguments joined by single spaces.
    pub cmdline: String,
    pub sid: u32,
    /// `tty_nr` from /proc/PID/stat: the controlling terminal's device number, 0 for none.
    pub tty_nr: u32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// A process as the `existing` snapshot needs it: [`ProcInfo`] plus its state, CPU time,
/// memory, SIGHUP disposition, and where it was started (its environment and directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub info: ProcInfo,
    /// The state letter from /proc/PID/stat (`R`, `S`, `Z`, ...).
    pub state: char,
    /// PF_KTHREAD is set: a kernel thread, whatever its pid or parent.
    pub kernel_thread: bool,
    /// Start time in nanoseconds of CLOCK_BOOTTIME (to clock-tick resolution).
    pub started_boot_ns: u64,
    /// User plus system CPU time.
    pub cpu_ns: Option<u64>,
    /// 0 for processes without a memory map (kernel threads, zombies).
    pub rss_bytes: u64,
    pub swap_bytes: Option<u64>,
    pub hangup: Disposition,
    /// What its environment says of where it was started; None when unreadable (or not
    /// read, as in a poll's look).
    pub terminal_env: Option<TerminalEnv>,
    /// Its working directory; None when unreadable or not read.
    pub cwd: Option<String>,
    /// Real user id; `None` where the OS did not say.
    pub uid: Option<u32>,
}

/// What signal `signal` does, from the SigIgn and SigCgt masks.
pub fn disposition(sig_ign: u64, sig_cgt: u64, signal: u32) -> Disposition {
    let Some(bit) = signal.checked_sub(1).filter(|b| *b < 64).map(|b| 1u64 << b) else {
        return Disposition::Default;
    };
    if sig_ign & bit != 0 {
        Disposition::Ignore
    } else if sig_cgt & bit != 0 {
        Disposition::Handler
    } else {
        Disposition::Default
    }
}

/// Who is whose parent among a list of processes, to walk subtrees.
pub struct ProcessTree {
    children: HashMap<u32, Vec<u32>>,
}

impl ProcessTree {
    pub fn new<'a>(procs: impl IntoIterator<Item = &'a ProcInfo>) -> Self {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in procs {
            children.entry(p.ppid).or_default().push(p.pid);
        }
        Self { children }
    }

    pub fn children(&self, pid: u32) -> &[u32] {
        self.children.get(&pid).map_or(&[], Vec::as_slice)
    }

    /// `root` and every process below it.
    pub fn subtree(&self, root: u32) -> HashSet<u32> {
        let mut found = HashSet::new();
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            if found.insert(pid) {
                stack.extend_from_slice(self.children(pid));
            }
        }
        found
    }
}

/// A process's memory and CPU time, read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub rss_bytes: u64,
    /// Its memory in swap; `None` where the OS does not say.
    pub swap_bytes: Option<u64>,
    /// The most it has been resident, where the OS keeps that (VmHWM, the kernel map).
    pub peak_rss_bytes: Option<u64>,
    pub cpu_ns: Option<u64>,
    /// macOS's physical footprint (what Activity Monitor shows as Memory); None elsewhere.
    pub footprint_bytes: Option<u64>,
}

/// A process's proportional memory (Linux's smaps_rollup): what it holds with every
/// shared page divided among the processes that map it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pss {
    pub pss_bytes: u64,
    /// Its share of what is in swap; None where the kernel does not say.
    pub swap_pss_bytes: Option<u64>,
    /// `pss_bytes` split into anonymous, file-backed and shared-memory pages (Linux 5.6+).
    pub pss_anon_bytes: Option<u64>,
    pub pss_file_bytes: Option<u64>,
    pub pss_shmem_bytes: Option<u64>,
}

impl Pss {
    /// What it holds in RAM and swap together, its share of each.
    pub fn total_bytes(&self) -> u64 {
        self.pss_bytes
            .saturating_add(self.swap_pss_bytes.unwrap_or(0))
    }
}
