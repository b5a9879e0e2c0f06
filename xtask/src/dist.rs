//! `cargo xtask dist`: the release artifacts a user installs, in target/dist/: a static,
//! stripped binary per architecture (eBPF programs inside) as a tarball with the man pages,
//! completions, systemd unit, dashboards and licences, the same as a .deb (cargo-deb, from
//! probe-user's `[package.metadata.deb]`), a universal macOS binary as a tarball with the
//! launchd plists instead (macos.rs, checked by macho.rs) and the Homebrew formula that
//! installs it (formula.rs), and SHA256SUMS over the five archives.
//!
//! The man pages and completions come from the x86_64 binary just built (`hupwatch
//! __man-pages`, `hupwatch completions`), so they are generated from the same clap
//! definitions as `--help`; they hold no architecture-specific text, so both packages
//! carry the same files (the clap definitions are the same on macOS).
mod codesign;
mod formula;
mod macho;
mod macos;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{run::target_dir, setup, sh};

/// A release platform: rust's target and Debian's name for its architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Platform {
    pub triple: &'static str,
    pub deb_arch: &'static str,
}

pub const X86_64: Platform = Platform {
    triple: "x86_64-unknown-linux-musl",
    deb_arch: "amd64",
};
pub const AARCH64: Platform = Platform {
    triple: "aarch64-unknown-linux-musl",
    deb_arch: "arm64",
};
pub const PLATFORMS: [Platform; 2] = [X86_64, AARCH64];

/// The cargo profile of the release binaries (the workspace's Cargo.toml: release, stripped).
/// Not `dist`: cargo would then own target/dist/, where the artifacts go.
pub const PROFILE: &str = "release-dist";
/// The version of the workspace, which is hupwatch's (xtask shares `version.workspace`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Shells whose completion scripts ship, with the file name each one's loader looks for.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "hupwatch.bash"),
    ("zsh", "_hupwatch"),
    ("fish", "hupwatch.fish"),
];

/// What `dist` wrote.
pub struct Artifacts {
    pub dir: PathBuf,
    /// The built binary of each platform, as it went into its tarball and .deb.
    pub binaries: Vec<(Platform, PathBuf)>,
}

impl Artifacts {
    /// The artifacts an earlier `dist` wrote (for the install test run as root by `test`).
    pub fn existing(root: &Path) -> Self {
        Artifacts {
            dir: target_dir(root).join("dist"),
            binaries: PLATFORMS
                .iter()
                .map(|p| (*p, profile_dir(root, *p).join("hupwatch")))
                .collect(),
        }
    }

    pub fn binary(&self, platform: Platform) -> &Path {
        &self
            .binaries
            .iter()
            .find(|(p, _)| *p == platform)
            .expect("dist builds every platform")
            .1
    }

    pub fn tarball(&self, platform: Platform) -> PathBuf {
        self.dir.join(format!("{}.tar.gz", tarball_stem(platform)))
    }

    pub fn deb(&self, platform: Platform) -> PathBuf {
        self.dir.join(deb_name(platform))
    }

    pub fn macos_tarball(&self) -> PathBuf {
        self.dir.join(format!("{}.tar.gz", macos::tarball_stem()))
    }

    /// The Homebrew formula, rendered for the macOS tarball.
    pub fn formula(&self) -> PathBuf {
        self.dir.join("hupwatch.rb")
    }
}

fn tarball_stem(platform: Platform) -> String {
    format!("hupwatch-{VERSION}-{}", platform.triple)
}

/// cargo-deb's name: package_version-revision_arch.deb.
fn deb_name(platform: Platform) -> String {
    format!("hupwatch_{VERSION}-1_{}.deb", platform.deb_arch)
}

