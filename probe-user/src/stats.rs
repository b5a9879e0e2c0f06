//! The counters a source keeps about itself, handed on absolute (never as deltas) with its
//! events and rendered by the metrics at scrape. Below both, so neither imports the other.
use std::time::Duration;

/// Counters the source keeps, as they stand (never deltas).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceStats {
    /// Events lost, by kind.
    pub lost: Vec<(&'static str, u64)>,
    /// kernel.bpf_stats_enabled is on, so `programs` count.
    pub bpf_stats_enabled: bool,
    /// Per eBPF program: time spent in it and runs.
    pub programs: Vec<(&'static str, Duration, u64)>,
}
