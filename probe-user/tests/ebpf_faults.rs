//! Root tests of how hupwatch behaves when the world is not ideal: a kernel without one of
//! its tracepoints, and the signals that end it.
mod support;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use support::{HUPWATCH, Hupwatch, pty::Pty, require_root, scratch_dir, tracefs_without};

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
        stderr.iter().any(|l| l.starts_with("hupwatch: warning: tracepoint kmem/rss_stat does not exist on this kernel; no rss events")),
        "{stderr:?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("hupwatch: ready: 10 programs attached")),
        "{stderr:?}"
    );
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let exit = hupwatch.wait_for("exit", |e| e["event"] == "exit" && e["pid"] == pid);
    assert_eq!(exit["exit_code"], 0);
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn events_that_do_not_fit_in_the_ring_buffer_are_counted_and_reported() {
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::start(&[
        "--pid",
        &me,
        "--ring-buffer-size",
        "4KiB",
        "--rss-interval",
        "100ms",
    ]);
    // Stop the reader, make far more than 4 KiB of records, let it read again.
    support::kill(hupwatch.pid(), libc::SIGSTOP);
    let status = Command::new("sh")
        .args([
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do /bin/true; done",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    support::kill(hupwatch.pid(), libc::SIGCONT);
    let report = hupwatch.wait_for_stderr("loss report", |l| l.starts_with("hupwatch: lost "));
    let lost: u64 = report["hupwatch: lost ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(lost > 0, "{report}");
    assert!(
        report.contains("(ring buffer full)") && report.contains("exec="),
        "{report}"
    );
    hupwatch.stop();
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
        assert_eq!(programs.len(), 11, "{command}: programs {programs:?}");
        assert_eq!(links.len(), 11, "{command}: links {links:?}");
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
    let sleeper = support::named_program(&dir, &name, "sleep");
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
        let deadline = std::time::Instant::now() + support::EVENT_TIMEOUT;
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
    for child in [&mut first, &mut second] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // Still running after the SIGHUP, and it stops cleanly.
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
    let deadline = std::time::Instant::now() + support::EVENT_TIMEOUT;
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
        assert!(!line.contains("error"), "hupwatch failed: {line}");
    }
    panic!("hupwatch ended before it was ready");
}
