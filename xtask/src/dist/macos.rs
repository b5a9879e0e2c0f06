//! The macOS release, built on Linux: cargo-zigbuild links hupwatch for arm64 and x86_64
//! with Zig's linker against the libSystem stubs Zig ships (no Apple SDK), and merges the
//! two into one universal Mach-O. Zig's linker signs the arm64 code ad hoc, and the merge
//! copies each slice whole, so the signature survives: `macho::check` proves it on every
//! build (were it lost, rcodesign from the apple-codesign crate would have to sign again).
use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Result, bail};

use super::{PROFILE, VERSION};
use crate::{run::target_dir, setup, sh};

/// cargo-zigbuild's name for "both Apple architectures, merged".
const UNIVERSAL_TARGET: &str = "universal2-apple-darwin";
/// The name in the tarball's file name.
const TARBALL_TRIPLE: &str = "universal-apple-darwin";
/// The oldest macOS the binary runs on (LC_BUILD_VERSION's minos; macOS refuses to start
/// a binary that asks for a newer one). Zig defaults to 15.0; users still report running
/// 13 and 14. Rust's own floor is 11.0, but nothing here has been checked on 11 or 12.
/// Why this one: docs/macos.md.
pub const MACOS_MIN: &str = "13.0";
/// Where the tarball's instructions install the binary, and so what its launchd plists
/// name; the Homebrew formula rewrites that path to its own.
pub const TARBALL_BINARY: &str = "/usr/local/bin/hupwatch";
/// The launchd plists: the daemon and the scheduled reap.
pub const PLISTS: [&str; 2] = ["com.hupwatch.plist", "com.hupwatch.reap.plist"];

pub fn tarball_stem() -> String {
    format!("hupwatch-{VERSION}-{TARBALL_TRIPLE}")
}

/// `cargo zigbuild --target universal2-apple-darwin`, and the universal binary's path.
/// The per-architecture binaries are left in target/{aarch64,x86_64}-apple-darwin/.
pub fn build(root: &Path) -> Result<PathBuf> {
    let target = target_dir(root);
    let cache = target.join("zigbuild");
    // Zig is found as `python3 -m ziglang`, from the copy setup put under target/.
    let mut python_path = OsString::from(setup::ziglang_dir(root));
    if let Some(outer) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        python_path.push(":");
        python_path.push(outer);
    }
    eprintln!(
        "==> cargo zigbuild --profile {PROFILE} --target {UNIVERSAL_TARGET} (macOS {MACOS_MIN})"
    );
    sh::run(
        Command::new("cargo")
            .args(["zigbuild", "--profile", PROFILE, "-p", "probe-user"])
            .args(["--target", UNIVERSAL_TARGET])
            .env("MACOSX_DEPLOYMENT_TARGET", MACOS_MIN)
            .env("PYTHONPATH", python_path)
            // cargo-zigbuild's linker wrappers and Zig's compiled objects: kept with the
            // build, so a second run starts warm and a clean target/ starts clean.
            .env("CARGO_ZIGBUILD_CACHE_DIR", &cache)
            .env("ZIG_GLOBAL_CACHE_DIR", cache.join("zig"))
            .current_dir(root),
    )?;
    let binary = target.join(UNIVERSAL_TARGET).join(PROFILE).join("hupwatch");
    if !binary.is_file() {
        bail!("cargo zigbuild wrote no {}", binary.display());
    }
    Ok(binary)
}

/// The tarball's extra files (source, path in the tarball): the launchd plists, after
/// checking that they start the binary where the tarball's instructions put it.
pub fn plists(root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for plist in PLISTS {
        let path = root.join("deploy").join(plist);
        let text = fs::read_to_string(&path)?;
        require_binary_path(plist, &text)?;
        files.push((path, format!("launchd/{plist}")));
    }
    Ok(files)
}

/// The plist's program (ProgramArguments' first string) must be TARBALL_BINARY: the
/// formula replaces exactly that text, and `inreplace` fails when it is not found.
fn require_binary_path(name: &str, plist: &str) -> Result<()> {
    let program = plist
        .split_once("<key>ProgramArguments</key>")
        .and_then(|(_, rest)| rest.split_once("<string>"))
        .and_then(|(_, rest)| rest.split_once("</string>"))
        .map(|(program, _)| program.trim());
    match program {
        Some(TARBALL_BINARY) => Ok(()),
        Some(other) => bail!(
            "deploy/{name} starts {other}; the tarball and the formula expect {TARBALL_BINARY}"
        ),
        None => bail!("deploy/{name} has no ProgramArguments"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plists_start_the_tarballs_binary() {
        for (name, text) in [
            (
                PLISTS[0],
                include_str!("../../../deploy/com.hupwatch.plist"),
            ),
            (
                PLISTS[1],
                include_str!("../../../deploy/com.hupwatch.reap.plist"),
            ),
        ] {
            require_binary_path(name, text).unwrap();
        }
        let moved = "<key>ProgramArguments</key>\n<array>\n<string>/opt/x/hupwatch</string>";
        assert_eq!(
            require_binary_path("p.plist", moved)
                .unwrap_err()
                .to_string(),
            "deploy/p.plist starts /opt/x/hupwatch; the tarball and the formula expect /usr/local/bin/hupwatch"
        );
    }

    #[test]
    fn the_formula_replaces_the_path_the_plists_name() {
        let formula = include_str!("../../../deploy/homebrew/hupwatch.rb");
        assert!(formula.contains(&format!("\"{TARBALL_BINARY}\", \"#{{opt_bin}}/hupwatch\"")));
        assert_eq!(
            tarball_stem(),
            format!("hupwatch-{VERSION}-universal-apple-darwin")
        );
    }
}
