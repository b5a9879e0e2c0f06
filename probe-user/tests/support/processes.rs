//! The processes a test starts and looks at: programs linked under names unique to the
//! test, orphans, processes run as another user, and what /proc says about them.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Child, Command},
    thread,
    time::{Duration, Instant},
};

use crate::support::{event_timeout, kill, which};

/// Debian's own python, not a shim under root's home that nobody cannot read and that
/// would exec under another name (a version manager's shim runs a shell script).
pub const PYTHON: &str = "/usr/bin/python3";

/// A link named `name` to `target`: whatever execs it has that comm, so one test can
/// match its own processes by name without seeing another's.
pub fn named_link(dir: &Path, name: &str, target: impl AsRef<Path>) -> PathBuf {
    assert!(name.len() <= 15, "comm holds 15 bytes");
    let link = dir.join(name);
    symlink(target, &link).unwrap();
    link
}

/// A link named `name` to `program` as found on PATH.
pub fn named_program(dir: &Path, name: &str, program: &str) -> PathBuf {
    named_link(dir, name, which(program))
}

/// A link named `name` to the Python interpreter itself (pyenv's `python3` is a shim that
/// would look up a program called `name`), so that the processes it runs have that comm.
pub fn named_python(dir: &Path, name: &str) -> PathBuf {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3 runs");
    let real = String::from_utf8(out.stdout).unwrap().trim().to_string();
    named_link(dir, name, real)
}

/// The unprivileged user the proc-source tests run hupwatch and their subjects as.
pub const NOBODY: u32 = 65534;

/// A command that runs `program` as `uid` (group the same number, no supplementary
/// groups, no capabilities, not even in the bounding set), through setpriv, which execs
/// it: the child's pid is the program's.
pub fn as_user(uid: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut setpriv = Command::new(which("setpriv"));
    setpriv
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .arg(program);
    setpriv
}

/// Starts `program ARGS` in the background of a shell that exits at once, so the program
/// is orphaned; its pid.
pub fn orphan(program: &Path, args: &str) -> u32 {
    orphan_script(
        &mut Command::new("sh"),
        &format!("'{}' {args}", program.display()),
    )
}

/// Runs the command line `line` in the background of `shell -c`, which exits at once, so
/// what it starts is orphaned; its pid. `shell` is `sh` (or a wrapper that execs it) with
/// the environment and directory the caller wants. The job's stdio is /dev/null (a
/// shell without job control gives a background job /dev/null as stdin anyway).
pub fn orphan_script(shell: &mut Command, line: &str) -> u32 {
    let script = format!("{line} </dev/null >/dev/null 2>&1 & echo $!");
    let out = shell.args(["-c", &script]).output().expect("sh runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the shell prints the pid")
}

pub fn alive(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// The fields of /proc/PID/stat after the name: state, ppid, ...
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(String::from).collect())
}

/// Alive and not a zombie (init here may be slow to reap, or not reap at all).
pub fn running(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Stops `pid` with SIGSTOP and waits until every one of its threads has stopped: kill(2)
/// returns before they do, and a thread still running would read records it should miss.
pub fn pause(pid: u32) {
    kill(pid, libc::SIGSTOP);
    let deadline = Instant::now() + event_timeout();
    loop {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        let all_stopped = threads.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
                    Some(state == 'T')
                })
                // A thread that ended while we looked is not running either.
                .unwrap_or(true)
        });
        if all_stopped {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} did not stop");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The first line `child` prints on its piped stdout (which it takes): for subjects that
/// say when they are ready.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("the child's stdout");
    line
}

/// Waits until `pid` has exec'd the program named `name` (its comm in /proc), so that a
/// /proc scan sees it under that name.
pub fn wait_for_exec(pid: u32, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        != name
    {
        assert!(Instant::now() < deadline, "pid {pid} never exec'd {name}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The live process whose command line (its arguments joined by spaces) ends with
/// `tail`, leaving out a shell (`/bin/sh -c '... tail'`) that started it.
pub fn pid_of_cmdline(tail: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.trim_end().ends_with(tail) && !text.starts_with("/bin/sh")).then_some(pid)
        })
}

/// Waits (up to the event timeout) for [`pid_of_cmdline`] to find `tail`.
pub fn wait_for_cmdline(tail: &str) -> u32 {
    let deadline = Instant::now() + event_timeout();
    loop {
        if let Some(pid) = pid_of_cmdline(tail) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{tail} never started");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until /proc says `pid` has a handler for SIGHUP (bit 0 of SigCgt).
pub fn wait_for_sighup_handler(pid: u32) {
    wait_for_sighup_bit(pid, "SigCgt:", true);
}

/// Waits until bit 0 (SIGHUP) of the mask `field` (`SigIgn:`, `SigCgt:`) in
/// /proc/PID/status is `set`.
pub fn wait_for_sighup_bit(pid: u32, field: &str, set: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let bit = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|mask| mask & 1 == 1);
        if bit == set {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP's bit in {field} of pid {pid} never became {set}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
