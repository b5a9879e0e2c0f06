//! The one event stream every source produces and every consumer reads. Its JSON form
//! (`hupwatch trace --json`, one object per line) is a documented contract: see docs/events.md.
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(flatten)]
    pub kind: EventKind,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The subject process (for signals, the target).
    pub pid: u32,
    pub comm: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Exec {
        ppid: u32,
        filename: String,
        /// Session id after the exec; null when the source could not tell.
        #[serde(default)]
        sid: Option<u32>,
        /// Controlling terminal after the exec (`pts/3`); null when it has none.
        #[serde(default)]
        tty: Option<String>,
        /// The parent's controlling terminal: a session leader without a terminal whose
        /// parent has one was started detached (`setsid cmd` from a shell).
        #[serde(default)]
        parent_tty: Option<String>,
        /// The process that forked it, when the source saw the fork; a `ppid` that
        /// differs means its parent exited before the exec. Null when unknown.
        #[serde(default)]
        forked_by: Option<u32>,
        /// When the process (not the exec) started, Unix-epoch nanoseconds.
        #[serde(default)]
        started_ns: Option<u64>,
        /// Arguments joined by spaces, when the source could read them.
        #[serde(default)]
        cmdline: Option<String>,
        /// What SIGHUP does to it after the exec (read from /proc by the source): SIG_IGN
        /// set before the exec, by nohup for instance, survives it.
        #[serde(default)]
        hangup: Option<Disposition>,
        /// The program hosting the terminal it was started in (`vscode`, `iTerm.app`,
        /// `tmux`, `ssh`, a terminal emulator), from its environment and ancestors, read by
        /// the source at the exec; null when unknown.
        #[serde(default)]
        terminal_program: Option<String>,
        /// Its working directory at the exec; null when unreadable.
        #[serde(default)]
        cwd: Option<String>,
        /// Its environment says it was started in a terminal (`TERM`, or a variable only a
        /// terminal sets); false when it does not, or is unreadable.
        #[serde(default)]
        from_terminal: bool,
    },
    Fork {
        ppid: u32,
    },
    Exit {
        ppid: u32,
        /// The status passed to exit(); null when a signal ended the process.
        exit_code: Option<i32>,
        /// The signal that ended the process; null when it exited.
        exit_signal: Option<u32>,
        core_dumped: bool,
        /// The most it was resident; null when the source never learned its memory.
        #[serde(default)]
        peak_rss_bytes: Option<u64>,
        /// Its memory in swap when last seen; null when unknown.
        #[serde(default)]
        swap_bytes: Option<u64>,
    },
    Setsid {
        ok: bool,
        /// The new session id; null when the call failed.
        sid: Option<u32>,
        /// errno when the call failed.
        errno: Option<i32>,
        old_sid: u32,
        /// The controlling terminal before the call (`pts/3`); null when there was none.
        old_tty: Option<String>,
    },
    DetachTty {
        sid: u32,
        tty: Option<String>,
        fd: u32,
    },
    /// `ioctl(fd, TIOCSCTTY)`: a session leader takes `fd`'s terminal as its controlling
    /// terminal (what terminal emulators, sshd, tmux and `script` do for a new shell).
    AttachTty {
        sid: u32,
        fd: u32,
    },
    Pdeathsig {
        signal: u32,
        signal_name: String,
    },
    Signal {
        signal: u32,
        signal_name: String,
        origin: Origin,
        code: i32,
        result: SignalResult,
        group: bool,
        sender_pid: u32,
        sender_comm: String,
    },
    SignalDeliver {
        signal: u32,
        signal_name: String,
        disposition: Disposition,
        code: i32,
    },
    Sigaction {
        signal: u32,
        signal_name: String,
        disposition: Disposition,
    },
    Rss {
        rss_bytes: u64,
        peak_rss_bytes: u64,
        /// Its memory in swap; null when the source cannot read it.
        #[serde(default)]
        swap_bytes: Option<u64>,
        /// User plus system CPU time used so far; null when the source cannot read it.
        #[serde(default)]
        cpu_ns: Option<u64>,
        /// macOS's physical footprint (what Activity Monitor shows as Memory), beside the
        /// resident size; absent where the OS has no such figure (Linux).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footprint_bytes: Option<u64>,
    },
    /// Its proportional memory (Linux's smaps_rollup), read at its own slower cadence
    /// (`--pss-interval`): every resident page divided by the processes that map it, what
    /// totals add up. RSS stays in `rss`, the growth signal.
    Pss {
        pss_bytes: u64,
        /// Its share of what is in swap; null where the kernel does not say.
        #[serde(default)]
        swap_pss_bytes: Option<u64>,
    },
    /// Its parent changed (the old one exited unseen, because it was not watched), as
    /// /proc showed when hupwatch looked.
    Reparented {
        old_ppid: u32,
        ppid: u32,
    },
    /// It was stopped (state T): a stop signal with its default action, as the kernel
    /// delivered it, or the state the process table shows.
    Stopped {},
    /// It runs again after a stop (SIGCONT, or the process table no longer shows T).
    Continued {},
    /// Its children that exited and that it has not reaped (zombies), as the source counts
    /// them now; reported when the count changes. The subject is the parent.
    Zombies {
        count: u32,
        /// When the longest-waiting of them exited; null when none is left.
        oldest_exit_ns: Option<u64>,
    },
    /// Where a process came from, read after the fact: the read at its parent's exec found
    /// the parent gone (a first process that forks and exits at once, as tmux's client and
    /// daemonizing programs do), so the fork inherited nothing. Fills only what is unknown.
    Origin {
        #[serde(default)]
        terminal_program: Option<String>,
        #[serde(default)]
        cwd: Option<String>,
    },
    /// A process that existed before hupwatch started, as /proc shows it. What the tracker
    /// concludes from it alone is marked inferred.
    Existing(Existing),
}

