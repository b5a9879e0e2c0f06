//! The release artifacts installed as a user installs them (`cargo xtask test`'s install
//! step): the amd64 .deb into a clean Debian 12 root made with debootstrap (no Rust, no
//! LLVM, no build tree), and the x86_64 tarball's binary on the host. Each check prints a
//! line; the step prints `install: N passed, M failed` and fails on any failure.
mod rootfs;
mod smoke;

use std::{ffi::OsString, fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};
use smoke::{Place, run_ok};

use crate::{
    dist::{self, Artifacts},
    run::target_dir,
};

pub fn test(root: &Path, artifacts: &Artifacts) -> Result<()> {
    let mut checks = Checks::default();
    let work = target_dir(root).join("install-test");
    deb_in_a_clean_debian(root, artifacts, &work, &mut checks)?;
    tarball_on_the_host(root, artifacts, &work, &mut checks)?;
    checks.conclude()
}

fn deb_in_a_clean_debian(
    root: &Path,
    artifacts: &Artifacts,
    work: &Path,
    checks: &mut Checks,
) -> Result<()> {
    let pristine = rootfs::pristine(&work.join("cache"))?;
    let chroot = work.join("root");
    rootfs::fresh_copy(&pristine, &chroot)?;
    let deb = artifacts.deb(dist::X86_64);
    fs::copy(&deb, chroot.join("tmp/hupwatch.deb"))?;
    let place = Place {
        prefix: vec![OsString::from("chroot"), chroot.clone().into_os_string()],
        hupwatch: "/usr/bin/hupwatch".into(),
    };
    let inside = |args: &[&str]| {
        let mut cmd = place.command(args[0]);
        cmd.args(&args[1..]).env("LC_ALL", "C.UTF-8");
        cmd
    };
    checks.record(".deb: dpkg -i in a clean Debian 12", || {
        let said = run_ok(&mut inside(&["dpkg", "-i", "/tmp/hupwatch.deb"]))?;
        if said.contains("dependency problems") {
            bail!("{said}");
        }
        Ok(())
    });
    checks.record(
        ".deb: creates the system account hupwatch runs as, with no login",
        || {
            let entry = run_ok(&mut inside(&["getent", "passwd", "hupwatch"]))?;
            let fields: Vec<&str> = entry.trim().split(':').collect();
            let uid: u32 = fields.get(2).and_then(|u| u.parse().ok()).unwrap_or(0);
            // Debian's system range (adduser.conf's FIRST_SYSTEM_UID..LAST_SYSTEM_UID).
            if !(100..1000).contains(&uid)
                || fields.get(5) != Some(&"/nonexistent")
                || fields.get(6) != Some(&"/usr/sbin/nologin")
            {
                bail!("getent passwd hupwatch: {entry}");
            }
            Ok(())
        },
    );
    checks.record(".deb: hupwatch --version names version and commit", || {
        version_names_commit(root, &run_ok(&mut inside(&["hupwatch", "--version"]))?)
    });
    checks.record(".deb: man hupwatch and man hupwatch-run render", || {
        let page = run_ok(inside(&["man", "-P", "cat", "hupwatch"]).env("MANWIDTH", "80"))?;
        let run = run_ok(inside(&["man", "-P", "cat", "hupwatch-run"]).env("MANWIDTH", "80"))?;
        if !page.contains("SYNOPSIS") || !page.contains("hupwatch-run(1)") {
            bail!("man hupwatch: {page}");
        }
        if !run.contains("--rss-growth") {
            bail!("man hupwatch-run has no --rss-growth: {run}");
        }
        Ok(())
    });
    checks.record(".deb: bash completes `hupwatch ru` to run", || {
        // As bash does on Tab: load the package's script on demand, call its function.
        let script = "source /usr/share/bash-completion/bash_completion; \
                      _completion_loader hupwatch; \
                      f=$(complete -p hupwatch | grep -o -- '-F [^ ]*' | cut -c4-); \
                      COMP_WORDS=(hupwatch ru); COMP_CWORD=1; COMP_LINE='hupwatch ru'; COMP_POINT=11; \
                      \"$f\" hupwatch ru hupwatch; printf '%s\\n' \"${COMPREPLY[@]}\"";
        let said = run_ok(&mut inside(&["bash", "-c", script]))?;
        if !said.lines().any(|l| l.trim() == "run") {
            bail!("completions offered: {said:?}");
        }
        Ok(())
    });
    checks.record(
        ".deb: systemd-analyze verify passes the installed units",
        || {
            let said = run_ok(&mut inside(&[
                "systemd-analyze",
                "verify",
                "/usr/lib/systemd/system/hupwatch.service",
                "/usr/lib/systemd/system/hupwatch-reap.service",
                "/usr/lib/systemd/system/hupwatch-reap.timer",
            ]))?;
            if !said.trim().is_empty() {
                bail!("{said}");
            }
            Ok(())
        },
    );
    checks.record(
        ".deb: the units are installed disabled, the service stopped on removal",
        || {
            for enabled in [
                "etc/systemd/system/multi-user.target.wants/hupwatch.service",
                "etc/systemd/system/timers.target.wants/hupwatch-reap.timer",
            ] {
                if chroot.join(enabled).exists() {
                    bail!("the package enabled a unit (/{enabled})");
                }
            }
            let prerm = fs::read_to_string(chroot.join("var/lib/dpkg/info/hupwatch.prerm"))
                .context("the package has no prerm")?;
            if !prerm.contains("deb-systemd-invoke stop") || !prerm.contains("hupwatch.service") {
                bail!("prerm does not stop hupwatch.service: {prerm}");
            }
            Ok(())
        },
    );
    {
        let _mounts = rootfs::Mounts::new(&chroot)?;
        checks.record(
            ".deb: the installed binary calls a setsid on a pty detached",
            || {
                let (ready, alert) = smoke::setsid_on_a_pty_is_detached(&place, "/tmp")?;
                eprintln!("install: {alert}");
                // The package's account exists, so root's run switches to it by default.
                if !ready.contains("running as user hupwatch") {
                    bail!("the ready line does not say it runs as hupwatch: {ready}");
                }
                Ok(())
            },
        );
        checks.record(
            ".deb: the installed `hupwatch selftest` passes with the eBPF source",
            || {
                let table = smoke::selftest_passes(&place)?;
                eprintln!("install: {}", table.lines().next().unwrap_or_default());
                Ok(())
            },
        );
    }
    checks.record(
        ".deb: dpkg -r leaves no binary, unit or BPF program",
        || {
            run_ok(&mut inside(&["dpkg", "-r", "hupwatch"]))?;
            for left in [
                "usr/bin/hupwatch",
                "usr/lib/systemd/system/hupwatch.service",
            ] {
                if chroot.join(left).exists() {
                    bail!("/{left} is still there after dpkg -r");
                }
            }
            Ok(())
        },
    );
    Ok(())
}

