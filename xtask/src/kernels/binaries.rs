//! Which test binaries run in the guests, with which libtest filters, and where cargo put
//! them.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::sh;

/// What a guest runs of one test target of probe-user.
#[derive(Clone, Copy)]
pub struct GuestTests {
    /// What the guest's logs and lines call it: `lib` for the library's unit tests, else
    /// the integration test's target name (its file name under tests/).
    pub target: &'static str,
    pub filter: Filter,
}

/// The name GUEST_TESTS gives the library's unit tests, whatever the library is called.
pub const LIB: &str = "lib";

#[derive(Clone, Copy)]
pub enum Filter {
    /// Only the tests whose names contain this: the rest of the binary does not depend on
    /// the kernel, so running it again in a guest would prove nothing.
    Only(&'static str),
    /// All tests but those whose names contain these (libtest's `--skip` matches
    /// substrings): tests that are host only, counted as "not run (host only)".
    Skip(&'static [&'static str]),
    /// Only the `#[ignore]`d tests, one at a time, their output shown: the guard guest's
    /// (each fills the guest's memory, and prints what the killers did).
    Ignored,
}

impl Filter {
    pub fn args(self) -> Vec<&'static str> {
        match self {
            Filter::Only(name) => vec![name],
            Filter::Skip(names) => names.iter().flat_map(|name| ["--skip", *name]).collect(),
            Filter::Ignored => vec!["--ignored", "--nocapture"],
        }
    }

    /// libtest's threads, where the filter decides them.
    pub fn threads(self) -> Option<u32> {
        match self {
            Filter::Ignored => Some(1),
            Filter::Only(_) | Filter::Skip(_) => None,
        }
    }
}

/// The tests that read the running kernel: the root eBPF integration tests and the unit
/// tests that check this kernel's BTF. `prometheus` and `reap` also need root but test
/// hupwatch's own logic, not the kernel's, and stay on the host.
pub const GUEST_TESTS: &[GuestTests] = &[
    GuestTests {
        target: LIB,
        filter: Filter::Only("this_kernels"),
    },
    GuestTests {
        target: "ebpf_probes",
        filter: Filter::Skip(&[]),
    },
    GuestTests {
        target: "ebpf_faults",
        // 10,000 processes take about 7 minutes under qemu's emulation (TCG); the host
        // runs it.
        filter: Filter::Skip(&["ten_thousand_processes_churned"]),
    },
    GuestTests {
        target: "verdicts",
        // Under emulation its hangup exit was not recorded in 2 of the last 3 fresh-clone
        // runs on 6.1 (cause not found); the programs it exercises (signal_generate and
        // exit on a pty hang-up) are tested in the guests by ebpf_probes'
        // a_terminal_that_hangs_up_kills_its_session_leader. The host runs it.
        filter: Filter::Skip(&["a_shell_that_exits_on_hangup"]),
    },
    GuestTests {
        target: "tracked_pids",
        filter: Filter::Skip(&[]),
    },
    GuestTests {
        // Stops (signal_deliver of SIGSTOP), SIGCONT, exits left unreaped, CPU time.
        target: "field_verdicts",
        filter: Filter::Skip(&[]),
    },
    GuestTests {
        // The RSS map's batch read (BPF_MAP_LOOKUP_BATCH), against aya's entry walk.
        target: "rss_batch",
        filter: Filter::Skip(&[]),
    },
    GuestTests {
        // `hupwatch selftest` as a user runs it: eBPF as root, polling as nobody, and its
        // test processes ended when it is interrupted or killed.
        target: "selftest",
        filter: Filter::Skip(&[]),
    },
];

/// The guard guest's tests (the guard against the real OOM killers): ignored on the host,
/// whose memory they would fill; run in a guest of their own with little memory.
pub const GUARD_TESTS: GuestTests = GuestTests {
    target: "oom_guard",
    filter: Filter::Ignored,
};

/// One test binary to run in a guest.
pub struct TestBinary {
    pub tests: GuestTests,
    pub path: PathBuf,
}

