//! Checks the universal macOS binary `dist` made, as LLVM's `llvm-objdump --macho` reads it
//! (no Mac needed): both architectures present, each linked only against libraries every
//! Mac has under /usr/lib, each stating the minimum macOS dist asked for, and the arm64
//! code carrying a code signature (Apple silicon refuses to run code without one).
use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};

/// LLVM's objdump of the version bpf-linker is built against; Debian's llvm-22 package,
/// which `cargo xtask setup` installs.
pub const OBJDUMP: &str = "llvm-objdump-22";
/// The architectures of the universal binary, as llvm-objdump names them.
pub const ARCHITECTURES: [&str; 2] = ["x86_64", "arm64"];

/// What one architecture's slice says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub arch: String,
    /// LC_BUILD_VERSION's platform and minos.
    pub platform: Option<String>,
    pub minos: Option<String>,
    /// Every library the loader must find (LC_LOAD_DYLIB and its weak, lazy, upward and
    /// re-export forms).
    pub libraries: Vec<String>,
    /// LC_RPATH entries: search paths a library could be found through.
    pub rpaths: Vec<String>,
    pub code_signature: bool,
}

/// What `llvm-objdump --macho --universal-headers --private-headers --arch=all` said.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Universal {
    /// The fat header's architectures.
    pub fat_architectures: Vec<String>,
    pub slices: Vec<Slice>,
}

