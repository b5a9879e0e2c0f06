//! Ring-buffer records and map values. Each record starts with a [`Header`]; `Header::kind`
//! says which record follows. Sizes are asserted at compile time so a field added without
//! its padding fails the build on both sides.

pub const COMM_LEN: usize = 16;
pub const FILENAME_LEN: usize = 256;
pub const TTY_NAME_LEN: usize = 16;

/// Record kinds. They double as indices into the `COUNTERS` map's lost-event slots.
pub mod kind {
    pub const EXEC: u16 = 1;
    pub const FORK: u16 = 2;
    pub const EXIT: u16 = 3;
    pub const SETSID: u16 = 4;
    pub const DETACH_TTY: u16 = 5;
    pub const PDEATHSIG: u16 = 6;
    pub const SIGNAL: u16 = 7;
    pub const SIGNAL_DELIVER: u16 = 8;
    pub const SIGACTION: u16 = 9;
    pub const ATTACH_TTY: u16 = 10;
    /// One past the largest kind.
    pub const END: u16 = 11;
}

/// Slots of the per-CPU `COUNTERS` array. Slots `1..kind::END` count records lost because
/// the ring buffer was full, by kind; the slots below count other things the kernel side
/// had to give up on.
pub mod counter {
    /// The tracked-set map was full, so a process that should be tracked is not.
    pub const TRACKED_MAP_FULL: u32 = 16;
    /// The RSS map was full, so a tracked process's memory is not recorded.
    pub const RSS_MAP_FULL: u32 = 17;
    pub const SLOTS: u32 = 24;
}

/// `Header::flags` bits.
pub mod flags {
    /// The subject is in the tracked set (set on exec records, which are also sent for
    /// untracked processes when user space matches command lines, and on setsid records,
    /// which are sent for every process).
    pub const TRACKED: u16 = 1;
}

/// Why a tgid is in the tracked set (the value of the `TRACKED` map).
pub mod reason {
    pub const MATCHED_COMM: u32 = 1;
    pub const INHERITED: u32 = 2;
    pub const SEEDED: u32 = 3;
    pub const MATCHED_CMDLINE: u32 = 4;
}

/// `exit_code` when the kernel struct offsets needed to read it were not found.
pub const EXIT_CODE_UNKNOWN: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub kind: u16,
    pub flags: u16,
    /// Thread-group id of the subject (for signals: the target's pid as the kernel gave it).
    pub pid: u32,
    /// Thread that produced the event.
    pub tid: u32,
    pub _pad: u32,
    /// CLOCK_BOOTTIME nanoseconds.
    pub time_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// [`ExecRecord::hangup`] values.
pub mod hangup {
    pub const UNKNOWN: u32 = 0;
    pub const DEFAULT: u32 = 1;
    pub const IGNORE: u32 = 2;
    pub const HANDLER: u32 = 3;
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub header: Header,
    pub ppid: u32,
    /// Bytes of `filename` in use, without the terminating NUL.
    pub filename_len: u32,
    /// Session id after the exec, 0 when unknown.
    pub sid: u32,
    /// What SIGHUP does after the exec (SIG_IGN survives an exec, as nohup relies on):
    /// one of [`hangup`]'s values, read from the task in the kernel so that a later
    /// sigaction cannot be mistaken for the state at exec.
    pub hangup: u32,
    /// The process that forked it, when the kernel programs saw that fork (0 when not):
    /// a `ppid` that differs means its parent exited before the exec.
    pub forked_by: u32,
    pub _pad: u32,
    /// When the process was forked (`task_struct.start_boottime`), on the same clock as
    /// `Header::time_ns`; 0 when unknown.
    pub start_time_ns: u64,
    /// NUL-padded name of the controlling tty; empty when there is none.
    pub tty: [u8; TTY_NAME_LEN],
    /// The real parent's controlling tty, likewise.
    pub parent_tty: [u8; TTY_NAME_LEN],
    pub filename: [u8; FILENAME_LEN],
}

