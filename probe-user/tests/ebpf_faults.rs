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
fn sigint_ends_it_cleanly() {
    // stop_with asserts exit status 0: SIGINT is a normal way to stop tracing.
    Hupwatch::start(&["--pid", "1"]).stop_with(libc::SIGINT);
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