/// Reads `binary` with llvm-objdump and fails with one line per problem found; on success
/// says what it checked, for dist's report.
pub fn check(binary: &Path, minos: &str) -> Result<String> {
    let out = Command::new(OBJDUMP)
        .args([
            "--macho",
            "--universal-headers",
            "--private-headers",
            "--arch=all",
        ])
        .arg(binary)
        .output()
        .with_context(|| {
            format!("could not run {OBJDUMP} (Debian's llvm-22; `cargo xtask setup` installs it)")
        })?;
    if !out.status.success() {
        bail!(
            "{OBJDUMP} could not read {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let universal = parse(&String::from_utf8_lossy(&out.stdout));
    let problems = problems(&universal, minos);
    if !problems.is_empty() {
        bail!(
            "the macOS binary {} fails its checks: {}",
            binary.display(),
            problems.join("; ")
        );
    }
    Ok(summary(&universal))
}

/// The load commands of each slice, as llvm-objdump prints them: a slice starts at a line
/// `FILE (architecture ARCH):`, a load command at `Load command N`, and its fields are
/// `key value` lines.
pub fn parse(text: &str) -> Universal {
    let mut universal = Universal::default();
    let mut command = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(arch) = slice_start(line) {
            universal.slices.push(Slice {
                arch: arch.to_owned(),
                ..Slice::default()
            });
            command.clear();
            continue;
        }
        let Some((key, value)) = trimmed.split_once(char::is_whitespace) else {
            continue;
        };
        let value = value.trim();
        let Some(slice) = universal.slices.last_mut() else {
            // Before the first slice: the fat header, whose `architecture ARCH` lines
            // list what the file holds.
            if key == "architecture" {
                universal.fat_architectures.push(value.to_owned());
            }
            continue;
        };
        match key {
            "Load" => command.clear(),
            "cmd" => {
                command = value.to_owned();
                if command == "LC_CODE_SIGNATURE" {
                    slice.code_signature = true;
                }
            }
            "platform" if command == "LC_BUILD_VERSION" => slice.platform = Some(value.into()),
            "minos" if command == "LC_BUILD_VERSION" => slice.minos = Some(value.into()),
            // `name /usr/lib/libSystem.B.dylib (offset 24)`
            "name" if is_library_command(&command) => slice.libraries.push(strip_offset(value)),
            "path" if command == "LC_RPATH" => slice.rpaths.push(strip_offset(value)),
            _ => {}
        }
    }
    universal
}

/// `target/.../hupwatch (architecture arm64):` -> arm64.
fn slice_start(line: &str) -> Option<&str> {
    let rest = line.strip_suffix("):")?;
    let (_, arch) = rest.rsplit_once(" (architecture ")?;
    Some(arch)
}

/// The load commands that name a library the loader must find and load.
fn is_library_command(command: &str) -> bool {
    matches!(
        command,
        "LC_LOAD_DYLIB"
            | "LC_LOAD_WEAK_DYLIB"
            | "LC_REEXPORT_DYLIB"
            | "LC_LAZY_LOAD_DYLIB"
            | "LC_LOAD_UPWARD_DYLIB"
    )
}

fn strip_offset(value: &str) -> String {
    value
        .rsplit_once(" (offset ")
        .map_or(value, |(path, _)| path)
        .to_owned()
}

/// Everything wrong with the binary, one phrase each; empty when it passes.
pub fn problems(universal: &Universal, minos: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for arch in ARCHITECTURES {
        if !universal.fat_architectures.iter().any(|a| a == arch) {
            problems.push(format!(
                "no {arch} slice (the file holds: {})",
                listed(&universal.fat_architectures)
            ));
        } else if !universal.slices.iter().any(|s| s.arch == arch) {
            problems.push(format!("{OBJDUMP} printed no load commands for {arch}"));
        }
    }
    for slice in &universal.slices {
        let arch = &slice.arch;
        match (&slice.platform, &slice.minos) {
            (Some(platform), Some(found)) if platform == "macos" && found == minos => {}
            (Some(platform), Some(found)) => problems.push(format!(
                "{arch} states {platform} {found}, not macos {minos} (LC_BUILD_VERSION)"
            )),
            _ => problems.push(format!("{arch} has no LC_BUILD_VERSION")),
        }
        for library in &slice.libraries {
            if !is_system_library(library) {
                problems.push(format!(
                    "{arch} links {library}: only libraries under /usr/lib are on every Mac"
                ));
            }
        }
        for rpath in &slice.rpaths {
            problems.push(format!("{arch} searches {rpath} for libraries (LC_RPATH)"));
        }
        if arch == "arm64" && !slice.code_signature {
            problems.push(
                "arm64 has no code signature (LC_CODE_SIGNATURE): Apple silicon will not run it"
                    .to_owned(),
            );
        }
    }
    problems
}

/// A library from macOS itself: under /usr/lib, and not a framework (those live under
/// /System/Library; Homebrew's under /opt/homebrew or /usr/local).
fn is_system_library(path: &str) -> bool {
    path.starts_with("/usr/lib/") && !path.contains(".framework/") && !path.contains("..")
}

fn summary(universal: &Universal) -> String {
    let arm64 = universal.slices.iter().find(|s| s.arch == "arm64");
    let mut libraries: Vec<&str> = universal
        .slices
        .iter()
        .flat_map(|s| s.libraries.iter().map(String::as_str))
        .collect();
    libraries.sort_unstable();
    libraries.dedup();
    format!(
        "{}, macOS {}+, arm64 signed: {}, links {}",
        listed(&universal.fat_architectures),
        arm64.and_then(|s| s.minos.as_deref()).unwrap_or("?"),
        arm64.is_some_and(|s| s.code_signature),
        libraries.join(" ")
    )
}

fn listed(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What llvm-objdump 22 said about dist's universal hupwatch (cargo-zigbuild 0.24.1,
    /// Zig 0.17.0, MACOSX_DEPLOYMENT_TARGET=13.0), captured 2026-12-07.
    const REAL: &str = include_str!("fixtures/llvm-objdump-universal.txt");

    #[test]
    fn reads_both_slices_of_the_real_binary() {
        let universal = parse(REAL);
        assert_eq!(universal.fat_architectures, ["x86_64", "arm64"]);
        let libraries = [
            "/usr/lib/libSystem.B.dylib",
            "/usr/lib/libcharset.1.dylib",
            "/usr/lib/libiconv.2.dylib",
        ];
        assert_eq!(
            universal.slices,
            [
                Slice {
                    arch: "x86_64".into(),
                    platform: Some("macos".into()),
                    minos: Some("13.0".into()),
                    libraries: libraries.map(String::from).to_vec(),
                    rpaths: vec![],
                    // Zig's linker signs arm64 output only; Intel Macs run unsigned code.
                    code_signature: false,
                },
                Slice {
                    arch: "arm64".into(),
                    platform: Some("macos".into()),
                    minos: Some("13.0".into()),
                    libraries: libraries.map(String::from).to_vec(),
                    rpaths: vec![],
                    code_signature: true,
                },
            ]
        );
        assert!(problems(&universal, "13.0").is_empty());
        assert_eq!(
            summary(&universal),
            "x86_64 + arm64, macOS 13.0+, arm64 signed: true, links \
             /usr/lib/libSystem.B.dylib /usr/lib/libcharset.1.dylib /usr/lib/libiconv.2.dylib"
        );
    }

    #[test]
    fn a_different_minimum_macos_fails() {
        let problems = problems(&parse(REAL), "11.0");
        assert_eq!(
            problems,
            [
                "x86_64 states macos 13.0, not macos 11.0 (LC_BUILD_VERSION)",
                "arm64 states macos 13.0, not macos 11.0 (LC_BUILD_VERSION)",
            ]
        );
    }

    #[test]
    fn an_unsigned_arm64_slice_fails() {
        let unsigned = REAL.replace("cmd LC_CODE_SIGNATURE", "cmd LC_SOMETHING_ELSE");
        assert_eq!(
            problems(&parse(&unsigned), "13.0"),
            ["arm64 has no code signature (LC_CODE_SIGNATURE): Apple silicon will not run it"]
        );
    }

    #[test]
    fn homebrew_libraries_frameworks_and_rpaths_fail() {
        let linked = REAL
            .replacen(
                "name /usr/lib/libiconv.2.dylib",
                "name /opt/homebrew/opt/libiconv/lib/libiconv.2.dylib",
                1,
            )
            .replacen(
                "name /usr/lib/libcharset.1.dylib",
                "name /System/Library/Frameworks/Security.framework/Versions/A/Security",
                1,
            )
            .replacen(
                "cmd LC_LOAD_DYLIB",
                "cmd LC_LOAD_WEAK_DYLIB\n         name @rpath/libfoo.dylib (offset 24)",
                1,
            );
        let problems = problems(&parse(&linked), "13.0");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("@rpath/libfoo.dylib"));
        assert!(problems[1].contains("Security.framework"));
        assert!(problems[2].contains("/opt/homebrew/"));
    }

    #[test]
    fn a_thin_binary_is_not_universal() {
        // A single-architecture file has no fat header and no per-slice titles: as
        // llvm-objdump prints the x86_64 slice alone.
        let start = REAL.find("Mach header").unwrap();
        let end = REAL.find("hupwatch (architecture arm64):").unwrap();
        let thin = &REAL[start..end];
        let problems = problems(&parse(thin), "13.0");
        assert_eq!(
            problems,
            [
                "no x86_64 slice (the file holds: nothing)",
                "no arm64 slice (the file holds: nothing)",
            ]
        );
    }

    #[test]
    fn a_missing_build_version_fails() {
        let old = REAL.replace("cmd LC_BUILD_VERSION", "cmd LC_VERSION_MIN_MACOSX");
        assert_eq!(
            problems(&parse(&old), "13.0"),
            [
                "x86_64 has no LC_BUILD_VERSION",
                "arm64 has no LC_BUILD_VERSION"
            ]
        );
    }
}
