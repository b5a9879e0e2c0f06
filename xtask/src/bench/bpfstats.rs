//! Time spent in eBPF programs, as the kernel counts it with `kernel.bpf_stats_enabled`.
//! A process's programs are the `prog_id`s in its /proc/PID/fdinfo; `bpftool perf` names
//! the tracepoint of those whose perf event fd is still open (bpftrace's), and the
//! program's name does for the others (aya closes the perf fd once the link holds it,
//! and hupwatch names each program after its tracepoint); `bpftool prog` says how long
//! they ran and how often.
use std::{collections::HashMap, process::Command};

use anyhow::{Context, Result, bail};
use serde_json::Value;

const STATS_SWITCH: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Sets the kernel's program statistics on or off, and back to how they were when dropped.
pub struct StatsSwitch {
    before: String,
}

impl StatsSwitch {
    pub fn set(on: bool) -> Result<Self> {
        let before = std::fs::read_to_string(STATS_SWITCH)
            .context("reading kernel.bpf_stats_enabled")?
            .trim()
            .to_string();
        std::fs::write(STATS_SWITCH, if on { "1" } else { "0" })
            .context("setting kernel.bpf_stats_enabled")?;
        Ok(Self { before })
    }
}

impl Drop for StatsSwitch {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SWITCH, &self.before);
    }
}

/// Per tracepoint: run time in ns and runs, over the programs the processes `pids` attached.
pub fn by_tracepoint(pids: &[u32]) -> Result<HashMap<String, (u64, u64)>> {
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
    let names: HashMap<u64, String> = programs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_u64()?, p["name"].as_str()?.to_string())))
        .collect();
    let mut tracepoints: HashMap<u64, String> = attached
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["pid"]
                .as_u64()
                .is_some_and(|pid| pids.iter().any(|&p| u64::from(p) == pid))
        })
        .filter_map(|l| {
            Some((
                l["prog_id"].as_u64()?,
                l["tracepoint"].as_str()?.to_string(),
            ))
        })
        .collect();
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ids = Vec::new();
    for &pid in pids {
        ids.extend(program_ids(pid)?);
    }
    // A program's own fd and its link's both name it: count it once.
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let tracepoint = match tracepoints.remove(&id) {
            Some(tracepoint) => tracepoint,
            None => match names.get(&id).and_then(|name| tracepoint_named(name)) {
                Some(tracepoint) => tracepoint.to_string(),
                None => continue,
            },
        };
        let (time, runs) = counters.get(&id).copied().unwrap_or_default();
        let entry = out.entry(tracepoint).or_default();
        entry.0 += time;
        entry.1 += runs;
    }
    if out.is_empty() {
        bail!("bpftool shows no tracepoint programs attached by pids {pids:?}");
    }
    Ok(out)
}

/// The tracepoints the benchmark compares; kernel program names are cut at 15 bytes.
const TRACEPOINTS: &[&str] = &[
    "task_newtask",
    "sched_process_exec",
    "sched_process_exit",
    "sys_enter_setsid",
    "sys_exit_setsid",
    "sys_enter_ioctl",
    "sys_enter_prctl",
    "signal_generate",
    "signal_deliver",
    "sys_enter_rt_sigaction",
    "sys_exit_rt_sigaction",
    "rss_stat",
];

fn tracepoint_named(program: &str) -> Option<&'static str> {
    let mut matching = TRACEPOINTS.iter().filter(|t| t.starts_with(program));
    let found = matching.next()?;
    matching.next().is_none().then_some(*found)
}

/// The ids of the programs `pid` holds open.
fn program_ids(pid: u32) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir).with_context(|| dir.clone())? {
        let Ok(info) = std::fs::read_to_string(entry?.path()) else {
            continue;
        };
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("prog_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.push(id);
        }
    }
    Ok(ids)
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