/// What /proc shows of a process that existed before hupwatch started (or that a re-sync
/// found): the payload of `EventKind::Existing`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Existing {
    pub ppid: u32,
    pub sid: u32,
    pub tty: Option<String>,
    pub started_ns: u64,
    pub cmdline: String,
    /// What SIGHUP does to it (SigIgn/SigCgt in /proc/PID/status).
    pub hangup: Disposition,
    pub rss_bytes: u64,
    /// Its memory in swap; null when the OS does not say.
    #[serde(default)]
    pub swap_bytes: Option<u64>,
    pub cpu_ns: Option<u64>,
    /// It has a controlling terminal or its environment says it came from one (`TERM`,
    /// or a variable only a terminal sets).
    pub from_terminal: bool,
    /// The program hosting the terminal it was started in; null when unknown.
    #[serde(default)]
    pub terminal_program: Option<String>,
    /// Its working directory; null when unreadable.
    #[serde(default)]
    pub cwd: Option<String>,
    /// Its parent is init or a known subreaper (the user's systemd): it was reparented.
    pub reparented: bool,
    /// Its session's leader is still alive.
    pub session_leader_alive: bool,
    /// What its environment says names the session it was started in
    /// (`origin::SESSION_MARKERS`, `NAME=value`); absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_marker: Option<String>,
}

impl Existing {
    /// Lost its terminal while its environment says it came from one.
    pub fn off_its_terminal(&self) -> bool {
        self.tty.is_none() && self.from_terminal
    }
}

