//! End to end, as root, with the eBPF programs: the failures seen in the field besides
//! detaching. An orphan that spins on a CPU, a parent that leaves its children unreaped,
//! an orphan that is stopped; and growth that is only growth when it lasts: a process that
//! allocates 300 MiB at once and then holds still never gets `rss_growth`.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, raised};
use processes::{PYTHON, named_link, named_program, orphan};
use pty::Pty;
use support::{kill, scaled, scratch_dir, unique};

/// `hupwatch run` watching this test process and everything it starts, with a 1 s grace.
fn watch(extra: &[&str]) -> Hupwatch {
    Hupwatch::watching_me("1s", extra)
}

/// How long a raised alert may take past what caused it (stretched in emulated guests).
fn slack() -> Duration {
    scaled(Duration::from_secs(3))
}

/// Whether `hupwatch` raised `kind` for `pid` at all by now.
fn raised_any(hupwatch: &Hupwatch, kind: &str, pid: u32) -> bool {
    hupwatch.raised_for(pid).iter().any(|k| k == kind)
}

#[test]
fn an_orphaned_busy_loop_is_cpu_spin() {
    let hupwatch = watch(&[
        "--cpu-window",
        "3s",
        "--cpu-spin",
        "60%",
        "--rss-interval",
        "200ms",
    ]);
    let dir = scratch_dir("cpu-spin");
    let spinner = named_link(&dir, &unique("spn"), PYTHON);
    let started = Instant::now();
    let pid = orphan(&spinner, "-c 'while True: pass'");
    hupwatch.wait_for("orphaned", raised("orphaned", pid));
    let alert = hupwatch.wait_for_within(
        "a cpu_spin alert",
        started + Duration::from_secs(3) + slack(),
        raised("cpu_spin", pid),
    );
    let reason = alert["reason"].as_str().unwrap();
    assert!(reason.contains("of CPU in the last 3s"), "{reason}");
    assert!(
        alert["rss_bytes"].as_u64().is_some_and(|b| b > 0),
        "the alert carries its memory: {alert}"
    );
    kill(pid, libc::SIGKILL);
    hupwatch.wait_for("the spin resolved at exit", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "cpu_spin"
    });
    hupwatch.stop();
}

