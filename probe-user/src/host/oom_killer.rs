//! The OOM killers that may end a process when memory runs short, as one look finds them:
//! which run, their thresholds as configured, and what the kernel's own order would pick
//! first. Each OS finds them in its own files (`linux_oom.rs` with `linux_earlyoom.rs` and
//! `linux_oomd.rs`; `darwin_pressure.rs`); the tracker turns them
//! into "who acts first, at what level, when".
use serde::{Deserialize, Serialize};

/// What one look found. The kernel's own killer is always there on Linux and needs no
/// field: it acts when memory and swap are gone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OomKillers {
    /// earlyoom's thresholds, when a process named `earlyoom` runs.
    #[serde(default)]
    pub earlyoom: Option<Earlyoom>,
    /// systemd-oomd's configuration and the units it manages, when a process named
    /// `systemd-oomd` runs.
    #[serde(default)]
    pub systemd_oomd: Option<SystemdOomd>,
    /// The processes with the highest /proc/PID/oom_score, highest first: whom the
    /// kernel's killer, and earlyoom (which picks by the same score), would end first.
    #[serde(default)]
    pub by_oom_score: Vec<Candidate>,
    /// macOS: `kern.memorystatus_vm_pressure_level` (1 normal, 2 warn, 4 critical); the
    /// kernel's memorystatus (jetsam) ends processes as it rises. None on Linux.
    #[serde(default)]
    pub macos_pressure_level: Option<u32>,
}

/// earlyoom's thresholds from its command line, for its first action (SIGTERM; it sends
/// SIGKILL at the lower KILL_ level).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Earlyoom {
    pub pid: u32,
    /// `-m`: available memory minimum, percent of MemTotal (default 10).
    pub memory_percent: f64,
    /// `-M`: the same in KiB; where both are given earlyoom uses the lower.
    pub memory_kib: Option<u64>,
    /// `-s`: free swap minimum, percent of SwapTotal (default 10).
    pub swap_percent: f64,
    /// `-S`: the same in KiB; the lower of the two wins likewise.
    pub swap_kib: Option<u64>,
    /// `--dryrun`: it says whom it would kill and kills no one.
    pub dry_run: bool,
}

/// systemd-oomd's configuration (oomd.conf and its drop-ins) and the units that ask it to
/// act (ManagedOOMSwap=kill, ManagedOOMMemoryPressure=kill).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemdOomd {
    /// `SwapUsedLimit=`, percent (default 90).
    pub swap_used_limit_percent: f64,
    /// `DefaultMemoryPressureLimit=`, percent (default 60).
    pub memory_pressure_limit_percent: f64,
    /// `DefaultMemoryPressureDurationSec=`, seconds (default 30).
    pub memory_pressure_duration_seconds: f64,
    /// Units with `ManagedOOMSwap=kill`: oomd ends their descendant using the most swap.
    pub swap_units: Vec<String>,
    /// Units with `ManagedOOMMemoryPressure=kill`, each with its own limit when it sets
    /// `ManagedOOMMemoryPressureLimit=` (else the default above).
    pub pressure_units: Vec<ManagedUnit>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManagedUnit {
    pub unit: String,
    pub limit_percent: Option<f64>,
}

/// A process the kernel's order would end early.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub pid: u32,
    pub comm: String,
    /// /proc/PID/oom_score: 0 to 1000 (badness scaled by memory, plus oom_score_adj).
    pub oom_score: u32,
}
