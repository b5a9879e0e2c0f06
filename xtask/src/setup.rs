//! `cargo xtask setup`: what building the eBPF programs needs on a fresh Debian 12 machine.
//! Every step checks first, so on a machine that is already set up it takes well under a
//! second and changes nothing.
use std::{collections::HashSet, process::Command};

use anyhow::{Context, Result, bail};

use crate::sh;

/// bpf-linker's llvm-22 feature links against these (LLVM, Polly and LLVM's compression libs).
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// The integration tests start their subjects with these; (tool, Debian package).
const TEST_TOOLS: &[(&str, &str)] = &[
    ("python3", "python3"),
    ("setsid", "util-linux"),
    ("nohup", "coreutils"),
    ("setpriv", "util-linux"),
    ("tmux", "tmux"),
    // promtool checks and unit-tests the alert rules in dashboards/; the server scrapes a
    // running hupwatch in tests/prometheus.rs.
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    // tests/deploy.rs checks the systemd unit with systemd's own analyzer.
    ("systemd-analyze", "systemd"),
    // cargo xtask bench: the comparison probe, the kernel's per-program statistics, and a
    // terminal for the setsid latency.
    ("bpftrace", "bpftrace"),
    ("bpftool", "bpftool"),
    ("script", "bsdutils"),
];
const BPF_LINKER_VERSION: &str = "0.13.0";
/// `cargo xtask test` type-checks the user-space crates for macOS with these.
pub const MACOS_TARGETS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];

pub fn setup() -> Result<()> {
    llvm_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    macos_targets()?;
    test_tools()
}

/// The standard library for macOS, so `cargo check --target` works here (no linking).
fn macos_targets() -> Result<()> {
    let installed = sh::probe(Command::new("rustup").args(["target", "list", "--installed"]))
        .unwrap_or_default();
    let missing: Vec<&str> = MACOS_TARGETS
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: macOS targets ok");
        return Ok(());
    }
    eprintln!("setup: adding rust targets {}", missing.join(" "));
    sh::run(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
}

fn llvm_packages() -> Result<()> {
    let installed = installed_packages(LLVM_PACKAGES)?;
    let missing: Vec<&str> = LLVM_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(*p))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: llvm packages ok");
        return Ok(());
    }
    apt_install(&missing)
}

/// The packages among `packages` that dpkg reports as installed.
fn installed_packages(packages: &[&str]) -> Result<HashSet<String>> {
    if sh::which("dpkg-query").is_none() {
        bail!("dpkg-query not found: setup knows only Debian; install {packages:?} by hand");
    }
    // dpkg-query fails when any package is unknown but still prints the known ones, so
    // its output matters and its exit status does not.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Status}\\n")
        .args(packages)
        .stderr(std::process::Stdio::null())
        .output()
        .context("could not run dpkg-query")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| status.contains("install ok installed"))
        .map(|(name, _)| name.to_owned())
        .collect())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    eprintln!("setup: installing {}", packages.join(" "));
    let noninteractive = [("DEBIAN_FRONTEND", "noninteractive")];
    sh::run(sh::as_root("apt-get", &noninteractive)?.arg("update"))?;
    sh::run(
        sh::as_root("apt-get", &noninteractive)?
            .args(["install", "-y"])
            .args(packages),
    )
}

/// aya-build compiles the eBPF crate with `cargo +nightly -Z build-std`, which needs rust-src.
fn nightly_rust_src() -> Result<()> {
    let components = sh::probe(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match components {
        Some(list) if list.lines().any(|c| c.trim() == "rust-src") => {
            eprintln!("setup: nightly rust-src ok");
            Ok(())
        }
        Some(_) => {
            eprintln!("setup: installing rust-src for nightly");
            sh::run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))
        }
        None => {
            eprintln!("setup: installing nightly toolchain with rust-src");
            sh::run(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
        }
    }
}

fn bpf_linker() -> Result<()> {
    // main has put $CARGO_HOME/bin on PATH, so this also finds an earlier `cargo install`.
    if sh::probe(Command::new("bpf-linker").arg("--version")).is_some() {
        eprintln!("setup: bpf-linker ok");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} (takes a few minutes)");
    let install = |locked: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION]);
        if locked {
            cmd.arg("--locked");
        }
        // Without LLVM_PREFIX the build does not find Debian's LLVM: "unable to find library -lLLVM".
        cmd.args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22");
        cmd
    };
    if sh::run(&mut install(true)).is_ok() {
        return Ok(());
    }
    // --locked builds bpf-linker's tested dependency set; should that set stop building
    // (a yanked or broken crate), a fresh resolution is worth one try.
    eprintln!("setup: retrying bpf-linker without --locked");
    sh::run(&mut install(false))
}

fn test_tools() -> Result<()> {
    let missing: Vec<&str> = TEST_TOOLS
        .iter()
        .filter(|(tool, _)| sh::which(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        eprintln!("setup: test tools ok");
        return Ok(());
    }
    apt_install(&missing)
}
