//! The one event stream every source produces and every consumer reads. Its JSON form
//! (`hupwatch trace --json`, one object per line) is a documented contract: see README.md.
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
        peak_rss_bytes: u64,
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
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Exec { .. } => "exec",
            Self::Fork { .. } => "fork",
            Self::Exit { .. } => "exit",
            Self::Setsid { .. } => "setsid",
            Self::DetachTty { .. } => "detach_tty",
            Self::Pdeathsig { .. } => "pdeathsig",
            Self::Signal { .. } => "signal",
            Self::SignalDeliver { .. } => "signal_deliver",
            Self::Sigaction { .. } => "sigaction",
            Self::Rss { .. } => "rss",
        }
    }
}

/// Who generated a signal, from its si_code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// SI_KERNEL and the other positive codes: the kernel itself (a tty hangup, a fault).
    Kernel,
    /// SI_USER, SI_QUEUE, SI_TKILL and the other codes of kill(2)-like calls.
    User,
}

impl Origin {
    pub fn from_si_code(code: i32) -> Self {
        if code > 0 { Self::Kernel } else { Self::User }
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
    pub fn from_handler(handler: u64) -> Self {
        match handler {
            0 => Self::Default,
            1 => Self::Ignore,
            _ => Self::Handler,
        }
    }
}
