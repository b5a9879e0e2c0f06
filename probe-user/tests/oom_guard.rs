//! The guard (`run --reap-before`) against the real OOM killers, in a machine that really
//! runs out of memory: the kernel matrix's low-memory guest (xtask/src/kernels/, about
//! 600 MiB of RAM, no swap), never the host, whose memory these tests would fill. Each
//! test is `#[ignore]`d, so the host's `cargo test` lists them as ignored; the guest runs
//! them with `--ignored`, one at a time, and each refuses to run on a machine with more
//! than MAX_MEM_TOTAL of RAM.
//!
//! The scene, the same in each: an important process on its terminal (a python that
//! grows to a third of RAM and holds it: the editor or browser the OOM killer would pick,
//! being the largest), then a CLI stand-in typed at a shell on a second
//! terminal, which starts a server in a session of its own; both catch SIGHUP and grow
//! ORPHAN_RATE each; the second terminal hangs up. Then:
//! 1. without hupwatch, the kernel's OOM killer acts: its victim is read from the kernel
//!    log (/dev/kmsg, "Out of memory: Killed process PID");
//! 2. without hupwatch, earlyoom (Debian's binary, unpacked by the kernel matrix and named
//!    by HUPWATCH_TEST_EARLYOOM) acts first: its victim from its own output;
//! 3. with `hupwatch run --reap-before`, the left-over tree is ended before the kernel
//!    acts: no OOM kill in the kernel log, the important process lives, and the decision
//!    line names the CLI and its server with "killer":"kernel";
//! 4. the same with earlyoom running: the decision line says "killer":"earlyoom", and
//!    earlyoom kills nobody.
//!
//! Each prints what happened on lines starting `oom-guard:`, which the kernel matrix
//! repeats in its report. Runs as root.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use harness::Hupwatch;
use processes::{PYTHON, running};
use pty::Pty;
use serde_json::Value;
use support::{kill, require_root, scratch_dir, unique};

/// A machine with more RAM than this is not the guard guest: the tests refuse to fill it.
const MAX_MEM_TOTAL: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// How fast each of the two left-over processes grows, MiB/s: about 25 s from the hangup
/// to the kernel's OOM killer in a 640M guest, enough for the guard's 5 s checks under
/// emulation, short enough for CI.
const ORPHAN_RATE: u64 = 5;
/// How fast the important process reaches its size, MiB/s.
const IMPORTANT_RATE: u64 = 40;
/// How long a killer may take to act once the scene is set, or the guard to decide.
const ACT_TIMEOUT: Duration = Duration::from_secs(150);
/// The guard's horizon: it acts once the forecast says the killer acts within this. At
/// the hangup the kernel's killer is about 27 s off (earlyoom's about 17 s), so the guard
/// waits for the forecast to come near rather than acting on the first sign of growth;
/// its checks come every 5 s, and ending the tree took under a second.
const HORIZON_SECONDS: f64 = 20.0;
/// earlyoom's explicit thresholds: act at 10% of RAM available (no swap here, so its swap
/// condition holds), report every second.
const EARLYOOM_ARGS: &[&str] = &["-m", "10", "-s", "10", "-r", "1"];

/// Grows by 1 MiB chunks (touched, so resident) at RATE MiB/s up to CAP MiB, then
/// writes TAG.full beside itself and holds; stays through SIGHUP. With `spawn`, first
/// starts a copy of itself named TAG-server in a session of its own.
const GROWER: &str = r#"
import os, signal, subprocess, sys, time
tag, rate, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
signal.signal(signal.SIGHUP, lambda *a: None)
if len(sys.argv) > 4 and sys.argv[4] == "spawn":
    subprocess.Popen([sys.executable, sys.argv[0], tag + "-server", str(rate), str(cap)], start_new_session=True)
held = []
start = time.monotonic()
for i in range(cap):
    held.append(b"x" * (1 << 20))
    wait = start + (i + 1) / rate - time.monotonic()
    if wait > 0:
        time.sleep(wait)
open(os.path.join(os.path.dirname(sys.argv[0]), tag + ".full"), "w").close()
while True:
    time.sleep(60)
