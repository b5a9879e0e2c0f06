//! A clean Debian 12 root file system for the install test: debootstrap's minbase plus what
//! a user's machine has to read a man page, complete in bash and verify a unit (man-db,
//! bash-completion, systemd, and procps for the unit's /bin/kill, as every Debian system
//! but a minbase has), and nothing of the build (no Rust, no LLVM). Made once and
//! kept under target/, then copied afresh for each run, so every run installs into a root
//! that never saw hupwatch.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::sh;

const SUITE: &str = "bookworm";
const INCLUDE: &str = "man-db,bash-completion,systemd,procps";
/// Written last into the cached root: a debootstrap that stopped half way is made again.
const COMPLETE: &str = ".hupwatch-rootfs-complete";

/// The cached pristine root under `cache`, made with debootstrap when missing.
pub fn pristine(cache: &Path) -> Result<PathBuf> {
    // Named by its packages, so a change to them makes a new root rather than reusing one
    // without them.
    let dir = cache.join(format!("{SUITE}-minbase+{}", INCLUDE.replace(',', "+")));
    if dir.join(COMPLETE).is_file() {
        eprintln!("install: reusing the Debian 12 root in {}", dir.display());
        return Ok(dir);
    }
    if dir.exists() {
        remove_unmounted(&dir)?;
    }
    fs::create_dir_all(cache)?;
    let mirror = debian_mirror(
        &fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default(),
        &fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    );
    eprintln!("==> debootstrap --variant=minbase --include={INCLUDE} {SUITE} ({mirror})");
    sh::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
            .arg(&dir)
            .arg(&mirror),
    )
    .context("debootstrap could not make a Debian 12 root")?;
    fs::write(dir.join(COMPLETE), "")?;
    Ok(dir)
}

/// A fresh copy of `pristine` at `dir`, replacing any earlier one.
pub fn fresh_copy(pristine: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        remove_unmounted(dir)?;
    }
    sh::run(Command::new("cp").arg("-a").arg(pristine).arg(dir))
}

/// The Debian archive apt uses here (deb822 `debian.sources` first, then the one-line
/// format), so debootstrap fetches from where the machine's own packages come from.
fn debian_mirror(deb822: &str, one_line: &str) -> String {
    let from_deb822 = deb822.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim))
        };
        let suites = field("Suites:")?;
        suites
            .split_whitespace()
            .any(|s| s == SUITE)
            .then(|| field("URIs:"))?
            .and_then(|uris| uris.split_whitespace().next())
            .map(str::to_owned)
    });
    let from_list = || {
        one_line.lines().find_map(|line| {
            let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
            (words.next()? == "deb").then_some(())?;
            let uri = words.next()?;
            (words.next()? == SUITE).then(|| uri.to_owned())
        })
    };
    from_deb822
        .or_else(from_list)
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// What the chroot needs to run hupwatch: /proc, a fresh sysfs, tracefs, and a /dev of its
/// own (a tmpfs with the few nodes needed and a private devpts), never the host's /dev, so
/// removing the root can never remove a host device. Unmounted when dropped.
pub struct Mounts {
    root: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Mounts {
    pub fn new(root: &Path) -> Result<Self> {
        let mut mounts = Mounts {
            root: root.to_path_buf(),
            mounted: Vec::new(),
        };
        mounts.mount("proc", "proc", "proc", None)?;
        mounts.mount("sysfs", "sysfs", "sys", None)?;
        mounts.mount("tracefs", "nodev", "sys/kernel/tracing", None)?;
        mounts.mount("tmpfs", "tmpfs", "dev", Some("mode=0755"))?;
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let node = root.join("dev").join(name);
            sh::run(Command::new("mknod").args(["-m", "0666"]).arg(&node).args([
                "c",
                &major.to_string(),
                &minor.to_string(),
            ]))?;
        }
        fs::create_dir_all(root.join("dev/pts"))?;
        mounts.mount(
            "devpts",
            "devpts",
            "dev/pts",
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )?;
        std::os::unix::fs::symlink("pts/ptmx", root.join("dev/ptmx"))?;
        Ok(mounts)
    }

    fn mount(&mut self, kind: &str, source: &str, at: &str, options: Option<&str>) -> Result<()> {
        let target = self.root.join(at);
        fs::create_dir_all(&target)?;
        let mut cmd = Command::new("mount");
        cmd.args(["-t", kind]);
        if let Some(options) = options {
            cmd.args(["-o", options]);
        }
        sh::run(cmd.arg(source).arg(&target))?;
        self.mounted.push(target);
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for target in self.mounted.iter().rev() {
            if let Err(err) = sh::run(Command::new("umount").arg(target)) {
                eprintln!("install: {err:#}");
            }
        }
    }
}

/// Removes `dir`, refusing while anything is still mounted below it.
fn remove_unmounted(dir: &Path) -> Result<()> {
    let dir = dir.canonicalize()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    if let Some(mounted) = mounts_below(&mountinfo, &dir) {
        bail!(
            "{} is still mounted: unmount it before the test root is removed",
            mounted
        );
    }
    fs::remove_dir_all(&dir).with_context(|| format!("could not remove {}", dir.display()))
}

/// The first mount point in `mountinfo` at or below `dir`.
fn mounts_below(mountinfo: &str, dir: &Path) -> Option<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split_whitespace().nth(4))
        .find(|point| Path::new(point).starts_with(dir))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_one_apt_uses_for_bookworm() {
        let deb822 = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(debian_mirror(deb822, ""), "http://mirror.example/debian");
        let list = "deb [arch=amd64] http://other.example/debian bookworm main\n";
        assert_eq!(debian_mirror("", list), "http://other.example/debian");
        assert_eq!(debian_mirror("", ""), "http://deb.debian.org/debian");
    }

    #[test]
    fn a_mount_below_the_root_blocks_its_removal() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n90 1 0:50 / /work/t/root/dev rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mounts_below(info, Path::new("/work/t/root")).as_deref(),
            Some("/work/t/root/dev")
        );
        assert_eq!(mounts_below(info, Path::new("/work/t/other")), None);
    }
}
