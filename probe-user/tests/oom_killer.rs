//! The OOM killer in force, end to end: a real earlyoom, started here with explicit
//! thresholds and `--dryrun` (it kills nothing), is what `hupwatch sessions --json`'s
//! `memory.killer` names, with its rule and the level of available memory it acts at as
//! /proc/meminfo puts it; `hupwatch run`'s /metrics says the same. And systemd-oomd's
//! configuration and managed units, read from a tree laid out as Debian 12 installs them.
//!
//! earlyoom is Debian 12's package, never installed (its service would start killing on
//! this machine): `cargo xtask setup` unpacks its .deb under target/tools/.
#![cfg(target_os = "linux")]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, metric, sessions_json};
use hupwatch::host::linux_oomd;
use serde_json::Value;
use support::{HUPWATCH, event_timeout};

/// Where `cargo xtask setup` unpacks earlyoom (xtask/src/setup.rs, `earlyoom_dir`).
fn earlyoom_binary() -> Option<PathBuf> {
    // HUPWATCH is TARGET/debug/hupwatch.
    let target = Path::new(HUPWATCH).parent()?.parent()?;
    let binary = target.join("tools/earlyoom-1.7-1+b1/usr/bin/earlyoom");
    if binary.is_file() {
        return Some(binary);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: `cargo xtask setup` unpacks Debian's earlyoom there",
        binary.display()
    );
    eprintln!(
        "note: no {}, so the earlyoom test is skipped (`cargo xtask setup` unpacks it)",
        binary.display()
    );
    None
}

/// One earlyoom at a time: hupwatch names the first it finds, and these tests run in
/// parallel threads.
static ONE_EARLYOOM: Mutex<()> = Mutex::new(());

fn one_earlyoom() -> MutexGuard<'static, ()> {
    ONE_EARLYOOM
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running earlyoom, killed when dropped.
struct Earlyoom(Child);

impl Earlyoom {
    fn start(binary: &Path, args: &[&str]) -> Self {
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("earlyoom starts");
        let pid = child.id();
        let deadline = Instant::now() + event_timeout();
        while fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .as_deref()
            != Some("earlyoom\n")
        {
            assert!(Instant::now() < deadline, "earlyoom {pid} never ran");
            thread::sleep(Duration::from_millis(20));
        }
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Earlyoom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// MemTotal and SwapTotal in bytes, now.
fn ram_and_swap() -> (u64, u64) {
    let text = fs::read_to_string("/proc/meminfo").unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("/proc/meminfo has {name}"))
    };
    (field("MemTotal"), field("SwapTotal"))
}

fn percent_of(total: u64, percent: f64) -> u64 {
    (total as f64 * percent / 100.0).round() as u64
}

