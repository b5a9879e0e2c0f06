//! What every integration test may need: the binary under test, how long to wait, whether
//! we are root, a scratch directory and a unique name. A test declares it with
//! `mod support;`.
//!
//! The rest of the support is split by job, one file each beside this one, and a test
//! declares only the ones it uses, so that each test binary compiles only those:
//!
//! - `harness.rs`: runs `hupwatch trace --json` or `hupwatch run` (as root, or as another
//!   user) and collects what it prints; `hupwatch sessions`. Needs `processes`.
//! - `processes.rs`: the processes a test starts and looks at: links under names unique
//!   to the test, orphans, commands run as another user, /proc reads.
//! - `pty.rs`: a pseudo-terminal for a child, hung up by closing it.
//! - `fleet.rs` (tests/fleet.rs) and `prometheus.rs` (tests/prometheus.rs): the servers
//!   those two tests run.
//!
//! Declared, for example, as
//!
//! ```ignore
//! mod support;
//! #[path = "support/harness.rs"]
//! mod harness;
//! #[path = "support/processes.rs"]
//! mod processes;
//! ```
//!
//! The modules refer to this one as `crate::support` and to each other by their names
//! (`crate::processes`).

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::{net::TcpListener, path::PathBuf, time::Duration};

pub const HUPWATCH: &str = env!("CARGO_BIN_EXE_hupwatch");

/// How long a test waits for an event it expects: 20 s, generous as CI machines are
/// shared, and stretched like the asserted bounds in the kernel matrix's guests, where a
/// starved vCPU took over 20 s to touch 256 MiB. Only a failing test waits this long.
pub fn event_timeout() -> Duration {
    scaled(Duration::from_secs(20))
}

/// A time bound the test asserts, stretched by `HUPWATCH_TEST_SLOWDOWN` (a factor, 1
/// unless set). The kernel matrix sets it in its qemu guests, which emulate the CPU
/// (TCG) many times slower than the host; the host's run asserts the bounds as written.
pub fn scaled(bound: Duration) -> Duration {
    let factor = std::env::var("HUPWATCH_TEST_SLOWDOWN")
        .ok()
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|f| *f >= 1.0)
        .unwrap_or(1.0);
    bound.mul_f64(factor)
}

/// The bound for a verdict after what caused it: 4 s, the grace period plus 2 s in
/// tests/verdicts.rs (`--hup-grace 2s`), and in tests/proc_source.rs (`--hup-grace 1s`)
/// the grace period, a poll and slack (stretched only in the kernel matrix's emulated
/// guests).
pub fn verdict_deadline() -> Duration {
    scaled(Duration::from_secs(4))
}

/// These tests load eBPF programs. They never skip: without root or BPF they fail, saying
/// why, so a green run always means the kernel side was exercised.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the eBPF integration tests load kernel programs and need root; run them with `cargo xtask test`, which uses sudo"
    );
}

/// A private directory for one test's symlinks and files.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hupwatch-it-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH; `cargo xtask setup` installs it"))
}

/// A short name unique to this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid as i32, signal) };
}

/// A loopback port nothing listens on (free when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// MemTotal + SwapTotal and MemAvailable + SwapFree, as /proc/meminfo says them now.
pub fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (
        field("MemTotal") + field("SwapTotal"),
        field("MemAvailable") + field("SwapFree"),
    )
}
