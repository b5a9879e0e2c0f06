//! Runs the real `hupwatch trace --json` (or `hupwatch run`) binary, which loads the real
//! eBPF programs, and collects the JSON lines it prints (events, or alerts) while the
//! tests drive real processes; and reads what it says (alerts, sessions documents,
//! metrics, loss reports).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    processes::as_user,
    support::{HUPWATCH, event_timeout, require_root, which},
};

#[derive(Default)]
struct Collected {
    events: Vec<Value>,
    stderr: Vec<String>,
    ready: bool,
    closed: bool,
    /// Whether stdout was read to its end.
    stdout_done: bool,
}

pub struct Hupwatch {
    child: Child,
    state: Arc<(Mutex<Collected>, Condvar)>,
}

impl Hupwatch {
    /// Starts `hupwatch trace --json ARGS` and waits until its programs are attached.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(&["trace", "--json"], args, env)
    }

    /// Starts `hupwatch run ARGS` with its API on a free loopback port; the collected lines
    /// are its alerts.
    pub fn run(args: &[&str]) -> Self {
        Self::spawn(run_args(args), args, &[])
    }

    pub fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(run_args(args), args, env)
    }

    /// `hupwatch run` watching this test process and everything it starts, with
    /// `--hup-grace hup_grace`, then `extra`.
    pub fn watching_me(hup_grace: &str, extra: &[&str]) -> Self {
        let me = std::process::id().to_string();
        let mut args = vec!["--pid", me.as_str(), "--hup-grace", hup_grace];
        args.extend_from_slice(extra);
        Self::run(&args)
    }

    /// Starts `hupwatch run ARGS` as `uid` without capabilities (from root, through
    /// setpriv), its API on a free loopback port, and waits for its ready line.
    pub fn run_as(uid: u32, args: &[&str]) -> Self {
        let mut setpriv = as_user(uid, HUPWATCH);
        // Not the test's directory, which that user may not be allowed into.
        setpriv.current_dir("/");
        Self::spawn_through(setpriv, run_args(args), args, &[])
    }

    /// The path of the local API socket this `hupwatch run` serves (`--api-socket` in its
    /// arguments), as its ready line names it.
    pub fn socket_url(&self) -> String {
        let line = self.wait_for_stderr("the ready line", |l| l.contains("local API at unix:"));
        let from = line.split("local API at ").nth(1).unwrap();
        from.split(';').next().unwrap().to_string()
    }

    /// host:port of `hupwatch run`'s HTTP server, as a scrape target.
    pub fn address(&self) -> String {
        self.api_url().trim_start_matches("http://").to_string()
    }

    fn spawn(command_args: &[&str], args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn_through(Command::new(HUPWATCH), command_args, args, env)
    }

    /// Like [`Hupwatch::spawn`], through `command`: hupwatch itself, or a wrapper that
    /// execs it (see [`Hupwatch::run_as`]).
    fn spawn_through(
        mut command: Command,
        command_args: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        require_root();
        command.args(command_args).args(args);
        command.envs(env.iter().copied());
        // Its own session, without the runner's terminal: a terminal's hangup ends
        // hupwatch, and a test must not depend on whether `cargo test` has one.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hupwatch starts");
        let state = Arc::new((Mutex::new(Collected::default()), Condvar::new()));

        let stdout = child.stdout.take().expect("piped stdout");
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("hupwatch printed a line that is not JSON ({e}): {line}")
                });
                let (lock, cvar) = &*shared;
                lock.lock().unwrap().events.push(value);
                cvar.notify_all();
            }
            let (lock, cvar) = &*shared;
            lock.lock().unwrap().stdout_done = true;
            cvar.notify_all();
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lock, cvar) = &*shared;
                let mut collected = lock.lock().unwrap();
                collected.ready |= line.starts_with("hupwatch: ready:");
                collected.stderr.push(line);
                cvar.notify_all();
            }
            let (lock, cvar) = &*shared;
            lock.lock().unwrap().closed = true;
            cvar.notify_all();
        });

        let mut hupwatch = Self { child, state };
        let (ready, said) = {
            let (lock, cvar) = &*hupwatch.state;
            let (collected, timeout) = cvar
                .wait_timeout_while(lock.lock().unwrap(), Duration::from_secs(60), |c| {
                    !c.ready && !c.closed
                })
                .unwrap();
            (
                collected.ready && !timeout.timed_out(),
                collected.stderr.join("\n"),
            )
        };
        if !ready {
            // How it ended says what stderr cannot: a signal, a crash.
            let ended = hupwatch.child.try_wait();
            panic!("hupwatch did not get ready ({ended:?}); it said:\n{said}");
        }
        hupwatch
    }

    /// The first event (in arrival order) that satisfies `pred`, waiting for it if needed.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, |c| c.events.iter().find(|e| pred(e)).cloned())
    }

    /// Like [`Hupwatch::wait_for`], but fails once `deadline` has passed.
    pub fn wait_for_within(
        &self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = self.wait_for(what, pred);
        let late = Instant::now().saturating_duration_since(deadline);
        assert!(late.is_zero(), "{what} arrived {late:?} late: {found}");
        found
    }

    /// The base URL of `hupwatch run`'s API, from its ready line.
    pub fn api_url(&self) -> String {
        let line = self.wait_for_stderr("the ready line", |l| l.contains("sessions at http://"));
        let url = line.split("sessions at ").nth(1).unwrap();
        url.trim_end_matches("/api/sessions").to_string()
    }

    /// What `hupwatch sessions --from URL --json` says about this `hupwatch run`.
    pub fn sessions_json(&self) -> Value {
        sessions_through(Command::new(HUPWATCH), &["--from", &self.api_url()])
    }

    /// The body of `GET path` on `hupwatch run`'s API, over a plain HTTP/1.0 request.
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let url = self.api_url();
        let address = url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("the API answers");
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{head}"
        );
        body.to_string()
    }

    /// Writes the lines collected so far to `path`, one JSON object per line.
    pub fn save_events(&self, path: &Path) {
        let (lock, _) = &*self.state;
        let text: String = lock
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| e.to_string() + "\n")
            .collect();
        std::fs::write(path, text).unwrap();
    }

    /// The first line hupwatch wrote to stderr that satisfies `pred`, waiting if needed.
    pub fn wait_for_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, |c| c.stderr.iter().find(|l| pred(l)).cloned())
    }

    fn wait_until<T>(&self, what: &str, find: impl Fn(&Collected) -> Option<T>) -> T {
        let (lock, cvar) = &*self.state;
        let deadline = Instant::now() + event_timeout();
        let mut collected = lock.lock().unwrap();
        loop {
            if let Some(found) = find(&collected) {
                return found;
            }
            let now = Instant::now();
            assert!(
                now < deadline && !collected.closed,
                "no {what} arrived; hupwatch printed:\n{}\nstderr:\n{}",
                dump(&collected.events),
                collected.stderr.join("\n")
            );
            collected = cvar.wait_timeout(collected, deadline - now).unwrap().0;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every event so far about `pid`.
    pub fn events_of(&self, pid: u32) -> Vec<Value> {
        let (lock, _) = &*self.state;
        lock.lock()
            .unwrap()
            .events
            .iter()
            .filter(|e| e["pid"] == pid)
            .cloned()
            .collect()
    }

    /// The kinds of the alerts raised so far for `pid`, in order.
    pub fn raised_for(&self, pid: u32) -> Vec<String> {
        self.events_of(pid)
            .iter()
            .filter(|a| a["status"] == "raised")
            .map(|a| a["alert"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.state.0.lock().unwrap().stderr.clone()
    }

    /// Stops hupwatch with SIGTERM and checks that it exits cleanly.
    pub fn stop(self) {
        self.stop_with(libc::SIGTERM);
    }

    /// Sends `signal` and checks that hupwatch exits cleanly (status 0).
    pub fn stop_with(mut self, signal: i32) {
        let status = self.terminate(signal);
        assert!(
            status.success(),
            "hupwatch exited with {status} on signal {signal}; stderr:\n{}",
            self.stderr().join("\n")
        );
    }

    /// Stops hupwatch with SIGTERM, checks that it exited cleanly and returns everything
    /// it printed: events (or alerts) and stderr lines, to the last.
    pub fn finish(mut self) -> (Vec<Value>, Vec<String>) {
        let status = self.terminate(libc::SIGTERM);
        assert!(status.success(), "hupwatch exited with {status}");
        let (lock, cvar) = &*self.state;
        let collected = cvar
            .wait_timeout_while(lock.lock().unwrap(), event_timeout(), |c| {
                !(c.closed && c.stdout_done)
            })
            .unwrap()
            .0;
        (collected.events.clone(), collected.stderr.clone())
    }

    fn terminate(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
        self.child.wait().expect("hupwatch is our child")
    }
}

impl Drop for Hupwatch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate(libc::SIGTERM);
        }
    }
}

