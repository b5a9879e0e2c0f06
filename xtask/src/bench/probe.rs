//! The probes under test, started and stopped around measurements: hupwatch itself, and
//! bpftrace running the equivalent script. Both are reached through their child process.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// How long a probe may take to attach.
const READY: Duration = Duration::from_secs(60);

/// Lines a child printed, with the time each arrived ([`now_ns`]).
#[derive(Default)]
struct Lines {
    stdout: Vec<(u64, String)>,
    stderr: Vec<String>,
    ended: bool,
}

pub struct Probe {
    child: Child,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    /// hupwatch's HTTP address, once its ready line names it.
    pub address: Option<String>,
    /// Keeps bpftrace's script file alive while it runs.
    _script: Option<PathBuf>,
}

/// Monotonic ns since the first call: wall-clock time on these VMs can step, and every
/// interval measured here starts and ends in this process.
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

impl Probe {
    /// `hupwatch run ARGS` with alerts on stdout and HTTP on a free loopback port.
    pub fn hupwatch(binary: &Path, args: &[&str]) -> Result<Self> {
        Self::hupwatch_with_env(binary, args, &[])
    }

    /// `hupwatch run` with these variables set (HUPWATCH_TRACEFS, say).
    pub fn hupwatch_with_env(binary: &Path, args: &[&str], env: &[(&str, &Path)]) -> Result<Self> {
        let mut command = Command::new(binary);
        command.args(["run", "--listen", "127.0.0.1:0"]).args(args);
        command.envs(env.iter().copied());
        let mut probe = Self::spawn(command, None, true)?;
        let ready = probe.wait_stderr("hupwatch: ready")?;
        probe.address = ready
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string);
        Ok(probe)
    }

    /// bpftrace on `script`, ready once its BEGIN probe has printed.
    pub fn bpftrace(script: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("hupwatch-bench-{}.bt", std::process::id()));
        std::fs::write(&path, script)?;
        let mut command = Command::new("bpftrace");
        // Unbuffered output, so the ready line is not stuck behind a buffer.
        command.arg("-B").arg("none").arg(&path);
        let probe = Self::spawn(command, Some(path), false)?;
        probe.wait_stdout("hupwatch-bench-ready")?;
        Ok(probe)
    }

    /// `keep_stdout`: keep every stdout line (hupwatch's alerts); otherwise only the first
    /// few are kept and the rest read and dropped (bpftrace's per-event lines).
    fn spawn(mut command: Command, script: Option<PathBuf>, keep_stdout: bool) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?}", command.get_program()))?;
        let lines = Arc::new((Mutex::new(Lines::default()), Condvar::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let shared = Arc::clone(&lines);
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stdout);
            let mut line = String::new();
            let mut kept = 0usize;
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if keep_stdout || kept < 16 {
                    let (state, wake) = &*shared;
                    let mut state = state.lock().unwrap();
                    state.stdout.push((now_ns(), line.trim_end().to_string()));
                    wake.notify_all();
                    kept += 1;
                }
                line.clear();
            }
            let (state, wake) = &*shared;
            state.lock().unwrap().ended = true;
            wake.notify_all();
        });
        let shared = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (state, wake) = &*shared;
                state.lock().unwrap().stderr.push(line);
                wake.notify_all();
            }
        });
        Ok(Self {
            child,
            lines,
            address: None,
            _script: script,
        })
    }

    /// Waits up to `within` for `find` to see what it looks for in the lines so far; the
    /// error names `what` and shows the last stdout lines and all of stderr.
    fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        find: impl Fn(&Lines) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + within;
        let (state, wake) = &*self.lines;
        let mut state = state.lock().unwrap();
        loop {
            if let Some(found) = find(&state) {
                return Ok(found);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || state.ended {
                let last: Vec<&str> = state
                    .stdout
                    .iter()
                    .rev()
                    .take(4)
                    .map(|(_, line)| line.as_str())
                    .collect();
                bail!(
                    "{what} did not come; the last lines were {last:?}; stderr: {}",
                    state.stderr.join(" | ")
                );
            }
            state = wake.wait_timeout(state, left).unwrap().0;
        }
    }

    fn wait_stderr(&self, prefix: &str) -> Result<String> {
        self.wait_for(prefix, READY, |s| {
            s.stderr.iter().find(|l| l.starts_with(prefix)).cloned()
        })
    }

    fn wait_stdout(&self, text: &str) -> Result<String> {
        self.wait_for(text, READY, |s| {
            s.stdout
                .iter()
                .find(|(_, l)| l.contains(text))
                .map(|(_, l)| l.clone())
        })
    }

    /// The first stdout line (an alert, for hupwatch) that arrived at `since` (this
    /// process's clock, [`now_ns`]) or later and `matches`, with its arrival time, waiting
    /// up to `within`. Earlier lines (inferred alerts at start, earlier rounds) never count.
    pub fn wait_alert(
        &self,
        since: u64,
        within: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<(u64, serde_json::Value)> {
        self.wait_for("the alert", within, |s| {
            s.stdout.iter().find_map(|(at, line)| {
                if *at < since {
                    return None;
                }
                let value: serde_json::Value = serde_json::from_str(line).ok()?;
                matches(&value).then_some((*at, value))
            })
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path` from hupwatch's HTTP server: the body and how long it took.
    pub fn get(&self, path: &str) -> Result<(String, Duration)> {
        let address = self.address.as_deref().context("no HTTP address")?;
        let started = Instant::now();
        let mut stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let took = started.elapsed();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .context("an HTTP response")?;
        Ok((body, took))
    }

    /// One sample's value from /metrics, 0 when absent.
    pub fn metric(&self, series: &str) -> Result<f64> {
        let (body, _) = self.get("/metrics")?;
        Ok(sample(&body, series).unwrap_or(0.0))
    }

    /// Resident memory, from /proc/PID/status.
    pub fn rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("VmRSS")?;
        Ok(kib * 1024)
    }

    /// User plus system CPU time, from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        let after_comm = stat.rsplit_once(')').context("stat")?.1;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(ticks as f64 / hz)
    }

    /// SIGTERM, then up to 10 s for a clean exit.
    pub fn stop(mut self) -> Result<()> {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        bail!("the probe did not stop on SIGTERM within 10 s")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(script) = &self._script {
            let _ = std::fs::remove_file(script);
        }
    }
}

/// A child process killed and reaped when dropped: the subjects the bench starts.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `series` (name with labels, exactly as printed) in a Prometheus text page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_exact_series() {
        let page = "# HELP x\nx_total{kind=\"signal\"} 12\nx_total{kind=\"signals\"} 3\n";
        assert_eq!(sample(page, "x_total{kind=\"signal\"}"), Some(12.0));
        assert_eq!(sample(page, "x_total{kind=\"exec\"}"), None);
    }
}
