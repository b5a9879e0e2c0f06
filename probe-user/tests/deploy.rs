//! The files in deploy/: the systemd unit is valid to systemd's own checker, stays as
//! hardened as it is now by systemd's exposure score, and its capability set is enough
//! for hupwatch to attach every program (as root, with exactly that bounding set); the
//! launchd plist is a well-formed property list that runs `hupwatch run`.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use harness::Hupwatch;
use processes::{named_program, wait_for_exec};
use support::{HUPWATCH, kill, require_root, scratch_dir, unique, which};

const UNIT: &str = include_str!("../../deploy/hupwatch.service");
const PLIST: &str = "../deploy/com.hupwatch.plist";
const REAP_SERVICE: &str = include_str!("../../deploy/hupwatch-reap.service");
const REAP_TIMER: &str = include_str!("../../deploy/hupwatch-reap.timer");
const REAP_PLIST: &str = "../deploy/com.hupwatch.reap.plist";
/// `systemd-analyze security` rates the unit 4.3 ("OK") out of 10; this is that score on
/// its 0–100 scale, so loosening the unit fails here.
const MAX_EXPOSURE: &str = "43";

/// The unit with its ExecStart pointing at the binary under test, as systemd-analyze
/// checks that the command exists and is executable.
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = UNIT.replace("/usr/bin/hupwatch", HUPWATCH);
    let path = dir.join("hupwatch.service");
    std::fs::write(&path, unit).unwrap();
    path
}

