//! The arm64 guest's Debian packages, downloaded and unpacked (never installed) into the
//! cache: Debian 12's stock arm64 kernel, busybox-static for arm64, and coreutils' nohup
//! with the libc it runs on. apt serves arm64
//! packages once dpkg knows the architecture; adding it installs nothing by itself.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{kernels::images, setup, sh};

const ARCH: &str = "arm64";
const BUSYBOX: &str = "busybox-static";

/// The arm64 vmlinuz, unpacked under `cache` like the amd64 one (images.rs): the newest
/// `linux-image-6.1.0-NN-arm64-unsigned` apt lists, reused while it stays the newest.
pub fn kernel(cache: &Path) -> Result<PathBuf> {
    foreign_architecture()?;
    let vmlinuz = images::debian_6_1_for(ARCH, cache)?;
    // The guest boots from an initramfs and loads no module: its 400 MB of them go.
    if let Some(unpacked) = vmlinuz.parent().and_then(Path::parent) {
        let _ = fs::remove_dir_all(unpacked.join("lib"));
    }
    Ok(vmlinuz)
}

/// A static busybox for arm64: the guest's shell and every command its scripts run. Once
/// unpacked it is reused as it is.
pub fn busybox(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("{BUSYBOX}-{ARCH}"));
    let busybox = dir.join("bin").join("busybox");
    if busybox.is_file() {
        return Ok(busybox);
    }
    foreign_architecture()?;
    eprintln!("kernels: downloading and unpacking {BUSYBOX}:{ARCH}");
    let spec = format!("{BUSYBOX}:{ARCH}");
    if images::fetch_deb(&spec, cache, &dir).is_err() {
        // Lists from before the architecture was added (or none at all): once more after
        // an update.
        setup::apt_update()?;
        images::fetch_deb(&spec, cache, &dir)?;
    }
    if !busybox.is_file() {
        bail!("{spec} has no {}", busybox.display());
    }
    Ok(busybox)
}

/// The system's nohup for `hupwatch selftest`, which runs the real one (busybox has no
/// nohup applet): coreutils' /usr/bin/nohup for arm64 and the two files of libc6 it needs
/// (the dynamic loader and libc), as (path in the guest, path here) pairs. Once unpacked
/// they are reused as they are.
pub fn nohup(cache: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut files = Vec::new();
    for (package, wanted) in NOHUP_FILES {
        let dir = cache.join(format!("{package}-{ARCH}"));
        let missing = |dir: &Path| wanted.iter().any(|(_, from)| !dir.join(from).is_file());
        if missing(&dir) {
            foreign_architecture()?;
            eprintln!(
                "kernels: downloading and unpacking {package}:{ARCH} (for the guest's nohup)"
            );
            let spec = format!("{package}:{ARCH}");
            if images::fetch_deb(&spec, cache, &dir).is_err() {
                setup::apt_update()?;
                images::fetch_deb(&spec, cache, &dir)?;
            }
            if missing(&dir) {
                bail!("{spec} lacks one of {wanted:?}");
            }
        }
        files.extend(wanted.iter().map(|(to, from)| (*to, dir.join(from))));
    }
    Ok(files)
}

/// What nohup needs, by package: where each file goes in the guest, and where the
/// package has it (the loader at the path nohup's ELF header names, as a copy of the file
/// the package's symlink points at; libc where that loader looks first).
const NOHUP_FILES: [(&str, &[(&str, &str)]); 2] = [
    ("coreutils", &[("usr/bin/nohup", "usr/bin/nohup")]),
    (
        "libc6",
        &[
            (
                "lib/ld-linux-aarch64.so.1",
                "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
            ),
            (
                "lib/aarch64-linux-gnu/libc.so.6",
                "lib/aarch64-linux-gnu/libc.so.6",
            ),
        ],
    ),
];

/// Adds arm64 to dpkg's foreign architectures, and updates apt's lists for it, unless
/// it is there already.
fn foreign_architecture() -> Result<()> {
    let out = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .context("could not run `dpkg --print-foreign-architectures` (the arm64 guest's kernel and busybox come from Debian's apt)")?;
    if !out.status.success() {
        bail!(
            "`dpkg --print-foreign-architectures` failed ({})",
            out.status
        );
    }
    if has_architecture(&String::from_utf8_lossy(&out.stdout), ARCH) {
        return Ok(());
    }
    eprintln!("kernels: adding {ARCH} to dpkg's architectures, for the arm64 guest's packages");
    sh::run(sh::as_root("dpkg", &[])?.args(["--add-architecture", ARCH]))?;
    setup::apt_update()
}

/// Whether `dpkg --print-foreign-architectures`' output (one a line) names `arch`.
fn has_architecture(listing: &str, arch: &str) -> bool {
    listing.lines().any(|line| line.trim() == arch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_architecture_is_a_whole_line_of_dpkgs_listing() {
        assert!(has_architecture("i386\narm64\n", "arm64"));
        assert!(!has_architecture("", "arm64"));
        assert!(!has_architecture("arm64ilp32\n", "arm64"));
    }
}
