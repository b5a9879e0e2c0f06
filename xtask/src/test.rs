//! `cargo xtask test [-- ARGS]`: the checks CI runs, failing at the first broken step.
use std::{path::Path, process::Command};

use anyhow::{Context, Result};

use crate::{setup, sh};

pub fn test(root: &Path, args: &[String]) -> Result<()> {
    setup::setup()?;
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
        for (what, profile) in [("", "dev"), (" (unit tests)", "test")] {
            step(
                root,
                &format!("cargo check --target {target}{what}"),
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
                    .args(["--lib", "--bins", "--profile", profile, "--target", target]),
            )?;
        }
    }
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
    // The integration tests load eBPF programs, which needs root.
    let mut test = sh::as_root("cargo", &[])?;
    // A fresh-clone run under nohup failed two root tests before this.
    sh::default_sighup(&mut test);
    step(root, "cargo test", test.arg("test").args(args))?;
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
    // The benchmark harness, small: it fails when a figure cannot be measured, never on
    // what a figure is (timings on a shared CI machine prove nothing).
    let xtask = std::env::current_exe().context("the xtask binary")?;
    let mut bench = sh::as_root(&xtask, &[])?;
    step(
        root,
        "cargo xtask bench --quick",
        bench.args(["bench", "--quick"]),
    )
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
