//! The kernel matrix's arm64 row: Debian 12's stock arm64 kernel booted in qemu (TCG) from
//! an initramfs of busybox, the static aarch64 hupwatch and, when handed in, the library's
//! unit tests built for aarch64. In the guest, `hupwatch run` watches a scenario of real
//! processes on a terminal that must raise detached, hangup_ignored, orphaned,
//! terminal_lost and rss_growth, with every eBPF program attached; then `hupwatch selftest
//! --json` must pass (it brings coreutils' nohup for it), then the unit tests run.
//!
//! The x86 guests run the root integration tests over the host's root filesystem (vng);
//! those need python3, tmux and util-linux, and an arm64 guest cannot run the host's
//! x86 programs, so this guest brings its own small root and its own scenario instead.
//!
//! Like the other rows, a guest that cannot be run (qemu-system-aarch64 missing, a package
//! not downloadable, a binary not built) says NOT RUN and why; that fails the run under CI
//! always, and elsewhere unless `--skip-missing-kernels` was given (mod.rs).
mod debs;
pub mod lib_tests;
mod newc;
mod outcome;
mod qemu;
mod script;
mod serial;

use std::{
    env, fs,
    io::{BufWriter, Read},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{report, report::Line};
use crate::{run::target_dir, sh};

/// The row's name until the kernel's release is known.
const NAME: &str = "6.1 arm64 (Debian 12)";
/// How long the whole guest may take, boot to power-off, before qemu is killed: its own
/// waits' sum and a margin. The whole guest took 38-48 s on an idle 2-core host.
const GUEST_TIMEOUT: Duration = Duration::from_secs(
    (script::READY_SECS
        + script::SCENARIO_SECS
        + script::ALERT_SECS
        + script::STOP_SECS
        + script::LIB_TESTS_SECS
        + script::SELFTEST_SECS
        + 120) as u64,
);

/// Debian's entries for root and nobody.
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// What the guest is made of.
struct Parts {
    qemu: PathBuf,
    vmlinuz: PathBuf,
    busybox: PathBuf,
    /// The system's nohup and its libc, for `hupwatch selftest`: (path in the guest, file).
    nohup: Vec<(&'static str, PathBuf)>,
}

/// Runs the arm64 guest and gives its line. `hupwatch` is a static aarch64 hupwatch (dist's
/// release binary); `lib_tests` the library's unit tests built for aarch64
/// ([`lib_tests::build`]), or None to run only the scenario. `skip_missing` is
/// `--skip-missing-kernels`, as [`super::run`] takes it. The kernel, busybox and the run's
/// files are kept under target/kernels/arm64/.
pub fn run_arm64(
    root: &Path,
    hupwatch: &Path,
    lib_tests: Option<&Path>,
    skip_missing: bool,
) -> Line {
    let fails = super::not_running_fails(env::var_os("CI").is_some(), skip_missing);
    let cache = target_dir(root).join("kernels").join("arm64");
    let parts = match parts(&cache, hupwatch, lib_tests) {
        Ok(parts) => parts,
        Err(why) => return report::not_run(NAME, &format!("{why:#}"), fails),
    };
    let name = format!("{} (arm64 guest)", super::release_of(&parts.vmlinuz));
    eprintln!(
        "==> kernel {name}: a scenario{} in a qemu guest of {}",
        if lib_tests.is_some() {
            " and the library's unit tests"
        } else {
            ""
        },
        parts.vmlinuz.display()
    );
    let run_dir = cache.join("run");
    match boot(&parts, hupwatch, lib_tests, &run_dir, &name) {
        Ok(boot) => outcome::line(&name, &boot, lib_tests.is_some()),
        Err(err) => report::could_not_run(&name, &err),
    }
}

/// The guest's pieces, or the first one missing.
fn parts(cache: &Path, hupwatch: &Path, lib_tests: Option<&Path>) -> Result<Parts> {
    let qemu = sh::which("qemu-system-aarch64").context(
        "qemu-system-aarch64 not found (Debian's qemu-system-arm; `cargo xtask setup` installs it)",
    );
    for binary in std::iter::once(hupwatch).chain(lib_tests) {
        if !binary.is_file() {
            bail!(
                "no {} (build it for {} first)",
                binary.display(),
                lib_tests::TARGET
            );
        }
    }
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    Ok(Parts {
        qemu: qemu?,
        vmlinuz: debs::kernel(cache)?,
        busybox: debs::busybox(cache)?,
        nohup: debs::nohup(cache)?,
    })
}

/// Writes the initramfs and boots it; `run_dir` is emptied first and keeps the console.
fn boot(
    parts: &Parts,
    hupwatch: &Path,
    lib_tests: Option<&Path>,
    run_dir: &Path,
    name: &str,
) -> Result<qemu::Boot> {
    for binary in std::iter::once(hupwatch).chain(lib_tests) {
        let mut header = [0; 20];
        fs::File::open(binary)
            .and_then(|mut file| file.read_exact(&mut header))
            .with_context(|| format!("reading {}", binary.display()))?;
        if !is_aarch64_elf(&header) {
            bail!(
                "{} is not an aarch64 program (build it with --target {})",
                binary.display(),
                lib_tests::TARGET
            );
        }
    }
    let _ = fs::remove_dir_all(run_dir);
    fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let initrd = run_dir.join("initramfs.cpio");
    initramfs(&initrd, parts, hupwatch, lib_tests)?;
    qemu::boot(
        &parts.qemu,
        &parts.vmlinuz,
        &initrd,
        &run_dir.join("console.log"),
        GUEST_TIMEOUT,
        name,
    )
}

/// The guest's root: busybox (its applets linked at boot), hupwatch, the scripts, and the
/// unit tests if any. Not compressed: qemu hands the file to the guest as it is, and a
/// gzipped one (25 MB to 10 MB) reached the guest's userspace no sooner (5.7-6.6 s both).
fn initramfs(path: &Path, parts: &Parts, hupwatch: &Path, lib_tests: Option<&Path>) -> Result<()> {
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut cpio = newc::Newc::new(BufWriter::new(file));
    // Busybox links its applets into /bin at boot (script.rs).
    for dir in ["bin", "dev", "proc", "sys", "tmp", "root", "etc"] {
        cpio.dir(dir)?;
    }
    for dir in ["usr", "usr/bin", "lib", "lib/aarch64-linux-gnu"] {
        cpio.dir(dir)?;
    }
    for (to, from) in &parts.nohup {
        cpio.executable_from(to, from)?;
    }
    // Users as every system has them: the library looks root up (its home, its group).
    cpio.file("etc/passwd", 0o644, PASSWD.as_bytes())?;
    cpio.file("etc/group", 0o644, GROUP.as_bytes())?;
    cpio.executable_from("bin/busybox", &parts.busybox)?;
    cpio.executable_from(script::HUPWATCH, hupwatch)?;
    let skip = lib_tests.map(|_| lib_tests::skip_args());
    if let Some(tests) = lib_tests {
        cpio.executable_from(script::LIB_TESTS, tests)?;
    }
    cpio.file("init", 0o755, script::init(skip.as_deref()).as_bytes())?;
    cpio.file("scenario.sh", 0o644, script::scenario().as_bytes())?;
    cpio.finish()
        .map(drop)
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether an executable's first 20 bytes are those of a 64-bit little-endian ELF for
/// aarch64 (EM_AARCH64, 183): a binary of the host's would only fail in the guest, later
/// and less clearly.
fn is_aarch64_elf(header: &[u8; 20]) -> bool {
    header.starts_with(b"\x7fELF\x02\x01") && u16::from_le_bytes([header[18], header[19]]) == 183
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf_header(machine: u16) -> [u8; 20] {
        let mut header = [0; 20];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[18..].copy_from_slice(&machine.to_le_bytes());
        header
    }

    #[test]
    fn only_an_aarch64_elf_goes_into_the_guest() {
        assert!(is_aarch64_elf(&elf_header(183)));
        assert!(!is_aarch64_elf(&elf_header(62)), "x86_64");
        let mut script = [0; 20];
        script[..11].copy_from_slice(b"#!/bin/sh\nx");
        assert!(!is_aarch64_elf(&script));
    }
}
