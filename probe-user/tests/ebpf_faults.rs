//! Root tests of how hupwatch behaves when the world is not ideal: a kernel without one of
//! its tracepoints, a ring buffer that overflows, and the signals that end it.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use harness::{Hupwatch, metric, raised, reported_lost, tracefs_without};
use processes::{named_program, pause, wait_for_exec, wait_for_sighup_bit};
use pty::Pty;
use support::{HUPWATCH, kill, require_root, scratch_dir, unique};

#[test]
fn a_missing_tracepoint_is_a_warning_and_the_rest_works() {
    // Make sure tracefs is mounted before copying from it.
    Hupwatch::start(&["--pid", "1"]).stop();
    let dir = scratch_dir("tracefs");
    tracefs_without(&dir, "kmem/rss_stat");
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::start_with_env(
        &["--pid", &me],
        &[("HUPWATCH_TRACEFS", dir.to_str().unwrap())],
    );
    let stderr = hupwatch.stderr();
    assert!(
        stderr.iter().any(|l| l.starts_with("hupwatch: warning: tracepoint kmem/rss_stat does not exist on this kernel; RSS and swap are read from /proc every --rss-interval instead")),
        "{stderr:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("hupwatch: ready: 11 programs attached")),
        "{stderr:?}"
    );
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let exit = hupwatch.wait_for("exit", |e| e["event"] == "exit" && e["pid"] == pid);
    assert_eq!(exit["exit_code"], 0);
    child.wait().unwrap();
    hupwatch.stop();
}

/// Pauses hupwatch, then has `shell` run `programs` programs one after another; hupwatch
/// stays paused.
fn run_programs_while_paused(hupwatch: &Hupwatch, shell: &Path, programs: usize) {
    pause(hupwatch.pid());
    let script = format!("i=0; while [ $i -lt {programs} ]; do /bin/true; i=$((i+1)); done");
    let status = Command::new(shell).args(["-c", &script]).status().unwrap();
    assert!(status.success());
}

