//! The kernel matrix: the tests that read the kernel (the root eBPF integration tests and
//! the BTF unit tests) run again in qemu guests of the kernels hupwatch's users have, since
//! the verifier, BTF layouts and tracepoint prototypes differ between kernels and the host
//! has only one. The host's own kernel is tested by the host's `cargo test` step; the
//! guests boot Debian 12's stock 6.1 (from apt) and 5.15 LTS (from `../shared/kernels`).
//!
//! Measured on the project's 2-core Debian 12 hosts, qemu emulating (TCG): a guest boots in
//! about 5 s; its whole run took 3.5-4 minutes with `--test-threads=2` (see TEST_THREADS),
//! 8 when another qemu competed for the cores. The 6.1 package is a 70 MB download, once.
//!
//! The guard row boots the 6.1 kernel once more with little memory (640M, no swap) for
//! tests/oom_guard.rs, whose tests are ignored on the host (they fill the machine's
//! memory): the kernel's OOM killer and earlyoom act on growers, then `run
//! --reap-before` ends the left-over trees first. It reuses the snapshot; its line says
//! `(OOM guard, 640M)`, and the tests' `oom-guard:` lines (what was killed, when the
//! guard acted) are printed above it.
//!
//! The arm64 row (arm64/) boots Debian 12's stock arm64 kernel from an initramfs instead:
//! the integration tests need the host's x86 programs (python3, tmux), so that guest runs
//! a scenario of its own through the aarch64 release binary, and the library's unit tests.
//!
//! A kernel that cannot be run (its image is not found or not downloadable, qemu or vng is
//! missing) is never skipped silently: its line says `NOT RUN` and why. With CI set that
//! fails the run, always: CI must test every kernel. Without CI it fails the run too,
//! unless the caller passed `--skip-missing-kernels` (a laptop offline, a clone without
//! `../shared/`), and even then the NOT RUN lines are printed with the others at the end.
pub mod arm64;
mod binaries;
mod guest;
mod images;
mod keeper;
pub mod libtest;
mod panic;
mod report;
mod snapshot;

use std::{
    env,
    path::{Path, PathBuf},
};

use anyhow::{Result, bail};
pub use report::{Line, conclude, host_line};

use crate::{run::target_dir, setup, sh};

/// Which guests to boot.
pub enum Kernels {
    /// Debian 12's 6.1 and 5.15 LTS.
    Matrix,
    /// One vmlinuz, for whoever debugs a kernel: `cargo xtask test --kernel PATH`.
    Only(PathBuf),
    /// Only the guard guest: `cargo xtask test --guard-only`.
    GuardOnly,
}

/// A guest kernel, or why there is none.
struct Guest {
    name: String,
    image: Result<PathBuf, String>,
}

/// Runs the guests' tests: every guest runs, however the previous ones went, and each
/// gets a line. Fails only when the tests cannot be built or `kernels` is unusable.
pub fn run(root: &Path, kernels: Kernels, skip_missing: bool) -> Result<Vec<Line>> {
    check_options(skip_missing)?;
    let ci = env::var_os("CI").is_some();
    let cache = target_dir(root).join("kernels");
    let guard = matches!(kernels, Kernels::Matrix | Kernels::GuardOnly);
    let guests = match kernels {
        Kernels::GuardOnly => Vec::new(),
        Kernels::Matrix => vec![
            guest("6.1 (Debian 12)", images::debian_6_1(&cache)),
            guest("5.15", images::lts_5_15(root)),
        ],
        Kernels::Only(path) => {
            if !path.is_file() {
                bail!("--kernel {}: no such file", path.display());
            }
            vec![guest("", Ok(path.canonicalize()?))]
        }
    };
    let tools = vng_and_qemu();
    let snapshot = snapshot::Snapshot::take(binaries::build(root)?, &cache.join("snapshot"))?;
    let mut lines = Vec::new();
    for guest in guests {
        let (image, vng) = match (&guest.image, &tools) {
            (Ok(image), Ok(vng)) => (image, vng),
            (Err(why), _) | (_, Err(why)) => {
                let fails = not_running_fails(ci, skip_missing);
                lines.push(report::not_run(&guest.name, why, fails));
                continue;
            }
        };
        let run_dir = cache.join("runs").join(&guest.name);
        eprintln!(
            "==> kernel {}: tests in a qemu guest of {} (log folder {})",
            guest.name,
            image.display(),
            run_dir.display()
        );
        let cwd = root.join("probe-user");
        match guest::run_all(vng, image, &guest.name, &snapshot, &cwd, &run_dir) {
            Ok(run) => {
                report::print_times(&guest.name, &run);
                report::print_failures(&guest.name, &run);
                lines.push(report::guest_line(&guest.name, "", &run));
            }
            Err(err) => lines.push(report::could_not_run(&guest.name, &err)),
        }
    }
    if guard {
        let fails = not_running_fails(ci, skip_missing);
        lines.push(guard_row(root, &cache, &tools, &snapshot, fails));
    }
    snapshot.remove();
    Ok(lines)
}