/// `systemd-analyze ARGS UNITS`: whether it succeeded, and what it said.
fn analyze(args: &[&str], units: &[PathBuf]) -> (bool, String) {
    let out = Command::new(which("systemd-analyze"))
        .args(args)
        .args(units)
        .output()
        .expect("systemd-analyze runs");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[test]
fn the_unit_passes_systemds_own_verification() {
    let dir = scratch_dir("unit-verify");
    let (ok, said) = analyze(&["verify", "--man=no"], &[unit_for_this_build(&dir)]);
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_unit_stays_as_hardened_as_it_is() {
    let dir = scratch_dir("unit-security");
    let threshold = format!("--threshold={MAX_EXPOSURE}");
    let (ok, said) = analyze(
        &["security", "--offline=yes", &threshold, "--no-pager"],
        &[unit_for_this_build(&dir)],
    );
    assert!(ok, "exposure above {MAX_EXPOSURE}/100:\n{said}");
}

/// The capability names in the unit's CapabilityBoundingSet, as setpriv spells them.
fn unit_capabilities() -> Vec<String> {
    let line = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets a bounding set");
    line.split_whitespace()
        .map(|cap| cap.trim_start_matches("CAP_").to_lowercase())
        .collect()
}

#[test]
fn the_units_capabilities_are_enough_to_attach_every_program() {
    require_root();
    // Under systemd tracefs is mounted before hupwatch starts (the unit wants
    // sys-kernel-tracing.mount); here a first run mounts it.
    Hupwatch::start(&["--pid", "1"]).stop();
    let caps: Vec<String> = unit_capabilities();
    assert!(caps.contains(&"bpf".to_string()), "{caps:?}");
    let bounding = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    // As systemd starts it: root, only those capabilities, no new privileges.
    let mut hupwatch = Command::new(which("setpriv"))
        .args([
            "--bounding-set",
            &bounding,
            "--inh-caps=-all",
            "--no-new-privs",
        ])
        .args([HUPWATCH, "run", "--listen", "127.0.0.1:0", "--pid", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(hupwatch.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let ready = line.starts_with("hupwatch: ready:");
        said.push(line);
        if ready {
            break;
        }
    }
    // setpriv execs hupwatch, so the child is hupwatch itself.
    let kept = capabilities(hupwatch.id());
    kill(hupwatch.id(), libc::SIGTERM);
    let status = hupwatch.wait().unwrap();
    let said = said.join("\n");
    assert!(
        said.contains("hupwatch: ready: 12 programs attached") && !said.contains("warning"),
        "with only {caps:?}:\n{said}"
    );
    assert!(status.success(), "exit {status} on SIGTERM:\n{said}");
    // Without CAP_SETPCAP (the unit leaves it out) the bounding set stays the unit's.
    let (permitted, effective, _, no_new_privs) = kept;
    let (want_permitted, want_effective, _, _) = AFTER_ATTACH;
    assert_eq!(
        (permitted, effective, no_new_privs),
        (want_permitted, want_effective, 1),
        "capabilities once attached, under the unit's set"
    );
}

/// Why hupwatch keeps CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE: another user's
/// /proc/PID/environ is mode 0400 (opening it needs the first) and guarded by a ptrace
/// access check (reading it needs the second). Without either, a session that another user
/// detached from a terminal (TERM in its environment) looks like a service.
#[test]
fn each_kept_capability_is_needed_to_see_another_users_detached_session() {
    require_root();
    let name = unique("kcs");
    let sleeper = named_program(&scratch_dir("kept-caps"), &name, "sleep");
    // setpriv execs setsid, which (not leading a group) calls setsid() and execs the sleeper.
    let mut detached = Command::new(which("setpriv"))
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "setsid"])
        .arg(&sleeper)
        .arg("300")
        .env("TERM", "xterm")
        .spawn()
        .unwrap();
    let pid = detached.id();
    wait_for_exec(pid, &name);
    let verdicts_with = |caps: &str| -> Vec<String> {
        let bounding = format!("-all{caps}");
        let out = Command::new(which("setpriv"))
            .args([
                "--bounding-set",
                &bounding,
                "--inh-caps=-all",
                "--no-new-privs",
            ])
            .args([HUPWATCH, "sessions", "--json", "--pid", &pid.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["processes"][0]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["alert"].as_str().unwrap().to_string())
            .collect()
    };
    let both = verdicts_with(",+dac_read_search,+sys_ptrace");
    let without_ptrace = verdicts_with(",+dac_read_search");
    let without_dac = verdicts_with(",+sys_ptrace");
    kill(pid, libc::SIGKILL);
    detached.wait().unwrap();
    assert!(both.contains(&"detached".to_string()), "{both:?}");
    assert!(
        !without_ptrace.contains(&"detached".to_string()),
        "{without_ptrace:?}"
    );
    assert!(
        !without_dac.contains(&"detached".to_string()),
        "{without_dac:?}"
    );
}

/// What hupwatch keeps once its programs are attached: CAP_DAC_READ_SEARCH (2) and
/// CAP_SYS_PTRACE (19), to read other users' /proc files; as (CapPrm, CapEff, CapBnd,
/// NoNewPrivs).
const AFTER_ATTACH: (u64, u64, u64, u64) = (0x80004, 0x80004, 0x80004, 1);

fn capabilities(pid: u32) -> (u64, u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str, radix: u32| {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} in {status}"));
        u64::from_str_radix(value.trim(), radix).unwrap()
    };
    (
        field("CapPrm:", 16),
        field("CapEff:", 16),
        field("CapBnd:", 16),
        field("NoNewPrivs:", 10),
    )
}

#[test]
fn as_root_it_drops_all_but_two_capabilities_once_attached_and_still_works() {
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::start(&["--pid", &me]);
    assert_eq!(capabilities(hupwatch.pid()), AFTER_ATTACH);
    // Still reads the ring, the maps and /proc: a child's exec and exit arrive.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    let exec = hupwatch.wait_for("exec", |e| e["event"] == "exec" && e["pid"] == pid);
    assert_eq!(exec["comm"], "true");
    hupwatch.wait_for("exit", |e| e["event"] == "exit" && e["pid"] == pid);
    child.wait().unwrap();
    hupwatch.stop();
}

/// Polling (`--source proc`, also the fallback) keeps the same two capabilities: it only
/// reads /proc.
#[test]
fn polling_as_root_drops_all_but_two_capabilities_and_still_works() {
    let name = unique("capproc");
    let dir = scratch_dir("cap-proc");
    let program = named_program(&dir, &name, "sleep");
    let hupwatch = Hupwatch::run(&[
        "--source",
        "proc",
        "--poll-interval",
        "100ms",
        "--match",
        &name,
    ]);
    assert_eq!(capabilities(hupwatch.pid()), AFTER_ATTACH);
    let mut child = Command::new(&program).arg("30").spawn().unwrap();
    let pid = child.id();
    let deadline = std::time::Instant::now() + support::event_timeout();
    while !hupwatch.sessions_json()["processes"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["pid"] == pid))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the poll never saw {pid}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn the_launchd_plist_is_well_formed_and_runs_hupwatch_run() {
    let check = "import plistlib, sys\n\
                 p = plistlib.load(open(sys.argv[1], 'rb'))\n\
                 args = p['ProgramArguments']\n\
                 assert p['Label'] == 'com.hupwatch', p['Label']\n\
                 assert args[:2] == ['/usr/local/bin/hupwatch', 'run'], args\n\
                 assert '127.0.0.1:9464' in args, args\n";
    check_plist(PLIST, check);
}

/// Loads the plist at `path` with Python's plistlib and runs the `check` asserts on it.
fn check_plist(path: &str, check: &str) {
    let out = Command::new("python3")
        .args(["-c", check, path])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The reap timer's units, beside the daemon's, with their ExecStart at the binary under
/// test.
fn reap_units_for_this_build(dir: &Path) -> Vec<PathBuf> {
    let daemon = unit_for_this_build(dir);
    let mut units = vec![daemon];
    for (name, text) in [
        ("hupwatch-reap.service", REAP_SERVICE),
        ("hupwatch-reap.timer", REAP_TIMER),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text.replace("/usr/bin/hupwatch", HUPWATCH)).unwrap();
        units.push(path);
    }
    units
}

#[test]
fn the_reap_timer_and_its_service_pass_systemds_own_verification() {
    let dir = scratch_dir("reap-units");
    let (ok, said) = analyze(&["verify", "--man=no"], &reap_units_for_this_build(&dir));
    assert!(
        ok && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// The timer's command, with its --yes, against a running `hupwatch run` through its
/// socket: it parses, asks the daemon, and ends nothing that has not been idle for its two
/// hours. The same command pointed at a TCP address is refused (root acts only on what
/// root's own hupwatch says through the socket).
#[test]
fn the_reap_timers_command_asks_the_running_daemon_through_its_socket() {
    require_root();
    let line = REAP_SERVICE
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the reap service has an ExecStart");
    let mut args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(args[..2], ["/usr/bin/hupwatch", "reap"]);
    assert_eq!(
        args.last().map(String::as_str),
        Some("--yes"),
        "--yes comes last in the unit"
    );
    let from = args.iter().position(|a| a == "--from").unwrap() + 1;
    assert_eq!(args[from], "unix:/run/hupwatch/api.sock");
    let dir = scratch_dir("reap-socket");
    let socket = dir.join("api.sock").display().to_string();
    let hupwatch = Hupwatch::run(&["--pid", "1", "--api-socket", &socket]);
    args[from] = hupwatch.socket_url();
    let out = Command::new(HUPWATCH).args(&args[1..]).output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("error"), "{said}");
    args[from] = hupwatch.api_url();
    let tcp = Command::new(HUPWATCH).args(&args[1..]).output().unwrap();
    hupwatch.stop();
    let said = String::from_utf8_lossy(&tcp.stderr);
    assert_eq!(tcp.status.code(), Some(2), "{said}");
    assert!(said.contains("as root, reap --yes acts only on"), "{said}");
}

#[test]
fn the_reap_launchd_plist_runs_reap_idle_from_the_daemon() {
    let check = "import plistlib, sys\n\
                 p = plistlib.load(open(sys.argv[1], 'rb'))\n\
                 args = p['ProgramArguments']\n\
                 assert p['Label'] == 'com.hupwatch.reap', p['Label']\n\
                 assert args[:2] == ['/usr/local/bin/hupwatch', 'reap'], args\n\
                 assert args[args.index('--from') + 1] == 'unix:/var/run/hupwatch/api.sock', args\n\
                 assert '--idle' in args and args[-1] == '--yes', args\n\
                 assert p['StartInterval'] == 3600, p\n";
    check_plist(REAP_PLIST, check);
}
