//! `cargo xtask run [-- ARGS]`: build hupwatch (with its eBPF programs on Linux) and run it
//! as root.
use std::{
    convert::Infallible,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

use crate::{setup, sh};

pub fn run(root: &Path, args: &[String]) -> Result<Infallible> {
    // On macOS hupwatch runs DTrace, which comes with the system: there is no eBPF
    // toolchain to set up (and no apt to set it up with).
    if cfg!(target_os = "linux") {
        setup::setup()?;
    }
    let hupwatch = build_hupwatch(root)?;
    let mut cmd = sh::as_root(&hupwatch, &[])?;
    if args.is_empty() {
        cmd.arg("run");
    } else {
        cmd.args(args);
    }
    // exec rather than wait: hupwatch's exit status becomes ours unchanged, and Ctrl-C
    // stops only hupwatch, which then shuts down cleanly instead of outliving a killed xtask.
    let err = cmd.exec();
    Err(err).with_context(|| format!("could not start `{}`", sh::display(&cmd)))
}

/// Builds hupwatch (release, with its eBPF programs) and returns the binary's path.
pub fn build_hupwatch(root: &Path) -> Result<PathBuf> {
    eprintln!("==> cargo build --release -p probe-user");
    sh::run(
        Command::new("cargo")
            .args(["build", "--release", "-p", "probe-user"])
            .current_dir(root),
    )?;
    Ok(release_dir(root).join("hupwatch"))
}

/// Where cargo puts release binaries: under CARGO_TARGET_DIR when it is set.
pub fn release_dir(root: &Path) -> PathBuf {
    target_dir(root).join("release")
}

// In sh.rs, which setup.rs uses too: setup.rs reaching up here for it made the two
// files import each other.
pub use crate::sh::target_dir;
