//! The hupwatch library's unit tests, cross-built for aarch64, which the arm64 guest runs:
//! the BTF and tracefs parsers against a real arm64 kernel, and the rest of the library's
//! logic on an arm64 CPU. The integration tests (tests/*.rs) cannot run there: they start
//! python3, tmux, util-linux's setsid and setpriv, coreutils' nohup, promtool, which a
//! busybox initramfs does not have.
use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{kernels::binaries, sh};

/// The Rust target the arm64 guest's binaries are built for: static, so the initramfs
/// needs no C library.
pub const TARGET: &str = "aarch64-unknown-linux-musl";

/// Tests of the library that cannot pass in the guest, for what a busybox initramfs lacks
/// rather than for its kernel or CPU, each with why; libtest's `--skip` matches them as
/// substrings of test names, and the guest's line fails when the count skipped differs.
/// None today: all 267 passed in the guest (2026-12-06). The one that failed at first,
/// `notify::target::tests::buses_are_found_by_owner`, looks root up in /etc/passwd, which
/// the initramfs now has (mod.rs) as every system does. None of them starts python3, tmux
/// or another program the guest does not have.
pub const SKIP: &[(&str, &str)] = &[];

/// `--skip NAME` for each of SKIP.
pub fn skip_args() -> Vec<&'static str> {
    SKIP.iter()
        .flat_map(|(name, _)| ["--skip", *name])
        .collect()
}

/// Builds the library's unit tests for aarch64 (`cargo test --no-run --profile release-dist
/// --target aarch64-unknown-linux-musl -p probe-user --lib`) and returns the test binary's
/// path. In dist's profile, so the dependencies dist compiled for aarch64 serve again.
pub fn build(root: &Path) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.args(["test", "--no-run", "--profile", crate::dist::PROFILE])
        .args(["--target", TARGET])
        .args(["-p", "probe-user", "--lib"])
        // Compiler errors still reach the terminal as text.
        .arg("--message-format=json-render-diagnostics")
        .current_dir(root)
        .stdout(Stdio::piped());
    eprintln!("==> {}", sh::display(&cmd));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(&cmd)))?;
    let stdout = child.stdout.take().context("cargo's stdout")?;
    let manifest = root.join("probe-user").join("Cargo.toml");
    let mut found = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some((target, path)) = binaries::test_executable(&message, &manifest)
            && target == binaries::LIB
        {
            found = Some(path);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`{}` failed ({status})", sh::display(&cmd));
    }
    found.with_context(|| format!("`{}` named no test binary", sh::display(&cmd)))
}
