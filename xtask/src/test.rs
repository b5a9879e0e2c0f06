//! `cargo xtask test [-- ARGS]`: the checks CI runs, failing at the first broken step; the
//! host's `cargo test` and the kernel matrix (the kernel-dependent tests again in qemu
//! guests of other kernels, see kernels/) count as one step, which fails only once every
//! kernel has its line. ARGS go to the host's `cargo test` only; the guests run their
//! fixed selection.
//! `cargo xtask test --kernel VMLINUZ`: only the kernel matrix's tests, on that kernel.
//! `cargo xtask test --guard-only`: only the kernel matrix's guard guest.
use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::{
    dist, install,
    kernels::{self, Kernels, libtest},
    setup, sh,
};

pub struct Options {
    /// For `cargo test` (the host's tests).
    pub args: Vec<String>,
    /// Only the kernel matrix, on this vmlinuz.
    pub kernel: Option<PathBuf>,
    /// Only the kernel matrix's guard guest.
    pub guard_only: bool,
    /// Outside CI, a kernel the matrix cannot run does not fail the run.
    pub skip_missing_kernels: bool,
}

pub fn test(root: &Path, options: Options) -> Result<()> {
    let Options {
        args,
        kernel,
        guard_only,
        skip_missing_kernels,
    } = options;
    kernels::check_options(skip_missing_kernels)?;
    setup::setup_for_tests()?;
    if let Some(kernel) = kernel {
        if !args.is_empty() {
            bail!("--kernel runs the kernel matrix's own test selection and takes no ARGS");
        }
        let lines = kernels::run(root, Kernels::Only(kernel), skip_missing_kernels)?;
        return kernels::conclude(&lines);
    }
    if guard_only {
        if !args.is_empty() {
            bail!("--guard-only runs the guard guest's own tests and takes no ARGS");
        }
        let lines = kernels::run(root, Kernels::GuardOnly, skip_missing_kernels)?;
        return kernels::conclude(&lines);
    }
    step(
        root,
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        root,
        "cargo clippy",
        cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]),
    )?;
    // Everything but the eBPF side must build for macOS, where DTrace is the source, and
    // without warnings there too: nothing else compiles the macOS-only code. The unit
    // tests are checked as well (`--profile test`); the integration tests are Linux's.
    for target in setup::MACOS_TARGETS {
        // The test profile checks the library and binaries together with their unit
        // tests, so one pass per target covers both (dist links the release binary too).
        step(
            root,
            &format!("cargo check --target {target} (with unit tests)"),
            cargo()
                .env("RUSTFLAGS", "-D warnings")
                .args([
                    "check",
                    "-p",
                    "probe-common",
                    "-p",
                    "probe-user",
                    "-p",
                    "xtask",
                ])
                .args(["--lib", "--bins", "--profile", "test", "--target", target]),
        )?;
    }
    // The release artifacts, built once: the arm64 guest runs their aarch64 binary and the
    // install step installs their amd64 .deb and unpacks the x86_64 tarball. dist also
    // links the universal macOS binary and fails unless its Mach-O checks, the arm64
    // signature's page hashes, the plists' binary path and the Homebrew formula (ruby -c,
    // every installed path in the tarball) pass: all a Linux machine can check of them.
    eprintln!("==> cargo xtask dist");
    let artifacts = dist::dist(root).context("step `cargo xtask dist` failed")?;
    if !sh::is_root() {
        // Build as the caller so that root, below, only runs the tests and target/ keeps
        // its owner. Arguments after `--` are for the test binaries, not for the build.
        let build_args = args.split(|arg| arg == "--").next().unwrap_or_default();
        step(
            root,
            "cargo test --no-run",
            cargo().args(["test", "--no-run"]).args(build_args),
        )?;
    }
    // A failure of the host's tests is reported with the guests' results, after them: the
    // kernel matrix runs in any case (after the host's tests, whose build it reuses).
    let mut host_counts = None;
    let host_outcome = host_tests(root, &args, &mut host_counts);
    let mut lines = vec![kernels::host_line(host_counts, &host_outcome)];
    lines.extend(
        kernels::run(root, Kernels::Matrix, skip_missing_kernels)
            .context("the kernel matrix failed")?,
    );
    // The arm64 row: dist's aarch64 binary and the library's tests, built for aarch64 in
    // dist's profile, in a guest of Debian 12's arm64 kernel.
    let arm64_tests = kernels::arm64::lib_tests::build(root)
        .context("building the library's unit tests for aarch64")?;
    lines.push(kernels::arm64::run_arm64(
        root,
        artifacts.binary(dist::AARCH64),
        Some(&arm64_tests),
        skip_missing_kernels,
    ));
    kernels::conclude(&lines)?;
    eprintln!("==> install the release artifacts as a user would");
    let mut install = sh::as_root(&std::env::current_exe().context("the xtask binary")?, &[])?;
    if sh::is_root() {
        install::test(root, &artifacts)?;
    } else {
        step(root, "install test (as root)", install.arg("install-test"))?;
    }
    let dashboards = root.join("dashboards");
    step(
        &dashboards,
        "promtool check rules",
        Command::new("promtool").args(["check", "rules", "alerts.yml"]),
    )?;
    step(
        &dashboards,
        "promtool test rules",
        Command::new("promtool").args(["test", "rules", "alerts.test.yml"]),
    )?;
    // The fleet's configuration files, each by its own tool. --syntax-only: they name
    // files (CA, passwords, rules) where an installed server keeps them.
    let fleet = root.join("deploy").join("fleet");
    for (title, tool, args) in [
        (
            "promtool check config (fleet)",
            "promtool",
            &["check", "config", "--syntax-only", "prometheus.yml"][..],
        ),
        (
            "promtool check config --agent (fleet)",
            "promtool",
            &[
                "check",
                "config",
                "--agent",
                "--syntax-only",
                "prometheus-agent.yml",
            ][..],
        ),
        (
            "amtool check-config (fleet)",
            "amtool",
            &["check-config", "alertmanager.yml"][..],
        ),
    ] {
        step(&fleet, title, Command::new(tool).args(args))?;
    }
    unit_exposure(root)?;
    // The benchmark harness, small: it fails when a figure cannot be measured, never on
    // what a figure is (timings on a shared CI machine prove nothing).
    let xtask = std::env::current_exe().context("the xtask binary")?;
    let mut bench = sh::as_root(&xtask, &[])?;
    // Its scale section counts children that set SIG_IGN themselves: under nohup they
    // would inherit it, and an inherited SIG_IGN raises nothing (a fresh-clone run under
    // nohup failed the section so).
    sh::default_sighup(&mut bench);
    bench.args(["bench", "--quick"]);
    // dist's static x86_64 binary: the same code, already built (a second release build
    // cost minutes of the run); the quick run checks that every figure is measured, not
    // what they are.
    if cfg!(target_arch = "x86_64") {
        bench.arg("--hupwatch").arg(artifacts.binary(dist::X86_64));
    }
    step(root, "cargo xtask bench --quick", &mut bench)?;
    // The ablation builds edit probe-ebpf's sources: each edit must still find its text.
    step(
        root,
        "bench/ablation/parts.py --check",
        Command::new("python3").args(["bench/ablation/parts.py", "--check"]),
    )
}

