//! One guest: a shell script that runs the test binaries, a qemu guest (virtme-ng) that
//! runs it over the host's root filesystem, and what the binaries left in the run folder.
//!
//! vng always exits 255 (its guest cannot hand back the script's status), so the script
//! writes each binary's output and exit status into the run folder, which vng mounts read
//! and write (`--rwdir`); everything else the guest sees of the host is copy-on-write.
use std::{
    fmt::Write as _,
    fs,
    io::{self, BufRead, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    binaries::{Filter, TestBinary},
    keeper,
    libtest::{self, Counts},
    panic,
    snapshot::Snapshot,
};
use crate::sh;

/// libtest's threads per binary: the guest's CPU count. The tests mostly wait (for events,
/// for timeouts), so one thread wastes the guest; more threads than CPUs make them late.
/// Measured in a 6.1 guest on a 2-core host with another build running: 1 thread 479 s;
/// 2 threads 174 s; 4 threads 320 s, with tests failing on timing (an alert 97 ms late,
/// an RSS slope too low, events that did not arrive).
const TEST_THREADS: u32 = 2;
/// The guest's CPUs and memory. qemu emulates each vCPU on a host thread (TCG: the hosts
/// these run on cannot give a guest KVM), so more vCPUs than the host's 2 cores buy nothing.
/// The guard guest has less memory: see [`Machine::guard`].
const GUEST_CPUS: &str = "2";
const GUEST_MEMORY: &str = "4G";
/// How long one test binary may run in the guest before it is killed, so that one hung
/// binary costs its own result but not the others'.
const BINARY_TIMEOUT: Duration = Duration::from_secs(8 * 60);
/// How long a whole guest may take, boot to power-off, before its qemu is killed.
const GUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The guard guest's memory: 640M gives about 580 MiB of MemTotal and 490 MiB available
/// (6.1, no swap), which python growers at 10 MiB/s fill in under a minute.
const GUARD_MEMORY: &str = "640M";
/// The guard guest's limit, boot to power-off: it took 153 to 233 s in five runs on a
/// 2-core host (its four scenes 142 to 196 s; hupwatch took 6 to 26 s to get ready).
const GUARD_TIMEOUT: Duration = Duration::from_secs(7 * 60);

/// What a guest is booted with beyond its kernel.
pub struct Machine {
    /// qemu's `-m`.
    pub memory: &'static str,
    /// How long it may take, boot to power-off, before its qemu is killed.
    pub timeout: Duration,
    /// Variables exported to its tests besides MIRRORED_VARS.
    pub env: Vec<(&'static str, String)>,
}

impl Machine {
    /// The guests of the kernel matrix's rows.
    pub fn standard() -> Machine {
        Machine {
            memory: GUEST_MEMORY,
            timeout: GUEST_TIMEOUT,
            env: Vec::new(),
        }
    }

    /// The guard guest: little memory, so that growers fill it within a minute and the
    /// OOM killers act (tests/oom_guard.rs).
    pub fn guard(env: Vec<(&'static str, String)>) -> Machine {
        Machine {
            memory: GUARD_MEMORY,
            timeout: GUARD_TIMEOUT,
            env,
        }
    }
}
/// Marks the script's progress lines among the kernel's on the console.
const PROGRESS: &str = "kernel-matrix: ";
/// Variables the guest's tests get as the host's tests do. The guest starts with its own
/// environment (PATH without the host's cargo, pyenv..., TERM=linux); the tests look up
/// their tools on PATH, assert on BTF when CI is set, and count a process with TERM as a
/// terminal's.
const MIRRORED_VARS: &[&str] = &["PATH", "CI", "TERM", "RUST_BACKTRACE", "RUST_LOG"];

/// How much longer the tests' time bounds are in a guest (`HUPWATCH_TEST_SLOWDOWN`): TCG
/// emulates the CPU, and two guest threads on this 2-core machine ran the root tests 3 to
/// 10 times slower than the host; a tmux detach alert came 2.1 s past its 4 s bound. The
/// host's run asserts the bounds as written.
const SLOWDOWN: u32 = 5;

/// What one test binary did in the guest.
pub struct BinaryOutcome {
    pub target: &'static str,
    pub filter: Filter,
    /// Its exit status; None when the guest never wrote it (crashed, or was killed).
    pub status: Option<i32>,
    pub seconds: Option<u64>,
    pub log_path: PathBuf,
    pub log: String,
    pub counts: Option<Counts>,
}

impl BinaryOutcome {
    pub fn passed(&self) -> bool {
        self.status == Some(0) && self.counts.is_some_and(|c| c.failed == 0)
    }

    /// Why it did not pass, in a few words, or None.
    pub fn trouble(&self) -> Option<String> {
        match (self.status, self.counts) {
            _ if self.passed() => None,
            (None, _) => Some("no exit status: the guest crashed or was killed".into()),
            (Some(124), _) => Some(format!(
                "killed after {} s in the guest (BINARY_TIMEOUT)",
                BINARY_TIMEOUT.as_secs()
            )),
            (Some(status @ 129..), None) => Some(format!("killed by signal {}", status - 128)),
            (Some(status), None) => Some(format!("exit status {status} without a test result")),
            (Some(status), Some(counts)) => {
                Some(format!("{} failed (exit status {status})", counts.failed))
            }
        }
    }
}

/// What one guest did.
pub struct GuestRun {
    /// `uname -r` in the guest, when it got that far.
    pub release: Option<String>,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// The limit it had (Machine::timeout).
    pub timeout: Duration,
    /// vng's exit status: 255 normally, whatever happened in the guest.
    pub vng_status: Option<i32>,
    pub console: PathBuf,
    pub binaries: Vec<BinaryOutcome>,
    /// What each kernel panic said, one per boot that ended in one.
    pub panics: Vec<String>,
}

/// Boots `kernel` with `vng` and runs `tests` (of `snapshot`) in it, from the package
/// folder `cwd`; `run_dir` is emptied first and holds the script, the logs and the console.
#[allow(clippy::too_many_arguments)]
pub fn run(
    vng: &Path,
    kernel: &Path,
    name: &str,
    machine: &Machine,
    snapshot: &Snapshot,
    tests: &[&TestBinary],
    cwd: &Path,
    run_dir: &Path,
) -> Result<GuestRun> {
    let _ = fs::remove_dir_all(run_dir);
    fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let script = run_dir.join("run.sh");
    let text = script_text(kernel, snapshot, tests, &machine.env, cwd, run_dir);
    fs::write(&script, text).with_context(|| format!("writing {}", script.display()))?;
    let console = run_dir.join("console.log");

    // As root, like the host's tests: vng runs the guest's commands as the user it runs
    // as. Under coreutils' timeout, which on expiry signals its whole process group: vng,
    // virtme-run and qemu, which share it.
    let mut cmd = sh::as_root("timeout", &[])?;
    cmd.arg("--kill-after=20")
        .arg(machine.timeout.as_secs().to_string())
        .arg(vng)
        .arg("--run")
        .arg(kernel)
        // KVM does not work on these hosts (they are guests themselves): qemu emulates.
        .arg("--disable-kvm")
        // virtiofsd, vng's default way to share the root, is not packaged for Debian 12.
        .arg("--force-9p")
        .args(["-m", machine.memory, "--cpus", GUEST_CPUS])
        // The kernel's console on vng's output, into console.log: panics, the OOM killer,
        // and the script's progress lines (vng's script I/O needs virtio-serial, which
        // neither guest kernel gives it, so the script's output goes to the console).
        .arg("--verbose")
        .arg(format!("--rwdir={}", run_dir.display()))
        .args(["--", "sh"])
        .arg(&script)
        .current_dir(cwd);
    let started = Instant::now();
    let status = boot(cmd, &console, name)?;
    let elapsed = started.elapsed();
    // timeout's status when it had to signal: 124 (TERM sufficed) or 137 (KILL).
    let timed_out = matches!(status.code(), Some(124 | 137)) || elapsed >= machine.timeout;

    let release = fs::read_to_string(run_dir.join("uname"))
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let binaries = tests
        .iter()
        .map(|binary| outcome(binary, run_dir))
        .collect();
    let panics = fs::read_to_string(&console)
        .ok()
        .and_then(|text| panic::summary(&text))
        .into_iter()
        .collect();
    Ok(GuestRun {
        release,
        elapsed,
        timed_out,
        timeout: machine.timeout,
        vng_status: status.code(),
        console,
        binaries,
        panics,
    })
}

/// Runs every test binary of `snapshot` in a guest of `kernel`, like `run`. When the
/// guest's kernel panics before they all finish, it is booted once more for the binaries
/// that had not: a last resort, as the guest holds hupwatch's tracepoints (keeper.rs) to
/// spare its kernel the text patching that TCG's vCPUs raced on. A second panic, or any
/// failure, fails as before; the line names every panic.
pub fn run_all(
    vng: &Path,
    kernel: &Path,
    name: &str,
    snapshot: &Snapshot,
    cwd: &Path,
    run_dir: &Path,
) -> Result<GuestRun> {
    let all: Vec<&TestBinary> = snapshot.tests.iter().collect();
    let machine = Machine::standard();
    let mut first = run(vng, kernel, name, &machine, snapshot, &all, cwd, run_dir)?;
    let unfinished: Vec<&TestBinary> = all
        .iter()
        .zip(&first.binaries)
        .filter(|(_, outcome)| outcome.status.is_none())
        .map(|(binary, _)| *binary)
        .collect();
    if first.panics.is_empty() || first.timed_out || unfinished.is_empty() {
        return Ok(first);
    }
    eprintln!(
        "==> kernel {name}: the guest's kernel panicked ({}); booting it again for {}",
        first.panics.join("; "),
        unfinished
            .iter()
            .map(|binary| binary.tests.target)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let again = run(
        vng,
        kernel,
        name,
        &machine,
        snapshot,
        &unfinished,
        cwd,
        &run_dir.join("after-panic"),
    )?;
    first.elapsed += again.elapsed;
    first.timed_out |= again.timed_out;
    first.release = first.release.or(again.release);
    first.panics.extend(again.panics);
    for outcome in again.binaries {
        if let Some(slot) = first
            .binaries
            .iter_mut()
            .find(|b| b.target == outcome.target)
        {
            *slot = outcome;
        }
    }
    Ok(first)
}

/// Runs `cmd` (vng) to its end, its output (stdout and stderr together, in order) into
/// `console` and the script's progress lines onto ours as they come.
fn boot(mut cmd: Command, console: &Path, name: &str) -> Result<ExitStatus> {
    let mut console_file =
        fs::File::create(console).with_context(|| format!("creating {}", console.display()))?;
    let (reader, writer) = io::pipe().context("a pipe for vng's output")?;
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone().context("a pipe for vng's output")?)
        .stderr(writer);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(&cmd)))?;
    // The Command holds the pipe's writing ends: without dropping them the reading would
    // never see its end.
    drop(cmd);
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let _ = console_file.write_all(&line);
        let text = String::from_utf8_lossy(&line);
        if let Some((_, progress)) = text.split_once(PROGRESS) {
            eprintln!("  [{name}] {}", progress.trim_end());
        }
        line.clear();
    }
    child.wait().context("waiting for vng")
}