/// A new process (not a thread). `header.pid` is the child, `header.comm` its comm.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    pub header: Header,
    pub ppid: u32,
    pub _pad: u32,
    pub clone_flags: u64,
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub header: Header,
    pub ppid: u32,
    /// Raw `task_struct::exit_code` (wait status layout), or [`EXIT_CODE_UNKNOWN`].
    pub exit_code: u32,
    /// Largest RSS seen for the process, 0 when never recorded.
    pub peak_rss_bytes: u64,
    /// Its swap when last recorded; meaningful only when `peak_rss_bytes` is not 0.
    pub swap_bytes: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SetsidRecord {
    pub header: Header,
    /// The syscall's return: the new session id, or a negative errno.
    pub ret: i64,
    pub old_sid: u32,
    pub _pad: u32,
    /// NUL-padded name of the controlling tty before the call; empty when there was none.
    pub old_tty: [u8; TTY_NAME_LEN],
}

/// `ioctl(fd, TIOCNOTTY)` (kind `DETACH_TTY`): give up the controlling terminal, or
/// `ioctl(fd, TIOCSCTTY)` (kind `ATTACH_TTY`): take `fd`'s terminal as the controlling one.
/// Both are seen on syscall entry, so `sid` and `tty` are what the caller had before.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TtyIoctlRecord {
    pub header: Header,
    pub sid: u32,
    pub fd: u32,
    pub tty: [u8; TTY_NAME_LEN],
}

/// `prctl(PR_SET_PDEATHSIG, signal)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PdeathsigRecord {
    pub header: Header,
    pub signal: u32,
    pub _pad: u32,
}

/// `signal_generate`: header carries the target, the sender is the task that was current.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalRecord {
    pub header: Header,
    pub sig: i32,
    /// si_code: 0 is SI_USER (kill(2)), 128 is SI_KERNEL (e.g. a tty hangup).
    pub code: i32,
    /// 0 delivered, 1 ignored, 2 already pending, 3 overflow fail, 4 lose info.
    pub result: i32,
    pub group: i32,
    pub sender_pid: u32,
    pub sender_tid: u32,
    pub sender_comm: [u8; COMM_LEN],
}

/// `signal_deliver`: the target dequeued the signal and acts on it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalDeliverRecord {
    pub header: Header,
    pub sig: i32,
    pub code: i32,
    pub handler: u64,
    pub sa_flags: u64,
}

/// `rt_sigaction` installing a new disposition for SIGHUP, SIGINT or SIGTERM.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SigactionRecord {
    pub header: Header,
    pub sig: u32,
    pub _pad: u32,
    /// 0 is SIG_DFL, 1 is SIG_IGN, anything else a handler address.
    pub handler: u64,
    pub sa_flags: u64,
}

/// Value of the `RSS` map: the process's memory counters, in bytes, as the kernel last
/// reported them through `kmem/rss_stat`. `peak` is the highest resident total seen;
/// `swap` (MM_SWAPENTS) is not resident and not in the total.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RssValue {
    pub file: u64,
    pub anon: u64,
    pub shmem: u64,
    pub peak: u64,
    pub swap: u64,
}

impl RssValue {
    pub const fn total(&self) -> u64 {
        self.file + self.anon + self.shmem
    }
}

/// The highest pid_max Linux allows (PID_MAX_LIMIT on 64-bit): the `TRACKED_FLAGS` map is
/// compiled for it, and user space shrinks it to the running kernel's pid_max.
pub const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;

/// Tgids per element of `TRACKED_FLAGS`: one byte each in a u64 (array elements are at
/// least eight bytes, so one byte per element would take eight times the memory).
pub const TRACKED_FLAGS_PER_ENTRY: u32 = 8;

/// Value of the `TRACKED` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackedValue {
    pub reason: u32,
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<Header>() == 40);
    assert!(size_of::<ExecRecord>() == 360);
    assert!(size_of::<ForkRecord>() == 56);
    assert!(size_of::<ExitRecord>() == 64);
    assert!(size_of::<SetsidRecord>() == 72);
    assert!(size_of::<TtyIoctlRecord>() == 64);
    assert!(size_of::<PdeathsigRecord>() == 48);
    assert!(size_of::<SignalRecord>() == 80);
    assert!(size_of::<SignalDeliverRecord>() == 64);
    assert!(size_of::<SigactionRecord>() == 64);
    assert!(size_of::<RssValue>() == 40);
    assert!(size_of::<TrackedValue>() == 8);
};
