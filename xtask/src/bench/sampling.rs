//! What hupwatch's memory sampling costs per watched process: from the kernel's map where
//! rss_stat attaches, and from /proc where the kernel refuses it (hupwatch is given a
//! tracefs without rss_stat, so it samples as it would on such a kernel). Its CPU time over
//! a span, divided by the ticks and the processes, with paused children of this process
//! being watched.
use std::{
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{footprint::Paused, probe::Probe};

/// Ten ticks a second, so a short span samples every process many times.
const INTERVAL: Duration = Duration::from_millis(100);

pub struct Sampling {
    processes: u64,
    seconds: f64,
    kernel_map_us: f64,
    proc_us: f64,
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Sampling> {
    let processes = if quick { 200 } else { 1000 };
    let span = Duration::from_secs(if quick { 2 } else { 15 });
    let tracefs = tracefs_without_rss_stat()?;
    let kernel_map_us = cpu_us_per_sample(hupwatch, None, processes, span)?;
    let proc_us = cpu_us_per_sample(hupwatch, Some(&tracefs), processes, span)?;
    let _ = std::fs::remove_dir_all(&tracefs);
    Ok(Sampling {
        processes,
        seconds: span.as_secs_f64(),
        kernel_map_us,
        proc_us,
    })
}

/// hupwatch's CPU per process per tick while it watches `processes` paused children.
fn cpu_us_per_sample(
    hupwatch: &Path,
    tracefs: Option<&Path>,
    processes: u64,
    span: Duration,
) -> Result<f64> {
    let me = std::process::id().to_string();
    let interval = format!("{}ms", INTERVAL.as_millis());
    let args = [
        "--pid",
        &me,
        "--rss-interval",
        &interval,
        // The RSS sampler alone: PSS has its own section (pss.rs).
        "--pss-interval",
        "0s",
        "--alerts-file",
        "/dev/null",
    ];
    let env: Vec<(&str, &Path)> = tracefs
        .map(|t| ("HUPWATCH_TRACEFS", t))
        .into_iter()
        .collect();
    let probe = Probe::hupwatch_with_env(hupwatch, &args, &env)?;
    let paused = Paused::spawn(processes)?;
    let series = format!("hupwatch_tracked_processes{{group=\"pid:{me}\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (probe.metric(&series)? as u64) < processes {
        if Instant::now() > deadline {
            bail!("hupwatch never tracked the {processes} children");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let before = probe.cpu_seconds()?;
    thread::sleep(span);
    let used = probe.cpu_seconds()? - before;
    drop(paused);
    probe.stop()?;
    let samples = span.as_secs_f64() / INTERVAL.as_secs_f64() * processes as f64;
    Ok(used * 1e6 / samples)
}

/// The tracepoint formats hupwatch reads, from the mounted tracefs, less kmem/rss_stat.
fn tracefs_without_rss_stat() -> Result<PathBuf> {
    let real = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events/kmem").is_dir())
        .context("tracefs is not mounted (hupwatch mounts it; run the other sections first)")?;
    let copy = std::env::temp_dir().join(format!("hupwatch-bench-tracefs-{}", std::process::id()));
    for category in ["task", "sched", "syscalls", "signal"] {
        for entry in std::fs::read_dir(real.join("events").join(category))? {
            let from = entry?.path().join("format");
            if from.is_file() {
                let to = copy.join("events").join(category).join(
                    from.parent()
                        .and_then(Path::file_name)
                        .context("a tracepoint directory")?,
                );
                std::fs::create_dir_all(&to)?;
                std::fs::copy(&from, to.join("format"))?;
            }
        }
    }
    Ok(copy)
}

impl Sampling {
    pub fn json(&self) -> Value {
        json!({
            "processes": self.processes,
            "seconds": self.seconds,
            "interval_ms": INTERVAL.as_millis() as u64,
            "kernel_map_cpu_us_per_process_sample": self.kernel_map_us,
            "proc_cpu_us_per_process_sample": self.proc_us,
        })
    }
}