/// Builds every artifact from the work tree into target/dist/ and prints their sizes and
/// how long the build took.
pub fn dist(root: &Path) -> Result<Artifacts> {
    setup::setup()?;
    setup::dist_tools()?;
    setup::macos_dist_tools(root)?;
    let started = Instant::now();
    let target = target_dir(root);
    let dir = target.join("dist");
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("could not empty {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let mut binaries = Vec::new();
    for platform in PLATFORMS {
        let step = Instant::now();
        binaries.push((platform, build(root, platform)?));
        eprintln!(
            "dist: {} built in {:.0} s",
            platform.triple,
            step.elapsed().as_secs_f64()
        );
    }
    let step = Instant::now();
    let universal = macos::build(root)?;
    eprintln!(
        "dist: universal macOS binary built in {:.0} s",
        step.elapsed().as_secs_f64()
    );
    // A check failing fails dist: the tarball is not written.
    let checked = macho::check(&universal, macos::MACOS_MIN)?;
    let signature = codesign::check(&universal)?;
    eprintln!(
        "dist: macOS binary checked: {checked}; arm64 signature holds ({} pages of {} bytes, ad hoc: {}, by the linker: {})",
        signature.pages, signature.page_size, signature.ad_hoc, signature.linker_signed
    );
    let artifacts = Artifacts { dir, binaries };
    let generated = target.join("dist-generated");
    generate_docs(artifacts.binary(X86_64), &generated)?;
    for platform in PLATFORMS {
        let binary = artifacts.binary(platform);
        require_static(binary)?;
        tarball(root, platform, binary, &generated, &artifacts)?;
        deb(root, platform, &generated, &artifacts)?;
    }
    macos_release(root, &universal, &generated, &artifacts)?;
    checksums(&artifacts)?;
    report(&artifacts, &universal, started)?;
    Ok(artifacts)
}

/// The macOS tarball and the Homebrew formula rendered with its checksum, both checked.
fn macos_release(
    root: &Path,
    universal: &Path,
    generated: &Path,
    artifacts: &Artifacts,
) -> Result<()> {
    let tarball = artifacts.macos_tarball();
    pack(
        root,
        &macos::tarball_stem(),
        universal,
        generated,
        &macos::plists(root)?,
        &tarball,
    )?;
    let sha256 = sha256(&tarball)?;
    let tarball_name = file_name(&tarball);
    formula::write(
        root,
        &artifacts.formula(),
        &formula::Release {
            version: VERSION,
            tarball: &tarball_name,
            sha256: &sha256,
        },
    )?;
    formula::check_syntax(&root.join(formula::TEMPLATE))?;
    formula::check_syntax(&artifacts.formula())?;
    formula::check_paths(
        &fs::read_to_string(artifacts.formula())?,
        &formula::tarball_entries(&tarball)?,
    )?;
    eprintln!(
        "dist: {} rendered for {} (sha256 {sha256}); ruby -c and its paths checked",
        artifacts.formula().display(),
        formula::release_url()
    );
    Ok(())
}

/// The file's SHA-256 in hex, as sha256sum prints it.
fn sha256(file: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .context("could not run sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(sum) if out.status.success() && sum.len() == 64 => Ok(sum.to_owned()),
        _ => bail!("sha256sum {} failed ({})", file.display(), out.status),
    }
}

/// `cargo build --profile dist --target TRIPLE -p probe-user`, and the binary's path.
fn build(root: &Path, platform: Platform) -> Result<PathBuf> {
    eprintln!(
        "==> cargo build --profile {PROFILE} --target {}",
        platform.triple
    );
    sh::run(
        Command::new("cargo")
            .args(["build", "--profile", PROFILE, "-p", "probe-user"])
            .args(["--target", platform.triple])
            .current_dir(root),
    )?;
    Ok(profile_dir(root, platform).join("hupwatch"))
}

/// Where cargo puts the platform's dist build; cargo-deb reads its `target/release/` assets
/// from here.
fn profile_dir(root: &Path, platform: Platform) -> PathBuf {
    target_dir(root).join(platform.triple).join(PROFILE)
}

/// Man pages into `out/man/`, completions into `out/completions/`.
fn generate_docs(hupwatch: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        fs::remove_dir_all(out)?;
    }
    let man = out.join("man");
    sh::run(Command::new(hupwatch).arg("__man-pages").arg(&man))?;
    let completions = out.join("completions");
    fs::create_dir_all(&completions)?;
    for (shell, file) in COMPLETIONS {
        let script = Command::new(hupwatch)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("could not run {} completions", hupwatch.display()))?;
        if !script.status.success() || script.stdout.is_empty() {
            bail!("`hupwatch completions {shell}` failed ({})", script.status);
        }
        fs::write(completions.join(file), script.stdout)?;
    }
    Ok(())
}