fn dump(events: &[Value]) -> String {
    let tail = events.len().saturating_sub(60);
    events[tail..]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What hupwatch's loss reports in `stderr` say it lost of `kind`, summed.
pub fn reported_lost(stderr: &[String], kind: &str) -> usize {
    stderr
        .iter()
        .filter_map(|l| l.strip_prefix("hupwatch: lost "))
        .filter_map(|l| l.split_once("): ")?.1.split(';').next())
        .flat_map(|detail| detail.split(' '))
        .filter_map(|pair| {
            pair.strip_prefix(kind)?
                .strip_prefix('=')?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// Copies the real tracepoint formats hupwatch reads, except `skip`.
pub fn tracefs_without(dir: &Path, skip: &str) {
    let real = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
        .expect("tracefs is mounted (hupwatch mounts it when it starts)");
    for tracepoint in [
        "task/task_newtask",
        "sched/sched_process_exec",
        "sched/sched_process_exit",
        "syscalls/sys_enter_setsid",
        "syscalls/sys_exit_setsid",
        "syscalls/sys_enter_ioctl",
        "syscalls/sys_enter_prctl",
        "signal/signal_generate",
        "signal/signal_deliver",
        "syscalls/sys_enter_rt_sigaction",
        "syscalls/sys_exit_rt_sigaction",
        "kmem/rss_stat",
    ] {
        if tracepoint == skip {
            continue;
        }
        let to = dir.join("events").join(tracepoint);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(
            real.join("events").join(tracepoint).join("format"),
            to.join("format"),
        )
        .unwrap();
    }
}

/// The value of the first series in `metrics` (text format) that starts with `series`.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// `pid`'s entry in a sessions document (`hupwatch sessions --json`), if it has one.
pub fn session_of(sessions: &Value, pid: u32) -> Option<Value> {
    sessions["processes"]
        .as_array()
        .expect("a sessions document lists its processes")
        .iter()
        .find(|p| p["pid"] == pid)
        .cloned()
}

/// An alert line raising `kind` for `pid`.
pub fn raised(kind: &'static str, pid: u32) -> impl Fn(&Value) -> bool {
    move |a| a["status"] == "raised" && a["alert"] == kind && a["pid"] == pid
}

/// `hupwatch sessions --json ARGS`, one-shot, as root.
pub fn sessions_json(args: &[&str]) -> Value {
    sessions_through(Command::new(HUPWATCH), args)
}

/// `hupwatch sessions --json ARGS` as nobody (a one-shot look at /proc, unprivileged), from
/// `/`, where nobody may be; its document. Fails the test when the command fails.
pub fn sessions_as_nobody(args: &[&str]) -> Value {
    let mut setpriv = Command::new(which("setpriv"));
    setpriv
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(HUPWATCH)
        .current_dir("/");
    sessions_through(setpriv, args)
}

/// `sessions --json ARGS` through `command`: hupwatch itself, or a wrapper that execs it;
/// its document. Fails the test when the command fails.
fn sessions_through(mut command: Command, args: &[&str]) -> Value {
    let out = command
        .args(["sessions", "--json"])
        .args(args)
        .output()
        .expect("hupwatch sessions runs");
    assert!(
        out.status.success(),
        "hupwatch sessions {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("sessions --json prints JSON")
}

/// `run` on a free loopback port. Tests run many daemons at once as root: each serves no
/// local API socket unless the test names one, so none takes the system's default path
/// and a one-shot `sessions` or `reap` in another test never reaches a test's daemon.
fn run_args(args: &[&str]) -> &'static [&'static str] {
    if args.contains(&"--api-socket") {
        &["run", "--listen", "127.0.0.1:0"]
    } else {
        &["run", "--listen", "127.0.0.1:0", "--api-socket", "none"]
    }
}