"#;

/// A shell on a terminal, running one grower.
struct Typed {
    terminal: Option<Pty>,
    shell: Child,
}

/// The processes of one scene.
struct Scene {
    dir: PathBuf,
    important: u32,
    cli: u32,
    server: u32,
    _kept: Typed,
    left: Typed,
    /// When the left-over terminal hung up.
    hung_up: Instant,
}

impl Scene {
    /// The important process, grown to its size and held for `settle`; then the CLI and
    /// its server, growing, and the CLI's terminal hung up.
    fn set(tag: &str, settle: Duration) -> Scene {
        let dir = scratch_dir(tag);
        std::fs::write(dir.join("grower.py"), GROWER).unwrap();
        // A third of RAM, the same in every scene (hupwatch, when it runs, takes some of
        // what is available): about 190 MiB in a 640M guest, where 490 MiB is available.
        let available = meminfo_kib("MemAvailable") * 1024;
        let important_mib = meminfo_kib("MemTotal") * 1024 / 3 / MIB;
        let kept = typed(
            &dir,
            &format!("{tag}-kept {IMPORTANT_RATE} {important_mib}"),
        );
        let important = wait_for_pid(&format!("{tag}-kept {IMPORTANT_RATE} {important_mib}"));
        wait_for_file(&dir.join(format!("{tag}-kept.full")));
        thread::sleep(settle);
        say(&format!(
            "{tag}: important process {important} holds {important_mib} MiB ({} MiB was available)",
            available / MIB
        ));
        let mut left = typed(&dir, &format!("{tag}-cli {ORPHAN_RATE} 4096 spawn"));
        let cli = wait_for_pid(&format!("{tag}-cli {ORPHAN_RATE} 4096 spawn"));
        let server = wait_for_pid(&format!("{tag}-cli-server {ORPHAN_RATE} 4096"));
        left.terminal.take().unwrap().hang_up();
        let _ = left.shell.wait();
        say(&format!(
            "{tag}: CLI {cli} and its server {server} grow {ORPHAN_RATE} MiB/s each; their terminal hung up"
        ));
        Scene {
            dir,
            important,
            cli,
            server,
            _kept: kept,
            left,
            hung_up: Instant::now(),
        }
    }

    fn who(&self, pid: u32) -> &'static str {
        match pid {
            p if p == self.important => "the important process",
            p if p == self.cli => "the left-over CLI",
            p if p == self.server => "the left-over server",
            _ => "a process outside the scene",
        }
    }

    /// Ends every process of the scene and waits for the memory to come back.
    fn end(self) {
        for pid in [self.important, self.cli, self.server] {
            kill(pid, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while [self.important, self.cli, self.server]
            .iter()
            .any(|&p| running(p))
            && Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(100));
        }
        drop(self.left);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `grower.py ARGS` typed at a shell on a fresh terminal.
fn typed(dir: &Path, args: &str) -> Typed {
    let terminal = Pty::open();
    let shell = terminal.spawn(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{PYTHON} {}/grower.py {args}; true", dir.display())),
    );
    Typed {
        terminal: Some(terminal),
        shell,
    }
}

fn pid_of(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.trim_end().ends_with(needle) && !text.contains("/bin/sh")).then_some(pid)
        })
}

fn wait_for_pid(needle: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(pid) = pid_of(needle) {
            return pid;
        }
        assert!(Instant::now() < deadline, "{needle} never started");
        thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn say(line: &str) {
    println!("oom-guard: {line}");
}

/// A field of /proc/meminfo, in KiB.
fn meminfo_kib(name: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("/proc/meminfo has no {name}"))
}

/// Root, and a machine small enough to fill: the guard guest, not a host.
fn require_guard_guest() {
    require_root();
    let total = meminfo_kib("MemTotal") * 1024;
    assert!(
        total <= MAX_MEM_TOTAL,
        "this test fills the machine's memory and runs only in the kernel matrix's low-memory \
         guest (`cargo xtask test`, or `cargo xtask test --guard-only`); this machine has {} MiB",
        total / MIB
    );
    let swap = meminfo_kib("SwapTotal");
    say(&format!(
        "MemTotal {} MiB, SwapTotal {} MiB, MemAvailable {} MiB",
        total / MIB,
        swap / 1024,
        meminfo_kib("MemAvailable") / 1024
    ));
}