fn outcome(binary: &TestBinary, run_dir: &Path) -> BinaryOutcome {
    let target = binary.tests.target;
    let log_path = run_dir.join(format!("{target}.log"));
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    BinaryOutcome {
        target,
        filter: binary.tests.filter,
        status: number_in(&run_dir.join(format!("{target}.rc"))),
        seconds: number_in(&run_dir.join(format!("{target}.secs"))),
        counts: libtest::results(&log),
        log_path,
        log,
    }
}

/// The number the script wrote into `file`, if it did.
fn number_in<T: std::str::FromStr>(file: &Path) -> Option<T> {
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The guest's script. Each binary runs as on CI: without a terminal (vng gives the script
/// ttyS0 as its controlling terminal; `setsid` leaves it behind, and the binary itself is
/// not the new session's leader, so nothing it opens becomes its terminal), stdin from
/// /dev/null, SIGHUP at its default, in the package folder as `cargo test` runs it.
fn script_text(
    kernel: &Path,
    snapshot: &Snapshot,
    tests: &[&TestBinary],
    env: &[(&str, String)],
    cwd: &Path,
    run_dir: &Path,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Written by `cargo xtask test`: the kernel matrix's tests, in a guest of\n\
         # {}. For each binary: NAME.log (its output), NAME.rc (its exit status),\n\
         # NAME.secs (its wall time).",
        kernel.display()
    );
    let _ = writeln!(text, "out={}", quote(&run_dir.to_string_lossy()));
    for name in MIRRORED_VARS {
        match std::env::var(name) {
            Ok(value) => {
                let _ = writeln!(text, "export {name}={}", quote(&value));
            }
            Err(_) => {
                let _ = writeln!(text, "unset {name}");
            }
        }
    }
    if let Some(dir) = python_dir() {
        let _ = writeln!(text, "export PATH={}:\"$PATH\"", quote(&dir));
    }
    let _ = writeln!(text, "export HUPWATCH_TEST_SLOWDOWN={SLOWDOWN}");
    for (name, value) in env {
        let _ = writeln!(text, "export {name}={}", quote(value));
    }
    text.push_str("trap - HUP\n");
    text.push_str("uname -r > \"$out/uname\"\n");
    for (copies, covered) in &snapshot.program_dirs {
        let _ = writeln!(
            text,
            "mount --bind {copies} {covered} || {{ echo \"{PROGRESS}cannot mount {copies}\"; exit 1; }}",
            copies = quote(&copies.to_string_lossy()),
            covered = quote(&covered.to_string_lossy()),
        );
    }
    text.push_str(&keeper::script(PROGRESS));
    let _ = writeln!(text, "cd {} || exit 1", quote(&cwd.to_string_lossy()));
    let _ = writeln!(
        text,
        r#"run() {{
    name=$1
    shift
    echo "{PROGRESS}$name: running"
    start=$(date +%s)
    setsid -w timeout --kill-after=10 {binary_timeout} "$@" </dev/null >"$out/$name.log" 2>&1
    echo $? >"$out/$name.rc"
    echo $(($(date +%s) - start)) >"$out/$name.secs"
    echo "{PROGRESS}$name: exit status $(cat "$out/$name.rc") after $(cat "$out/$name.secs") s"
}}"#,
        binary_timeout = BINARY_TIMEOUT.as_secs(),
    );
    for binary in tests {
        let mut line = format!(
            "run {} {}",
            binary.tests.target,
            quote(&binary.path.to_string_lossy())
        );
        for arg in binary.tests.filter.args() {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let threads = binary.tests.filter.threads().unwrap_or(TEST_THREADS);
        let _ = writeln!(line, " --test-threads={threads}");
        text.push_str(&line);
    }
    text
}