impl EventKind {
    /// Every `name()`, for metrics that should show zero rather than nothing.
    pub const NAMES: [&'static str; 18] = [
        "exec",
        "fork",
        "exit",
        "setsid",
        "detach_tty",
        "attach_tty",
        "pdeathsig",
        "signal",
        "signal_deliver",
        "sigaction",
        "rss",
        "pss",
        "reparented",
        "stopped",
        "continued",
        "zombies",
        "origin",
        "existing",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::Exec { .. } => "exec",
            Self::Fork { .. } => "fork",
            Self::Exit { .. } => "exit",
            Self::Setsid { .. } => "setsid",
            Self::DetachTty { .. } => "detach_tty",
            Self::AttachTty { .. } => "attach_tty",
            Self::Pdeathsig { .. } => "pdeathsig",
            Self::Signal { .. } => "signal",
            Self::SignalDeliver { .. } => "signal_deliver",
            Self::Sigaction { .. } => "sigaction",
            Self::Rss { .. } => "rss",
            Self::Pss { .. } => "pss",
            Self::Reparented { .. } => "reparented",
            Self::Stopped {} => "stopped",
            Self::Continued {} => "continued",
            Self::Zombies { .. } => "zombies",
            Self::Origin { .. } => "origin",
            Self::Existing(..) => "existing",
        }
    }
}

/// Who generated a signal, from its si_code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The kernel on its own account: SI_KERNEL (a tty hangup), fault codes, SIGCHLD's
    /// codes, and the kernel's deliveries of timers, AIO, SIGIO and message queues.
    Kernel,
    /// Another process asked for it: kill(2) (SI_USER), sigqueue(3) (SI_QUEUE) or
    /// tkill/tgkill (SI_TKILL).
    User,
}

impl Origin {
    /// The name serde gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::User => "user",
        }
    }

    const SI_USER: i32 = 0;
    const SI_QUEUE: i32 = -1;
    const SI_TKILL: i32 = -6;

    pub fn from_si_code(code: i32) -> Self {
        match code {
            Self::SI_USER | Self::SI_QUEUE | Self::SI_TKILL => Self::User,
            _ => Self::Kernel,
        }
    }
}

/// What `signal_generate` says the kernel did with the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalResult {
    Delivered,
    Ignored,
    AlreadyPending,
    OverflowFail,
    LoseInfo,
    Unknown,
}

impl SignalResult {
    /// The name serde gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Ignored => "ignored",
            Self::AlreadyPending => "already_pending",
            Self::OverflowFail => "overflow_fail",
            Self::LoseInfo => "lose_info",
            Self::Unknown => "unknown",
        }
    }

    pub fn from_raw(result: i32) -> Self {
        match result {
            0 => Self::Delivered,
            1 => Self::Ignored,
            2 => Self::AlreadyPending,
            3 => Self::OverflowFail,
            4 => Self::LoseInfo,
            _ => Self::Unknown,
        }
    }
}

/// A signal disposition: what a process does when the signal arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Default,
    Ignore,
    Handler,
}

impl Disposition {
    /// The name serde gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Ignore => "ignore",
            Self::Handler => "handler",
        }
    }

    pub fn from_handler(handler: u64) -> Self {
        match handler {
            0 => Self::Default,
            1 => Self::Ignore,
            _ => Self::Handler,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json_contract() {
        for origin in [Origin::Kernel, Origin::User] {
            assert_eq!(json(&origin), origin.as_str());
        }
        for result in (0..6).map(SignalResult::from_raw) {
            assert_eq!(json(&result), result.as_str());
        }
        for d in [
            Disposition::Default,
            Disposition::Ignore,
            Disposition::Handler,
        ] {
            assert_eq!(json(&d), d.as_str());
        }
    }

    fn json<T: Serialize>(value: &T) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn origin_follows_who_asked_for_the_signal() {
        assert_eq!(Origin::from_si_code(0), Origin::User, "kill(2)");
        assert_eq!(Origin::from_si_code(-1), Origin::User, "sigqueue");
        assert_eq!(Origin::from_si_code(-6), Origin::User, "tgkill");
        assert_eq!(Origin::from_si_code(128), Origin::Kernel, "tty hangup");
        assert_eq!(
            Origin::from_si_code(-2),
            Origin::Kernel,
            "a timer the process set"
        );
        assert_eq!(Origin::from_si_code(1), Origin::Kernel, "CLD_EXITED");
    }
}
