//! The macOS pipeline, tested on any OS: DTrace output in format 1 (dtrace/FORMAT.md) read
//! with `--dtrace-input` goes through the same tracker and gives the same verdicts as the
//! Linux scenarios in tests/verdicts.rs. The fixture is written to the format by hand (no
//! Mac runs in CI): a nohup'd job whose terminal hangs up, `setsid agent` typed at a
//! shell, a SIGHUP handler that does nothing, a shell that exits with its terminal, a
//! process with a hostile name, a garbage line and a record cut off at the end.
mod support;

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;
use support::HUPWATCH;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/dtrace-sessions.txt"
);

fn hupwatch(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(HUPWATCH).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// pid -> sorted verdicts, for lines of one status.
fn verdicts(alerts: &[Value], status: &str) -> BTreeMap<u64, Vec<String>> {
    let mut by_pid: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for alert in alerts.iter().filter(|a| a["status"] == status) {
        by_pid
            .entry(alert["pid"].as_u64().unwrap())
            .or_default()
            .push(alert["alert"].as_str().unwrap().to_string());
    }
    by_pid.values_mut().for_each(|v| v.sort());
    by_pid
}

#[test]
fn a_dtrace_capture_gives_the_verdicts_of_the_same_linux_scenarios() {
    let (code, stdout, stderr) = hupwatch(&["run", "--hup-grace", "2s", "--dtrace-input", FIXTURE]);
    assert_eq!(code, 0, "{stderr}");
    let alerts: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected: BTreeMap<u64, Vec<String>> = [
        // As `nohup_on_a_terminal_that_hangs_up_...` and the replay test on Linux.
        (4242, vec!["hangup_ignored", "terminal_lost"]),
        // As `setsid_cmd_on_a_terminal_is_detached_when_only_cmd_is_matched`.
        (5002, vec!["detached"]),
        // As `a_sighup_handler_that_does_nothing_survived_the_hangup`.
        (6001, vec!["hangup_survived"]),
    ]
    .into_iter()
    .map(|(pid, kinds)| (pid, kinds.into_iter().map(String::from).collect()))
    .collect();
    // The shell that exits with its terminal (7001) and the hostile name (9001): nothing.
    assert_eq!(verdicts(&alerts, "raised"), expected);
    assert_eq!(verdicts(&alerts, "resolved"), expected);

    let detached = alerts
        .iter()
        .find(|a| a["alert"] == "detached" && a["status"] == "raised")
        .unwrap();
    assert_eq!(detached["evidence"][0]["event"], "setsid");
    assert_eq!(detached["evidence"][0]["old_tty"], "ttys004");
    let lost = alerts
        .iter()
        .find(|a| a["alert"] == "terminal_lost" && a["status"] == "raised")
        .unwrap();
    assert_eq!(lost["evidence"][0]["origin"], "kernel");
    assert_eq!(lost["evidence"][0]["result"], "ignored");

    // Nothing is lost silently: the garbage line and the cut-off record are counted.
    assert!(
        stderr.contains(
            "skipped 2 malformed record(s); the first, at line 23: unknown record kind \"this\""
        ),
        "{stderr}"
    );
}

#[test]
fn trace_prints_the_captured_events_with_hostile_names_intact() {
    let (code, stdout, stderr) = hupwatch(&["trace", "--json", "--dtrace-input", FIXTURE]);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "exec" && e["comm"] == "e\"vil\n\tname"),
        "{stdout}"
    );
    // The signal and its discard are one ignored signal.
    let hangups: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "signal" && e["pid"] == 4242 && e["signal"] == 1)
        .collect();
    assert_eq!(hangups.len(), 1);
    assert_eq!(hangups[0]["result"], "ignored");
    let (code, human, _) = hupwatch(&["trace", "--dtrace-input", FIXTURE]);
    assert_eq!(code, 0);
    assert!(
        human.lines().all(|l| !l.starts_with("\tname")),
        "a name's newline must not start a line:\n{human}"
    );
}

#[test]
fn bad_dtrace_input_is_one_line_and_exit_2() {
    let dir = std::env::temp_dir().join(format!("hupwatch-dtrace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_a_capture = dir.join("events.jsonl");
    std::fs::write(&not_a_capture, "{\"event\":\"exec\"}\n").unwrap();
    let not_a_capture = not_a_capture.to_str().unwrap();
    let missing = dir.join("missing.txt");
    let missing = missing.to_str().unwrap();
    for (args, says) in [
        (
            vec!["run", "--dtrace-input", not_a_capture],
            "does not start with `hupwatch-dtrace 1`",
        ),
        (vec!["trace", "--dtrace-input", missing], "cannot read it"),
        (
            vec!["run", "--dtrace-input", FIXTURE, "--match", "x"],
            "--dtrace-input takes the processes the recording holds",
        ),
        (
            vec!["run", "--dtrace-input", FIXTURE, "--replay", FIXTURE],
            "cannot be used with",
        ),
    ] {
        let (code, _, stderr) = hupwatch(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
