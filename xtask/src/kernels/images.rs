//! The guest kernels' images: Debian 12's stock 6.1 from apt (for amd64, and for arm64's
//! guest), 5.15 LTS from shared/kernels.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{setup, sh};

/// Debian 12's stock amd64 kernel: see [`debian_6_1_for`].
pub fn debian_6_1(cache: &Path) -> Result<PathBuf> {
    debian_6_1_for("amd64", cache)
}

/// Debian 12's stock kernel for `arch`, the newest `linux-image-6.1.0-NN-ARCH-unsigned` apt
/// lists, unpacked (never installed) into `cache/linux-image-6.1.0-NN-ARCH-unsigned/`, whose
/// `lib/modules` vng finds beside the vmlinuz by itself: Debian builds 9p and virtio as
/// modules. Not `-cloud-amd64`, which lacks 9p and cannot mount the host's root, nor `-rt`.
/// Once unpacked it is reused; a newer NN in apt's lists replaces it on the next run. A
/// foreign `arch` must be one dpkg knows (`dpkg --add-architecture`).
pub fn debian_6_1_for(arch: &str, cache: &Path) -> Result<PathBuf> {
    let package = match newest_6_1_package(arch)? {
        Some(package) => package,
        // Without package lists (a fresh container image has none) the last one unpacked
        // serves, so that a machine offline still tests on 6.1.
        None => match newest_unpacked(cache, arch) {
            Some(package) => package,
            None => {
                eprintln!("kernels: apt lists no 6.1 {arch} kernel; updating its package lists");
                setup::apt_update()?;
                newest_6_1_package(arch)?.with_context(|| format!(
                    "apt-cache lists no linux-image-6.1.0-NN-{arch}-unsigned (is this Debian 12, with bookworm's main in its apt sources{}?)",
                    if arch == "amd64" { "" } else { " and the architecture added to dpkg" }
                ))?
            }
        },
    };
    let dir = cache.join(&package);
    let vmlinuz = dir
        .join("boot")
        .join(format!("vmlinuz-{}", release(&package)));
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    eprintln!("kernels: downloading and unpacking {package}");
    fetch_deb(&format!("{package}:{arch}"), cache, &dir)?;
    if !vmlinuz.is_file() {
        bail!("{package} has no {}", vmlinuz.display());
    }
    // Older unpacked kernels are replaced, not collected: each is about 400 MB.
    for entry in fs::read_dir(cache)?.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if abi_number(&name, arch).is_some() && name != package {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(vmlinuz)
}

/// The package name of the newest `arch` kernel unpacked in `cache`, if any.
fn newest_unpacked(cache: &Path, arch: &str) -> Option<String> {
    fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((abi_number(&name, arch)?, name)))
        .max()
        .map(|(_, name)| name)
}

/// `linux-image-6.1.0-57-amd64-unsigned` -> `6.1.0-57-amd64`, what `uname -r` says.
fn release(package: &str) -> &str {
    package
        .trim_start_matches("linux-image-")
        .trim_end_matches("-unsigned")
}

/// The generic 6.1 kernel package for `arch` with the highest ABI number NN apt knows of.
fn newest_6_1_package(arch: &str) -> Result<Option<String>> {
    let listing = Command::new("apt-cache")
        .args(["search", "--names-only"])
        .arg(format!(r"^linux-image-6\.1\.0-[0-9]+-{arch}-unsigned$"))
        .output()
        .context("could not run apt-cache (the 6.1 guest kernels come from Debian 12's apt)")?;
    if !listing.status.success() {
        bail!("apt-cache search failed ({})", listing.status);
    }
    Ok(newest_in_listing(
        &String::from_utf8_lossy(&listing.stdout),
        arch,
    ))
}

/// The generic 6.1 `arch` kernel with the highest NN in `apt-cache search`'s output
/// (`NAME - DESCRIPTION` lines).
fn newest_in_listing(listing: &str, arch: &str) -> Option<String> {
    listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|package| Some((abi_number(package, arch)?, package.to_owned())))
        .max()
        .map(|(_, package)| package)
}

/// NN of `linux-image-6.1.0-NN-ARCH-unsigned`, when that is the whole name.
fn abi_number(package: &str, arch: &str) -> Option<u32> {
    package
        .strip_prefix("linux-image-6.1.0-")?
        .strip_suffix("-unsigned")?
        .strip_suffix(arch)?
        .strip_suffix('-')?
        .parse()
        .ok()
}

/// `apt-get download PACKAGE` (a name, `NAME:ARCH` for a foreign architecture's) and
/// `dpkg-deb -x` into `dir`, by way of a scratch directory renamed at the end, so an
/// interrupted run leaves nothing that looks complete.
pub fn fetch_deb(package: &str, cache: &Path, dir: &Path) -> Result<()> {
    let download = cache.join("download");
    let _ = fs::remove_dir_all(&download);
    fs::create_dir_all(&download).with_context(|| format!("creating {}", download.display()))?;
    sh::run(
        Command::new("apt-get")
            .args(["download", package])
            .current_dir(&download),
    )?;
    let deb = fs::read_dir(&download)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", download.display()))?;
    let name = dir
        .file_name()
        .map_or_else(|| "package".into(), |name| name.to_string_lossy());
    let unpacking = cache.join(format!("{name}.unpacking"));
    let _ = fs::remove_dir_all(&unpacking);
    sh::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacking))?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&unpacking, dir).with_context(|| format!("renaming to {}", dir.display()))?;
    let _ = fs::remove_dir_all(&download);
    Ok(())
}

