//! Verdicts: what the tracker concluded about a process, with the evidence behind it.
pub mod growth;
pub mod reason;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use growth::Growth;

/// The conclusions hupwatch draws. The snake_case names are part of the alert and API
/// contract (docs/verdicts.md, docs/alerts.md, docs/sessions-api.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// Left the session of a terminal it came from and took no new terminal.
    Detached,
    /// SIGHUP is set to SIG_IGN, or a SIGHUP sent to it was ignored.
    HangupIgnored,
    /// A SIGHUP reached its handler and it was still alive a grace period later.
    HangupSurvived,
    /// The terminal of its original session hung up or went away, and it lives on.
    TerminalLost,
    /// Its parent exited and it was reparented to init or a subreaper.
    Orphaned,
    /// Its memory (RSS + swap, or macOS's footprint) rose steadily by more than the
    /// threshold, over at least a quarter of the window.
    RssGrowth,
    /// Detached, orphaned or off its terminal, and busy on a CPU over the CPU window.
    CpuSpin,
    /// It holds many children that exited and that it does not reap.
    Zombies,
    /// Orphaned or off its terminal, and stopped for longer than the grace period.
    Stopped,
}

impl VerdictKind {
    pub const ALL: [VerdictKind; 9] = [
        Self::Detached,
        Self::HangupIgnored,
        Self::HangupSurvived,
        Self::TerminalLost,
        Self::Orphaned,
        Self::RssGrowth,
        Self::CpuSpin,
        Self::Zombies,
        Self::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Detached => "detached",
            Self::HangupIgnored => "hangup_ignored",
            Self::HangupSurvived => "hangup_survived",
            Self::TerminalLost => "terminal_lost",
            Self::Orphaned => "orphaned",
            Self::RssGrowth => "rss_growth",
            Self::CpuSpin => "cpu_spin",
            Self::Zombies => "zombies",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == text)
    }
}

/// A verdict raised on one process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    #[serde(rename = "alert")]
    pub kind: VerdictKind,
    /// When it was raised, Unix-epoch nanoseconds.
    pub time_ns: u64,
    /// Why, as facts; in JSON, one sentence a person can act on (`sink::reason`).
    pub reason: reason::Reason,
    /// The events that produced it, oldest first.
    pub evidence: Vec<Event>,
    /// Concluded from a /proc snapshot rather than from events hupwatch saw.
    pub inferred: bool,
    /// The fit behind an `rss_growth` verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
}
