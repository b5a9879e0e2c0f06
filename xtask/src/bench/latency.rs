//! Detection latency: from starting `setsid sleep` on a terminal to the `detached` alert
//! line (an upper bound: it includes script(1) and setsid(1) starting), and from the
//! SIGHUP a handler survives to the `hangup_survived` line beyond the grace period. Both
//! are timed on this process's monotonic clock: the alerts' own times are wall-clock,
//! which steps on these VMs.
use std::{
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    probe::{KillOnDrop, Probe, now_ns},
    stats::Spread,
};

const GRACE: Duration = Duration::from_secs(1);

pub struct Latency {
    pub setsid_ms: Spread,
    pub hangup_beyond_grace_ms: Spread,
    pub repeats: usize,
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Latency> {
    let repeats = if quick { 2 } else { 10 };
    // Every process, as deployed.
    let probe = Probe::hupwatch(
        hupwatch,
        &["--hup-grace", "1s", "--alerts-file", "/dev/stdout"],
    )?;
    let mut setsid = Vec::new();
    let mut hangup = Vec::new();
    let mut seen = Vec::new();
    for n in 1..=repeats {
        setsid.push(setsid_once(&probe, &mut seen).with_context(|| format!("setsid, repeat {n}"))?);
        hangup.push(hangup_once(&probe).with_context(|| format!("SIGHUP, repeat {n}"))?);
    }
    probe.stop()?;
    Ok(Latency {
        setsid_ms: Spread::of(&setsid).expect("measured"),
        hangup_beyond_grace_ms: Spread::of(&hangup).expect("measured"),
        repeats,
    })
}

/// `setsid sleep` typed on a terminal (script(1) gives it one): ms from starting it to
/// the alert line reaching a reader. `seen`: the pids of earlier rounds' alerts.
///
/// The terminal's shell stays alive after it, as an interactive one would. With
/// `script -c "setsid sleep"` alone, sh execs setsid(1), which as the session's leader
/// forks and exits; the terminal then hangs up and the kernel's SIGHUP killed the child
/// before it reached setsid() in about half of the runs (the trace shows it), so the
/// subject never detached at all.
fn setsid_once(probe: &Probe, seen: &mut Vec<u64>) -> Result<f64> {
    let started = now_ns();
    let mut command = Command::new("script");
    command
        .args(["-qfec", "setsid sleep 600; exec sleep 600", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    crate::sh::default_sighup(&mut command);
    let script = KillOnDrop(command.spawn().context("script(1) from util-linux")?);
    let (arrived, alert) = probe.wait_alert(started, Duration::from_secs(10), |a| {
        // Seen live, from its setsid: not a leftover `sleep` an earlier round left on
        // the machine, inferred from /proc (a run matched those and said 7.9 ms).
        a["status"] == "raised"
            && a["alert"] == "detached"
            && a["comm"] == "sleep"
            && a["inferred"] == false
            && a["evidence"][0]["event"] == "setsid"
            && a["pid"].as_u64().is_some_and(|pid| !seen.contains(&pid))
    })?;
    seen.push(alert["pid"].as_u64().context("pid")?);
    let pid = alert["pid"].as_u64().context("pid")? as i32;
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    drop(script);
    Ok(arrived.saturating_sub(started) as f64 / 1e6)
}

/// A shell with a SIGHUP trap gets SIGHUP: ms from the grace period's end to the alert.
fn hangup_once(probe: &Probe) -> Result<f64> {
    let mut command = Command::new("sh");
    command.args(["-c", "trap 'true' HUP; while :; do sleep 1; done"]);
    crate::sh::default_sighup(&mut command);
    let shell = KillOnDrop(command.spawn()?);
    let pid = shell.0.id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !catches_sighup(pid) {
        if Instant::now() > deadline {
            bail!("the shell never installed its SIGHUP trap");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let sent = now_ns();
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let (arrived, _) = probe.wait_alert(sent, GRACE + Duration::from_secs(5), |a| {
        a["status"] == "raised" && a["alert"] == "hangup_survived" && a["pid"] == pid
    })?;
    let due = sent + GRACE.as_nanos() as u64;
    Ok((arrived as f64 - due as f64) / 1e6)
}

fn catches_sighup(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|mask| mask & 1 == 1)
}

impl Latency {
    pub fn json(&self) -> Value {
        json!({
            "repeats": self.repeats,
            "setsid_to_detached_ms": self.setsid_ms.json(),
            "sighup_to_hangup_survived_beyond_grace_ms": self.hangup_beyond_grace_ms.json(),
            "grace_seconds": GRACE.as_secs_f64(),
        })
    }
}
