//! Root integration tests of the kernel's tracked set at the edges of the pid space: a pid
//! a tracked process leaves behind, and pids above the pid_max hupwatch sized its per-pid
//! flags for. They steer the kernel's pid allocation (ns_last_pid, pid_max), so they take
//! turns, and put pid_max back however they end.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    path::Path,
    process::{Child, Command},
    sync::Mutex,
    time::Duration,
};

use harness::Hupwatch;
use processes::{named_program, wait_for_exec};
use serde_json::Value;
use support::{scratch_dir, unique};

const PID_MAX: &str = "/proc/sys/kernel/pid_max";
const LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
/// Pids below this are handed out once, at boot: the allocation wraps back to it.
const RESERVED_PIDS: u32 = 300;

/// Both tests move the kernel's next pid around.
static PID_SPACE: Mutex<()> = Mutex::new(());

fn read_number(path: &str) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
        .trim()
        .parse()
        .unwrap()
}

fn write_number(path: &str, value: u32) {
    std::fs::write(path, value.to_string()).unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

/// The pid the kernel handed out last (the fifth field of /proc/loadavg).
fn last_pid() -> u32 {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    loadavg.split_whitespace().nth(4).unwrap().parse().unwrap()
}

/// Takes one pid: a child that exits at once, reaped.
fn fork_one() -> u32 {
    // SAFETY: the child only calls _exit, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => unsafe { libc::_exit(0) },
        pid => {
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            pid as u32
        }
    }
}

/// Makes `target` the next pid the kernel hands out, unless another process forks first.
fn steer_next_pid(target: u32) {
    if write_number_if_there(LAST_PID, target - 1) {
        return;
    }
    // A kernel without CONFIG_CHECKPOINT_RESTORE (the 5.15 test kernel) has no
    // ns_last_pid: take pids until the one before `target` is handed out, wrapping the
    // allocation to the bottom first when `target` lies behind (pid_max lowered to just
    // past the last pid for one fork, then put back).
    let mut last = fork_one();
    if last >= target {
        let original = read_number(PID_MAX);
        write_number(PID_MAX, last + 1);
        last = fork_one();
        write_number(PID_MAX, original);
    }
    for _ in 0..100_000 {
        if last + 1 >= target {
            return;
        }
        last = fork_one();
    }
    panic!("could not bring the next pid to {target}");
}

fn write_number_if_there(path: &str, value: u32) -> bool {
    Path::new(path).exists() && {
        write_number(path, value);
        true
    }
}

/// Spawns `command` until the kernel gives it a pid for which `wanted` holds: it hands out
/// the pid after the one steered to unless another process on the machine forks first.
fn spawn_with_pid(mut command: impl FnMut() -> Command, wanted: impl Fn(u32) -> bool) -> Child {
    // Which pids came instead, for the failure: whether something else took the pid each
    // time (pids just past it) or the steering missed (pids far from it).
    let mut got = Vec::new();
    for _ in 0..200 {
        let mut child = command().spawn().unwrap();
        if wanted(child.id()) {
            return child;
        }
        got.push(child.id());
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("the kernel never gave a child the pid this test steered it to; it gave {got:?}");
}

/// Puts pid_max back when the test ends, passing or not.
struct RestorePidMax(u32);

impl Drop for RestorePidMax {
    fn drop(&mut self) {
        write_number(PID_MAX, self.0);
    }
}

/// max_entries of the mmapable array hupwatch holds (its per-pid tracked flags), from the
/// fdinfo of its map fds.
fn tracked_flag_entries(hupwatch: u32) -> u32 {
    const BPF_F_MMAPABLE: u32 = 0x400;
    let dir = format!("/proc/{hupwatch}/fdinfo");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let info = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let flags = field("map_flags:")
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        if field("map_type:").as_deref() == Some("2")
            && flags.is_some_and(|f| f & BPF_F_MMAPABLE != 0)
        {
            return field("max_entries:").unwrap().parse().unwrap();
        }
    }
    panic!("hupwatch holds no mmapable array map");
}