/// The kernel's log from now on, read through /dev/kmsg.
struct Kmsg {
    file: File,
    seen: Vec<String>,
}

impl Kmsg {
    fn open() -> Kmsg {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("/dev/kmsg opens");
        // SAFETY: lseek on a file we own; SEEK_END on /dev/kmsg skips the records so far.
        unsafe { libc::lseek(std::os::fd::AsRawFd::as_raw_fd(&file), 0, libc::SEEK_END) };
        Kmsg {
            file,
            seen: Vec::new(),
        }
    }

    /// Reads the records written since the last look (one per read; EAGAIN when none).
    fn read(&mut self) -> &[String] {
        let mut buf = vec![0u8; 8192];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let record = String::from_utf8_lossy(&buf[..n]);
                    // PRIORITY,SEQUENCE,TIME,FLAGS;MESSAGE
                    let message = record.split_once(';').map_or(&*record, |(_, m)| m);
                    self.seen
                        .push(message.lines().next().unwrap_or_default().to_owned());
                }
                // EPIPE: records were overwritten before we read them; go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        &self.seen
    }

    /// The pid and name of every "Out of memory: Killed process PID (COMM)" so far.
    fn oom_kills(&mut self) -> Vec<(u32, String)> {
        self.read()
            .iter()
            .filter_map(|line| {
                let rest = line.split("Killed process ").nth(1)?;
                let (pid, rest) = rest.split_once(' ')?;
                let comm = rest.strip_prefix('(')?.split(')').next()?;
                Some((pid.parse().ok()?, comm.to_owned()))
            })
            .collect()
    }
}

/// The lowest MemAvailable seen while it runs, sampled every 100 ms.
struct LowWater {
    stop: Arc<AtomicBool>,
    low: Arc<Mutex<u64>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl LowWater {
    fn start() -> LowWater {
        let stop = Arc::new(AtomicBool::new(false));
        let low = Arc::new(Mutex::new(u64::MAX));
        let (s, l) = (Arc::clone(&stop), Arc::clone(&low));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now = meminfo_kib("MemAvailable");
                let mut low = l.lock().unwrap();
                *low = (*low).min(now);
                drop(low);
                thread::sleep(Duration::from_millis(100));
            }
        });
        LowWater {
            stop,
            low,
            thread: Some(thread),
        }
    }

    /// The lowest MemAvailable, MiB.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *self.low.lock().unwrap() / 1024
    }
}

/// earlyoom as started by the test, its output collected.
struct Earlyoom {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Earlyoom {
    fn start() -> Earlyoom {
        let path = std::env::var_os("HUPWATCH_TEST_EARLYOOM").expect(
            "HUPWATCH_TEST_EARLYOOM names earlyoom's binary (the kernel matrix unpacks Debian's)",
        );
        let mut child = Command::new(&path)
            .args(EARLYOOM_ARGS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", PathBuf::from(&path).display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = Arc::clone(&lines);
            thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let earlyoom = Earlyoom { child, lines };
        // Its start-up lines say the thresholds it settled on.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !earlyoom.said(|l| l.starts_with("mem avail")) {
            assert!(
                Instant::now() < deadline,
                "earlyoom never reported memory: {:?}",
                earlyoom.lines.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(100));
        }
        say(&format!(
            "earlyoom {} started: {}",
            EARLYOOM_ARGS.join(" "),
            earlyoom
                .lines
                .lock()
                .unwrap()
                .iter()
                .take_while(|l| !l.starts_with("mem avail"))
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        earlyoom
    }

    fn said(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| pred(l))
    }

    /// The pids earlyoom said it sent a signal to ("sending SIGTERM to process PID ...").
    fn victims(&self) -> Vec<(u32, String)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let rest = line.split("to process ").nth(1)?;
                if !line.contains("sending SIG") {
                    return None;
                }
                let pid = rest.split(|c: char| !c.is_ascii_digit()).next()?;
                Some((pid.parse().ok()?, line.clone()))
            })
            .collect()
    }
}

