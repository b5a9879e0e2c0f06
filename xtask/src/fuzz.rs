//! `cargo xtask fuzz [--seconds N]`: runs every cargo-fuzz target of probe-user/fuzz for N
//! seconds each with libFuzzer, from corpora seeded with the project's own fixtures, and
//! fails when one crashes, saying where the crashing input is and how to replay it.
use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::sh;

/// The targets in probe-user/fuzz/Cargo.toml.
pub const TARGETS: [&str; 2] = ["dtrace_parser", "replay_parser"];

pub fn fuzz(root: &Path, seconds: u64) -> Result<()> {
    if seconds == 0 {
        bail!("--seconds must be at least 1, like --seconds 60");
    }
    install_cargo_fuzz()?;
    let crate_dir = root.join("probe-user");
    let fuzz_dir = crate_dir.join("fuzz");
    seed_corpora(root, &fuzz_dir)?;
    let mut crashed = Vec::new();
    let mut summary = Vec::new();
    for target in TARGETS {
        let artifacts = fuzz_dir.join("artifacts").join(target);
        fs::create_dir_all(&artifacts)
            .with_context(|| format!("cannot create {}", artifacts.display()))?;
        let before = files_in(&artifacts);
        let mut cmd = nightly_cargo();
        cmd.args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            // The parsers never need more: anything longer is a stall, not a finding.
            .arg("-timeout=10")
            .current_dir(&crate_dir);
        eprintln!("==> {}", sh::display(&cmd));
        let (success, done) = run_keeping_last_stats(&mut cmd)?;
        let new: Vec<PathBuf> = files_in(&artifacts).difference(&before).cloned().collect();
        summary.push(format!(
            "{target}: {}",
            done.unwrap_or_else(|| "stopped before libFuzzer's statistics (see above)".into())
        ));
        if !success || !new.is_empty() {
            crashed.push((target, success, new));
        }
    }
    eprintln!("==> fuzzing done, {seconds} s per target");
    for line in &summary {
        eprintln!("    {line}");
    }
    if crashed.is_empty() {
        return Ok(());
    }
    for (target, success, inputs) in &crashed {
        if inputs.is_empty() {
            eprintln!(
                "xtask: {target} failed{} without writing an input (see its output above)",
                if *success { "" } else { " to build or run" }
            );
        }
        for input in inputs {
            eprintln!(
                "xtask: {target} crashed or stalled on {}; replay it with `cd probe-user && cargo +nightly fuzz run {target} {}`",
                input.display(),
                input.display()
            );
        }
    }
    bail!(
        "{} of {} fuzz targets found a crash: turn each input into a regression test in its parser's unit tests",
        crashed.len(),
        TARGETS.len()
    )
}

/// `cargo +nightly` with AYA_BUILD_SKIP: the fuzz targets use the parsers, never the
/// kernel programs, so building probe-user for them skips the eBPF object.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").env("AYA_BUILD_SKIP", "1");
    cmd
}

/// cargo-fuzz, installed the first time it is needed.
fn install_cargo_fuzz() -> Result<()> {
    if sh::probe(nightly_cargo().arg("--version")).is_none() {
        bail!(
            "libFuzzer needs the nightly toolchain, which is not installed; `cargo xtask setup` (or `rustup toolchain install nightly`) installs it"
        );
    }
    if let Some(version) = sh::probe(nightly_cargo().args(["fuzz", "--version"])) {
        eprintln!("fuzz: {} ok", version.trim());
        return Ok(());
    }
    eprintln!(
        "fuzz: cargo-fuzz is not installed; installing it with `cargo install cargo-fuzz --locked` (once, a minute or two)"
    );
    sh::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

/// Seeds each target's corpus (probe-user/fuzz/corpus/TARGET, gitignored) from
/// probe-user/tests/fixtures, with the fuzz crate's `seed_corpus` example.
fn seed_corpora(root: &Path, fuzz_dir: &Path) -> Result<()> {
    let mut cmd = nightly_cargo();
    cmd.args(["run", "--quiet", "--example", "seed_corpus", "--"])
        .arg(root.join("probe-user/tests/fixtures"))
        .arg(fuzz_dir.join("corpus"))
        .current_dir(fuzz_dir);
    eprintln!("==> {}", sh::display(&cmd));
    sh::run(&mut cmd)
}

/// Runs `cmd` with its stderr passed through line by line, keeping libFuzzer's last
/// statistics line (`#RUNS DONE ...`, or the last progress line if it stopped early).
/// Returns whether it succeeded and that line.
fn run_keeping_last_stats(cmd: &mut Command) -> Result<(bool, Option<String>)> {
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(cmd)))?;
    let stderr = child.stderr.take().expect("piped stderr");
    let mut last = None;
    for line in BufReader::new(stderr).split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        eprintln!("{line}");
        if line.starts_with('#') && line.contains("exec/s") {
            last = Some(line);
        } else if line.starts_with("Done ") && line.contains(" runs in ") {
            let stats = last.take().unwrap_or_default();
            last = Some(format!("{} ({stats})", line.trim()));
        }
    }
    let status = child.wait()?;
    Ok((status.success(), last))
}

fn files_in(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