/// Fails unless the binary asks for no program interpreter and no shared library: it must
/// run on any Linux of its architecture, whatever libc (if any) the machine has.
fn require_static(binary: &Path) -> Result<()> {
    let readelf = |flag: &str| -> Result<String> {
        let out = Command::new("readelf")
            .args([flag, "-W"])
            .arg(binary)
            .output()
            .context("could not run readelf (binutils)")?;
        if !out.status.success() {
            bail!("readelf {flag} {} failed", binary.display());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let headers = readelf("-l")?;
    let dynamic = readelf("-d")?;
    if headers.contains("INTERP") || dynamic.contains("(NEEDED)") {
        bail!(
            "{} is not static: it names a program interpreter or shared libraries",
            binary.display()
        );
    }
    Ok(())
}

/// hupwatch-VERSION-TRIPLE.tar.gz: one folder of that name holding what a user installs.
fn tarball(
    root: &Path,
    platform: Platform,
    binary: &Path,
    generated: &Path,
    artifacts: &Artifacts,
) -> Result<()> {
    let units = [
        "hupwatch.service",
        "hupwatch-reap.service",
        "hupwatch-reap.timer",
    ]
    .map(|unit| (root.join("deploy").join(unit), format!("systemd/{unit}")));
    pack(
        root,
        &tarball_stem(platform),
        binary,
        generated,
        &units,
        &artifacts.tarball(platform),
    )
}

/// The tarball `out`: the folder `stem` holding the binary, man pages, completions, the
/// `services` files (source, path in the folder), dashboards, docs and licences.
fn pack(
    root: &Path,
    stem: &str,
    binary: &Path,
    generated: &Path,
    services: &[(PathBuf, String)],
    out: &Path,
) -> Result<()> {
    let stage = target_dir(root).join("dist-stage").join(stem);
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    let top = stage.join(stem);
    let copy = |from: &Path, to: &str| -> Result<()> {
        let to = top.join(to);
        fs::create_dir_all(to.parent().expect("a file under the top folder"))?;
        fs::copy(from, &to)
            .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
        Ok(())
    };
    copy(binary, "hupwatch")?;
    for page in sorted_files(&generated.join("man"))? {
        copy(&page, &format!("man/man1/{}", file_name(&page)))?;
    }
    for (_, file) in COMPLETIONS {
        copy(
            &generated.join("completions").join(file),
            &format!("completions/{file}"),
        )?;
    }
    for (from, to) in services {
        copy(from, to)?;
    }
    for file in sorted_files(&root.join("dashboards"))? {
        copy(&file, &format!("dashboards/{}", file_name(&file)))?;
    }
    // The README links into docs/.
    for file in sorted_files(&root.join("docs"))? {
        copy(&file, &format!("docs/{}", file_name(&file)))?;
    }
    for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        copy(&root.join(file), file)?;
    }
    // Owned by root and dated by the commit, whoever builds it and when.
    let mtime = sh::probe(
        Command::new("git")
            .args(["log", "-1", "--format=@%ct"])
            .current_dir(root),
    )
    .map(|t| t.trim().to_owned())
    .filter(|t| t.len() > 1)
    .unwrap_or_else(|| "@0".to_owned());
    sh::run(
        Command::new("tar")
            .arg("-C")
            .arg(&stage)
            .args(["--owner=0", "--group=0", "--numeric-owner", "--sort=name"])
            .arg(format!("--mtime={mtime}"))
            .arg("-czf")
            .arg(out)
            .arg(stem),
    )?;
    fs::remove_dir_all(&stage)?;
    Ok(())
}

/// The .deb, from the binary already built: cargo-deb copies the generated man pages and
/// completions from the profile folder, where they are put first.
fn deb(root: &Path, platform: Platform, generated: &Path, artifacts: &Artifacts) -> Result<()> {
    let packaging = profile_dir(root, platform).join("packaging");
    if packaging.exists() {
        fs::remove_dir_all(&packaging)?;
    }
    fs::create_dir_all(packaging.join("man"))?;
    // Debian's man pages are compressed; `-n` leaves out the time, so builds compare equal.
    for page in sorted_files(&generated.join("man"))? {
        let packed = packaging
            .join("man")
            .join(format!("{}.gz", file_name(&page)));
        let out = Command::new("gzip")
            .args(["-9", "-n", "-c"])
            .arg(&page)
            .output()
            .context("could not run gzip")?;
        if !out.status.success() {
            bail!("gzip {} failed", page.display());
        }
        fs::write(packed, out.stdout)?;
    }
    copy_dir(
        &generated.join("completions"),
        &packaging.join("completions"),
    )?;
    eprintln!("==> cargo deb --target {}", platform.triple);
    sh::run(
        Command::new("cargo")
            .args(["deb", "-p", "probe-user", "--no-build", "--no-strip"])
            .args(["--profile", PROFILE, "--target", platform.triple])
            .arg("--output")
            .arg(artifacts.deb(platform))
            .current_dir(root),
    )
}

fn checksums(artifacts: &Artifacts) -> Result<()> {
    let mut names = Vec::new();
    for platform in PLATFORMS {
        for path in [artifacts.tarball(platform), artifacts.deb(platform)] {
            if !path.is_file() {
                bail!("{} was not written", path.display());
            }
            names.push(file_name(&path));
        }
    }
    let macos = artifacts.macos_tarball();
    if !macos.is_file() {
        bail!("{} was not written", macos.display());
    }
    names.push(file_name(&macos));
    let sums = Command::new("sha256sum")
        .args(&names)
        .current_dir(&artifacts.dir)
        .output()
        .context("could not run sha256sum")?;
    if !sums.status.success() {
        bail!("sha256sum failed ({})", sums.status);
    }
    fs::write(artifacts.dir.join("SHA256SUMS"), sums.stdout)?;
    Ok(())
}

fn report(artifacts: &Artifacts, universal: &Path, started: Instant) -> Result<()> {
    for (platform, binary) in &artifacts.binaries {
        eprintln!(
            "dist: {} binary {} (static, stripped)",
            platform.triple,
            mib(fs::metadata(binary)?.len())
        );
    }
    eprintln!(
        "dist: universal macOS binary {} (arm64 and x86_64, stripped)",
        mib(fs::metadata(universal)?.len())
    );
    for file in sorted_files(&artifacts.dir)? {
        eprintln!(
            "dist: {} {}",
            file.display(),
            mib(fs::metadata(&file)?.len())
        );
    }
    eprintln!("dist: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("could not list {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.is_file());
    files.sort();
    Ok(files)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for file in sorted_files(from)? {
        fs::copy(&file, to.join(file_name(&file)))?;
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_named_as_users_and_cargo_deb_expect() {
        assert_eq!(
            tarball_stem(AARCH64),
            format!("hupwatch-{VERSION}-aarch64-unknown-linux-musl")
        );
        assert_eq!(deb_name(X86_64), format!("hupwatch_{VERSION}-1_amd64.deb"));
        assert_eq!(deb_name(AARCH64), format!("hupwatch_{VERSION}-1_arm64.deb"));
    }
}
