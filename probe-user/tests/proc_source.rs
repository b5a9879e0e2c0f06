//! End to end: `hupwatch run --source proc` polls the process table and must raise the
//! same verdicts from what changed between two looks, with no eBPF. Most tests (those
//! named `as_nobody`) run hupwatch and the processes it watches as nobody (uid 65534)
//! without capabilities, as a user without root would: it then sees only that user's
//! processes, and falls back to proc when eBPF cannot start. The others run hupwatch as
//! root, with no matching flag or with `--match` on a name unique to the test. Subjects
//! that must be judged as sessions start on a pseudo-terminal, as from a terminal emulator.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, metric, raised};
use processes::{NOBODY, PYTHON, alive, as_user, first_line, named_link};
use pty::Pty;
use serde_json::Value;
use support::{HUPWATCH, kill, scratch_dir, unique, verdict_deadline};

const POLL: &str = "200ms";
const GRACE: Duration = Duration::from_secs(1);
/// What the proc source cannot see without signals, in the order hupwatch names them.
const UNAVAILABLE: [&str; 3] = [
    "hangup_survived",
    "hangup_exit_latency",
    "sighup_ignored_when_sent",
];

/// `hupwatch run --source proc` polling every 200 ms, as root, with `--match` for each of
/// `names` (none: every process is watched).
fn watch_as_root(names: &[&str], extra: &[&str]) -> Hupwatch {
    let mut args = vec![
        "--source",
        "proc",
        "--poll-interval",
        POLL,
        "--hup-grace",
        "1s",
    ];
    for name in names {
        args.extend(["--match", name]);
    }
    args.extend_from_slice(extra);
    Hupwatch::run(&args)
}

/// `hupwatch run --source proc` polling every 200 ms, as nobody.
fn watch_as_nobody(extra: &[&str]) -> Hupwatch {
    assert_nobody_can_run_hupwatch();
    let mut args = vec![
        "--source",
        "proc",
        "--poll-interval",
        POLL,
        "--hup-grace",
        "1s",
    ];
    args.extend_from_slice(extra);
    Hupwatch::run_as(NOBODY, &args)
}

/// nobody must be able to reach the binary under test: every directory on its path
/// searchable by others, the file executable by them.
fn assert_nobody_can_run_hupwatch() {
    let binary = Path::new(HUPWATCH);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode();
    assert!(
        mode(binary) & 0o005 == 0o005,
        "{HUPWATCH} is not readable and executable by other users; chmod o+rx it"
    );
    for dir in binary.ancestors().skip(1) {
        assert!(
            mode(dir) & 0o001 != 0,
            "{} is not searchable by other users, so nobody cannot run {HUPWATCH}; chmod o+x it",
            dir.display()
        );
    }
}