/// What the guard row's line calls it after the kernel's release.
const GUARD_ROW: &str = " (OOM guard, 640M)";

/// The guard row: tests/oom_guard.rs in a 6.1 guest with little memory, earlyoom's
/// binary named to it. `fails`: whether a guard guest that cannot run fails the run.
fn guard_row(
    root: &Path,
    cache: &Path,
    tools: &Result<PathBuf, String>,
    snapshot: &snapshot::Snapshot,
    fails: bool,
) -> Line {
    let name = format!("6.1 (Debian 12){GUARD_ROW}");
    let image = images::debian_6_1(cache).map_err(|err| format!("{err:#}"));
    let earlyoom = images::earlyoom(root, cache).map_err(|err| format!("earlyoom: {err:#}"));
    let (image, vng, earlyoom) = match (&image, tools, &earlyoom) {
        (Ok(image), Ok(vng), Ok(earlyoom)) => (image, vng, earlyoom),
        (Err(why), _, _) | (_, Err(why), _) | (_, _, Err(why)) => {
            return report::not_run(&name, why, fails);
        }
    };
    let run_dir = cache.join("runs").join("oom-guard");
    eprintln!(
        "==> kernel {}{GUARD_ROW}: the guard against the OOM killers in a qemu guest of {} (log folder {})",
        release_of(image),
        image.display(),
        run_dir.display()
    );
    let machine = guest::Machine::guard(vec![(
        "HUPWATCH_TEST_EARLYOOM",
        earlyoom.to_string_lossy().into_owned(),
    )]);
    let cwd = root.join("probe-user");
    match guest::run(
        vng,
        image,
        &name,
        &machine,
        snapshot,
        &[&snapshot.guard],
        &cwd,
        &run_dir,
    ) {
        Ok(run) => {
            let label = format!("{}{GUARD_ROW}", run.release.as_deref().unwrap_or(&name));
            report::print_times(&label, &run);
            for binary in &run.binaries {
                for said in binary.log.lines().filter(|l| l.starts_with("oom-guard: ")) {
                    eprintln!("  {said}");
                }
            }
            report::print_failures(&label, &run);
            report::guest_line(&name, GUARD_ROW, &run)
        }
        Err(err) => report::could_not_run(&name, &err),
    }
}

/// Refuses `--skip-missing-kernels` in CI: `cargo xtask test` calls this first, so that CI
/// learns it before the host's tests rather than after.
pub fn check_options(skip_missing: bool) -> Result<()> {
    if skip_missing && env::var_os("CI").is_some() {
        bail!("--skip-missing-kernels is refused when CI is set: CI tests every kernel");
    }
    Ok(())
}

/// Whether a kernel that cannot be run fails the run: see the module's comment.
fn not_running_fails(ci: bool, skip_missing: bool) -> bool {
    ci || !skip_missing
}

fn guest(what: &str, image: Result<PathBuf>) -> Guest {
    match image {
        Ok(image) => Guest {
            name: release_of(&image),
            image: Ok(image),
        },
        Err(err) => Guest {
            name: what.to_owned(),
            image: Err(format!("{err:#}")),
        },
    }
}

/// `vmlinuz-6.1.0-57-amd64` -> `6.1.0-57-amd64`: the release the kernel will report.
fn release_of(image: &Path) -> String {
    let file = image
        .file_name()
        .map_or_else(|| image.to_string_lossy(), |name| name.to_string_lossy());
    file.strip_prefix("vmlinuz-").unwrap_or(&file).to_owned()
}

/// vng, or what is missing to boot a guest. setup installs both; this is for a machine
/// where it could not (not Debian, macOS).
fn vng_and_qemu() -> Result<PathBuf, String> {
    let vng = setup::vng();
    let qemu = sh::which("qemu-system-x86_64");
    match (vng, qemu) {
        (Some(vng), Some(_)) => Ok(vng),
        (vng, qemu) => {
            let missing: Vec<&str> = [
                vng.is_none().then_some("vng (virtme-ng)"),
                qemu.is_none().then_some("qemu-system-x86_64"),
            ]
            .into_iter()
            .flatten()
            .collect();
            Err(format!(
                "{} not found (`cargo xtask setup` installs them)",
                missing.join(" and ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_is_named_by_its_release() {
        assert_eq!(
            release_of(Path::new("/k/boot/vmlinuz-6.1.0-57-amd64")),
            "6.1.0-57-amd64"
        );
        assert_eq!(release_of(Path::new("/k/bzImage")), "bzImage");
    }

    #[test]
    fn a_kernel_not_run_fails_the_run_unless_skipping_is_asked_for_outside_ci() {
        assert!(not_running_fails(true, false));
        assert!(not_running_fails(false, false));
        assert!(!not_running_fails(false, true));
        // run() refuses --skip-missing-kernels in CI before it gets here; were it not to:
        assert!(not_running_fails(true, true));
    }
}