/// What `cargo test --no-run` built for the guests.
pub struct Built {
    /// In GUEST_TESTS's order.
    pub tests: Vec<TestBinary>,
    /// GUARD_TESTS's binary.
    pub guard: TestBinary,
    /// probe-user's programs (hupwatch), which the tests start from the path cargo gave
    /// them at build time (`CARGO_BIN_EXE_hupwatch`).
    pub programs: Vec<PathBuf>,
}

/// Builds the tests (`cargo test --no-run`, as the caller: after the host's `cargo test`
/// this only checks that everything is fresh) and returns the binaries of GUEST_TESTS.
/// The same command line as the host step's build, so cargo picks the same artifacts
/// rather than building another set with differently unified features.
pub fn build(root: &Path) -> Result<Built> {
    eprintln!("==> cargo test --no-run (the kernel matrix's test binaries)");
    let mut cmd = Command::new("cargo");
    // json-render-diagnostics: compiler errors still reach the terminal as text.
    cmd.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .current_dir(root)
    .stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(&cmd)))?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let manifest = root.join("probe-user").join("Cargo.toml");
    let mut found: Vec<TestBinary> = Vec::new();
    let mut programs = Vec::new();
    let mut guard = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(program) = program_executable(&message, &manifest) {
            programs.push(program);
        }
        if let Some((target, path)) = test_executable(&message, &manifest)
            && target == GUARD_TESTS.target
        {
            guard = Some(TestBinary {
                tests: GUARD_TESTS,
                path,
            });
        } else if let Some((target, path)) = test_executable(&message, &manifest)
            && let Some(tests) = GUEST_TESTS.iter().find(|t| t.target == target)
            && !found.iter().any(|b| b.tests.target == target)
        {
            found.push(TestBinary {
                tests: *tests,
                path,
            });
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`{}` failed ({status})", sh::display(&cmd));
    }
    let mut missing: Vec<&str> = GUEST_TESTS
        .iter()
        .map(|t| t.target)
        .filter(|target| !found.iter().any(|b| b.tests.target == *target))
        .collect();
    if guard.is_none() {
        missing.push(GUARD_TESTS.target);
    }
    if !missing.is_empty() {
        // A renamed or removed test target: better to say so than to test less, quietly.
        bail!(
            "cargo test --no-run built no test binary for {}: update GUEST_TESTS or GUARD_TESTS in xtask/src/kernels/binaries.rs",
            missing.join(", ")
        );
    }
    let guard = guard.context("the guard's test binary")?;
    found.sort_by_key(|b| GUEST_TESTS.iter().position(|t| t.target == b.tests.target));
    Ok(Built {
        tests: found,
        guard,
        programs,
    })
}

/// The executable of a program (a `bin` target built for use, not for its unit tests) of
/// the package at `manifest`, from one of cargo's `compiler-artifact` messages.
fn program_executable(message: &Value, manifest: &Path) -> Option<PathBuf> {
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != false {
        return None;
    }
    if Path::new(message["manifest_path"].as_str()?) != manifest {
        return None;
    }
    Some(PathBuf::from(message["executable"].as_str()?))
}

/// The target name and executable of a test binary of the package at `manifest`, from one
/// of cargo's `compiler-artifact` messages.
pub fn test_executable(message: &Value, manifest: &Path) -> Option<(String, PathBuf)> {
    if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
        return None;
    }
    if Path::new(message["manifest_path"].as_str()?) != manifest {
        return None;
    }
    let kinds = message["target"]["kind"].as_array()?;
    let executable = PathBuf::from(message["executable"].as_str()?);
    // The library's unit tests and the integration tests ("test"), not the hupwatch
    // binary's unit tests ("bin").
    if kinds.iter().any(|kind| kind == "lib") {
        return Some((LIB.to_owned(), executable));
    }
    if !kinds.iter().any(|kind| kind == "test") {
        return None;
    }
    let name = message["target"]["name"].as_str()?.to_owned();
    Some((name, executable))
}