/// The events of each kind such a shell makes: its own exec and exit, and each program's
/// fork, exec and exit.
fn what_a_shell_running(programs: usize) -> [(&'static str, usize); 3] {
    [
        ("fork", programs),
        ("exec", programs + 1),
        ("exit", programs + 1),
    ]
}

/// A 4 KiB ring and a reader stopped while a shell runs 20 programs: of every kind, what
/// hupwatch printed plus what it reported lost is exactly what happened.
#[test]
fn events_that_do_not_fit_in_the_ring_buffer_are_counted_exactly() {
    const PROGRAMS: usize = 20;
    let name = unique("lst");
    let shell = named_program(&scratch_dir("lost-exactly"), &name, "sh");
    let hupwatch = Hupwatch::start(&[
        "--match",
        &name,
        "--ring-buffer-size",
        "4KiB",
        "--rss-interval",
        "100ms",
    ]);
    run_programs_while_paused(&hupwatch, &shell, PROGRAMS);
    support::kill(hupwatch.pid(), libc::SIGCONT);
    hupwatch.wait_for_stderr("a loss report", |l| {
        l.starts_with("hupwatch: lost ") && l.contains("(ring buffer full)")
    });
    let (events, stderr) = hupwatch.finish();
    for (kind, happened) in what_a_shell_running(PROGRAMS) {
        let seen = events.iter().filter(|e| e["event"] == kind).count();
        let lost = reported_lost(&stderr, kind);
        assert_eq!(
            seen + lost,
            happened,
            "{kind}: {seen} seen + {lost} lost; stderr: {stderr:?}"
        );
    }
}

/// A stop request does not throw away what the kernel already queued: hupwatch, paused
/// while a shell runs 5 programs and then told to stop, prints all their events first.
#[test]
fn trace_prints_what_was_queued_before_a_stop_request() {
    const PROGRAMS: usize = 5;
    let name = unique("stq");
    let shell = named_program(&scratch_dir("stop-queued"), &name, "sh");
    let hupwatch = Hupwatch::start(&["--match", &name]);
    run_programs_while_paused(&hupwatch, &shell, PROGRAMS);
    // Pending while it is stopped, so it is there the moment hupwatch runs again.
    kill(hupwatch.pid(), libc::SIGTERM);
    kill(hupwatch.pid(), libc::SIGCONT);
    let (events, stderr) = hupwatch.finish();
    for (kind, happened) in what_a_shell_running(PROGRAMS) {
        let seen = events.iter().filter(|e| e["event"] == kind).count();
        assert_eq!(seen, happened, "{kind}; stderr: {stderr:?}");
    }
}

/// The same for `hupwatch run`: the alert a queued event raises is written before it leaves.
#[test]
fn run_writes_the_alerts_of_what_was_queued_before_a_stop_request() {
    let name = unique("stqr");
    let shell = named_program(&scratch_dir("stop-queued-run"), &name, "sh");
    let hupwatch = Hupwatch::run(&["--match", &name]);
    pause(hupwatch.pid());
    let mut ignorer = Command::new(&shell)
        .args(["-c", "trap '' HUP; exec sleep 1000"])
        .spawn()
        .unwrap();
    wait_for_sighup_bit(ignorer.id(), "SigIgn:", true);
    // Past the 80 ms a finding must stand: the verdict is due when hupwatch wakes.
    std::thread::sleep(Duration::from_millis(300));
    kill(hupwatch.pid(), libc::SIGTERM);
    kill(hupwatch.pid(), libc::SIGCONT);
    let (alerts, stderr) = hupwatch.finish();
    ignorer.kill().unwrap();
    ignorer.wait().unwrap();
    assert!(
        alerts.iter().any(raised("hangup_ignored", ignorer.id())),
        "alerts: {alerts:?}; stderr: {stderr:?}"
    );
}

#[test]
fn after_an_overflow_it_resyncs_from_proc_and_keeps_no_stale_verdict() {
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::run(&["--pid", &me, "--ring-buffer-size", "4KiB"]);
    let dir = scratch_dir("overflow-resync");
    let (gone_name, found_name, relaxed_name) = (unique("rsg"), unique("rsf"), unique("rsr"));

    // Detached, then (unseen) killed.
    let pty = Pty::open();
    let typed = format!(
        "setsid {} 1000; true",
        named_program(&dir, &gone_name, "sleep").display()
    );
    let mut gone_shell = pty.spawn(Command::new("sh").args(["-c", &typed]));
    let detached = hupwatch.wait_for("the first detached alert", |a| {
        a["status"] == "raised" && a["alert"] == "detached" && a["comm"] == gone_name.as_str()
    });
    let gone = detached["pid"].as_u64().unwrap() as u32;
    // Ignores SIGHUP, then (unseen) restores the default on SIGUSR1.
    let relaxed_sh = named_program(&dir, &relaxed_name, "sh");
    let mut relaxed = Command::new(&relaxed_sh)
        .args([
            "-c",
            "trap '' HUP; trap 'trap - HUP' USR1; while :; do sleep 0.2; done",
        ])
        .spawn()
        .unwrap();
    hupwatch.wait_for("hangup_ignored", raised("hangup_ignored", relaxed.id()));

    run_programs_while_paused(&hupwatch, Path::new("sh"), 60);
    kill(gone, libc::SIGKILL);
    gone_shell.wait().unwrap();
    let found_sleep = named_program(&dir, &found_name, "sleep");
    let mut found = Command::new("setsid")
        .arg(&found_sleep)
        .arg("1000")
        .env("TERM", "xterm")
        .spawn()
        .unwrap();
    let found_pid = found.id();
    // setsid(1) calls setsid() and then execs the sleeper under the same pid.
    wait_for_exec(found_pid, &found_name);
    kill(relaxed.id(), libc::SIGUSR1);
    wait_for_sighup_bit(relaxed.id(), "SigIgn:", false);
    support::kill(hupwatch.pid(), libc::SIGCONT);

    let report = hupwatch.wait_for_stderr("the re-sync", |l| l.contains("re-synced with /proc"));
    assert!(!report.contains("after 0 lost"), "{report}");
    let resolved = hupwatch.wait_for("the lost exit resolved", |a| {
        a["status"] == "resolved" && a["pid"] == gone && a["alert"] == "detached"
    });
    assert!(
        resolved["reason"]
            .as_str()
            .unwrap()
            .contains("gone from /proc"),
        "{resolved}"
    );
    let inferred = hupwatch.wait_for("the unseen detach", raised("detached", found_pid));
    assert_eq!(inferred["inferred"], true);
    let withdrawn = hupwatch.wait_for("hangup_ignored withdrawn", |a| {
        a["status"] == "resolved" && a["pid"] == relaxed.id() && a["alert"] == "hangup_ignored"
    });
    assert!(
        withdrawn["reason"]
            .as_str()
            .unwrap()
            .contains("no longer ignored"),
        "{withdrawn}"
    );

    let sessions = hupwatch.sessions_json();
    let verdicts_of = |pid: u32| -> Option<Vec<String>> {
        let p = harness::session_of(&sessions, pid)?;
        Some(
            p["verdicts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["alert"].as_str().unwrap().to_string())
                .collect(),
        )
    };
    assert_eq!(verdicts_of(gone), None, "the dead process is still listed");
    assert_eq!(verdicts_of(relaxed.id()), Some(vec![]));
    assert!(
        verdicts_of(found_pid)
            .unwrap()
            .contains(&"detached".to_string())
    );
    let metrics = hupwatch.http_get("/metrics");
    assert!(metric(&metrics, "hupwatch_resyncs_total").unwrap() >= 1.0);
    assert!(
        metric(
            &metrics,
            "hupwatch_resync_changes_total{change=\"withdrawn\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(metric(&metrics, "hupwatch_resync_changes_total{change=\"gone\"}").unwrap() >= 1.0);

    kill(found_pid, libc::SIGKILL);
    kill(relaxed.id(), libc::SIGKILL);
    found.wait().unwrap();
    relaxed.wait().unwrap();
    hupwatch.stop();
}

/// hupwatch restarted while what it watched lives on: the new instance rebuilds the
/// verdicts from /proc at once, marked inferred.
#[test]
fn a_restart_rebuilds_the_verdicts_from_proc_marked_inferred() {
    let dir = scratch_dir("restart");
    let name = unique("rsv");
    let sleeper = named_program(&dir, &name, "sleep");
    let first = Hupwatch::run(&["--match", &name, "--hup-grace", "2s"]);
    // A shell on a terminal starts a nohup job; then the terminal hangs up, the shell dies
    // of it, and the job lives on: ignoring hangups, orphaned, its terminal lost.
    let pty = Pty::open();
    let typed = format!("nohup {} 1000 >/dev/null 2>&1 & wait", sleeper.display());
    let mut shell = pty.spawn(Command::new("sh").args(["-c", &typed]).env("TERM", "xterm"));
    let ignored = first.wait_for("hangup_ignored", |a| {
        a["status"] == "raised" && a["alert"] == "hangup_ignored" && a["comm"] == name.as_str()
    });
    let job = ignored["pid"].as_u64().unwrap() as u32;
    pty.hang_up();
    shell.wait().unwrap();
    first.wait_for("terminal_lost", raised("terminal_lost", job));
    first.wait_for("orphaned", raised("orphaned", job));
    first.stop();

    let second = Hupwatch::run(&["--match", &name]);
    for kind in ["hangup_ignored", "terminal_lost", "orphaned"] {
        let alert = second.wait_for(kind, raised(kind, job));
        assert_eq!(alert["inferred"], true, "{alert}");
    }
    let sessions = second.sessions_json();
    let listed = sessions["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == job)
        .cloned()
        .expect("the job is listed");
    assert_eq!(listed["inferred"], true, "{listed}");
    kill(job, libc::SIGKILL);
    second.wait_for("the job's verdicts resolved", |a| {
        a["status"] == "resolved" && a["pid"] == job
    });
    second.stop();
}

/// 10,000 processes come and go under hupwatch: every one is seen or counted lost, the
/// tracker forgets them all, and hupwatch's memory and descriptors stay where they were.
#[test]
fn ten_thousand_processes_churned_leave_nothing_behind() {
    const CHURNED: u32 = 10_000;
    // A shell of its own name, so that only it and its children are watched, whatever
    // the other tests start meanwhile.
    let name = unique("chu");
    let shell = named_program(&scratch_dir("churn"), &name, "sh");
    let hupwatch = Hupwatch::run(&["--match", &name]);
    let pid = hupwatch.pid();
    let tracked = format!("hupwatch_tracked_processes{{group=\"{name}\"}}");
    // Before any scrape: a scrape's socket stays open on hupwatch's side for a moment.
    let fds_before = fd_targets(pid);
    let anon_before = status_kib(pid, "RssAnon:");
    let before = metric(&hupwatch.http_get("/metrics"), &tracked).unwrap();
    let script = format!("i=0; while [ $i -lt {CHURNED} ]; do /bin/true; i=$((i+1)); done");
    assert!(
        Command::new(&shell)
            .args(["-c", &script])
            .status()
            .unwrap()
            .success()
    );

    // The shell and its 10,000 children are gone; so must they be from the tracker.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let metrics = hupwatch.http_get("/metrics");
        if metric(&metrics, &tracked) == Some(before) {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tracker still holds {:?} processes, {before} before the churn",
            metric(&metrics, &tracked)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let seen = metric(&metrics, "hupwatch_events_total{kind=\"exit\"}").unwrap();
    let lost = metric(&metrics, "hupwatch_events_lost_total{kind=\"exit\"}").unwrap_or(0.0);
    assert!(
        seen + lost >= f64::from(CHURNED),
        "{seen} exits seen and {lost} lost of at least {CHURNED}"
    );
    // The last scrape's socket may take a moment to close on hupwatch's side.
    let settled = std::time::Instant::now() + Duration::from_secs(5);
    while open_fds(pid) != fds_before.len() && std::time::Instant::now() < settled {
        std::thread::sleep(Duration::from_millis(50));
    }
    let fds_after = fd_targets(pid);
    assert_eq!(
        fds_after.len(),
        fds_before.len(),
        "descriptors leaked: before {fds_before:?}, after {fds_after:?}"
    );
    // What the churn can leave behind is anonymous memory (the tracker, the source's
    // tables): it must come back to within 4 MiB of before. The footprint bound (32 MiB)
    // is the release build's, measured by the bench (24.9 MiB at rest): this debug build's
    // file-backed pages alone are about 31 MiB.
    let anon_after = status_kib(pid, "RssAnon:");
    assert!(
        anon_after <= anon_before + (4 << 10),
        "anonymous RSS {anon_before} KiB before the churn, {anon_after} KiB after"
    );
    assert!(
        !hupwatch.stderr().iter().any(|l| l.contains("panicked")),
        "{:?}",
        hupwatch.stderr()
    );
    hupwatch.stop();
}

fn open_fds(pid: u32) -> usize {
    fd_targets(pid).len()
}

/// What each of `pid`'s lasting descriptors points at, as /proc shows it: listed until two
/// listings 20 ms apart agree. hupwatch opens files for a moment (its /proc reads), and
/// one caught open in a single listing counted as a descriptor (a CI run's "before" held
/// one that was gone by the time it was read).
fn fd_targets(pid: u32) -> Vec<String> {
    let mut last = listed_fd_targets(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = listed_fd_targets(pid);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// One listing of `pid`'s descriptors; one closed while it is read is left out.
fn listed_fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

#[test]
fn sigterm_and_sigint_end_it_cleanly_and_leave_nothing_attached() {
    for (command, signal) in [
        ("trace", libc::SIGINT),
        ("trace", libc::SIGTERM),
        ("run", libc::SIGTERM),
        ("run", libc::SIGINT),
    ] {
        let hupwatch = match command {
            "trace" => Hupwatch::start(&["--pid", "1"]),
            _ => Hupwatch::run(&["--pid", "1"]),
        };
        let (programs, links) = bpf_objects_of(hupwatch.pid());
        assert_eq!(programs.len(), 12, "{command}: programs {programs:?}");
        assert_eq!(links.len(), 12, "{command}: links {links:?}");
        assert!(
            bpftool_knows("prog", programs[0]),
            "bpftool sees a live program"
        );
        // stop_with asserts exit status 0: these are the normal ways to stop it.
        hupwatch.stop_with(signal);
        for id in programs {
            assert!(
                !bpftool_knows("prog", id),
                "{command}, signal {signal}: program {id} outlived hupwatch"
            );
        }
        for id in links {
            assert!(
                !bpftool_knows("link", id),
                "{command}, signal {signal}: link {id} outlived hupwatch"
            );
        }
    }
}

#[test]
fn as_a_service_sighup_reopens_the_alerts_file() {
    // Log rotation: the file is renamed, SIGHUP makes hupwatch open the path again.
    let dir = scratch_dir("reopen");
    let name = support::unique("hupreopen");
    let sleeper = named_program(&dir, &name, "sleep");
    let alerts = dir.join("alerts.jsonl");
    let hupwatch = Hupwatch::run(&["--match", &name, "--alerts-file", alerts.to_str().unwrap()]);
    let nohup = |tag: &str| {
        Command::new("nohup")
            .arg(&sleeper)
            .arg(tag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_in = |file: &std::path::Path, pid: u32| {
        let deadline = std::time::Instant::now() + support::event_timeout();
        loop {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.lines().any(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["pid"] == pid && v["alert"] == "hangup_ignored"
            }) {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no alert for {pid} in {file:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut first = nohup("600");
    wait_in(&alerts, first.id());
    let rotated = dir.join("alerts.jsonl.1");
    std::fs::rename(&alerts, &rotated).unwrap();
    support::kill(hupwatch.pid(), libc::SIGHUP);
    let mut second = nohup("601");
    let fresh = wait_in(&alerts, second.id());
    assert!(
        !fresh.contains(&format!("\"pid\":{}", first.id())),
        "{fresh}"
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        !old.contains(&format!("\"pid\":{}", second.id())),
        "written to the rotated file: {old}"
    );
    // A reopen that fails (the path is now a folder) keeps the file that is open, says so
    // once, and the daemon goes on writing there.
    let kept = dir.join("alerts.jsonl.2");
    std::fs::rename(&alerts, &kept).unwrap();
    std::fs::create_dir(&alerts).unwrap();
    support::kill(hupwatch.pid(), libc::SIGHUP);
    hupwatch.wait_for_stderr("the failed reopen's warning", |l| {
        l.contains("keeping the alerts file that was open")
    });
    let mut third = nohup("602");
    wait_in(&kept, third.id());
    for child in [&mut first, &mut second, &mut third] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Still running after the SIGHUPs, and it stops cleanly.
    hupwatch.stop();
}

/// The ids of the BPF programs and links `pid` holds, from its fdinfo.
fn bpf_objects_of(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let (mut programs, mut links) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).unwrap() {
        let Ok(info) = std::fs::read_to_string(entry.unwrap().path()) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        match (field("link_id:"), field("prog_id:")) {
            (Some(link), _) => links.push(link),
            (None, Some(program)) => programs.push(program),
            _ => {}
        }
    }
    programs.sort_unstable();
    links.sort_unstable();
    (programs, links)
}

/// Whether `bpftool KIND show id ID` finds it (the kernel frees objects asynchronously, so
/// a gone one gets a moment).
fn bpftool_knows(kind: &str, id: u32) -> bool {
    let ask = || {
        Command::new("bpftool")
            .args([kind, "show", "id", &id.to_string()])
            .output()
            .expect("bpftool (cargo xtask setup installs it)")
            .status
            .success()
    };
    for _ in 0..50 {
        if !ask() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn it_leaves_with_its_terminal() {
    require_root();
    let pty = Pty::open();
    let mut child = pty.spawn_keeping_output(
        Command::new(HUPWATCH)
            .args(["trace", "--pid", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    wait_ready(&mut child);
    pty.hang_up();
    let deadline = std::time::Instant::now() + support::event_timeout();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hupwatch outlived its terminal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "a hangup of its own terminal ends hupwatch cleanly"
    );
}

fn wait_ready(child: &mut std::process::Child) {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.starts_with("hupwatch: ready:") {
            return;
        }
        assert!(
            !line.starts_with("hupwatch: error"),
            "hupwatch failed: {line}"
        );
    }
    panic!("hupwatch ended before it was ready");
}

/// A `kB` field of /proc/PID/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
