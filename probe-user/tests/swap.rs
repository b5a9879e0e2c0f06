//! Root test, on the host only (a guest's root is a read-only 9p mount, where no swap file
//! can live): a process pushed into swap by a memory cgroup's limit shows its swap, from
//! the kernel's map (rss_stat's MM_SWAPENTS) and from /proc (VmSwap) where rss_stat is
//! missing, while its RSS stays under the limit; and one that grows into swap is
//! `rss_growth`, though its RSS alone never grows past the limit.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, tracefs_without};
use processes::{PYTHON, named_link};
use serde_json::Value;
use support::{require_root, scratch_dir, unique};

const LIMIT: u64 = 64 << 20;
const TOUCHED: u64 = 192 << 20;
/// More than the RSS the cgroup lets the grower keep (LIMIT + 8 MiB of slack).
const GROWTH_THRESHOLD: &str = "96MiB";

/// A swap file switched on for the test, switched off and removed however it ends.
struct SwapFile(PathBuf);

impl SwapFile {
    fn on(path: PathBuf, bytes: u64) -> Self {
        let swap = Self(path);
        let path = swap.0.to_str().unwrap();
        // dd, not fallocate: a swap file must have no holes or unwritten extents.
        let count = (bytes >> 20).to_string();
        let made = Command::new("dd")
            .args(["if=/dev/zero", &format!("of={path}"), "bs=1M"])
            .arg(format!("count={count}"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(made.success(), "dd could not write {path}");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        for step in [vec!["mkswap", path], vec!["swapon", path]] {
            let out = Command::new(step[0]).args(&step[1..]).output().unwrap();
            assert!(
                out.status.success(),
                "{step:?} failed (the test needs swap on the host): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        swap
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.0).status();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A memory cgroup with a limit, in whichever hierarchy the machine mounts: cgroup v2's
/// unified one with the memory controller, or v1's memory one.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    fn new(name: &str, limit: u64) -> Self {
        let v2 = Path::new("/sys/fs/cgroup");
        let unified = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, knobs): (PathBuf, Vec<(&str, String)>) = if unified {
            (v2.join(name), vec![("memory.max", limit.to_string())])
        } else {
            (
                v2.join("memory").join(name),
                vec![
                    ("memory.limit_in_bytes", limit.to_string()),
                    ("memory.swappiness", "100".into()),
                ],
            )
        };
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot make the memory cgroup {}: {e}", dir.display()));
        let cgroup = Self(dir);
        for (knob, value) in knobs {
            std::fs::write(cgroup.0.join(knob), value)
                .unwrap_or_else(|e| panic!("cannot set {knob}: {e}"));
        }
        cgroup
    }

    fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Its process is gone by now (the test kills it first); rmdir retries briefly
        // while the kernel finishes taking it out.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The process `pid` as one of `hupwatch`'s sessions, once `pred` holds for it.
fn session_when(hupwatch: &Hupwatch, pid: u32, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sessions = hupwatch.sessions_json();
        if let Some(p) = harness::session_of(&sessions, pid).filter(|p| pred(p)) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never showed what was expected: {sessions}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Samples come every 200 ms: wait for one taken after all of it was touched, with what
/// the limit pushed out in swap.
fn swapped(p: &Value) -> bool {
    let (rss, swap) = (p["rss_bytes"].as_u64(), p["swap_bytes"].as_u64());
    swap.is_some_and(|s| s >= TOUCHED - 2 * LIMIT)
        && rss
            .zip(swap)
            .is_some_and(|(r, s)| r + s >= TOUCHED - (16 << 20))
}

/// What a test that pushes a process into swap needs: 512 MiB of swap, a memory cgroup
/// limited to LIMIT, and Debian's python3 linked under a unique name (by path: a pyenv
/// shim on PATH picks its python by the name it was called by, which is the point of the
/// link).
struct Confined {
    dir: PathBuf,
    _swap: SwapFile,
    cgroup: MemoryCgroup,
    name: String,
    grower: PathBuf,
}

fn confined(test: &str, prefix: &str) -> Confined {
    require_root();
    let dir = scratch_dir(test);
    let swap = SwapFile::on(
        PathBuf::from(format!(
            "/var/tmp/hupwatch-{test}-test-{}",
            std::process::id()
        )),
        512 << 20,
    );
    let name = unique(prefix);
    let cgroup = MemoryCgroup::new(&name, LIMIT);
    let grower = named_link(&dir, &name, PYTHON);
    Confined {
        dir,
        _swap: swap,
        cgroup,
        name,
        grower,
    }
}

/// The process in the cgroup, killed when the test ends, passed or failed: dropped before
/// the swap file (declared after it), so its swapped pages are gone when swapoff runs. A
/// failed test used to leave it alive: swapoff failed with ENOMEM (its pages could not come
/// back under the cgroup's limit) and the swap file stayed on.
struct Grower(Child);

impl Grower {
    /// Runs `command` (a shell command line) in `cgroup`, joined before it allocates so
    /// everything it touches is charged there, and waits for its `ready` line.
    fn start(cgroup: &MemoryCgroup, command: &str) -> Self {
        let script = format!("echo $$ > {} && exec {command}", cgroup.procs().display());
        let mut grower = Grower(
            Command::new("sh")
                .args(["-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        assert_eq!(processes::first_line(&mut grower.0).trim(), "ready");
        grower
    }
}

impl Drop for Grower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_process_pushed_into_swap_shows_its_swap_from_the_kernel_and_from_proc() {
    let Confined {
        dir,
        _swap,
        cgroup,
        name,
        grower,
    } = confined("swap", "swp");

    // Mounts tracefs, so that its formats can be copied for the /proc run.
    Hupwatch::start(&["--pid", "1"]).stop();
    let tracefs = dir.join("tracefs");
    tracefs_without(&tracefs, "kmem/rss_stat");
    let args = ["--match", name.as_str(), "--rss-interval", "200ms"];
    let from_kernel = Hupwatch::run(&args);
    let from_proc =
        Hupwatch::run_with_env(&args, &[("HUPWATCH_TRACEFS", tracefs.to_str().unwrap())]);

    let child = Grower::start(
        &cgroup,
        &format!(
            "{} -c \"import time; block = b'x' * {TOUCHED}; print('ready', flush=True); time.sleep(120)\"",
            grower.display()
        ),
    );
    let pid = child.0.id();

    for (source, hupwatch) in [("kernel map", &from_kernel), ("/proc", &from_proc)] {
        let p = session_when(hupwatch, pid, swapped);
        let rss = p["rss_bytes"].as_u64().unwrap();
        assert!(
            rss <= LIMIT + (8 << 20),
            "{source}: its RSS stays near the limit: {p}"
        );
    }
    drop(child);
    from_kernel.stop();
    from_proc.stop();
}

#[test]
fn a_process_growing_into_swap_is_rss_growth_though_its_rss_holds_under_the_limit() {
    let Confined {
        dir,
        _swap,
        cgroup,
        name,
        grower,
    } = confined("swap-growth", "swg");
    // Growth must go on for a quarter of the window (1.5 s); it grows for 2.4 s, to three
    // times the limit, so most of it ends in swap.
    let hupwatch = Hupwatch::run(&[
        "--match",
        name.as_str(),
        "--rss-interval",
        "200ms",
        "--rss-growth",
        GROWTH_THRESHOLD,
        "--rss-window",
        "6s",
    ]);
    let program = dir.join("grow.py");
    std::fs::write(
        &program,
        format!(
            "import time\nblocks = []\nprint('ready', flush=True)\nt = time.monotonic()\n\
             for i in range({}):\n    blocks.append(b'x' * (8 << 20))\n    \
             time.sleep(max(0, t + 0.1 * (i + 1) - time.monotonic()))\ntime.sleep(120)\n",
            TOUCHED >> 23
        ),
    )
    .unwrap();
    let child = Grower::start(
        &cgroup,
        &format!("{} {}", grower.display(), program.display()),
    );
    let pid = child.0.id();
    let alert = hupwatch.wait_for("an rss_growth alert", |a| {
        a["status"] == "raised" && a["alert"] == "rss_growth" && a["pid"] == pid
    });
    let rss = alert["rss_bytes"].as_u64().unwrap();
    let swap = alert["swap_bytes"].as_u64().unwrap();
    assert!(
        rss <= LIMIT + (8 << 20),
        "its RSS alone stays under the limit, so RSS alone is no growth: {alert}"
    );
    // RSS is held to LIMIT + 8 MiB, under the threshold: a rise past it needs swap. (With
    // a 64 MiB threshold RSS alone could pass it, and a CI run alerted with 63 MiB in swap.)
    assert!(
        swap >= (96 << 20) - (LIMIT + (8 << 20)),
        "the growth is in swap: {alert}"
    );
    assert!(
        alert["reason"]
            .as_str()
            .unwrap()
            .starts_with("RSS + swap rose"),
        "{alert}"
    );
    drop(child);
    hupwatch.stop();
}