/// The units' exposure as `systemd-analyze security` rates it (0 best, 10 worst), printed
/// for the record and held under a ceiling: hardening must not slip unnoticed. What keeps
/// them from lower is in docs/service.md.
fn unit_exposure(root: &Path) -> Result<()> {
    eprintln!("==> systemd-analyze security (the units' exposure)");
    for (unit, ceiling) in [("hupwatch.service", 3.1), ("hupwatch-reap.service", 3.5)] {
        let path = root.join("deploy").join(unit);
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .context("systemd-analyze runs (cargo xtask setup installs systemd)")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let (line, level) = exposure(&text)
            .with_context(|| format!("systemd-analyze said no exposure for {unit}: {text}"))?;
        eprintln!("{line}");
        if level > ceiling {
            bail!("{unit}'s exposure {level} is above its ceiling {ceiling}");
        }
    }
    Ok(())
}

/// The "Overall exposure level" line of `systemd-analyze security` and its figure.
fn exposure(text: &str) -> Option<(&str, f64)> {
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let level = line
        .split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((line.trim_start_matches(['→', ' ']), level))
}

/// `cargo test ARGS` as root (the integration tests load eBPF programs), its output passed
/// through as it comes and its `test result:` lines summed into `counts` for the host
/// kernel's line.
fn host_tests(root: &Path, args: &[String], counts: &mut Option<libtest::Counts>) -> Result<()> {
    let mut test = sh::as_root("cargo", &[])?;
    // A fresh-clone run under nohup failed two root tests before this.
    sh::default_sighup(&mut test);
    test.arg("test")
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped());
    eprintln!("==> cargo test");
    let mut child = test
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(&test)))?;
    let mut stdout = BufReader::new(child.stdout.take().context("cargo test's stdout")?);
    let mut line = Vec::new();
    // Bytes, not str: a test may print anything.
    while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let _ = std::io::stdout().write_all(&line);
        if let Some(result) = libtest::result_line(&String::from_utf8_lossy(&line)) {
            counts
                .get_or_insert_with(libtest::Counts::default)
                .add(result);
        }
        line.clear();
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        bail!(
            "step `cargo test` failed: `{}` ({status})",
            sh::display(&test)
        );
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new("cargo")
}

fn step(dir: &Path, title: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("==> {title}");
    // From the root, so that cargo acts on the workspace's default members rather than on
    // whichever package the caller's directory is in.
    sh::run(cmd.current_dir(dir)).with_context(|| format!("step `{title}` failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_overall_exposure() {
        let said = "✗ UMask= Files created by service are world-readable by default 0.1\n\
                    → Overall exposure level for hupwatch-reap.service: 3.2 OK 🙂\n";
        assert_eq!(
            exposure(said),
            Some((
                "Overall exposure level for hupwatch-reap.service: 3.2 OK 🙂",
                3.2
            ))
        );
        assert_eq!(exposure("nothing here\n"), None);
    }
}
