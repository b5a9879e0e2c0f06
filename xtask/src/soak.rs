//! `cargo xtask soak --minutes N` (root): hupwatch tracing every process under steady
//! churn (fork+exec+exit, setsid, SIGHUP to a handler, page faults, in turn) for N minutes.
//! Its RSS and open file descriptors are sampled every 10 s, and their slopes after the
//! first minute are reported and written to target/soak/soak.json. Fails when hupwatch
//! dies, or when either keeps growing: more than 4 MiB/h of RSS or any lasting fd growth.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::{
    bench::{probe::Probe, workload::Workload},
    sh,
};

const SAMPLE_EVERY: Duration = Duration::from_secs(10);
const WARM_UP: Duration = Duration::from_secs(60);
const RSS_SLOPE_LIMIT_MIB_PER_HOUR: f64 = 4.0;

pub fn soak(root: &Path, minutes: u64) -> Result<()> {
    if !sh::is_root() {
        bail!("the soak loads eBPF programs: run as root (sudo -E cargo xtask soak)");
    }
    eprintln!("==> cargo build --release -p probe-user -p xtask");
    sh::run(Command::new("cargo").args(["build", "--release", "-p", "probe-user", "-p", "xtask"]))?;
    let release = crate::run::release_dir(root);
    let (hupwatch, xtask) = (release.join("hupwatch"), release.join("xtask"));
    let probe = Probe::hupwatch(&hupwatch, &["--alerts-file", "/dev/null"])?;
    let pid = probe.pid();
    let started = Instant::now();
    let until = started + Duration::from_secs(minutes * 60);
    let mut samples = Vec::new();
    let mut next_sample = started;
    let mut rounds = 0u64;
    while Instant::now() < until {
        for workload in Workload::ALL {
            // A twentieth of a bench run each: a few seconds of churn per workload.
            workload.measure(&xtask, true)?;
        }
        rounds += 1;
        if Instant::now() >= next_sample {
            let rss = probe.rss_bytes().context("hupwatch died during the soak")?;
            let fds = open_fds(pid).context("hupwatch died during the soak")?;
            let at = started.elapsed().as_secs_f64();
            eprintln!(
                "soak: {:>6.0} s  rss {:.1} MiB  fds {fds}",
                at,
                rss as f64 / 1048576.0
            );
            samples.push((at, rss as f64, fds as f64));
            next_sample += SAMPLE_EVERY;
        }
    }
    let events = probe.metric("hupwatch_events_total{kind=\"exec\"}")?;
    probe.stop()?;

    let steady: Vec<_> = samples
        .iter()
        .filter(|(at, _, _)| *at >= WARM_UP.as_secs_f64())
        .copied()
        .collect();
    if steady.len() < 3 {
        bail!("too short to judge: run at least 2 minutes (--minutes 2)");
    }
    let rss_slope = slope(&steady, |s| s.1) * 3600.0 / 1048576.0;
    let fd_slope = slope(&steady, |s| s.2) * 3600.0;
    let (first, last) = (steady[0], steady[steady.len() - 1]);
    let report = json!({
        "minutes": minutes,
        "rounds": rounds,
        "exec_events": events,
        "rss_mib_start": first.1 / 1048576.0,
        "rss_mib_end": last.1 / 1048576.0,
        "rss_slope_mib_per_hour": rss_slope,
        "fds_start": first.2,
        "fds_end": last.2,
        "fd_slope_per_hour": fd_slope,
        "samples": samples.iter().map(|s| json!([s.0, s.1, s.2])).collect::<Vec<_>>(),
    });
    let dir = root.join("target/soak");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("soak.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!(
        "soak: {minutes} min, {rounds} rounds, {events} execs seen; RSS {:.1} -> {:.1} MiB \
         after warm-up (slope {rss_slope:+.2} MiB/h); fds {} -> {} (slope {fd_slope:+.1}/h); \
         target/soak/soak.json",
        first.1 / 1048576.0,
        last.1 / 1048576.0,
        first.2,
        last.2,
    );
    if rss_slope > RSS_SLOPE_LIMIT_MIB_PER_HOUR {
        bail!("hupwatch's RSS kept growing: {rss_slope:+.2} MiB/h");
    }
    if last.2 > first.2 {
        bail!(
            "hupwatch's open file descriptors grew from {} to {}",
            first.2,
            last.2
        );
    }
    Ok(())
}

fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Least-squares slope of `value` over time (per second).
fn slope(samples: &[(f64, f64, f64)], value: impl Fn(&(f64, f64, f64)) -> f64) -> f64 {
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_v = samples.iter().map(&value).sum::<f64>() / n;
    let cov: f64 = samples
        .iter()
        .map(|s| (s.0 - mean_t) * (value(s) - mean_v))
        .sum();
    let var: f64 = samples.iter().map(|s| (s.0 - mean_t).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_of_a_line_is_its_gradient_and_flat_is_zero() {
        let line: Vec<_> = (0..10)
            .map(|t| (t as f64, 3.0 * t as f64 + 1.0, 5.0))
            .collect();
        assert!((slope(&line, |s| s.1) - 3.0).abs() < 1e-9);
        assert_eq!(slope(&line, |s| s.2), 0.0);
    }
}