fn tarball_on_the_host(
    root: &Path,
    artifacts: &Artifacts,
    work: &Path,
    checks: &mut Checks,
) -> Result<()> {
    let unpacked = work.join("tarball");
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    fs::create_dir_all(&unpacked)?;
    let tarball = artifacts.tarball(dist::X86_64);
    let binary = unpacked
        .join(format!(
            "hupwatch-{}-{}",
            dist::VERSION,
            dist::X86_64.triple
        ))
        .join("hupwatch");
    checks.record("tarball: SHA256SUMS checks every artifact", || {
        run_ok(
            Command::new("sha256sum")
                .args(["--check", "--strict", "SHA256SUMS"])
                .current_dir(&artifacts.dir),
        )
        .map(drop)
    });
    checks.record(
        "tarball: unpacks with the binary, man pages, completions, unit",
        || {
            run_ok(
                Command::new("tar")
                    .arg("-xzf")
                    .arg(&tarball)
                    .arg("-C")
                    .arg(&unpacked),
            )?;
            let top = binary.parent().expect("inside the top folder");
            for file in [
                "hupwatch",
                "man/man1/hupwatch.1",
                "man/man1/hupwatch-run.1",
                "completions/hupwatch.bash",
                "completions/_hupwatch",
                "completions/hupwatch.fish",
                "systemd/hupwatch.service",
                "systemd/hupwatch-reap.timer",
                "dashboards/alerts.yml",
                "dashboards/hupwatch.json",
                "README.md",
                "docs/verdicts.md",
                "LICENSE-MIT",
                "LICENSE-APACHE",
            ] {
                if !top.join(file).is_file() {
                    bail!("{file} is missing from {}", tarball.display());
                }
            }
            Ok(())
        },
    );
    checks.record("tarball: `file` calls the binary static", || {
        let said = run_ok(Command::new("file").arg(&binary))?;
        if !(said.contains("static-pie linked") || said.contains("statically linked")) {
            bail!("{said}");
        }
        eprintln!("install: {}", said.trim());
        Ok(())
    });
    checks.record(
        "tarball: hupwatch --version names version and commit",
        || version_names_commit(root, &run_ok(Command::new(&binary).arg("--version"))?),
    );
    let place = Place {
        prefix: Vec::new(),
        hupwatch: binary.clone().into_os_string(),
    };
    let scratch = work.join("scratch");
    fs::create_dir_all(&scratch)?;
    checks.record(
        "tarball: the binary calls a setsid on a pty detached",
        || {
            let (_ready, alert) =
                smoke::setsid_on_a_pty_is_detached(&place, &scratch.to_string_lossy())?;
            eprintln!("install: {alert}");
            Ok(())
        },
    );
    Ok(())
}

fn version_names_commit(root: &Path, said: &str) -> Result<()> {
    let commit = run_ok(
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(root),
    )?;
    let want = format!("hupwatch {} (commit {})", dist::VERSION, commit.trim());
    if said.trim() != want {
        bail!("said {:?}, expected {want:?}", said.trim());
    }
    Ok(())
}

/// Named checks, each run once, with a line each and a closing count.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
    passed: usize,
}

impl Checks {
    fn record(&mut self, name: &str, check: impl FnOnce() -> Result<()>) {
        match check() {
            Ok(()) => {
                self.passed += 1;
                eprintln!("install: ok   {name}");
            }
            Err(err) => {
                eprintln!("install: FAIL {name}: {err:#}");
                self.failed.push(name.to_owned());
            }
        }
    }

    fn conclude(self) -> Result<()> {
        println!(
            "install: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        if !self.failed.is_empty() {
            bail!("install test failed: {}", self.failed.join("; "));
        }
        Ok(())
    }
}
