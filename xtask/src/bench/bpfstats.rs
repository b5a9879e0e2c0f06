//! Time spent in eBPF programs, as the kernel counts it with `kernel.bpf_stats_enabled`:
//! `bpftool perf` says which programs a process attached to which tracepoint, `bpftool
//! prog` how long they ran and how often.
use std::{collections::HashMap, process::Command};

use anyhow::{Context, Result, bail};
use serde_json::Value;

const STATS_SWITCH: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns the kernel's program statistics on, and back to how they were when dropped.
pub struct StatsEnabled {
    before: String,
}

impl StatsEnabled {
    pub fn new() -> Result<Self> {
        let before = std::fs::read_to_string(STATS_SWITCH)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_string();
        std::fs::write(STATS_SWITCH, "1").context("setting kernel.bpf_stats_enabled")?;
        Ok(Self { before })
    }
}

impl Drop for StatsEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SWITCH, &self.before);
    }
}

/// Per tracepoint: run time in ns and runs, over the programs `pid` attached.
pub fn by_tracepoint(pid: u32) -> Result<HashMap<String, (u64, u64)>> {
    let attached = bpftool(&["perf", "show"])?;
    let programs = bpftool(&["prog", "show"])?;
    let counters: HashMap<u64, (u64, u64)> = programs
        .as_array()
        .context("bpftool prog show: a list")?
        .iter()
        .filter_map(|p| {
            let id = p["id"].as_u64()?;
            let time = p["run_time_ns"].as_u64().unwrap_or(0);
            let runs = p["run_cnt"].as_u64().unwrap_or(0);
            Some((id, (time, runs)))
        })
        .collect();
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for link in attached.as_array().context("bpftool perf show: a list")? {
        if link["pid"].as_u64() != Some(u64::from(pid)) {
            continue;
        }
        let (Some(tracepoint), Some(id)) = (link["tracepoint"].as_str(), link["prog_id"].as_u64())
        else {
            continue;
        };
        let (time, runs) = counters.get(&id).copied().unwrap_or_default();
        let entry = out.entry(tracepoint.to_string()).or_default();
        entry.0 += time;
        entry.1 += runs;
    }
    if out.is_empty() {
        bail!("bpftool shows no tracepoint programs attached by pid {pid}");
    }
    Ok(out)
}

fn bpftool(args: &[&str]) -> Result<Value> {
    let out = Command::new("bpftool")
        .args(args)
        .arg("-j")
        .output()
        .context("running bpftool")?;
    if !out.status.success() {
        bail!(
            "bpftool {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // bpftool prints nothing at all when there is nothing to list.
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_slice(&out.stdout).context("bpftool's JSON")
}