/// earlyoom's binary for the guard guest: the one `cargo xtask setup` unpacks under
/// target/tools/earlyoom-VERSION/ when there is one, else Debian's package fetched with
/// `apt-get download` and unpacked (never installed: its service would start and kill
/// on this machine) into `cache/earlyoom/`, once.
pub fn earlyoom(root: &Path, cache: &Path) -> Result<PathBuf> {
    const BINARY: &str = "usr/bin/earlyoom";
    let tools = crate::run::target_dir(root).join("tools");
    let from_setup = fs::read_dir(&tools).ok().and_then(|entries| {
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("earlyoom-"))
            .map(|entry| entry.path().join(BINARY))
            .find(|binary| binary.is_file())
    });
    if let Some(binary) = from_setup {
        return Ok(binary);
    }
    let dir = cache.join("earlyoom");
    let binary = dir.join(BINARY);
    if !binary.is_file() {
        eprintln!("kernels: downloading and unpacking earlyoom for the guard guest");
        fetch_deb("earlyoom", cache, &dir)?;
    }
    if !binary.is_file() {
        bail!("the earlyoom package has no {BINARY}");
    }
    Ok(binary)
}

/// The 5.15 LTS kernel (Ubuntu 22.04's and WSL2's line), built with the BPF options the
/// tests need: `vmlinuz-5.15.*` in the `shared/kernels` folder beside the workspace (a CI
/// checkout has its copy of `shared/` in the same place). The newest, if there are several.
pub fn lts_5_15(root: &Path) -> Result<PathBuf> {
    let dir = root.parent().map_or_else(
        || PathBuf::from("../shared/kernels"),
        |up| up.join("shared").join("kernels"),
    );
    let entries = fs::read_dir(&dir)
        .with_context(|| format!("no vmlinuz-5.15.*: cannot read {}", dir.display()))?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let patch: u32 = name.strip_prefix("vmlinuz-5.15.")?.parse().ok()?;
            Some((patch, path))
        })
        .max()
        .map(|(_, path)| path)
        .with_context(|| format!("no vmlinuz-5.15.* in {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_generic_flavour_has_an_abi_number() {
        assert_eq!(
            abi_number("linux-image-6.1.0-57-amd64-unsigned", "amd64"),
            Some(57)
        );
        assert_eq!(
            abi_number("linux-image-6.1.0-57-cloud-amd64-unsigned", "amd64"),
            None
        );
        assert_eq!(
            abi_number("linux-image-6.1.0-57-rt-amd64-unsigned", "amd64"),
            None
        );
        assert_eq!(
            abi_number("linux-image-6.1.0-57-arm64-unsigned", "amd64"),
            None
        );
        assert_eq!(
            abi_number("linux-image-6.1.0-57-arm64-unsigned", "arm64"),
            Some(57)
        );
        assert_eq!(
            abi_number("linux-image-6.1.0-57-rt-arm64-unsigned", "arm64"),
            None
        );
    }

    /// What `apt-cache search --names-only` printed on Debian 12 with arm64 added.
    const ARM64_LISTING: &str = "\
linux-image-6.1.0-47-arm64-unsigned - Linux 6.1 for 64-bit ARMv8 machines
linux-image-6.1.0-57-arm64-unsigned - Linux 6.1 for 64-bit ARMv8 machines
linux-image-6.1.0-9-arm64-unsigned - Linux 6.1 for 64-bit ARMv8 machines
linux-image-6.1.0-58-rt-arm64-unsigned - Linux 6.1 for 64-bit ARMv8 machines, PREEMPT_RT
";

    #[test]
    fn the_newest_package_is_the_highest_abi_number_not_the_last_line() {
        assert_eq!(
            newest_in_listing(ARM64_LISTING, "arm64").as_deref(),
            Some("linux-image-6.1.0-57-arm64-unsigned")
        );
        assert_eq!(newest_in_listing(ARM64_LISTING, "amd64"), None);
        assert_eq!(newest_in_listing("", "arm64"), None);
    }

    #[test]
    fn without_shared_kernels_the_5_15_image_is_missing_and_the_error_says_where() {
        let err = lts_5_15(Path::new("/nonexistent/workspace")).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("vmlinuz-5.15.*"), "{text}");
        assert!(text.contains("/nonexistent/shared/kernels"), "{text}");
    }

    #[test]
    fn the_release_is_what_uname_says() {
        assert_eq!(
            release("linux-image-6.1.0-57-amd64-unsigned"),
            "6.1.0-57-amd64"
        );
    }
}