impl Drop for Earlyoom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `found` returns something, or ACT_TIMEOUT.
fn wait_until<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + ACT_TIMEOUT;
    loop {
        if let Some(t) = found() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} did not happen");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "runs in the kernel matrix's low-memory guest (cargo xtask test)"]
fn without_the_guard_the_kernels_oom_killer_takes_the_important_process() {
    require_guard_guest();
    let mut kmsg = Kmsg::open();
    let started = Instant::now();
    let low = LowWater::start();
    let tag = unique("k");
    let scene = Scene::set(&tag, Duration::ZERO);
    let (pid, comm) = wait_until("the kernel's OOM kill", || {
        kmsg.oom_kills().first().cloned()
    });
    let after = scene.hung_up.elapsed();
    let who = scene.who(pid);
    let lines: Vec<String> = kmsg
        .read()
        .iter()
        .filter(|l| l.contains("Out of memory"))
        .cloned()
        .collect();
    let important = scene.important;
    scene.end();
    say(&format!(
        "kernel: killed {pid} ({comm}), {who}, {:.1} s after the hangup; lowest MemAvailable {} MiB; scene {:.1} s; kernel said: {}",
        after.as_secs_f64(),
        low.finish(),
        started.elapsed().as_secs_f64(),
        lines.join(" | ")
    ));
    assert_eq!(pid, important, "the kernel killed {who}: {lines:?}");
}

#[test]
#[ignore = "runs in the kernel matrix's low-memory guest (cargo xtask test)"]
fn without_the_guard_earlyoom_takes_the_important_process() {
    require_guard_guest();
    let mut kmsg = Kmsg::open();
    let started = Instant::now();
    let earlyoom = Earlyoom::start();
    let low = LowWater::start();
    let tag = unique("e");
    let scene = Scene::set(&tag, Duration::ZERO);
    let (pid, line) = wait_until("earlyoom's kill", || earlyoom.victims().first().cloned());
    let after = scene.hung_up.elapsed();
    let who = scene.who(pid);
    let important = scene.important;
    // Its SIGTERM ends the python; then it reports again.
    thread::sleep(Duration::from_secs(2));
    let exited = !running(pid);
    scene.end();
    drop(earlyoom);
    let kernel = kmsg.oom_kills();
    say(&format!(
        "earlyoom: {line:?}: {who}, {:.1} s after the hangup (ended: {exited}); lowest MemAvailable {} MiB; kernel OOM kills: {kernel:?}; scene {:.1} s",
        after.as_secs_f64(),
        low.finish(),
        started.elapsed().as_secs_f64()
    ));
    assert!(
        kernel.is_empty(),
        "the kernel acted before earlyoom: {kernel:?}"
    );
    assert_eq!(pid, important, "earlyoom killed {who}: {line}");
}

