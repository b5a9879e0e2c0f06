//! The collector's footprint with many processes: its RSS after 10,000 processes have come
//! and gone, and how long `/metrics` takes with 10,000 live tracked processes.
use std::{path::Path, thread, time::Duration, time::Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{probe::Probe, stats::Spread};

const TRACKED: &str = "hupwatch_tracked_processes{group=\"all\"}";

pub struct Footprint {
    pub processes: u64,
    pub rss_start: u64,
    pub rss_after_churn: u64,
    pub tracked_live: u64,
    pub metrics_ms: Spread,
    pub metrics_bytes: usize,
}

/// Kills the bench's own children `pids` and reaps them.
pub fn kill_and_reap(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: our own children, reaped right after.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in pids {
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
}

/// Children that pause until killed; killed and reaped when dropped.
pub struct Paused(Vec<i32>);

impl Paused {
    pub fn spawn(count: u64) -> Result<Self> {
        let mut pids = Vec::new();
        for _ in 0..count {
            // SAFETY: the child calls only async-signal-safe functions.
            match unsafe { libc::fork() } {
                -1 => bail!("fork: {}", std::io::Error::last_os_error()),
                0 => loop {
                    unsafe { libc::pause() };
                },
                pid => pids.push(pid),
            }
        }
        Ok(Self(pids))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        kill_and_reap(&self.0);
    }
}

fn churn(count: u64) -> Result<()> {
    for _ in 0..count {
        // SAFETY: the child exits at once.
        match unsafe { libc::fork() } {
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            0 => unsafe { libc::_exit(0) },
            pid => unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            },
        }
    }
    Ok(())
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Footprint> {
    let processes = if quick { 500 } else { 10_000 };
    let probe = Probe::hupwatch(hupwatch, &["--alerts-file", "/dev/null"])?;
    let rss_start = probe.rss_bytes()?;
    eprintln!("bench: {processes} processes come and go");
    churn(processes)?;
    thread::sleep(Duration::from_secs(2));
    let rss_after_churn = probe.rss_bytes()?;

    eprintln!("bench: /metrics with {processes} live processes");
    let paused = Paused::spawn(processes)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let tracked_live = loop {
        let tracked = probe.metric(TRACKED)? as u64;
        if tracked >= processes {
            break tracked;
        }
        if Instant::now() > deadline {
            bail!("hupwatch tracks {tracked} processes, not the {processes} started");
        }
        thread::sleep(Duration::from_millis(200));
    };
    let mut times = Vec::new();
    let mut metrics_bytes = 0;
    for _ in 0..if quick { 3 } else { 20 } {
        let (body, took) = probe.get("/metrics")?;
        metrics_bytes = body.len();
        times.push(took.as_secs_f64() * 1000.0);
    }
    drop(paused);
    probe.stop()?;
    Ok(Footprint {
        processes,
        rss_start,
        rss_after_churn,
        tracked_live,
        metrics_ms: Spread::of(&times).expect("measured"),
        metrics_bytes,
    })
}

impl Footprint {
    pub fn json(&self) -> Value {
        json!({
            "processes": self.processes,
            "rss_bytes_start": self.rss_start,
            "rss_bytes_after_churn": self.rss_after_churn,
            "tracked_live": self.tracked_live,
            "metrics_ms": self.metrics_ms.json(),
            "metrics_bytes": self.metrics_bytes,
        })
    }
}
