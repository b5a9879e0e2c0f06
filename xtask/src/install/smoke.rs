//! The smoke test a user's first run amounts to: an installed hupwatch, run as root, gets
//! ready with every program attached and no warning, calls a `setsid` typed at a shell on
//! a pty `detached`, exits 0 on SIGTERM, and leaves no BPF program behind; and its
//! `hupwatch selftest` passes.
use std::{
    ffi::OsString,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// probe-user's table of programs; its length is how many a healthy start attaches.
const RESOLVE: &str = include_str!("../../../probe-user/src/ebpf/resolve.rs");
const READY_WITHIN: Duration = Duration::from_secs(60);
const ALERT_WITHIN: Duration = Duration::from_secs(30);

/// How many programs hupwatch has: the length of resolve.rs's `PROGRAMS` array.
pub fn program_count() -> usize {
    RESOLVE
        .split_once("pub const PROGRAMS: [ProgramSpec; ")
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(n, _)| n.trim().parse().ok())
        .expect("resolve.rs declares PROGRAMS: [ProgramSpec; N]")
}

/// Runs commands either on the host or inside a root file system (chroot).
pub struct Place {
    pub prefix: Vec<OsString>,
    /// The hupwatch to run, as seen from inside.
    pub hupwatch: OsString,
}

impl Place {
    pub fn command(&self, program: impl Into<OsString>) -> Command {
        let program = program.into();
        match self.prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
        }
    }
}

/// The scenario: see the module's comment. Returns the alert line.
/// Returns hupwatch's ready line and the alert.
pub fn setsid_on_a_pty_is_detached(
    place: &Place,
    scratch_inside: &str,
) -> Result<(String, String)> {
    let name = format!("hwsmoke{}", std::process::id() % 100_000);
    let sleeper = format!("{scratch_inside}/{name}");
    run_ok(place.command("cp").args(["/bin/sleep", &sleeper]))?;
    let before = hupwatch_programs_loaded()?;
    let mut hupwatch = place
        .command(&place.hupwatch)
        .args(["run", "--json", "--listen", "127.0.0.1:0", "--match", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start hupwatch")?;
    let stdout = lines(hupwatch.stdout.take().expect("piped"));
    let stderr = lines(hupwatch.stderr.take().expect("piped"));
    let outcome = scenario(place, &sleeper, &name, &stdout, &stderr);
    let stopped = stop(&mut hupwatch);
    // The kernel frees a closed program after an RCU grace period: give it a moment.
    let mut after = hupwatch_programs_loaded()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while after > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = hupwatch_programs_loaded()?;
    }
    let (ready, alert) = outcome?;
    stopped?;
    if after > before {
        bail!(
            "{} hupwatch programs still loaded after it exited",
            after - before
        );
    }
    Ok((ready, alert))
}

fn scenario(
    place: &Place,
    sleeper: &str,
    name: &str,
    stdout: &Receiver<String>,
    stderr: &Receiver<String>,
) -> Result<(String, String)> {
    let ready = wait_for(stderr, READY_WITHIN, |l| l.starts_with("hupwatch: ready:"))
        .context("hupwatch did not say it was ready")?;
    let expected = format!("{} programs attached", program_count());
    if !ready.line.contains(&expected) {
        bail!(
            "hupwatch's ready line does not say `{expected}`: {}",
            ready.line
        );
    }
    if let Some(earlier) = ready.before.iter().find(|l| !l.trim().is_empty()) {
        bail!("hupwatch said more than its ready line before it: {earlier}");
    }
    // As typed at a prompt: `script` gives the shell a pty; the shell leads its session.
    let typed = format!("setsid {sleeper} 300; true");
    let mut terminal = place
        .command("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("sh -c '{typed}'"))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("could not start script(1)")?;
    let alert = wait_for(stdout, ALERT_WITHIN, |l| {
        l.contains(r#""status":"raised""#)
            && l.contains(r#""alert":"detached""#)
            && l.contains(&format!(r#""comm":"{name}""#))
    });
    let _ = Command::new("pkill").args(["-x", name]).status();
    let _ = terminal.kill();
    let _ = terminal.wait();
    let alert = alert
        .with_context(|| format!("no detached alert for {name} within {ALERT_WITHIN:?}"))?
        .line;
    Ok((ready.line, alert))
}

/// `hupwatch selftest` as a user types it after installing, as root: it must pass (exit 0,
/// its table says so) with the eBPF source. Returns its table.
pub fn selftest_passes(place: &Place) -> Result<String> {
    let table = run_ok(
        place
            .command(&place.hupwatch)
            .arg("selftest")
            .stdin(Stdio::null()),
    )?;
    for said in ["hupwatch selftest: passed", "source      ebpf"] {
        if !table.contains(said) {
            bail!("hupwatch selftest's table lacks `{said}`:\n{table}");
        }
    }
    Ok(table)
}

/// SIGTERM, then its exit status must be 0 within 10 s.
fn stop(child: &mut Child) -> Result<()> {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("hupwatch exited with {status} on SIGTERM");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("hupwatch did not exit within 10 s of SIGTERM");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The BPF programs loaded now whose names are hupwatch's (the kernel keeps 15 characters).
fn hupwatch_programs_loaded() -> Result<usize> {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .context("could not run bpftool")?;
    if !out.status.success() {
        bail!("bpftool prog show failed ({})", out.status);
    }
    let names: Vec<String> = RESOLVE
        .split("spec(")
        .skip(1)
        .filter_map(|s| s.split('"').nth(1))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|n| n.chars().take(15).collect())
        .collect();
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| names.iter().any(|n| l.contains(&format!("name {n} "))))
        .count())
}

struct Found {
    line: String,
    before: Vec<String>,
}

fn wait_for(rx: &Receiver<String>, within: Duration, want: impl Fn(&str) -> bool) -> Option<Found> {
    let deadline = Instant::now() + within;
    let mut before = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return Some(Found { line, before }),
            Ok(line) => before.push(line),
            Err(_) => return None,
        }
    }
    None
}

fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start `{}`", crate::sh::display(cmd)))?;
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            crate::sh::display(cmd),
            out.status,
            said.trim()
        );
    }
    Ok(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_count_is_read_from_probe_users_table() {
        assert!(program_count() >= 11, "{}", program_count());
    }
}