/// The folder of the interpreter `python3` runs, first on the guest's PATH: pyenv
/// puts a shim first on PATH, a bash script that runs several more before python, which
/// takes seconds in an emulated guest. Tests that waited for a python's first output timed
/// out in a 6.1 guest (the host's PATH had pyenv's shims), five of them at once.
fn python_dir() -> Option<String> {
    const WHERE: &str = "import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))";
    let dir = sh::probe(Command::new("python3").args(["-c", WHERE]))?;
    Some(dir.trim().to_owned()).filter(|dir| !dir.is_empty())
}

/// `text` as one sh word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    /// The guard's binary runs its ignored tests one at a time, with its variables; the
    /// others keep TEST_THREADS.
    #[test]
    fn the_guard_guest_runs_its_ignored_tests_one_at_a_time() {
        use super::super::binaries::{GUARD_TESTS, GUEST_TESTS};
        let snapshot = Snapshot {
            dir: PathBuf::from("/s"),
            tests: Vec::new(),
            guard: TestBinary {
                tests: GUARD_TESTS,
                path: PathBuf::from("/s/tests/oom_guard"),
            },
            program_dirs: Vec::new(),
        };
        let other = TestBinary {
            tests: GUEST_TESTS[1],
            path: PathBuf::from("/s/tests/ebpf_probes"),
        };
        let env = [("HUPWATCH_TEST_EARLYOOM", "/t/earlyoom".to_owned())];
        let text = script_text(
            Path::new("/k/vmlinuz"),
            &snapshot,
            &[&snapshot.guard, &other],
            &env,
            Path::new("/w/probe-user"),
            Path::new("/r"),
        );
        assert!(text.contains(
            "run oom_guard '/s/tests/oom_guard' '--ignored' '--nocapture' --test-threads=1\n"
        ));
        assert!(text.contains("run ebpf_probes '/s/tests/ebpf_probes' --test-threads=2\n"));
        assert!(text.contains("export HUPWATCH_TEST_EARLYOOM='/t/earlyoom'\n"));
    }
}