/// `-m 1 -s 1`: it would act only with 1% of RAM available and 1% of swap free, and with
/// `--dryrun` it would kill nobody even then.
#[test]
fn sessions_names_a_running_earlyoom_with_its_thresholds() {
    let Some(binary) = earlyoom_binary() else {
        return;
    };
    let _one = one_earlyoom();
    let earlyoom = Earlyoom::start(&binary, &["-m", "1", "-s", "1", "-r", "0", "--dryrun"]);
    let doc = sessions_json(&[]);
    assert!(doc["source"].is_null(), "a one-shot look, not a daemon's");
    let memory = &doc["memory"];
    let killer = &memory["killer"];
    assert_eq!(killer["name"], "earlyoom", "{memory:#}");
    assert_eq!(killer["pid"], earlyoom.pid(), "{memory:#}");
    assert_eq!(killer["dry_run"], true);
    let (ram, swap) = ram_and_swap();
    let rule = if swap == 0 {
        "MemAvailable ≤ 1%; no swap"
    } else {
        "MemAvailable ≤ 1% and SwapFree ≤ 1%"
    };
    assert_eq!(killer["rule"], rule);
    // MemTotal x 1% + SwapTotal x 1%: far below what is available on a test machine, and
    // above the kernel's 0.
    let at = killer["acts_at_available_bytes"].as_u64().expect("a level");
    assert_eq!(
        at,
        percent_of(ram, 1.0) + percent_of(swap, 1.0),
        "{memory:#}"
    );
    let available = memory["available_bytes"].as_u64().unwrap();
    assert!(at > 0 && at < available, "{memory:#}");
    // A one-shot look sees no growth: no time, never a made-up 0.
    assert!(killer["acts_in_seconds"].is_null(), "{memory:#}");
    assert_eq!(memory["other_killers"], serde_json::json!(["kernel"]));
    // Whom it would kill: the highest oom_score first, each read from /proc.
    let victims = killer["would_kill"].as_array().unwrap();
    assert!(!victims.is_empty(), "{memory:#}");
    let scores: Vec<u64> = victims
        .iter()
        .map(|v| v["oom_score"].as_u64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Sizes: -M in KiB; with -m as well, the lower applies (1 MiB here); -s 100 ignores swap.
    drop(earlyoom);
    let sized = Earlyoom::start(
        &binary,
        &["-m", "50", "-M", "1024", "-s", "100", "-r", "0", "--dryrun"],
    );
    let killer = sessions_json(&[])["memory"]["killer"].clone();
    assert_eq!(killer["pid"], sized.pid());
    let rule = if swap == 0 {
        "MemAvailable ≤ 1.0 MiB; no swap"
    } else {
        "MemAvailable ≤ 1.0 MiB and SwapFree ≤ 100%"
    };
    assert_eq!(killer["rule"], rule, "{killer:#}");
    assert_eq!(killer["acts_at_available_bytes"], (1 << 20) + swap);
}

/// The daemon hands the same on: its /metrics rank earlyoom first and give its level.
#[test]
fn run_ranks_a_running_earlyoom_first() {
    let Some(binary) = earlyoom_binary() else {
        return;
    };
    let _one = one_earlyoom();
    let earlyoom = Earlyoom::start(&binary, &["-m", "1", "-s", "1", "-r", "0", "--dryrun"]);
    let hupwatch = Hupwatch::run(&["--source", "proc", "--pid", &earlyoom.pid().to_string()]);
    let (ram, swap) = ram_and_swap();
    let deadline = Instant::now() + event_timeout();
    let metrics = loop {
        let metrics = hupwatch.http_get("/metrics");
        if metric(&metrics, "hupwatch_memory_killer_rank{killer=\"earlyoom\"}").is_some() {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "no killer in /metrics:\n{metrics}"
        );
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        metric(&metrics, "hupwatch_memory_killer_rank{killer=\"earlyoom\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "hupwatch_memory_killer_rank{killer=\"kernel\"}"),
        Some(2.0)
    );
    let at = metric(
        &metrics,
        "hupwatch_memory_killer_acts_at_bytes{killer=\"earlyoom\"}",
    );
    assert_eq!(
        at,
        Some((percent_of(ram, 1.0) + percent_of(swap, 1.0)) as f64)
    );
    let doc: Value = hupwatch.sessions_json();
    assert_eq!(doc["memory"]["killer"]["name"], "earlyoom");
    hupwatch.stop();
}

/// Debian 12's systemd-oomd package, laid out under a temporary root: its oomd.conf (every
/// line a comment), its drop-in setting the pressure duration to 20 s, -.slice managed by
/// swap and user@.service by pressure at 50%; then an administrator's drop-ins in /etc
/// that lower the swap limit and take the pressure rule off user@.service.
#[test]
fn systemd_oomd_configuration_from_a_root_dir() {
    let root = support::scratch_dir("oomd-root");
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write(
        "etc/systemd/oomd.conf",
        "# See oomd.conf(5) for details\n\n[OOM]\n#SwapUsedLimit=90%\n#DefaultMemoryPressureLimit=60%\n#DefaultMemoryPressureDurationSec=30s\n",
    );
    write(
        "usr/lib/systemd/oomd.conf.d/10-oomd-defaults.conf",
        "[OOM]\nDefaultMemoryPressureDurationSec=20s\n",
    );
    write(
        "usr/lib/systemd/system/-.slice.d/10-oomd-root-slice-defaults.conf",
        "[Slice]\nManagedOOMSwap=kill\n",
    );
    write(
        "usr/lib/systemd/system/user@.service.d/10-oomd-user-service-defaults.conf",
        "[Service]\nManagedOOMMemoryPressure=kill\nManagedOOMMemoryPressureLimit=50%\n",
    );
    write(
        "usr/lib/systemd/system/user@.service",
        "[Unit]\nDescription=User Manager for UID %i\n[Service]\nExecStart=/lib/systemd/systemd --user\n",
    );
    write(
        "usr/lib/systemd/system/ssh.service",
        "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    );
    // A user manager's unit named as a system one stays apart from it.
    write(
        "usr/lib/systemd/user/ssh.service.d/oomd.conf",
        "[Service]\nManagedOOMSwap=kill\n",
    );

    let debian = linux_oomd::read(&root);
    assert_eq!(debian.swap_used_limit_percent, 90.0);
    assert_eq!(debian.memory_pressure_limit_percent, 60.0);
    assert_eq!(debian.memory_pressure_duration_seconds, 20.0);
    assert_eq!(debian.swap_units, ["-.slice", "ssh.service (user)"]);
    assert_eq!(debian.pressure_units.len(), 1);
    assert_eq!(debian.pressure_units[0].unit, "user@.service");
    assert_eq!(debian.pressure_units[0].limit_percent, Some(50.0));

    write(
        "etc/systemd/oomd.conf.d/50-local.conf",
        "[OOM]\nSwapUsedLimit=80%\n",
    );
    // The same name in /etc hides the package's drop-in.
    write(
        "etc/systemd/system/user@.service.d/10-oomd-user-service-defaults.conf",
        "[Service]\nManagedOOMMemoryPressure=auto\n",
    );
    let local = linux_oomd::read(&root);
    assert_eq!(local.swap_used_limit_percent, 80.0);
    assert_eq!(local.memory_pressure_duration_seconds, 20.0);
    assert_eq!(local.swap_units, ["-.slice", "ssh.service (user)"]);
    assert!(local.pressure_units.is_empty(), "{local:?}");
    let _ = fs::remove_dir_all(&root);
}
