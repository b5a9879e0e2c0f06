//! Loss: SIGWINCH (ignored by default, so each is one signal_generate record and nothing
//! else) sent at fixed rates to one watched process, and hupwatch's own count of what it
//! received and lost, which must add up to what was sent. The same run gives the
//! collector's CPU per event and its RSS before and after.
use std::{
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::probe::{KillOnDrop, Probe};

const RECEIVED: &str = "hupwatch_events_total{kind=\"signal\"}";
const LOST: &str = "hupwatch_events_lost_total{kind=\"signal\"}";

pub struct Step {
    /// Signals per second asked for; 0 is as fast as one core sends them.
    pub rate: u64,
    pub achieved: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// hupwatch's RSS once it had caught up with this step.
    pub rss_after: u64,
}

impl Step {
    pub fn exact(&self) -> bool {
        self.received + self.lost == self.sent
    }
}

pub struct Loss {
    pub steps: Vec<Step>,
    pub events: u64,
    pub cpu_seconds: f64,
    pub rss_before: u64,
    pub rss_after: u64,
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Loss> {
    let target = KillOnDrop(Command::new("sleep").arg("3600").spawn()?);
    let pid = target.0.id();
    let probe = Probe::hupwatch(
        hupwatch,
        &["--alerts-file", "/dev/null", "--pid", &pid.to_string()],
    )?;
    let (rates, seconds): (&[u64], f64) = if quick {
        (&[20_000, 0], 0.2)
    } else {
        (&[25_000, 50_000, 100_000, 200_000, 400_000, 0], 2.0)
    };
    let rss_before = probe.rss_bytes()?;
    let cpu_before = probe.cpu_seconds()?;
    let mut steps = Vec::new();
    for &rate in rates {
        let (received_before, lost_before) = settled(&probe)?;
        eprintln!(
            "bench: loss at {} signals/s",
            if rate == 0 {
                "max".into()
            } else {
                rate.to_string()
            }
        );
        let (sent, took) = send(pid, rate, Duration::from_secs_f64(seconds))?;
        let (received, lost) = settled(&probe)?;
        steps.push(Step {
            rate,
            achieved: sent as f64 / took.as_secs_f64(),
            sent,
            received: received - received_before,
            lost: lost - lost_before,
            rss_after: probe.rss_bytes()?,
        });
    }
    let cpu_seconds = probe.cpu_seconds()? - cpu_before;
    let rss_after = probe.rss_bytes()?;
    let events = steps.iter().map(|s| s.received).sum();
    probe.stop()?;
    Ok(Loss {
        steps,
        events,
        cpu_seconds,
        rss_before,
        rss_after,
    })
}

/// Received and lost signal events once hupwatch has caught up (two equal readings).
fn settled(probe: &Probe) -> Result<(u64, u64)> {
    let read = || -> Result<(u64, u64)> {
        Ok((probe.metric(RECEIVED)? as u64, probe.metric(LOST)? as u64))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = read()?;
    loop {
        // hupwatch reads the loss counters on its 1 s tick.
        thread::sleep(Duration::from_millis(1200));
        let now = read()?;
        if now == last {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("hupwatch's signal counts kept changing");
        }
        last = now;
    }
}

/// Sends SIGWINCH to `pid` at `rate` per second (0: unpaced) for `duration`.
fn send(pid: u32, rate: u64, duration: Duration) -> Result<(u64, Duration)> {
    const BATCH: u64 = 100;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < duration {
        for _ in 0..BATCH {
            // SAFETY: kill has no memory preconditions.
            if unsafe { libc::kill(pid as i32, libc::SIGWINCH) } != 0 {
                bail!("kill: {}", std::io::Error::last_os_error());
            }
        }
        sent += BATCH;
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            while started.elapsed() < due {
                std::hint::spin_loop();
            }
        }
    }
    Ok((sent, started.elapsed()))
}

impl Loss {
    /// The highest rate asked for that lost nothing.
    pub fn zero_loss_rate(&self) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| s.lost == 0 && s.exact())
            .map(|s| s.achieved)
            .max_by(f64::total_cmp)
    }

    pub fn cpu_us_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.cpu_seconds * 1e6 / self.events as f64)
    }

    pub fn json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                json!({"rate": s.rate, "achieved_per_second": s.achieved, "sent": s.sent,
                       "received": s.received, "lost": s.lost, "counted_exactly": s.exact(),
                       "collector_rss_bytes_after": s.rss_after})
            })
            .collect();
        json!({
            "steps": steps,
            "zero_loss_rate_per_second": self.zero_loss_rate(),
            "collector": {
                "events": self.events,
                "cpu_seconds": self.cpu_seconds,
                "cpu_us_per_event": self.cpu_us_per_event(),
                "rss_bytes_before": self.rss_before,
                "rss_bytes_after": self.rss_after,
            }
        })
    }
}