/// Before looking for an event that must not be there: events arrive in order per CPU,
/// not overall, so wait for a later tracked process's exit (`matched` is a program
/// hupwatch matches), and a pause.
fn wait_past_a_tracked_exit(hupwatch: &Hupwatch, matched: &Path) {
    let mut fence = Command::new(matched).arg("0").spawn().unwrap();
    let fence_pid = fence.id();
    fence.wait().unwrap();
    hupwatch.wait_for("exit of the fence", |e| {
        e["event"] == "exit" && e["pid"] == fence_pid
    });
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn a_pid_a_tracked_process_leaves_behind_is_not_tracked_when_reused() {
    let _turn = PID_SPACE.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch_dir("reuse");
    let name = unique("hwreuse");
    let matched = named_program(&dir, &name, "sleep");
    let other_name = unique("hwreused");
    let other = named_program(&dir, &other_name, "sleep");
    let hupwatch = Hupwatch::start(&["--match", &name]);

    // A pid that can come round again: in a freshly booted guest the next ones are below
    // RESERVED_PIDS, which the allocation never returns to.
    steer_next_pid(RESERVED_PIDS + 1);
    let mut first = Command::new(&matched).arg("0").spawn().unwrap();
    let pid = first.id();
    first.wait().unwrap();
    hupwatch.wait_for("exit of the matched process", |e| {
        e["event"] == "exit" && e["pid"] == pid
    });

    // The same pid, for a process nothing matches.
    let mut reused = spawn_with_pid(
        || {
            steer_next_pid(pid);
            let mut command = Command::new(&other);
            command.arg("0.1");
            command
        },
        |got| got == pid,
    );
    reused.wait().unwrap();

    wait_past_a_tracked_exit(&hupwatch, &matched);
    let leaked: Vec<Value> = hupwatch
        .events_of(pid)
        .into_iter()
        .filter(|e| e["comm"] == other_name.as_str())
        .collect();
    assert_eq!(
        leaked,
        Vec::<Value>::new(),
        "the reused pid {pid} was still tracked"
    );
    hupwatch.stop();
}

#[test]
fn processes_above_the_pid_max_hupwatch_started_with_are_tracked() {
    let _turn = PID_SPACE.lock().unwrap_or_else(|e| e.into_inner());
    let original = read_number(PID_MAX);
    let restore = RestorePidMax(original);
    // hupwatch sizes its flags to the pid_max it starts with: start it under half, then
    // use pids above that half (or, where the next pid can only be steered by taking pids,
    // a little above the ones in use, so that few need taking).
    let low = if Path::new(LAST_PID).exists() {
        original / 2
    } else {
        (last_pid() + 500).min(original / 2)
    };
    let above = low + 1000;
    assert!(
        above < original,
        "pid_max {original} is too small for this test"
    );
    let dir = scratch_dir("above");
    let name = unique("hwabove");
    let matched = named_program(&dir, &name, "sleep");
    let shell = named_program(&dir, &unique("hwhsh"), "sh");
    // Each process below gets pids of its own, so no event of one is taken for another's.
    let high_pid = |offset: u32, command: &dyn Fn() -> Command| {
        spawn_with_pid(
            || {
                steer_next_pid(above + offset + 1);
                command()
            },
            |got| got > low,
        )
    };

    // Running before hupwatch starts, so its /proc scan is what tracks it.
    let mut early = high_pid(0, &|| {
        let mut command = Command::new(&matched);
        command.arg("30");
        command
    });
    let early_pid = early.id();
    wait_for_exec(early_pid, &name);

    write_number(PID_MAX, low);
    let hupwatch = Hupwatch::start(&["--match", &name, "--match", &unique("hwhsh")]);
    write_number(PID_MAX, original);
    assert_eq!(
        tracked_flag_entries(hupwatch.pid()),
        low.div_ceil(8),
        "hupwatch did not size its flags to the pid_max it started with"
    );

    support::kill(early_pid, libc::SIGTERM);
    let signal = hupwatch.wait_for("SIGTERM to the early process", |e| {
        e["event"] == "signal" && e["pid"] == early_pid
    });
    assert_eq!(signal["signal_name"], "SIGTERM");
    hupwatch.wait_for("exit of the early process", |e| {
        e["event"] == "exit" && e["pid"] == early_pid
    });
    early.wait().unwrap();

    // Matched at exec by the kernel, and its child taken in at fork, both above the flags.
    let mut started = high_pid(100, &|| {
        let mut command = Command::new(&shell);
        command.args(["-c", "sleep 0.1; exit 3"]);
        command
    });
    let shell_pid = started.id();
    assert_eq!(started.wait().unwrap().code(), Some(3));
    let fork = hupwatch.wait_for("fork by the shell", |e| {
        e["event"] == "fork" && e["ppid"] == shell_pid
    });
    let child = fork["pid"].as_u64().unwrap() as u32;
    hupwatch.wait_for("exec of its child", |e| {
        e["event"] == "exec" && e["pid"] == child && e["comm"] == "sleep"
    });
    let exit = hupwatch.wait_for("exit of the shell", |e| {
        e["event"] == "exit" && e["pid"] == shell_pid
    });
    assert_eq!(exit["exit_code"], 3);

    // And a process nothing matches, up there too, is not.
    let mut bystander = high_pid(200, &|| {
        let mut command = Command::new("sleep");
        command.arg("0.1");
        command
    });
    let bystander_pid = bystander.id();
    bystander.wait().unwrap();
    wait_past_a_tracked_exit(&hupwatch, &matched);
    assert_eq!(
        hupwatch.events_of(bystander_pid),
        Vec::<Value>::new(),
        "an unmatched process above the flags was traced"
    );
    hupwatch.stop();
    drop(restore);
}