/// A scratch directory nobody may enter and read (for its subjects' programs and cwd).
fn shared_dir(test: &str) -> PathBuf {
    let dir = scratch_dir(test);
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn sleeper(dir: &Path, prefix: &str) -> (String, PathBuf) {
    let name = unique(prefix);
    let path = named_link(dir, &name, "/usr/bin/sleep");
    (name, path)
}

/// Ends what a test started, pass or fail: its children by pid, and the processes that run
/// under one of its unique names (found by comm in /proc, then killed by pid), which
/// were reparented away from it.
#[derive(Default)]
struct Subjects {
    children: Vec<Child>,
    names: Vec<String>,
}

impl Subjects {
    fn child(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    fn name(&mut self, name: &str) {
        self.names.push(name.to_string());
    }

    fn last_child(&mut self) -> &mut Child {
        self.children.last_mut().unwrap()
    }
}

impl Drop for Subjects {
    fn drop(&mut self) {
        for name in &self.names {
            for pid in pids_named(name) {
                kill(pid, libc::SIGKILL);
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The live processes whose comm is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter(|pid| {
            // Not a zombie: it has exited.
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| Some(s.rsplit_once(')')?.1.trim_start().starts_with('Z')))
                == Some(false)
        })
        .collect()
}

/// The one process named `name`, waiting until it has exec'd.
fn pid_named(name: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_named(name);
        if let [pid] = pids[..] {
            return pid;
        }
        assert!(pids.len() <= 1, "more than one {name}: {pids:?}");
        assert!(
            Instant::now() < deadline,
            "no process named {name} appeared"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The real uid of `pid`.
fn uid_of(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("pid {pid}: {e}"))
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap()
}

/// `program` as nobody in `dir`, with the environment of a terminal's shell: `TERM`
/// makes it a session even where it has no terminal.
fn as_nobody(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut command = as_user(NOBODY, program);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm");
    command
}

/// Starts `script` with /bin/sh as nobody, leading a new session on `pty`, in `dir`.
fn nobody_shell(pty: &Pty, dir: &Path, script: &str) -> Child {
    pty.spawn(as_nobody("/bin/sh", dir).args(["-c", script]))
}

/// A path in `dir` a subject waits for: the test creates it to let the subject go on.
fn sync_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let _ = fs::remove_file(&path);
    path
}

fn reason(alert: &Value) -> &str {
    alert["reason"].as_str().unwrap_or_default()
}

/// A sleeper under a unique name, run by `script` (given the sleeper's path) in a shell
/// started as nobody on a terminal of its own: what a test needs of it.
struct OnTerminal {
    /// Ends them all when the test does.
    subjects: Subjects,
    name: String,
    path: PathBuf,
    /// Its terminal: the test must hold it (dropping it hangs the terminal up).
    pty: Pty,
    /// The shell's pid.
    shell: u32,
    /// The sleeper's pid, once it runs under its name.
    pid: u32,
}

fn sleeper_on_terminal(test: &str, prefix: &str, script: impl Fn(&Path) -> String) -> OnTerminal {
    let mut subjects = Subjects::default();
    let dir = shared_dir(test);
    let (name, path) = sleeper(&dir, prefix);
    subjects.name(&name);
    let pty = Pty::open();
    let shell = subjects.child(nobody_shell(&pty, &dir, &script(&path)));
    let pid = pid_named(&name);
    OnTerminal {
        subjects,
        name,
        path,
        pty,
        shell,
        pid,
    }
}

#[test]
fn setsid_from_a_shell_on_a_terminal_is_detached_as_nobody() {
    let hupwatch = watch_as_nobody(&[]);
    let started = Instant::now();
    let OnTerminal {
        mut subjects,
        name,
        pty,
        shell,
        pid,
        ..
    } = sleeper_on_terminal("proc-detached", "pdet", |sleep| {
        format!("setsid {} 120 & wait", sleep.display())
    });
    assert_eq!(uid_of(pid), NOBODY);

    let alert = hupwatch.wait_for_within(
        "a detached alert for the setsid'd sleep",
        started + verdict_deadline(),
        raised("detached", pid),
    );
    assert_eq!(alert["inferred"], false, "{alert}");
    assert_eq!(alert["comm"], name.as_str());
    assert!(
        reason(&alert).contains(&pty.name),
        "the reason does not name the terminal it came from ({}): {alert}",
        pty.name
    );
    // The shell took the terminal as its controlling one: attaching, not detaching.
    thread::sleep(Duration::from_millis(600));
    assert!(
        hupwatch.raised_for(shell).is_empty(),
        "the shell on the terminal got a verdict: {:?}",
        hupwatch.events_of(shell)
    );

    // Gone from the process table: its alert is resolved.
    kill(pid, libc::SIGKILL);
    hupwatch.wait_for("the detached alert resolved", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "detached"
    });
    subjects.last_child().wait().unwrap();
    hupwatch.stop();
}

#[test]
fn a_child_whose_parent_exits_is_orphaned() {
    let dir = shared_dir("proc-orphaned");
    let mut subjects = Subjects::default();
    let (quick, quick_sleep) = sleeper(&dir, "porq");
    let (slow, slow_sleep) = sleeper(&dir, "pors");
    subjects.name(&quick);
    subjects.name(&slow);
    // As root with no matching flag: every process is watched, those with a terminal in
    // their lineage are judged.
    let hupwatch = watch_as_root(&[], &[]);
    let pty = Pty::open();
    // A login shell on the terminal runs commands that start a job and return; it stays,
    // holding the terminal, so the jobs are not hung up.
    let go = sync_file(&dir, "go");
    let script = format!(
        "sh -c '{slow} 120 & sleep 1'; \
         while [ ! -e {go} ]; do sleep 0.05; done; \
         sh -c '{quick} 120 & exit'; \
         exec sleep 120",
        slow = slow_sleep.display(),
        quick = quick_sleep.display(),
        go = go.display(),
    );
    let started = Instant::now();
    subjects.child(pty.spawn(Command::new("/bin/sh").args(["-c", &script])));

    // A parent that lives on for a few polls before it exits: the child is seen with it,
    // then reparented.
    let pid = pid_named(&slow);
    let alert = hupwatch.wait_for_within(
        "an orphaned alert",
        started + verdict_deadline(),
        raised("orphaned", pid),
    );
    assert_eq!(alert["inferred"], false, "{alert}");
    assert!(
        reason(&alert).contains("exited"),
        "the reason does not say its parent exited: {alert}"
    );

    // A parent that exits at once, likely before any poll saw it: the child is already
    // adopted when it is first seen.
    fs::write(&go, "").unwrap();
    let started = Instant::now();
    let pid = pid_named(&quick);
    let alert = hupwatch.wait_for_within(
        "an orphaned alert for a child whose parent was gone before the first poll",
        started + verdict_deadline(),
        raised("orphaned", pid),
    );
    assert_eq!(alert["inferred"], false, "{alert}");
    hupwatch.stop();
}

#[test]
fn a_process_matched_by_name_reports_its_command_line() {
    let dir = shared_dir("proc-cmdline");
    let mut subjects = Subjects::default();
    let (name, sleep) = sleeper(&dir, "pcmd");
    subjects.name(&name);
    let hupwatch = watch_as_root(&[&name], &[]);
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("{} 120 & sleep 1", sleep.display())])
        .status()
        .unwrap();
    assert!(status.success());
    let pid = pid_named(&name);
    let alert = hupwatch.wait_for("an orphaned alert", raised("orphaned", pid));
    // What /proc/PID/cmdline says, as with --source ebpf; null would say "unknown", but
    // the comm in its place is neither.
    assert_eq!(
        alert["cmdline"],
        format!("{} 120", sleep.display()).as_str(),
        "{alert}"
    );
    hupwatch.stop();
}

#[test]
fn a_process_that_execs_into_a_matched_name_after_the_first_look_is_watched() {
    let dir = shared_dir("proc-exec-late");
    let mut subjects = Subjects::default();
    let (name, sleep) = sleeper(&dir, "plat");
    subjects.name(&name);
    let hupwatch = watch_as_root(&[&name], &[]);
    // A subshell (`sh`, not matched) polled a few times, then exec'ing the matched
    // program in place (same pid, same start time), then orphaned when its parent exits.
    let started = Instant::now();
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            &format!("(sleep 0.6; exec {} 120) & sleep 1.2", sleep.display()),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let pid = pid_named(&name);
    hupwatch.wait_for_within(
        "an orphaned alert for the process that exec'd into a matched name",
        started + verdict_deadline(),
        raised("orphaned", pid),
    );
    hupwatch.stop();
}

#[test]
fn a_watched_process_that_execs_in_place_reports_its_new_command_line_as_nobody() {
    let hupwatch = watch_as_nobody(&[]);
    // A subshell, seen for a few polls as `sh`, then a new program in the same process.
    let OnTerminal {
        subjects: _subjects,
        name,
        path: sleep,
        pty: _pty,
        pid,
        ..
    } = sleeper_on_terminal("proc-exec-cmdline", "pexc", |sleep| {
        format!("(sleep 0.6; exec {} 120) & wait", sleep.display())
    });
    let expected = format!("{} 120", sleep.display());
    let deadline = Instant::now() + verdict_deadline();
    loop {
        let sessions: Value = serde_json::from_str(&hupwatch.http_get("/api/sessions")).unwrap();
        let me = sessions["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid && p["comm"] == name.as_str())
            .cloned();
        if let Some(me) = me {
            // What `hupwatch sessions` shows in its CMDLINE column.
            assert_eq!(me["cmdline"], expected.as_str(), "{me}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never showed in /api/sessions as {name}: {sessions}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    hupwatch.stop();
}

#[test]
fn nohup_on_a_terminal_that_hangs_up_ignored_the_hangup_and_lost_the_terminal_as_nobody() {
    let hupwatch = watch_as_nobody(&[]);
    let started = Instant::now();
    let OnTerminal {
        mut subjects,
        pty,
        shell,
        pid,
        ..
    } = sleeper_on_terminal("proc-nohup", "pnoh", |sleep| {
        format!("nohup {} 120 >/dev/null 2>&1 & wait", sleep.display())
    });
    let ignored = hupwatch.wait_for_within(
        "a hangup_ignored alert",
        started + verdict_deadline(),
        raised("hangup_ignored", pid),
    );
    assert_eq!(ignored["inferred"], false, "{ignored}");
    assert!(
        reason(&ignored).contains("SIG_IGN"),
        "the reason does not say SIGHUP is ignored: {ignored}"
    );

    // The terminal emulator closes: the kernel hangs the terminal up, the shell (its
    // session leader) dies of SIGHUP, the nohup'd sleep lives on.
    let terminal = pty.name.clone();
    pty.hang_up();
    let hung_up = Instant::now();
    let status = subjects.last_child().wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGHUP),
        "the shell did not die of the hangup: {status}"
    );
    let lost = hupwatch.wait_for_within(
        "a terminal_lost alert",
        hung_up + verdict_deadline(),
        raised("terminal_lost", pid),
    );
    assert!(
        hung_up.elapsed() >= GRACE - Duration::from_millis(100),
        "terminal_lost came {:?} after the hangup, before the 1s grace period ended: {lost}",
        hung_up.elapsed()
    );
    assert_eq!(lost["inferred"], false, "{lost}");
    assert!(
        reason(&lost).contains(&terminal),
        "the reason does not name the terminal ({terminal}): {lost}"
    );
    assert!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "the nohup'd sleep died"
    );
    // Its parent, the shell, is gone too.
    hupwatch.wait_for_within(
        "an orphaned alert",
        hung_up + verdict_deadline(),
        raised("orphaned", pid),
    );
    assert!(
        hupwatch.raised_for(shell).is_empty(),
        "the shell that exited on the hangup got a verdict: {:?}",
        hupwatch.events_of(shell)
    );
    hupwatch.stop();
}

#[test]
fn setting_sighup_to_sig_ign_after_start_is_hangup_ignored_as_nobody() {
    let dir = shared_dir("proc-sigign");
    let mut subjects = Subjects::default();
    let name = unique("pign");
    let python = named_link(&dir, &name, PYTHON);
    subjects.name(&name);
    let hupwatch = watch_as_nobody(&[]);
    let mut pty = Pty::open();
    // Started from a terminal, it sets SIGHUP to SIG_IGN when a line is typed there.
    let pid = subjects.child(
        pty.spawn_keeping_output(
            as_nobody(&python, &dir)
                .args([
                    "-c",
                    "import signal, sys\n\
                     sys.stdin.readline()\n\
                     signal.signal(signal.SIGHUP, signal.SIG_IGN)\n\
                     print('ready', flush=True)\n\
                     sys.stdin.readline()\n",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        ),
    );
    // hupwatch has seen it with SIGHUP's default disposition before it changes it.
    let deadline = Instant::now() + verdict_deadline();
    loop {
        let sessions: Value = serde_json::from_str(&hupwatch.http_get("/api/sessions")).unwrap();
        let me = sessions["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid && p["comm"] == name.as_str())
            .cloned();
        if let Some(me) = me {
            assert_eq!(me["hangup"], "default", "{me}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never showed in /api/sessions as {name}: {sessions}"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(hupwatch.raised_for(pid).is_empty());

    pty.master.write_all(b"go\n").unwrap();
    let child = subjects.last_child();
    assert_eq!(first_line(child).trim(), "ready");
    let changed = Instant::now();
    let alert = hupwatch.wait_for_within(
        "a hangup_ignored alert",
        changed + verdict_deadline(),
        raised("hangup_ignored", pid),
    );
    assert_eq!(alert["inferred"], false, "{alert}");
    assert!(reason(&alert).contains("SIG_IGN"), "{alert}");
    assert!(alive(child));
    hupwatch.stop();
}

#[test]
fn steady_rss_growth_is_rss_growth_as_nobody() {
    let dir = shared_dir("proc-growth");
    let mut subjects = Subjects::default();
    let name = unique("pgro");
    let python = named_link(&dir, &name, PYTHON);
    subjects.name(&name);
    let hupwatch = watch_as_nobody(&[
        "--rss-growth",
        "64MiB",
        // Growth must go on for a quarter of the window: 2 s of the 3.2 s it grows.
        "--rss-window",
        "8s",
        "--rss-interval",
        POLL,
    ]);
    let started = Instant::now();
    // 8 MiB of touched memory every 100 ms, to 256 MiB, then it holds it.
    let pty = Pty::open();
    let pid = subjects.child(
        pty.spawn_keeping_output(
            as_nobody(&python, &dir)
                .args([
                    "-c",
                    "import sys, time\n\
                 kept = []\n\
                 for _ in range(32):\n    kept.append(b'x' * (8 << 20))\n    time.sleep(0.1)\n\
                 print('grown', flush=True)\n\
                 sys.stdin.readline()\n",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ),
    );
    let alert = hupwatch.wait_for_within(
        "an rss_growth alert",
        started + verdict_deadline() + Duration::from_secs(4),
        raised("rss_growth", pid),
    );
    const LIMIT: u64 = 64 << 20;
    let rss = alert["rss_bytes"].as_u64().unwrap_or_default();
    assert!(rss > LIMIT, "rss_bytes {rss} is not above 64 MiB: {alert}");
    let growth = &alert["growth"];
    let rise = growth["rise_bytes"].as_u64().unwrap_or_default();
    assert!(
        rise > LIMIT,
        "rise_bytes {rise} is not above 64 MiB: {alert}"
    );
    assert!(
        growth["slope_bytes_per_second"]
            .as_f64()
            .unwrap_or_default()
            > 0.0,
        "{alert}"
    );
    assert_eq!(alert["inferred"], false, "{alert}");
    hupwatch.stop();
}

#[test]
fn a_process_detached_before_hupwatch_started_is_inferred_as_nobody() {
    let OnTerminal {
        subjects: _subjects,
        name,
        pty: _pty,
        pid,
        ..
    } = sleeper_on_terminal("proc-before", "pbef", |sleep| {
        format!("setsid {} 120 & wait", sleep.display())
    });

    let started = Instant::now();
    let hupwatch = watch_as_nobody(&[]);
    let alert = hupwatch.wait_for_within(
        "a detached alert from the first look",
        started + verdict_deadline(),
        raised("detached", pid),
    );
    assert_eq!(alert["inferred"], true, "{alert}");
    assert_eq!(alert["comm"], name.as_str());
    let metrics = hupwatch.http_get("/metrics");
    assert!(
        metric(
            &metrics,
            "hupwatch_verdicts_raised_total{inferred=\"true\",verdict=\"detached\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    hupwatch.stop();
}

#[test]
fn what_proc_cannot_see_is_reported_unavailable_as_nobody() {
    let hupwatch = watch_as_nobody(&[]);
    let ready = hupwatch.wait_for_stderr("the ready line", |l| l.starts_with("hupwatch: ready:"));
    for said in [
        "polling the process table every 200ms",
        "of user 65534",
        "unavailable",
    ] {
        assert!(
            ready.contains(said),
            "the ready line lacks {said:?}: {ready}"
        );
    }
    for what in UNAVAILABLE {
        assert!(ready.contains(what), "the ready line lacks {what}: {ready}");
    }

    let sessions: Value = serde_json::from_str(&hupwatch.http_get("/api/sessions")).unwrap();
    assert_eq!(sessions["source"], "proc", "{sessions}");
    assert_eq!(
        sessions["unavailable"],
        serde_json::json!(UNAVAILABLE),
        "{sessions}"
    );
    // The same document through `hupwatch sessions --from`.
    assert_eq!(hupwatch.sessions_json()["source"], "proc");

    let metrics = hupwatch.http_get("/metrics");
    assert_eq!(
        metric(&metrics, "hupwatch_source{source=\"proc\"}"),
        Some(1.0),
        "{metrics}"
    );
    for what in UNAVAILABLE {
        assert_eq!(
            metric(
                &metrics,
                &format!("hupwatch_unavailable{{what=\"{what}\"}}")
            ),
            Some(1.0),
            "hupwatch_unavailable for {what}:\n{metrics}"
        );
    }
    hupwatch.stop();
}

#[test]
fn without_source_it_falls_back_to_proc_with_one_warning_as_nobody() {
    assert_nobody_can_run_hupwatch();
    let hupwatch = Hupwatch::run_as(NOBODY, &["--poll-interval", POLL]);
    let started = Instant::now();
    let OnTerminal {
        subjects: _subjects,
        pty: _pty,
        pid,
        ..
    } = sleeper_on_terminal("proc-fallback", "pfal", |sleep| {
        format!("setsid {} 120 & wait", sleep.display())
    });
    let alert = hupwatch.wait_for_within(
        "a detached alert after the fallback",
        started + verdict_deadline(),
        raised("detached", pid),
    );
    assert_eq!(alert["inferred"], false, "{alert}");

    let stderr = hupwatch.stderr();
    let warnings: Vec<&String> = stderr
        .iter()
        .filter(|l| l.starts_with("hupwatch: warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "not one warning: {stderr:#?}");
    let warning = warnings[0];
    assert!(
        warning.starts_with("hupwatch: warning: --source ebpf cannot start (")
            && warning.contains("falling back to --source proc"),
        "{warning}"
    );
    assert!(
        stderr[0] == *warning,
        "the warning is not the first line: {stderr:#?}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.starts_with("hupwatch: ready: polling")),
        "{stderr:#?}"
    );
    hupwatch.stop();
}

#[test]
fn source_ebpf_as_nobody_is_one_error_line_and_exit_2() {
    assert_nobody_can_run_hupwatch();
    let mut hupwatch = as_user(NOBODY, HUPWATCH)
        .args(["run", "--source", "ebpf", "--listen", "127.0.0.1:0"])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It must refuse at once; if it started anyway, end it rather than wait forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hupwatch.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = hupwatch.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = hupwatch.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", out.status);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    assert!(lines[0].starts_with("hupwatch: error"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn an_orphan_that_is_stopped_is_stopped_until_continued_as_nobody() {
    let dir = shared_dir("proc-stopped");
    let mut subjects = Subjects::default();
    let (name, sleeper) = sleeper(&dir, "pstp");
    subjects.name(&name);
    let hupwatch = watch_as_nobody(&[]);
    // Started with nohup from a shell on a terminal that then exits: orphaned, its
    // terminal gone, and alive (the shell's exit hangs the terminal up).
    let pty = Pty::open();
    let script = format!(
        "nohup {} 300 >/dev/null 2>&1 & sleep 0.3",
        sleeper.display()
    );
    let mut shell = nobody_shell(&pty, &dir, &script);
    shell.wait().unwrap();
    let pid = pid_named(&name);
    hupwatch.wait_for("orphaned", raised("orphaned", pid));
    let stopped = Instant::now();
    kill(pid, libc::SIGSTOP);
    let alert = hupwatch.wait_for_within(
        "a stopped alert",
        stopped + verdict_deadline(),
        raised("stopped", pid),
    );
    assert!(
        stopped.elapsed() >= GRACE - Duration::from_millis(100),
        "raised before --hup-grace: {alert}"
    );
    assert_eq!(alert["evidence"][0]["event"], "stopped", "{alert}");
    kill(pid, libc::SIGCONT);
    hupwatch.wait_for("resolved on SIGCONT", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "stopped"
    });
    drop(pty);
    hupwatch.stop();
}

#[test]
fn a_parent_that_leaves_sixty_children_unreaped_holds_zombies_as_nobody() {
    let dir = shared_dir("proc-zombies");
    let mut subjects = Subjects::default();
    let name = unique("pzmb");
    let python = named_link(&dir, &name, PYTHON);
    subjects.name(&name);
    let hupwatch = watch_as_nobody(&[]);
    let pty = Pty::open();
    let code = "import os, sys\n\
                for _ in range(60):\n    if os.fork() == 0:\n        os._exit(0)\n\
                print('forked', flush=True)\n\
                sys.stdin.readline()\n";
    let mut child = pty.spawn_keeping_output(
        as_nobody(&python, &dir)
            .args(["-c", code])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let pid = child.id();
    assert_eq!(first_line(&mut child).trim(), "forked");
    subjects.children.push(child);
    let alert = hupwatch.wait_for_within(
        "a zombies alert",
        Instant::now() + verdict_deadline(),
        raised("zombies", pid),
    );
    assert_eq!(alert["evidence"][0]["count"], 60, "{alert}");
    // Its exit hands them to init, which reaps them: the verdict ends with it.
    kill(pid, libc::SIGKILL);
    hupwatch.wait_for("resolved when it exits", |a| {
        a["status"] == "resolved" && a["pid"] == pid && a["alert"] == "zombies"
    });
    drop(pty);
    hupwatch.stop();
}
