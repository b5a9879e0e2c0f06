//! The guest kernels' images: Debian 12's stock 6.1 from apt, 5.15 LTS from shared/kernels.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{setup, sh};

/// Debian 12's stock kernel, the newest `linux-image-6.1.0-NN-amd64-unsigned` apt lists,
/// unpacked (never installed) into `cache/linux-image-6.1.0-NN-amd64-unsigned/`, whose
/// `lib/modules` vng finds beside the vmlinuz by itself: Debian builds 9p and virtio as
/// modules. Not `-cloud-amd64`, which lacks 9p and cannot mount the host's root, nor `-rt`.
/// Once unpacked it is reused; a newer NN in apt's lists replaces it on the next run.
pub fn debian_6_1(cache: &Path) -> Result<PathBuf> {
    let package = match newest_6_1_package()? {
        Some(package) => package,
        // Without package lists (a fresh container image has none) the last one unpacked
        // serves, so that a machine offline still tests on 6.1.
        None => match newest_unpacked(cache) {
            Some(package) => package,
            None => {
                eprintln!("kernels: apt lists no 6.1 kernel; updating its package lists");
                setup::apt_update()?;
                newest_6_1_package()?.context(
                    "apt-cache lists no linux-image-6.1.0-NN-amd64-unsigned (is this Debian 12, with bookworm's main in its apt sources?)",
                )?
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
    unpack(&package, cache, &dir)?;
    if !vmlinuz.is_file() {
        bail!("{package} has no {}", vmlinuz.display());
    }
    Ok(vmlinuz)
}

/// The package name of the newest kernel unpacked in `cache`, if any.
fn newest_unpacked(cache: &Path) -> Option<String> {
    fs::read_dir(cache)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((abi_number(&name)?, name)))
        .max()
        .map(|(_, name)| name)
}

/// `linux-image-6.1.0-57-amd64-unsigned` -> `6.1.0-57-amd64`, what `uname -r` says.
fn release(package: &str) -> &str {
    package
        .trim_start_matches("linux-image-")
        .trim_end_matches("-unsigned")
}

/// The generic 6.1 kernel package with the highest ABI number NN apt knows of.
fn newest_6_1_package() -> Result<Option<String>> {
    let listing = Command::new("apt-cache")
        .args([
            "search",
            "--names-only",
            r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
        ])
        .output()
        .context("could not run apt-cache (the 6.1 guest kernel comes from Debian 12's apt)")?;
    if !listing.status.success() {
        bail!("apt-cache search failed ({})", listing.status);
    }
    Ok(String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|package| Some((abi_number(package)?, package.to_owned())))
        .max()
        .map(|(_, package)| package))
}

/// NN of `linux-image-6.1.0-NN-amd64-unsigned`, when that is the whole name.
fn abi_number(package: &str) -> Option<u32> {
    package
        .strip_prefix("linux-image-6.1.0-")?
        .strip_suffix("-amd64-unsigned")?
        .parse()
        .ok()
}

/// `apt-get download` and `dpkg-deb -x` into `dir`, by way of a scratch directory renamed
/// at the end, so an interrupted run leaves nothing that looks complete.
fn unpack(package: &str, cache: &Path, dir: &Path) -> Result<()> {
    eprintln!("kernels: downloading and unpacking {package}");
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
    let unpacking = cache.join(format!("{package}.unpacking"));
    let _ = fs::remove_dir_all(&unpacking);
    sh::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacking))?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&unpacking, dir).with_context(|| format!("renaming to {}", dir.display()))?;
    // Older unpacked kernels are replaced, not collected: each is about 400 MB.
    for entry in fs::read_dir(cache)?.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if abi_number(&name).is_some() && name != package {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    let _ = fs::remove_dir_all(&download);
    Ok(())
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
        assert_eq!(abi_number("linux-image-6.1.0-57-amd64-unsigned"), Some(57));
        assert_eq!(
            abi_number("linux-image-6.1.0-57-cloud-amd64-unsigned"),
            None
        );
        assert_eq!(abi_number("linux-image-6.1.0-57-rt-amd64-unsigned"), None);
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
