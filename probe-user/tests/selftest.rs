//! `hupwatch selftest` as a user runs it: as root with the eBPF programs, and as nobody
//! polling the process table. Every verdict the source can give must be caught within its
//! bound, the source and privileges named, each test process's memory given by hupwatch
//! and by /proc and close, and no test process left running afterwards, also when the
//! self-test is interrupted with SIGINT or killed outright midway.
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    collections::HashSet,
    fs,
    os::unix::process::ExitStatusExt,
    process::{Child, Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use processes::{NOBODY, as_user};
use serde_json::Value;
use support::{HUPWATCH, kill, require_root, scaled, verdict_deadline};

/// One self-test at a time: each loads programs or polls, and a grower's ramp is timed.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The grace period the self-test uses (selftest/plan.rs).
const GRACE: f64 = 1.0;

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `command selftest --json ARGS` to its end: the report and the self-test's pid
/// (setpriv execs hupwatch, so the pid is hupwatch's).
fn selftest(mut command: Command, args: &[&str]) -> (Value, u32) {
    let started = Instant::now();
    let child = command
        .args(["selftest", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hupwatch runs");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "selftest --json printed no JSON object ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(
        out.status.success(),
        "selftest failed ({}): {report:#}\nstderr: {stderr}",
        out.status
    );
    assert!(
        started.elapsed() < scaled(Duration::from_secs(20)),
        "selftest took {:?}",
        started.elapsed()
    );
    (report, pid)
}

/// The processes that mention `folder` in their command line or are in `pids`, alive.
fn left_over(folder: &str, pids: &HashSet<u32>) -> Vec<String> {
    let mut left = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        if !zombie && !stat.is_empty() && (pids.contains(&pid) || cmdline.contains(folder)) {
            left.push(format!("{pid}: {cmdline}"));
        }
    }
    left
}

/// Nothing the self-test started lives on: none of the pids it reported, nothing that
/// names its folder.
fn assert_nothing_left(conductor: u32, pids: &HashSet<u32>) {
    let folder = format!("hupwatch-selftest-{conductor}");
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    loop {
        let left = left_over(&folder, pids);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "test processes left running: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn reported_pids(report: &Value) -> HashSet<u32> {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .map(|p| p as u32)
        .collect()
}

/// Every expected verdict caught in its bound; memory given twice and close.
fn assert_report(report: &Value, source: &str, root: bool) {
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["source"]["used"], source, "{report:#}");
    assert_eq!(report["privileges"]["root"], root, "{report:#}");
    assert!(report["os"]["kernel"].as_str().is_some(), "{report:#}");
    let rows = report["verdicts"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{report:#}");
    for row in rows {
        let verdict = row["verdict"].as_str().unwrap();
        if row["expected"] == false {
            assert!(row["not_expected_why"].is_string(), "{row}");
            continue;
        }
        assert_eq!(row["caught"], true, "{verdict} missed: {report:#}");
        let latency = row["latency_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("{row}"));
        let bound = verdict_deadline().as_secs_f64();
        if row["cause"] == "the hangup" {
            assert!(
                latency >= GRACE - 0.1 && latency <= GRACE + bound,
                "{verdict} {latency}s after the hangup, grace {GRACE}s: {row}"
            );
        } else {
            assert!(
                (0.0..=bound).contains(&latency),
                "{verdict} {latency}s after its cause: {row}"
            );
        }
    }
    for p in report["processes"].as_array().unwrap() {
        let memory = &p["memory"];
        let (ours, theirs) = (
            memory["hupwatch_bytes"].as_u64(),
            memory["os_bytes"].as_u64(),
        );
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            panic!("memory not given by both: {p}");
        };
        assert!(theirs > 0, "{p}");
        // hupwatch reports memory when it moved by --rss-step (1 MiB): within that and a
        // little of what the OS says at the same moment.
        let tolerance = (3u64 << 20).max(theirs / 20);
        assert!(
            ours.abs_diff(theirs) <= tolerance,
            "hupwatch's {ours} and /proc's {theirs} differ by more than {tolerance}: {p}"
        );
        assert_eq!(memory["os_measure"], "resident set, /proc/PID/statm", "{p}");
    }
    let grower = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["process"] == "grower")
        .unwrap();
    assert!(
        grower["memory"]["os_bytes"].as_u64().unwrap() > 128 << 20,
        "{grower}"
    );
}

#[test]
fn as_root_the_ebpf_source_catches_every_verdict_and_leaves_nothing_behind() {
    require_root();
    let _alone = alone();
    let (report, conductor) = selftest(Command::new(HUPWATCH), &[]);
    assert_report(&report, "ebpf", true);
    assert_eq!(report["source"]["asked"], "auto");
    assert!(
        report["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["expected"] == true),
        "eBPF sees every verdict the self-test provokes: {report:#}"
    );
    // Root's capabilities are given up once the programs are attached.
    assert_ne!(report["privileges"]["capabilities"], "0x000001ffffffffff");
    assert!(
        report["ended_processes"].as_u64().unwrap() >= 5,
        "{report:#}"
    );
    let pids = reported_pids(&report);
    assert_eq!(pids.len(), 6, "{report:#}");
    assert_nothing_left(conductor, &pids);
}

#[test]
fn as_nobody_the_proc_source_catches_what_it_can_see_and_leaves_nothing_behind() {
    require_root();
    let _alone = alone();
    let mut nobody = as_user(NOBODY, HUPWATCH);
    nobody.env_clear().env("PATH", "/usr/bin:/bin");
    let (report, conductor) = selftest(nobody, &["--source", "proc"]);
    assert_report(&report, "proc", false);
    assert_eq!(report["privileges"]["uid"], NOBODY);
    let survived = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["verdict"] == "hangup_survived")
        .unwrap();
    assert_eq!(
        survived["expected"], false,
        "polling sees no signal delivered: {survived}"
    );
    assert_nothing_left(conductor, &reported_pids(&report));
}

/// The pids the test processes reported so far, read from the self-test's folder.
fn pids_in_reports(conductor: u32) -> HashSet<u32> {
    let reports = format!("/tmp/hupwatch-selftest-{conductor}/reports");
    fs::read_to_string(reports)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

/// `selftest --json`, its output piped.
fn start_selftest() -> Child {
    Command::new(HUPWATCH)
        .args(["selftest", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until every test process of `child`, a self-test, has started: their pids.
fn all_started(child: &mut Child) -> HashSet<u32> {
    let deadline = Instant::now() + scaled(Duration::from_secs(20));
    loop {
        let pids = pids_in_reports(child.id());
        // shell, setsid, nohup, catcher, grower and orphan: all started.
        if pids.len() >= 6 {
            return pids;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the test processes did not all start: {pids:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interrupted_midway_it_ends_every_test_process() {
    require_root();
    let _alone = alone();
    let mut child = start_selftest();
    let pids = all_started(&mut child);
    let conductor = child.id();
    kill(conductor, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(out.stdout.is_empty(), "no report after an interruption");
    assert_nothing_left(conductor, &pids);
    assert!(
        !std::path::Path::new(&format!("/tmp/hupwatch-selftest-{conductor}")).exists(),
        "its folder was left behind"
    );
}

#[test]
fn killed_midway_its_launcher_ends_every_test_process() {
    require_root();
    let _alone = alone();
    let mut child = start_selftest();
    let pids = all_started(&mut child);
    let conductor = child.id();
    kill(conductor, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_nothing_left(conductor, &pids);
    let _ = fs::remove_dir_all(format!("/tmp/hupwatch-selftest-{conductor}"));
}