/// `hupwatch run --reap-before` over the scene; earlyoom too when `with_earlyoom`.
fn guarded(with_earlyoom: bool) {
    require_guard_guest();
    let mut kmsg = Kmsg::open();
    let started = Instant::now();
    let earlyoom = with_earlyoom.then(Earlyoom::start);
    let tag = unique(if with_earlyoom { "ge" } else { "gk" });
    // The scene's folder, which --match-cmdline watches: scratch_dir's name for the tag.
    let dir = std::env::temp_dir().join(format!("hupwatch-it-{}-{tag}", std::process::id()));
    let d = dir.display().to_string();
    let hupwatch = Hupwatch::run(&[
        "--hup-grace",
        "1s",
        "--rss-interval",
        "250ms",
        "--rss-window",
        "16s",
        "--cpu-window",
        "1s",
        "--reap-before",
        &format!("{HORIZON_SECONDS}s"),
        "--reap-idle",
        "0s",
        "--match-cmdline",
        &d,
    ]);
    let ready = started.elapsed();
    let low = LowWater::start();
    // The forecast counts a grower for a few seconds after its last rise (5 s at least:
    // FORECAST_QUIET_FLOOR_NS), so the important process's climb would still count, and
    // the guard would act on it: it holds for longer before the CLI starts.
    let scene = Scene::set(&tag, Duration::from_secs(8));
    assert_eq!(scene.dir, dir);
    // Fails at once if hupwatch dies (the OOM killer may pick it too).
    let decision = hupwatch.wait_for("the reap_before decision", |l| l["action"] == "reap_before");
    let decided = scene.hung_up.elapsed();
    let available_then = meminfo_kib("MemAvailable") / 1024;
    let ended = wait_until("the left-over tree ended", || {
        (!running(scene.cli) && !running(scene.server)).then(Instant::now)
    });
    let ended_after = ended.duration_since(scene.hung_up);
    // Some time for a killer to act on what was left, were it going to.
    thread::sleep(Duration::from_secs(5));
    let important_lives = running(scene.important);
    let kernel = kmsg.oom_kills();
    let earlyoom_victims = earlyoom.as_ref().map(Earlyoom::victims).unwrap_or_default();
    let (cli, server, important) = (scene.cli, scene.server, scene.important);
    let lowest = low.finish();
    scene.end();
    drop(earlyoom);
    let (alerts, _) = hupwatch.finish();
    let reaped: Vec<String> = alerts
        .iter()
        .filter(|l| {
            matches!(l["action"].as_str(), Some("signal" | "exited" | "killed"))
                && [cli, server].iter().any(|&p| l["pid"] == p)
        })
        .map(|l| format!("{} {}", l["action"], l["pid"]))
        .collect();
    say(&format!(
        "guard{}: hupwatch ready after {:.1} s; decision {:.1} s after the hangup, MemAvailable {available_then} MiB: killer {}, acts_in_seconds {:.1}, freed {} MiB ({}), trees {}; tree gone {:.1} s after the hangup; {}; lowest MemAvailable {lowest} MiB; important process alive: {important_lives}; kernel OOM kills: {kernel:?}; earlyoom kills: {:?}; scene {:.1} s",
        if with_earlyoom { " with earlyoom" } else { "" },
        ready.as_secs_f64(),
        decided.as_secs_f64(),
        decision["killer"],
        decision["acts_in_seconds"].as_f64().unwrap_or(f64::NAN),
        decision["freed_bytes"].as_u64().unwrap_or(0) / MIB,
        decision["freed_measure"],
        decision["trees"],
        ended_after.as_secs_f64(),
        reaped.join(", "),
        earlyoom_victims,
        started.elapsed().as_secs_f64()
    ));
    assert!(
        kernel.is_empty(),
        "the kernel's OOM killer acted: {kernel:?}"
    );
    assert!(
        earlyoom_victims.is_empty(),
        "earlyoom acted: {earlyoom_victims:?}"
    );
    assert!(important_lives, "the important process {important} died");
    assert_eq!(decision["dry_run"], false, "{decision}");
    let killer = if with_earlyoom { "earlyoom" } else { "kernel" };
    assert_eq!(decision["killer"], killer, "{decision}");
    let pids: Vec<u64> = decision["trees"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["pids"].as_array().unwrap().iter())
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        pids.contains(&u64::from(cli)) && pids.contains(&u64::from(server)),
        "the decision does not name the CLI {cli} and its server {server}: {decision}"
    );
    assert!(!pids.contains(&u64::from(important)), "{decision}");
    let acts_in = decision["acts_in_seconds"].as_f64().unwrap();
    assert!(
        acts_in > 0.0 && acts_in <= HORIZON_SECONDS,
        "the guard acted outside its horizon, or only once the killer's level was reached: {decision}"
    );
}

#[test]
#[ignore = "runs in the kernel matrix's low-memory guest (cargo xtask test)"]
fn the_guard_ends_the_left_over_tree_before_the_kernels_oom_killer() {
    guarded(false);
}

#[test]
#[ignore = "runs in the kernel matrix's low-memory guest (cargo xtask test)"]
fn the_guard_ends_the_left_over_tree_before_earlyoom() {
    guarded(true);
}
