//! `hupwatch reap` against real processes: orphans started here, one of them another
//! user's. Runs as root (another user's process needs setpriv); no eBPF is loaded.
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use processes::{orphan_script, running, stat_fields};
use serde_json::Value;
use support::{HUPWATCH, require_root};

/// Starts `script` in the background of a shell that exits at once, so the process is
/// reparented (orphaned); returns its pid. `user`: run it as this uid via setpriv.
fn orphan(script: &str, user: Option<u32>) -> u32 {
    let mut shell = match user {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={uid}"),
                format!("--regid={uid}"),
                "--clear-groups".into(),
                "sh".into(),
            ]);
            c
        }
        None => Command::new("sh"),
    };
    let pid = orphan_script(&mut shell, script);
    // Its parent shell has exited once orphan_script() returned; wait until it is adopted.
    let deadline = Instant::now() + Duration::from_secs(5);
    while parent(pid) != Some(1) && !is_adopted_by_subreaper(pid) {
        assert!(Instant::now() < deadline, "{pid} was never reparented");
        thread::sleep(Duration::from_millis(10));
    }
    pid
}

fn parent(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

fn is_adopted_by_subreaper(pid: u32) -> bool {
    parent(pid).is_some_and(|p| p != std::process::id() && p > 1)
}

fn wait_until_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

struct Reaped(Vec<u32>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for &pid in &self.0 {
            support::kill(pid, libc::SIGKILL);
        }
    }
}

fn reap(args: &[&str]) -> Output {
    Command::new(HUPWATCH)
        .arg("reap")
        .args(args)
        .output()
        .expect("hupwatch runs")
}

fn log_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn actions(lines: &[Value], pid: u32) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["pid"] == pid)
        .map(|l| match l["signal"].as_str() {
            Some(signal) => format!("{} {signal}", l["action"].as_str().unwrap()),
            None => l["action"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn a_dry_run_lists_the_orphan_and_why_and_ends_nothing() {
    require_root();
    let pid = orphan("sleep 600", None);
    let _guard = Reaped(vec![pid]);
    let out = reap(&["--pid", &pid.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&pid.to_string()))
        .unwrap_or_else(|| panic!("{pid} not listed in:\n{stdout}"));
    assert!(
        row.contains("orphaned") && row.contains("sleep 600"),
        "{row}"
    );
    assert!(stdout.contains("--yes"), "says how to do it: {stdout}");
    thread::sleep(Duration::from_millis(200));
    assert!(running(pid), "a dry run ended it");
}

#[test]
fn with_yes_the_orphan_gets_sigterm_and_exits_and_each_step_is_logged() {
    require_root();
    let pid = orphan("sleep 600", None);
    let _guard = Reaped(vec![pid]);
    let out = reap(&["--pid", &pid.to_string(), "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = log_lines(&out);
    assert_eq!(actions(&lines, pid), ["signal SIGTERM", "exited"]);
    assert_eq!(lines[0]["verdicts"][0], "orphaned");
    assert_eq!(lines[0]["comm"], "sleep");
    assert!(wait_until_gone(pid));
}

#[test]
fn one_that_ignores_the_signal_is_killed_after_the_grace_period() {
    require_root();
    let pid = orphan(
        "exec sh -c 'trap \"\" TERM; while :; do sleep 1; done'",
        None,
    );
    let _guard = Reaped(vec![pid]);
    let started = Instant::now();
    let out = reap(&["--pid", &pid.to_string(), "--yes", "--grace", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines = log_lines(&out);
    let mine: Vec<String> = actions(&lines, pid);
    assert_eq!(
        mine,
        ["signal SIGTERM", "signal SIGKILL", "exited"],
        "{lines:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "SIGKILL came before the grace"
    );
    assert!(wait_until_gone(pid));
}

#[test]
fn another_users_orphan_is_left_alone_unless_all_users() {
    require_root();
    let pid = orphan("sleep 600", Some(65534));
    let _guard = Reaped(vec![pid]);
    let out = reap(&["--pid", &pid.to_string(), "--yes", "--grace", "1s"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(log_lines(&out).is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another user's"), "{stderr}");
    assert!(running(pid), "another user's process was ended");

    let out = reap(&["--pid", &pid.to_string(), "--yes", "--all-users"]);
    assert_eq!(actions(&log_lines(&out), pid), ["signal SIGTERM", "exited"]);
    assert!(wait_until_gone(pid));
}

#[test]
fn a_process_without_the_verdict_is_not_touched() {
    require_root();
    // A child of this test: it has a parent, so it is not orphaned.
    let mut child = Command::new("sleep").arg("600").spawn().unwrap();
    let pid = child.id();
    let out = reap(&["--pid", &pid.to_string(), "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(log_lines(&out).is_empty(), "{out:?}");
    assert!(processes::alive(&mut child));
    // Asked for by a verdict it has not got, even when named: still untouched.
    let out = reap(&["--pid", &pid.to_string(), "--verdict", "detached"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("nothing to end"),
        "{out:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bad_reap_flags_name_the_fix() {
    for (args, needle) in [
        (&["--verdict", "zombie"][..], "use one of detached"),
        (&["--signal", "NOPE"][..], "use a name like TERM"),
        (&["--grace", "soon"][..], "soon"),
        (&["--min-rss", "big"][..], "big"),
    ] {
        let out = reap(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}