#[test]
fn a_busy_process_on_a_live_terminal_is_not_spinning() {
    let hupwatch = watch(&[
        "--cpu-window",
        "2s",
        "--cpu-spin",
        "60%",
        "--rss-interval",
        "200ms",
    ]);
    let dir = scratch_dir("cpu-busy");
    let busy = named_link(&dir, &unique("bsy"), PYTHON);
    let pty = Pty::open();
    let mut child = pty.spawn(Command::new(&busy).args(["-c", "while True: pass"]));
    let pid = child.id();
    // Its CPU window twice over, and the reads around it.
    thread::sleep(scaled(Duration::from_secs(5)));
    assert!(
        !raised_any(&hupwatch, "cpu_spin", pid),
        "a busy process on its terminal is working, not spinning: {:?}",
        hupwatch.events_of(pid)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(pty);
    hupwatch.stop();
}

/// A python parent that forks `n` children which exit at once, leaves them unreaped, says
/// "forked", and reaps them all when it reads a line.
fn unreaping_parent(program: &std::path::Path, n: u32) -> (Child, BufReader<ChildStdout>) {
    let code = format!(
        "import os, sys\n\
         for _ in range({n}):\n    \
             if os.fork() == 0:\n        os._exit(0)\n\
         print('forked', flush=True)\n\
         sys.stdin.readline()\n\
         while True:\n    \
             try:\n        os.wait()\n    \
             except ChildProcessError:\n        break\n\
         print('reaped', flush=True)\n\
         sys.stdin.readline()\n"
    );
    let mut child = Command::new(program)
        .args(["-c", &code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

#[test]
fn a_parent_that_leaves_sixty_children_unreaped_holds_zombies_until_it_reaps_them() {
    let hupwatch = watch(&[]);
    let dir = scratch_dir("zombies");
    let parent = named_link(&dir, &unique("zmb"), PYTHON);
    let (mut child, mut out) = unreaping_parent(&parent, 60);
    let pid = child.id();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "forked");
    let forked = Instant::now();
    let alert = hupwatch.wait_for_within(
        "a zombies alert",
        forked + Duration::from_secs(2) + slack(),
        raised("zombies", pid),
    );
    // The alert counts the exits seen when it is raised: at least the threshold (50), and
    // not always all 60, as the last children may still be exiting ("forked" is printed
    // once they are forked; a 5.15 guest raised it at 59).
    assert_eq!(alert["evidence"][0]["event"], "zombies");
    let count = alert["evidence"][0]["count"].as_u64().unwrap();
    assert!((50..=60).contains(&count), "{alert}");
    let reason = alert["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("{count} of its children exited")),
        "{reason}"
    );
    child.stdin.as_mut().unwrap().write_all(b"reap\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "reaped");
    let resolved = hupwatch.wait_for("the zombies resolved once reaped", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "zombies"
    });
    assert!(
        resolved["reason"].as_str().unwrap().contains("reaped"),
        "{resolved}"
    );
    let _ = child.kill();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn fewer_unreaped_children_than_the_threshold_are_no_verdict() {
    let hupwatch = watch(&["--zombies", "50"]);
    let dir = scratch_dir("few-zombies");
    let parent = named_link(&dir, &unique("fzm"), PYTHON);
    let (mut child, mut out) = unreaping_parent(&parent, 10);
    let pid = child.id();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    thread::sleep(scaled(Duration::from_secs(3)));
    assert!(
        !raised_any(&hupwatch, "zombies", pid),
        "{:?}",
        hupwatch.events_of(pid)
    );
    let _ = child.kill();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn an_orphan_that_is_stopped_is_stopped_until_it_is_continued() {
    let hupwatch = watch(&[]);
    let dir = scratch_dir("stopped");
    let sleeper = named_program(&dir, &unique("stp"), "sleep");
    let pid = orphan(&sleeper, "1000");
    hupwatch.wait_for("orphaned", raised("orphaned", pid));
    let stopped = Instant::now();
    kill(pid, libc::SIGSTOP);
    let alert = hupwatch.wait_for_within(
        "a stopped alert",
        stopped + Duration::from_secs(1) + slack(),
        raised("stopped", pid),
    );
    let waited = stopped.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "raised {waited:?} after the stop, before --hup-grace 1s"
    );
    assert!(
        alert["reason"].as_str().unwrap().contains("stopped since"),
        "{alert}"
    );
    kill(pid, libc::SIGCONT);
    let resolved = hupwatch.wait_for("the stop resolved by SIGCONT", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "stopped"
    });
    assert_eq!(resolved["reason"], "it runs again");
    kill(pid, libc::SIGKILL);
    hupwatch.stop();
}

/// python that touches 300 MiB at once, says "allocated", then holds still.
const ALLOCATE_AT_ONCE: &str = "import sys\nb = bytearray(300 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('allocated', flush=True)\nsys.stdin.readline()\n";

fn allocation_at_start_is_not_growth(extra: &[&str], hold: Duration) {
    let hupwatch = watch(extra);
    let dir = scratch_dir("allocate-once");
    let python = named_link(&dir, &unique("alc"), PYTHON);
    let mut child = Command::new(&python)
        .args(["-c", ALLOCATE_AT_ONCE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert_eq!(processes::first_line(&mut child).trim(), "allocated");
    thread::sleep(hold);
    let me = harness::session_of(&hupwatch.sessions_json(), pid);
    let rss = me
        .as_ref()
        .and_then(|p| p["rss_bytes"].as_u64())
        .unwrap_or(0);
    assert!(rss >= 300 << 20, "it holds its 300 MiB: {me:?}");
    assert!(
        !raised_any(&hupwatch, "rss_growth", pid),
        "a start-up allocation that then holds still is not growth: {:?}",
        hupwatch.events_of(pid)
    );
    let _ = child.kill();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn allocating_300_mib_at_once_then_holding_still_is_not_growth_with_the_defaults() {
    allocation_at_start_is_not_growth(&[], Duration::from_secs(4));
}

#[test]
fn allocating_300_mib_at_once_then_holding_still_is_not_growth_with_short_flags() {
    // The rule holds while the allocation takes less than a quarter of the window: here
    // 300 MiB touched in well under the 3 s of a 12 s window. An emulated guest touches
    // memory far slower, so the window there is stretched too: a 6.1 guest running two
    // tests at once took over 5 s to touch 194 MiB, past the quarter of a 20 s window.
    let window = format!("{}s", scaled(Duration::from_secs(12)).as_secs());
    allocation_at_start_is_not_growth(
        &[
            "--rss-growth",
            "64MiB",
            "--rss-window",
            &window,
            "--rss-interval",
            "100ms",
        ],
        scaled(Duration::from_secs(4)),
    );
}
