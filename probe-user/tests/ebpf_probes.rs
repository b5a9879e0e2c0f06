//! Root integration tests: the real eBPF programs, loaded by the real hupwatch binary,
//! watching real processes detach, ignore and receive hangups, exit and grow.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::process::{Command, Stdio};

use harness::{Hupwatch, tracefs_without};
use processes::{alive, named_program};
use pty::Pty;
use serde_json::Value;
use support::{kill, scratch_dir, unique};

/// Tracks this test process and everything it starts.
fn watch_my_children(extra: &[&str]) -> Hupwatch {
    let me = std::process::id().to_string();
    let mut args = vec!["--pid", me.as_str()];
    args.extend_from_slice(extra);
    Hupwatch::start(&args)
}

fn is(event: &Value, kind: &str, pid: u32) -> bool {
    event["event"] == kind && event["pid"] == pid
}

/// Starts `python3 -c script` and waits for the first line it prints.
fn python_and_its_first_line(script: &str) -> (std::process::Child, String) {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = processes::first_line(&mut child);
    (child, line)
}

fn my_session() -> u32 {
    // SAFETY: getsid(0) has no preconditions.
    unsafe { libc::getsid(0) as u32 }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

fn my_tty() -> Value {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let tty_nr: i64 = after_comm.split(' ').nth(4).unwrap().parse().unwrap();
    if tty_nr == 0 {
        return Value::Null;
    }
    let path = std::fs::read_link("/proc/self/fd/0").unwrap();
    Value::from(
        path.to_string_lossy()
            .trim_start_matches("/dev/")
            .to_string(),
    )
}

#[test]
fn setsid_reports_the_new_session_and_what_it_left() {
    let hupwatch = watch_my_children(&[]);
    let mut child = Command::new("setsid")
        .args(["sleep", "0.2"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let event = hupwatch.wait_for("setsid", |e| is(e, "setsid", pid));
    assert_eq!(event["ok"], true);
    assert_eq!(
        event["sid"], pid,
        "setsid makes the caller the leader of a session named after it"
    );
    assert_eq!(event["errno"], Value::Null);
    assert_eq!(event["old_sid"], my_session());
    assert_eq!(event["old_tty"], my_tty());
    assert_eq!(event["comm"], "setsid");
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn setsid_from_a_terminal_names_the_tty_it_left() {
    let hupwatch = watch_my_children(&[]);
    let pty = Pty::open();
    // sh leads the pty's session; the setsid it starts is not a group leader, so setsid(1)
    // calls setsid() itself instead of forking first.
    let mut shell = pty.spawn(Command::new("sh").args(["-c", "setsid true"]));
    let shell_pid = shell.id();
    let event = hupwatch.wait_for("setsid", |e| {
        e["event"] == "setsid" && e["old_sid"] == shell_pid
    });
    assert_eq!(event["ok"], true);
    assert_eq!(event["old_tty"], pty.name.as_str());
    assert_eq!(event["sid"], event["pid"]);
    assert_ne!(event["pid"], shell_pid);
    shell.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn a_program_started_on_a_terminal_takes_it_and_execs_with_it() {
    let hupwatch = watch_my_children(&[]);
    let pty = Pty::open();
    let mut child = pty.spawn(Command::new("sleep").arg("0.2"));
    let pid = child.id();
    let attach = hupwatch.wait_for("attach_tty", |e| is(e, "attach_tty", pid));
    assert_eq!(attach["sid"], pid, "setsid() ran first");
    assert_eq!(attach["fd"], 0);
    let exec = hupwatch.wait_for("exec", |e| is(e, "exec", pid));
    let order: Vec<Value> = hupwatch
        .events_of(pid)
        .iter()
        .map(|e| e["event"].clone())
        .filter(|kind| kind == "attach_tty" || kind == "exec")
        .collect();
    assert_eq!(
        order,
        ["attach_tty", "exec"],
        "the terminal is taken before the exec"
    );
    assert_eq!(exec["tty"], pty.name.as_str());
    assert_eq!(exec["sid"], pid);
    assert_eq!(exec["parent_tty"], my_tty());
    let started = exec["started_ns"].as_u64().expect("a start time") as i128;
    assert!(started <= exec["time_ns"].as_u64().unwrap() as i128);
    assert!(
        (started - now_ns()).abs() < 5_000_000_000,
        "started_ns {started} is not within seconds of now"
    );
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn setsid_from_a_terminal_execs_without_one_while_its_parent_keeps_it() {
    let dir = scratch_dir("detached");
    let name = unique("hwdetach");
    let program = named_program(&dir, &name, "sleep");
    let hupwatch = Hupwatch::start(&["--match", &name]);
    let pty = Pty::open();
    // Not the last command, so sh forks for setsid(1), which then calls setsid() itself
    // and execs the program: sh, still on the terminal, is the parent.
    let script = format!("setsid {} 0; true", program.display());
    let mut shell = pty.spawn(Command::new("sh").args(["-c", &script]));
    let exec = hupwatch.wait_for("exec of the detached program", |e| {
        e["event"] == "exec" && e["comm"] == name.as_str()
    });
    assert_eq!(exec["sid"], exec["pid"], "it leads a session of its own");
    assert_eq!(exec["tty"], Value::Null);
    assert_eq!(exec["parent_tty"], pty.name.as_str());
    assert_eq!(exec["ppid"], shell.id());
    // Its setsid() came while it was untracked: the exec that made it tracked reports it,
    // just before itself, under the name it had then.
    let pid = exec["pid"].as_u64().unwrap() as u32;
    let events = hupwatch.events_of(pid);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..2], ["setsid", "exec"], "{events:?}");
    assert_eq!(events[0]["comm"], "setsid");
    assert_eq!(events[0]["ok"], true);
    assert_eq!(events[0]["sid"], pid);
    assert_eq!(events[0]["old_sid"], shell.id());
    assert_eq!(events[0]["old_tty"], pty.name.as_str());
    assert!(shell.wait().unwrap().success());
    hupwatch.stop();
}

#[test]
fn nohup_ignores_sighup_and_the_kernel_says_so() {
    let hupwatch = watch_my_children(&[]);
    let mut child = Command::new("nohup")
        .args(["sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Earlier SIG_DFL resets (glibc's spawn path) may come first: wait for nohup's own.
    let sigaction = hupwatch.wait_for("sigaction SIG_IGN", |e| {
        is(e, "sigaction", pid) && e["signal"] == 1 && e["disposition"] == "ignore"
    });
    assert_eq!(sigaction["signal_name"], "SIGHUP");
    assert_eq!(sigaction["comm"], "nohup");
    // Signal only once sleep runs: nohup's own exec keeps the SIG_IGN.
    hupwatch.wait_for("exec of sleep", |e| {
        is(e, "exec", pid) && e["comm"] == "sleep"
    });

    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signal = hupwatch.wait_for("SIGHUP", |e| is(e, "signal", pid) && e["signal"] == 1);
    assert_eq!(signal["signal_name"], "SIGHUP");
    assert_eq!(signal["result"], "ignored");
    assert_eq!(signal["origin"], "user");
    assert_eq!(signal["code"], 0);
    assert_eq!(signal["sender_comm"], "kill");
    assert_eq!(signal["comm"], "sleep");
    assert!(
        alive(&mut child),
        "an ignored SIGHUP leaves the process running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn the_sighup_disposition_at_exec_is_read_in_the_kernel_not_later() {
    let hupwatch = watch_my_children(&[]);
    // The shell's exec has the default; it then ignores SIGHUP itself, and the `true` it
    // execs inherits SIG_IGN across the exec and is gone (reaped below) before hupwatch
    // reads the ring, so only the kernel can say what its exec had.
    let mut child = Command::new("sh")
        .args(["-c", "trap '' HUP; exec true"])
        .spawn()
        .unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let exec_of = |name: &'static str| {
        hupwatch.wait_for(name, |e| {
            is(e, "exec", pid) && e["filename"].as_str().is_some_and(|f| f.ends_with(name))
        })
    };
    let shell = exec_of("sh");
    assert_eq!(shell["hangup"], "default", "{shell}");
    let truth = exec_of("true");
    assert_eq!(truth["hangup"], "ignore", "{truth}");
    hupwatch.stop();
}

#[test]
fn a_terminal_that_hangs_up_kills_its_session_leader() {
    let hupwatch = watch_my_children(&[]);
    let pty = Pty::open();
    let mut child = pty.spawn(Command::new("sleep").arg("30"));
    let pid = child.id();
    pty.hang_up();

    let signal = hupwatch.wait_for("SIGHUP", |e| is(e, "signal", pid) && e["signal"] == 1);
    assert_eq!(signal["origin"], "kernel");
    assert_eq!(signal["code"], 128, "SI_KERNEL: the tty layer sent it");
    assert_eq!(signal["result"], "delivered");
    // A signal whose default action kills marks the whole process for exit as it is
    // generated; the delivery the kernel then traces is the SIGKILL that carries it out.
    let deliver = hupwatch.wait_for("delivery", |e| is(e, "signal_deliver", pid));
    assert_eq!(deliver["signal"], 9);
    assert_eq!(deliver["disposition"], "default");
    let exit = hupwatch.wait_for("exit", |e| is(e, "exit", pid));
    assert_eq!(exit["exit_signal"], 1);
    assert_eq!(exit["exit_code"], Value::Null);
    assert_eq!(exit["ppid"], std::process::id());
    child.wait().unwrap();
    hupwatch.stop();
}

/// A SIGHUP disposition is reported as the kernel holds it once rt_sigaction(2) returned:
/// a call the kernel refuses (a bad sigset size, with SIG_IGN in its struct) reports
/// nothing, and a process flipping the struct (in shared memory) between SIG_IGN and
/// SIG_DFL while another installs it cannot make a report differ from what the kernel
/// took. The script records
/// what each of its calls left in force (a query, which is not reported) and prints the
/// sequence; the reports must be exactly that sequence.
#[test]
fn sigaction_reports_what_the_kernel_took_not_what_user_memory_said() {
    let hupwatch = watch_my_children(&[]);
    let script = r#"
import ctypes, mmap, os, platform
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {'x86_64': 13, 'aarch64': 134}[platform.machine()]
class Act(ctypes.Structure):
    _fields_ = [('handler', ctypes.c_ulong), ('flags', ctypes.c_ulong),
                ('restorer', ctypes.c_ulong), ('mask', ctypes.c_ulong)]
# The struct the calls hand the kernel lives in memory shared with a second process, which
# flips its handler between SIG_DFL and SIG_IGN as fast as it can.
shared = mmap.mmap(-1, 4096)
act, old = Act.from_buffer(shared), Act()
act.handler = 1
assert libc.syscall(NR, 1, ctypes.byref(act), None, 7) == -1, 'a bad sigset size is refused'
flipper = os.fork()
if flipper == 0:
    handler = ctypes.c_ulong.from_buffer(shared)
    while True:
        handler.value = 1
        handler.value = 0
seen = set()
while len(seen) < 2:
    seen.add(act.handler)
took = []
# Until each has been taken a few times (on a busy machine the flipper may share a core).
while len(took) < 5000 and min(took.count('ignore'), took.count('default')) < 20:
    assert libc.syscall(NR, 1, ctypes.byref(act), None, 8) == 0
    assert libc.syscall(NR, 1, None, ctypes.byref(old), 8) == 0
    took.append('ignore' if old.handler == 1 else 'default')
os.kill(flipper, 9)
os.waitpid(flipper, 0)
print(' '.join(took), flush=True)
"#;
    let (mut child, took) = python_and_its_first_line(script);
    let pid = child.id();
    child.wait().unwrap();
    hupwatch.wait_for("its exit", |e| is(e, "exit", pid));
    let took: Vec<&str> = took.split_whitespace().collect();
    assert!(
        took.contains(&"ignore") && took.contains(&"default"),
        "the flipping process never raced in {} calls",
        took.len()
    );
    // From the exec into python on: a launcher before it (pyenv's shim is a shell) sets
    // dispositions of its own.
    let events = hupwatch.events_of(pid);
    let python = events
        .iter()
        .rposition(|e| e["event"] == "exec")
        .unwrap_or(0);
    let reported: Vec<String> = events[python..]
        .iter()
        .filter(|e| e["event"] == "sigaction" && e["signal"] == 1)
        .map(|e| e["disposition"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(reported, took, "reports differ from what the kernel took");
    hupwatch.stop();
}

#[test]
fn a_sighup_handler_catches_the_hangup_and_the_process_lives_on() {
    let hupwatch = watch_my_children(&[]);
    let script = "import signal, time\n\
                  signal.signal(signal.SIGHUP, lambda *_: None)\n\
                  print('ready', flush=True)\n\
                  time.sleep(30)\n";
    let (mut child, ready) = python_and_its_first_line(script);
    let pid = child.id();
    let sigaction = hupwatch.wait_for("sigaction installing a handler", |e| {
        is(e, "sigaction", pid) && e["signal"] == 1 && e["disposition"] == "handler"
    });
    assert_eq!(sigaction["signal_name"], "SIGHUP");
    assert_eq!(ready.trim(), "ready");

    kill(pid, libc::SIGHUP);
    let signal = hupwatch.wait_for("SIGHUP", |e| is(e, "signal", pid) && e["signal"] == 1);
    assert_eq!(signal["result"], "delivered");
    let deliver = hupwatch.wait_for("delivery", |e| {
        is(e, "signal_deliver", pid) && e["signal"] == 1
    });
    assert_eq!(deliver["disposition"], "handler");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        alive(&mut child),
        "the handler returns and python sleeps on"
    );
    assert!(!hupwatch.events_of(pid).iter().any(|e| e["event"] == "exit"));
    child.kill().unwrap();
    child.wait().unwrap();
    hupwatch.stop();
}

/// pthread_kill(3) and tgkill(2) aim at one thread; the hangup is still the process's.
#[test]
fn a_sighup_sent_to_one_thread_is_the_process_s() {
    let hupwatch = watch_my_children(&[]);
    let script = "import signal, threading, time\n\
                  signal.signal(signal.SIGHUP, lambda *_: None)\n\
                  def worker():\n    print(threading.get_native_id(), flush=True)\n    time.sleep(30)\n\
                  threading.Thread(target=worker, daemon=True).start()\n\
                  time.sleep(30)\n";
    let (mut child, line) = python_and_its_first_line(script);
    let pid = child.id();
    let worker: i32 = line.trim().parse().expect("the worker's thread id");
    assert_ne!(worker as u32, pid, "a thread other than the main one");
    // SAFETY: tgkill(2) with plain integers.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid as i32, worker, libc::SIGHUP) };
    assert_eq!(sent, 0, "tgkill: {}", std::io::Error::last_os_error());
    let signal = hupwatch.wait_for("SIGHUP", |e| is(e, "signal", pid) && e["signal"] == 1);
    assert_eq!(signal["result"], "delivered");
    assert_eq!(signal["group"], false, "sent to one thread");
    assert_eq!(signal["sender_pid"], std::process::id());
    let deliver = hupwatch.wait_for("delivery", |e| {
        is(e, "signal_deliver", pid) && e["signal"] == 1
    });
    assert_eq!(deliver["disposition"], "handler");
    assert!(
        !hupwatch
            .events_of(worker as u32)
            .iter()
            .any(|e| e["event"] == "signal"),
        "reported under the thread's id"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn tiocnotty_gives_up_the_controlling_terminal() {
    let hupwatch = watch_my_children(&[]);
    let pty = Pty::open();
    // The session leader giving up its tty would SIGHUP its own group: ignore that here.
    let script = "import fcntl, signal, termios\n\
                  signal.signal(signal.SIGHUP, signal.SIG_IGN)\n\
                  fcntl.ioctl(0, termios.TIOCNOTTY)\n";
    let mut child = pty.spawn(Command::new("python3").args(["-c", script]));
    let pid = child.id();
    let event = hupwatch.wait_for("detach_tty", |e| is(e, "detach_tty", pid));
    assert_eq!(event["tty"], pty.name.as_str());
    assert_eq!(event["sid"], pid);
    assert_eq!(event["fd"], 0);
    assert!(child.wait().unwrap().success());
    hupwatch.stop();
}

#[test]
fn pdeathsig_is_reported_with_its_signal() {
    let hupwatch = watch_my_children(&[]);
    let script = "import ctypes; ctypes.CDLL(None).prctl(1, 9)";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .spawn()
        .unwrap();
    let pid = child.id();
    let event = hupwatch.wait_for("pdeathsig", |e| is(e, "pdeathsig", pid));
    assert_eq!(event["signal"], 9);
    assert_eq!(event["signal_name"], "SIGKILL");
    assert!(child.wait().unwrap().success());
    hupwatch.stop();
}

/// A python process touches 256 MiB: its rss events and its exit's peak say at least
/// that, and its swap is a number, not null.
fn touches_256_mib(hupwatch: &Hupwatch) {
    // bytes * n fills every page, so all of it is resident.
    let script = "import time\nblock = b'x' * (256 << 20)\ntime.sleep(2)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .spawn()
        .unwrap();
    let pid = child.id();
    let wanted = 256u64 << 20;
    let rss = hupwatch.wait_for("rss of at least 256 MiB", |e| {
        is(e, "rss", pid) && e["rss_bytes"].as_u64().unwrap() >= wanted
    });
    assert!(rss["peak_rss_bytes"].as_u64().unwrap() >= rss["rss_bytes"].as_u64().unwrap());
    assert!(rss["swap_bytes"].is_u64(), "{rss}");
    assert_eq!(rss["comm"], "python3");
    let exit = hupwatch.wait_for("exit", |e| is(e, "exit", pid));
    assert_eq!(exit["exit_code"], 0);
    assert!(exit["peak_rss_bytes"].as_u64().unwrap() >= wanted, "{exit}");
    child.wait().unwrap();
}

#[test]
fn a_process_that_touches_256_mib_reports_at_least_that_rss_from_the_kernel() {
    let hupwatch = watch_my_children(&["--rss-interval", "200ms"]);
    // rss_stat attaches on every kernel hupwatch is tested on (6.18, and 6.1 and 5.15,
    // where it reads the count the tracepoint passes): the sizes come from its map.
    let stderr = hupwatch.stderr();
    assert!(
        stderr[0].starts_with("hupwatch: ready: 12 programs attached"),
        "{stderr:?}"
    );
    touches_256_mib(&hupwatch);
    let (_, stderr) = hupwatch.finish();
    assert!(stderr.len() <= 2, "a few lines at most: {stderr:?}");
}

#[test]
fn without_rss_stat_the_rss_comes_from_proc_and_one_line_says_so() {
    // Make sure tracefs is mounted before copying from it.
    Hupwatch::start(&["--pid", "1"]).stop();
    let dir = scratch_dir("tracefs-rss");
    tracefs_without(&dir, "kmem/rss_stat");
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::start_with_env(
        &["--pid", &me, "--rss-interval", "200ms"],
        &[("HUPWATCH_TRACEFS", dir.to_str().unwrap())],
    );
    let stderr = hupwatch.stderr();
    assert_eq!(stderr.len(), 2, "{stderr:?}");
    assert!(
        stderr[0].starts_with("hupwatch: warning: tracepoint kmem/rss_stat does not exist")
            && stderr[0].ends_with(
                "RSS and swap are read from /proc every --rss-interval instead (the rest keeps working)"
            ),
        "{stderr:?}"
    );
    assert!(stderr[1].starts_with("hupwatch: ready: 11 programs attached"));
    touches_256_mib(&hupwatch);
    hupwatch.stop();
}

#[test]
fn fork_and_exec_children_of_a_matched_process_are_tracked() {
    let dir = scratch_dir("chain");
    let name = unique("hwchain");
    let shell = named_program(&dir, &name, "sh");
    let hupwatch = Hupwatch::start(&["--match", &name]);

    // Not a descendant of the matched shell: must not appear.
    let mut bystander = Command::new("sleep").arg("0.3").spawn().unwrap();
    let mut child = Command::new(&shell)
        .args(["-c", "sleep 0.1; exit 3"])
        .spawn()
        .unwrap();
    let shell_pid = child.id();
    assert_eq!(child.wait().unwrap().code(), Some(3));

    let exec = hupwatch.wait_for("exec of the shell", |e| is(e, "exec", shell_pid));
    assert_eq!(exec["comm"], name.as_str());
    assert_eq!(exec["filename"], shell.to_str().unwrap());
    let fork = hupwatch.wait_for("fork", |e| e["event"] == "fork" && e["ppid"] == shell_pid);
    let sleep_pid = fork["pid"].as_u64().unwrap() as u32;
    let exec = hupwatch.wait_for("exec of sleep", |e| is(e, "exec", sleep_pid));
    assert_eq!(exec["comm"], "sleep");
    assert_eq!(exec["ppid"], shell_pid);
    let exit = hupwatch.wait_for("exit of sleep", |e| is(e, "exit", sleep_pid));
    assert_eq!(exit["exit_code"], 0);
    assert_eq!(exit["ppid"], shell_pid);
    let exit = hupwatch.wait_for("exit of the shell", |e| is(e, "exit", shell_pid));
    assert_eq!(exit["exit_code"], 3);

    bystander.wait().unwrap();
    assert_eq!(
        hupwatch.events_of(bystander.id()),
        Vec::<Value>::new(),
        "an unmatched process was traced"
    );
    hupwatch.stop();
}

#[test]
fn a_process_started_before_hupwatch_is_tracked() {
    let dir = scratch_dir("early");
    let name = unique("hwearly");
    let program = named_program(&dir, &name, "sleep");
    let mut early = Command::new(&program).arg("30").spawn().unwrap();
    let pid = early.id();
    // Wait until the exec has happened, so hupwatch's /proc scan sees the new name.
    processes::wait_for_exec(pid, &name);
    let hupwatch = Hupwatch::start(&["--match", &name]);

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signal = hupwatch.wait_for("SIGTERM", |e| is(e, "signal", pid));
    assert_eq!(signal["signal_name"], "SIGTERM");
    assert_eq!(signal["result"], "delivered");
    assert_eq!(signal["comm"], name.as_str());
    let exit = hupwatch.wait_for("exit", |e| is(e, "exit", pid));
    assert_eq!(exit["exit_signal"], 15);
    early.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn a_command_line_match_adopts_the_process_at_exec() {
    let marker = unique("hupwatch-marker-");
    let hupwatch = Hupwatch::start(&["--match-cmdline", &marker]);
    let script = format!("import time; time.sleep(0.5)  # {marker}");
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let pid = child.id();
    // Where python3 is a pyenv shim, the pid execs bash, then pyenv, then python3; any of
    // them may be the one adopted, and the kernel follows the pid from there.
    let exec = hupwatch.wait_for("python3's exec", |e| {
        is(e, "exec", pid) && e["comm"] == "python3"
    });
    assert!(exec["cmdline"].as_str().unwrap().contains(&marker));
    let exit = hupwatch.wait_for("exit", |e| is(e, "exit", pid));
    assert_eq!(exit["exit_code"], 0);
    child.wait().unwrap();
    hupwatch.stop();
}

#[test]
fn tracing_everything_never_traces_hupwatch_itself() {
    let hupwatch = Hupwatch::start(&["--rss-interval", "100ms"]);
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    hupwatch.wait_for("exit of an unrelated process", |e| is(e, "exit", pid));
    // Long enough for several RSS samples, which would include hupwatch's own growth.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let own = hupwatch.events_of(hupwatch.pid());
    assert_eq!(own, Vec::<Value>::new(), "hupwatch reported on itself");
    assert!(
        hupwatch
            .events_of(std::process::id())
            .iter()
            .any(|e| e["event"] == "rss" || e["event"] == "fork"),
        "with no matching flag other processes, like this test, are traced"
    );
    hupwatch.stop();
}

/// `run --user`: once attached, hupwatch is no longer root (here `nobody`, standing for the
/// package's `hupwatch`), keeps only the two capabilities that read /proc, and on this
/// kernel still gets its events (a detach) and its memory readings (the RSS map, read by
/// batch through the map's fd) for a process of root's.
#[test]
fn run_as_its_own_user_it_still_reads_the_ring_and_the_rss_map() {
    support::require_root();
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::run(&["--pid", &me, "--user", "nobody", "--hup-grace", "1s"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", hupwatch.pid())).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534\t")),
        "{status}"
    );
    // A terminal's session leader forks a child that leaves it: a detach.
    let terminal = Pty::open();
    let mut command = Command::new("python3");
    command
        .args([
            "-c",
            "import os, time\n\
             if os.fork() == 0:\n\
             \x20   os.setsid()\n\
             \x20   held = bytearray(b'x' * (48 << 20))\n\
             \x20   print(os.getpid(), flush=True)\n\
             \x20   time.sleep(60)\n\
             else:\n\
             \x20   os.wait()",
        ])
        .stdout(Stdio::piped());
    let mut child = terminal.spawn_keeping_output(&mut command);
    let line = processes::first_line(&mut child);
    let pid: u32 = line.trim().parse().unwrap();
    hupwatch.wait_for("the detach", harness::raised("detached", pid));
    let deadline = std::time::Instant::now() + support::event_timeout();
    loop {
        let sessions = hupwatch.sessions_json();
        let rss = harness::session_of(&sessions, pid).and_then(|p| p["rss_bytes"].as_u64());
        if rss.is_some_and(|rss| rss >= 48 << 20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no RSS reading of 48 MiB for {pid}: {rss:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    kill(pid, libc::SIGKILL);
    let _ = child.wait();
    hupwatch.stop();
}
