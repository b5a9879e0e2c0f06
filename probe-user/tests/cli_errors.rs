//! Bad input gets one line naming the problem and the fix, and exit status 2; never a
//! panic or a usage dump. These run without loading eBPF.
mod support;

use std::process::{Command, Output};

use support::HUPWATCH;

fn hupwatch(args: &[&str]) -> Output {
    Command::new(HUPWATCH)
        .args(args)
        .output()
        .expect("hupwatch runs")
}

fn assert_one_line_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line, got: {stderr}");
    assert!(stderr.starts_with("hupwatch: error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn an_invalid_regex_is_named() {
    let out = hupwatch(&["trace", "--match-cmdline", "(claude"]);
    assert_one_line_error(
        &out,
        "--match-cmdline \"(claude\" is not a valid regular expression",
    );
}

#[test]
fn a_bad_duration_is_named_with_an_example() {
    let out = hupwatch(&["trace", "--rss-interval", "soon"]);
    assert_one_line_error(&out, "like 500ms, 10s, 30m or 2h");
    let out = hupwatch(&["trace", "--rss-interval", "0s"]);
    assert_one_line_error(&out, "must be longer than zero");
}

#[test]
fn a_bad_size_is_named_with_an_example() {
    let out = hupwatch(&["trace", "--rss-step", "12parsecs"]);
    assert_one_line_error(&out, "unknown size unit");
}

#[test]
fn a_ring_buffer_size_the_kernel_cannot_take_is_refused() {
    let out = hupwatch(&["trace", "--ring-buffer-size", "5000"]);
    assert_one_line_error(&out, "must be a power of two from 4KiB to 1GiB");
}

#[test]
fn unknown_flags_and_commands_point_at_help() {
    assert_one_line_error(
        &hupwatch(&["trace", "--frobnicate"]),
        "see `hupwatch --help`",
    );
    assert_one_line_error(&hupwatch(&["frobnicate"]), "see `hupwatch --help`");
    assert_one_line_error(&hupwatch(&["trace", "--pid", "0"]), "--pid");
    assert_one_line_error(&hupwatch(&["trace", "--pid", "abc"]), "--pid");
}

#[test]
fn an_empty_name_is_refused() {
    assert_one_line_error(
        &hupwatch(&["trace", "--match", ""]),
        "--match needs a process name",
    );
}

#[test]
fn without_root_it_says_to_use_sudo() {
    // SAFETY: geteuid has no preconditions.
    let output = if unsafe { libc::geteuid() } == 0 {
        // Drop to nobody with no capabilities, as an ordinary user would run it.
        let setpriv = support::which("setpriv");
        Command::new(setpriv)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ])
            .args([HUPWATCH, "trace"])
            .output()
            .unwrap()
    } else {
        hupwatch(&["trace"])
    };
    assert_one_line_error(&output, "run it with sudo");
}

#[test]
fn a_tracer_this_os_does_not_have_is_refused_with_the_one_it_has() {
    let run = hupwatch(&["run", "--source", "dtrace", "--listen", "127.0.0.1:0"]);
    let trace = hupwatch(&["trace", "--source", "dtrace"]);
    for output in [run, trace] {
        assert_one_line_error(&output, "on Linux use --source ebpf (the default)");
    }
    assert_one_line_error(
        &hupwatch(&["trace", "--source", "kprobes"]),
        "invalid value 'kprobes' for '--source <SOURCE>'",
    );
}

#[test]
fn help_works_and_exits_zero() {
    let out = hupwatch(&["trace", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--json",
        "--match",
        "--match-cmdline",
        "--pid",
        "--rss-interval",
        "--source",
    ] {
        assert!(text.contains(flag), "{flag} missing from help");
    }
}

#[test]
fn run_names_a_bad_or_busy_listen_address() {
    assert_one_line_error(
        &hupwatch(&["run", "--listen", "localhost-ish"]),
        "not an address like 127.0.0.1:9464",
    );
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    assert_one_line_error(
        &hupwatch(&["run", "--listen", &address]),
        "address already in use",
    );
}

#[test]
fn run_refuses_zero_thresholds() {
    assert_one_line_error(
        &hupwatch(&["run", "--hup-grace", "0s"]),
        "must be longer than zero",
    );
    assert_one_line_error(
        &hupwatch(&["run", "--rss-growth", "0"]),
        "must be larger than zero",
    );
    assert_one_line_error(
        &hupwatch(&["run", "--rss-window", "forever"]),
        "not a duration",
    );
}

#[test]
fn replay_names_the_file_and_the_line() {
    let dir = support::scratch_dir("cli-replay");
    assert_one_line_error(
        &hupwatch(&["run", "--replay", "/nonexistent/trace.jsonl"]),
        "cannot read it",
    );
    assert_one_line_error(
        &hupwatch(&["trace", "--replay", "/nonexistent/trace.jsonl"]),
        "cannot read it",
    );
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"event\":\"fork\"\n").unwrap();
    let bad = bad.to_str().unwrap();
    assert_one_line_error(&hupwatch(&["run", "--replay", bad]), "bad.jsonl:1:");
    assert_one_line_error(
        &hupwatch(&["run", "--replay", bad, "--match", "x"]),
        "drop --match",
    );
}

#[test]
fn an_alerts_file_that_cannot_be_written_is_named() {
    let dir = support::scratch_dir("cli-alerts");
    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_one_line_error(
        &hupwatch(&[
            "run",
            "--replay",
            empty.to_str().unwrap(),
            "--alerts-file",
            "/nonexistent/dir/alerts.jsonl",
        ]),
        "--alerts-file /nonexistent/dir/alerts.jsonl: cannot open it",
    );
}

#[test]
fn sessions_from_an_address_that_does_not_answer_is_named() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    assert_one_line_error(
        &hupwatch(&["sessions", "--from", &address]),
        &format!("cannot fetch http://{address}/api/sessions"),
    );
    assert_one_line_error(
        &hupwatch(&["sessions", "--from", &address, "--match", "x"]),
        "cannot be used with",
    );
}
