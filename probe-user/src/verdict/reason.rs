//! Why a verdict holds or ended, as facts. The tracker fills them in; the sinks put them
//! in words (`sink::reason`), so that sentences, sizes and durations are built where they
//! are shown.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// /proc says SIGHUP is ignored (SigIgn).
    IgnoredInStatus,
    /// A SIGHUP that was sent to it was ignored.
    IgnoredSignal {
        sender_comm: String,
        sender_pid: u32,
    },
    /// SIGHUP is SIG_IGN, and how it came to be.
    IgnoresHangup(Ignoring),
    /// Seen at start already adopted by this process (inferred from /proc).
    ReparentedTo { ppid: u32 },
    /// First seen at its exec, already adopted by init, yet in another session.
    AdoptedBeforeStart { session: u32 },
    /// First seen at its exec, which came after the process that forked it had exited.
    ForkerGoneBeforeExec { forked_by: u32, ppid: u32 },
    /// Its parent's exit was seen.
    ParentExited { comm: String, pid: u32 },
    /// Its parent changed while the old one was not watched.
    ParentReplaced { old_ppid: u32, ppid: u32 },
    /// It leads a session without a terminal, yet its environment says it came from one
    /// (inferred from /proc).
    LeadsSessionFromTerminal,
    /// It left its terminal, and how.
    Detached(Detach),
    /// The leader of its session is gone and it has no terminal (inferred from /proc).
    LeaderGone { sid: u32 },
    /// Its session's terminal hung up or went away, and it lived on for the grace period.
    HungUp {
        how: Hangup,
        sid: u32,
        grace_ns: u64,
    },
    /// A SIGHUP reached its handler and it lived on for the grace period.
    HandlerSurvived { grace_ns: u64 },
    /// Its memory (RSS + swap, or macOS's footprint) rose steadily.
    Growth {
        /// The memory judged was macOS's physical footprint.
        footprint: bool,
        from_bytes: u64,
        to_bytes: u64,
        span_ns: u64,
        slope_bytes_per_second: f64,
        /// It used almost no CPU time meanwhile.
        idle: bool,
    },
    /// Busy on a CPU: this much CPU time over the window, while off its terminal.
    CpuSpin { cpu_seconds: f64, window_ns: u64 },
    /// It holds this many exited children unreaped, the oldest since then.
    Zombies {
        count: u32,
        oldest_exit_ns: Option<u64>,
    },
    /// Stopped since then, orphaned or off its terminal.
    Stopped { since_ns: u64, grace_ns: u64 },
    /// Resolved: it runs again.
    Continued,
    /// Resolved: it no longer keeps the CPU share busy.
    Calmed,
    /// Resolved: fewer of its exited children wait to be reaped.
    Reaped { count: u32 },
    /// Resolved: the process exited.
    Exited,
    /// Resolved: its pid belongs to another process now; its exit was not seen.
    PidReused,
    /// Resolved: it is gone from /proc; its exit was lost.
    Vanished,
    /// Resolved: /proc, read after lost events, contradicts the verdict.
    Contradicted(Contradiction),
    /// Read back from a sessions document (`--from`): the sentence as written there.
    Said(String),
}

/// How a process came to ignore SIGHUP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignoring {
    Inherited,
    StartedIgnoring,
    SetIgnore,
}

/// How a process left its terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detach {
    /// An ancestor did; it has no terminal.
    Ancestor {
        comm: String,
        pid: u32,
    },
    Setsid {
        old_sid: u32,
        old_tty: Option<String>,
    },
    /// TIOCNOTTY.
    GaveUp {
        tty: Option<String>,
    },
    /// Its parent started it in a new session without a terminal (`setsid cmd`).
    StartedDetached {
        parent_tty: Option<String>,
    },
    Unknown,
}

/// What hung a session up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hangup {
    /// The kernel sent SIGHUP: the terminal hung up.
    Kernel,
    /// The session leader passed a hangup on.
    LeaderPassedOn { comm: String, pid: u32 },
    /// The session leader, holding the terminal, exited.
    LeaderExited { comm: String, pid: u32, tty: String },
}

/// What /proc showed against a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contradiction {
    HasTerminalAgain,
    NoLongerIgnoresHangup,
}
