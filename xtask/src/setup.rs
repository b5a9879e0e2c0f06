//! `cargo xtask setup`: what building the eBPF programs and testing them need on a fresh
//! Debian 12 machine. Every step checks first, so on a machine that is already set up it
//! takes well under a second and changes nothing.
use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::sh;

/// bpf-linker's llvm-22 feature links against these (LLVM, Polly and LLVM's compression libs).
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// The integration tests start their subjects with these; (tool, Debian package).
const TEST_TOOLS: &[(&str, &str)] = &[
    ("python3", "python3"),
    ("setsid", "util-linux"),
    ("nohup", "coreutils"),
    ("setpriv", "util-linux"),
    ("tmux", "tmux"),
    // promtool checks and unit-tests the alert rules in dashboards/; the server scrapes a
    // running hupwatch in tests/prometheus.rs.
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    // amtool checks deploy/fleet/alertmanager.yml.
    ("amtool", "prometheus-alertmanager"),
    // tests/fleet.rs: machines in network and pid namespaces (ip, unshare, nsenter), their
    // certificates (openssl), their listeners asked with curl, and a real Alertmanager.
    ("ip", "iproute2"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("prometheus-alertmanager", "prometheus-alertmanager"),
    // tests/deploy.rs checks the systemd unit with systemd's own analyzer, and traces the
    // daemon with strace to hold its system calls against the unit's allow list.
    ("systemd-analyze", "systemd"),
    ("strace", "strace"),
    // cargo xtask bench: the comparison probe, the kernel's per-program statistics, and a
    // terminal for the setsid latency.
    ("bpftrace", "bpftrace"),
    ("bpftool", "bpftool"),
    ("script", "bsdutils"),
    // cargo xtask bench's poll section: the /proc exporter hupwatch's polling source is
    // compared with. Debian enables its service (on :9256, idle until scraped) where
    // systemd runs; the bench starts its own instance on another port.
    ("prometheus-process-exporter", "prometheus-process-exporter"),
    // tests/notify.rs: a private session bus, an X server without a screen, and a real
    // notification server on them, read back with dunstctl (same package as dunst).
    // tests/local_api.rs: the session keepers reap must spare, as Debian packages them
    // (tmux is above; abduco is not packaged for Debian 12).
    ("screen", "screen"),
    ("dtach", "dtach"),
    ("mosh-server", "mosh"),
    ("dbus-daemon", "dbus"),
    ("Xvfb", "xvfb"),
    ("dunst", "dunst"),
];
/// The kernel matrix boots other kernels in qemu guests: (tool, Debian package).
const GUEST_TOOLS: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    // The arm64 row: Debian 12's arm64 kernel, emulated.
    ("qemu-system-aarch64", "qemu-system-arm"),
];
/// virtme-ng packs its guest's initramfs around a busybox, which must be static: a dynamic
/// one (Debian's `busybox`, which also installs a `busybox` command) finds no libraries there.
const STATIC_BUSYBOX: &str = "busybox-static";
/// virtme-ng (`vng`) boots a kernel over the host's root filesystem. Not packaged for
/// Debian 12: pip installs it. The version the kernel matrix was measured with.
const VIRTME_NG_VERSION: &str = "1.42";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// `cargo xtask dist` builds the .deb with cargo-deb; the version dist was made with.
const CARGO_DEB_VERSION: &str = "3.8.0";
/// The release binaries' targets: rustup's musl standard libraries carry their own C
/// runtime, so both link fully static here (aarch64 with rust-lld, .cargo/config.toml).
pub const RELEASE_TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];
/// tests/oom_killer.rs runs a real earlyoom (with `--dryrun`) to see it named with its
/// thresholds. Never installed: the Debian package enables its service, which would then
/// kill processes on a developer's machine. Its .deb is fetched with `apt-get download`
/// (nothing installed, nothing run) and unpacked under target/; Debian 12's version.
const EARLYOOM_DEB_VERSION: &str = "1.7-1+b1";
/// What `earlyoom -v` of that package says.
const EARLYOOM_VERSION: &str = "earlyoom v1.7";
/// The install test builds a clean Debian 12 root with debootstrap.
const INSTALL_TEST_TOOLS: &[(&str, &str)] = &[("debootstrap", "debootstrap")];
/// `cargo xtask test` type-checks the user-space crates for macOS with these, and
/// `cargo xtask dist` links them.
pub const MACOS_TARGETS: [&str; 2] = ["aarch64-apple-darwin", "x86_64-apple-darwin"];
/// `cargo xtask dist` links the macOS binaries with cargo-zigbuild (Zig's linker, no Apple
/// SDK) and merges them into one universal binary; the version dist was measured with.
const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";
/// Zig, from PyPI's `ziglang` wheel (the Zig project's own build, packaged); installed
/// under target/ with `pip --target` (no root, nothing in the system's python) and
/// found by cargo-zigbuild as `python3 -m ziglang` through PYTHONPATH.
pub const ZIG_VERSION: &str = "0.17.0";
/// What checks the macOS artifacts: LLVM's Mach-O reader (llvm-objdump-22, the LLVM
/// bpf-linker is built against) and Ruby's syntax check of the Homebrew formula.
const MACOS_CHECK_TOOLS: &[(&str, &str)] = &[("llvm-objdump-22", "llvm-22"), ("ruby", "ruby")];

/// What building and running hupwatch needs (`cargo xtask run`), plus the host's test tools.
pub fn setup() -> Result<()> {
    llvm_packages()?;
    nightly_rust_src()?;
    bpf_linker()?;
    macos_targets()?;
    test_tools()
}

/// Everything `cargo xtask test` needs: `setup` and the kernel matrix's guest tools, which
/// `cargo xtask run` has no use for (qemu is large).
pub fn setup_for_tests() -> Result<()> {
    setup()?;
    dist_tools()?;
    macos_dist_tools(&workspace_root())?;
    earlyoom(&workspace_root())?;
    install_missing(INSTALL_TEST_TOOLS, "install-test tools")?;
    guest_tools()
}

/// What `cargo xtask dist` needs beyond `setup`: the musl targets, a C compiler for arm64
/// and cargo-deb.
pub fn dist_tools() -> Result<()> {
    rust_targets(&RELEASE_TARGETS)?;
    // ring (rustls's primitives) compiles C for arm64; .cargo/config.toml names this gcc.
    install_missing(
        &[("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")],
        "arm64 C compiler",
    )?;
    if sh::probe(Command::new("cargo").args(["deb", "--version"]))
        .is_some_and(|v| v.contains(CARGO_DEB_VERSION))
    {
        eprintln!("setup: cargo-deb ok");
        return Ok(());
    }
    eprintln!("setup: installing cargo-deb {CARGO_DEB_VERSION} (about a minute)");
    sh::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}

/// What `cargo xtask dist` needs for the macOS artifacts: cargo-zigbuild and Zig, pinned,
/// and the tools that check them. Each fails loudly when it cannot be installed.
pub fn macos_dist_tools(root: &Path) -> Result<()> {
    install_missing(MACOS_CHECK_TOOLS, "macOS artifact checks (llvm-22, ruby)")?;
    cargo_zigbuild()?;
    ziglang(root)
}

fn cargo_zigbuild() -> Result<()> {
    // `cargo zigbuild --version` is refused; the binary itself answers.
    if sh::probe(Command::new("cargo-zigbuild").arg("--version"))
        .is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_ZIGBUILD_VERSION))
    {
        eprintln!("setup: cargo-zigbuild ok");
        return Ok(());
    }
    eprintln!("setup: installing cargo-zigbuild {CARGO_ZIGBUILD_VERSION} (about a minute)");
    sh::run(Command::new("cargo").args([
        "install",
        "cargo-zigbuild",
        "--locked",
        "--version",
        CARGO_ZIGBUILD_VERSION,
    ]))
}

/// Where Zig's wheel is unpacked: target/tools/ziglang-VERSION, kept between runs.
pub fn ziglang_dir(root: &Path) -> PathBuf {
    sh::target_dir(root)
        .join("tools")
        .join(format!("ziglang-{ZIG_VERSION}"))
}

/// The Zig `python3 -m ziglang` runs from `dir`, if any.
fn zig_version(dir: &Path) -> Option<String> {
    sh::probe(
        Command::new("python3")
            .args(["-m", "ziglang", "version"])
            .env("PYTHONPATH", dir),
    )
    .map(|v| v.trim().to_owned())
}

fn ziglang(root: &Path) -> Result<()> {
    let dir = ziglang_dir(root);
    if zig_version(&dir).as_deref() == Some(ZIG_VERSION) {
        eprintln!("setup: zig {ZIG_VERSION} ok ({})", dir.display());
        return Ok(());
    }
    // Debian's own python3 comes without pip.
    if sh::probe(Command::new("python3").args(["-m", "pip", "--version"])).is_none() {
        apt_install(&["python3-pip"])?;
    }
    eprintln!(
        "setup: installing zig {ZIG_VERSION} (PyPI's ziglang) into {}",
        dir.display()
    );
    // Unpacked beside the final folder and renamed, so an interrupted install leaves no
    // half a Zig that looks installed.
    let partial = dir.with_file_name(format!("ziglang-{ZIG_VERSION}.partial"));
    for stale in [&dir, &partial] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)?;
        }
    }
    sh::run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&partial)
            .arg(format!("ziglang=={ZIG_VERSION}"))
            .env("PIP_ROOT_USER_ACTION", "ignore"),
    )?;
    std::fs::rename(&partial, &dir)?;
    match zig_version(&dir) {
        Some(v) if v == ZIG_VERSION => Ok(()),
        found => bail!(
            "pip installed ziglang {ZIG_VERSION} into {}, but `python3 -m ziglang version` there says {found:?}",
            dir.display()
        ),
    }
}

/// Where earlyoom's package is unpacked: target/tools/earlyoom-VERSION, its binary in
/// `usr/bin/earlyoom` below (tests/oom_killer.rs looks there).
pub fn earlyoom_dir(root: &Path) -> PathBuf {
    sh::target_dir(root)
        .join("tools")
        .join(format!("earlyoom-{EARLYOOM_DEB_VERSION}"))
}

fn earlyoom_version(dir: &Path) -> Option<String> {
    // `earlyoom -v` prints its version (on stderr) and exits; it kills nothing.
    let out = Command::new(dir.join("usr/bin/earlyoom"))
        .arg("-v")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        let said = [out.stdout, out.stderr].concat();
        String::from_utf8_lossy(&said).trim().to_owned()
    })
}

fn earlyoom(root: &Path) -> Result<()> {
    let dir = earlyoom_dir(root);
    if earlyoom_version(&dir).as_deref() == Some(EARLYOOM_VERSION) {
        eprintln!(
            "setup: earlyoom {EARLYOOM_DEB_VERSION} ok ({})",
            dir.display()
        );
        return Ok(());
    }
    let debs = sh::target_dir(root).join("tools").join("debs");
    std::fs::create_dir_all(&debs)?;
    let deb = debs.join(format!(
        "earlyoom_{}_{}.deb",
        EARLYOOM_DEB_VERSION.replace(':', "%3a"),
        deb_arch()?
    ));
    if !deb.is_file() {
        eprintln!(
            "setup: fetching earlyoom {EARLYOOM_DEB_VERSION}'s .deb into {} (not installed)",
            debs.display()
        );
        // As the caller, into a folder it owns: apt-get download needs no root.
        sh::run(
            Command::new("apt-get")
                .args(["download", &format!("earlyoom={EARLYOOM_DEB_VERSION}")])
                .current_dir(&debs),
        )
        .context(
            "apt-get download earlyoom: is Debian 12's package list there (apt-get update)?",
        )?;
    }
    // Unpacked beside the final folder and renamed, as Zig is.
    let partial = dir.with_file_name(format!("earlyoom-{EARLYOOM_DEB_VERSION}.partial"));
    for stale in [&dir, &partial] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)?;
        }
    }
    sh::run(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, &dir)?;
    match earlyoom_version(&dir) {
        Some(v) if v == EARLYOOM_VERSION => Ok(()),
        found => bail!(
            "unpacked {} into {}, but its `earlyoom -v` says {found:?}",
            deb.display(),
            dir.display()
        ),
    }
}

/// Debian's name for this machine's architecture (`amd64`, `arm64`).
fn deb_arch() -> Result<String> {
    sh::probe(Command::new("dpkg").arg("--print-architecture"))
        .map(|a| a.trim().to_owned())
        .context("dpkg --print-architecture")
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// The standard library for macOS, so `cargo check --target` works here and dist links.
fn macos_targets() -> Result<()> {
    rust_targets(&MACOS_TARGETS)
}

/// rustup's standard libraries for `targets`, added where missing.
fn rust_targets(targets: &[&str]) -> Result<()> {
    let installed = sh::probe(Command::new("rustup").args(["target", "list", "--installed"]))
        .unwrap_or_default();
    let missing: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: rust targets {} ok", targets.join(" "));
        return Ok(());
    }
    eprintln!("setup: adding rust targets {}", missing.join(" "));
    sh::run(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing),
    )
}

fn llvm_packages() -> Result<()> {
    let installed = installed_packages(LLVM_PACKAGES)?;
    let missing: Vec<&str> = LLVM_PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.contains(*p))
        .collect();
    if missing.is_empty() {
        eprintln!("setup: llvm packages ok");
        return Ok(());
    }
    apt_install(&missing)
}

/// The packages among `packages` that dpkg reports as installed.
fn installed_packages(packages: &[&str]) -> Result<HashSet<String>> {
    if sh::which("dpkg-query").is_none() {
        bail!("dpkg-query not found: setup knows only Debian; install {packages:?} by hand");
    }
    // dpkg-query fails when any package is unknown but still prints the known ones, so
    // its output matters and its exit status does not.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Status}\\n")
        .args(packages)
        .stderr(std::process::Stdio::null())
        .output()
        .context("could not run dpkg-query")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| status.contains("install ok installed"))
        .map(|(name, _)| name.to_owned())
        .collect())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    apt_install_with(packages, &[])
}

/// `apt-get install` with `options` (e.g. `--no-install-recommends`), after an update so
/// that a fresh machine's empty package lists do not fail it.
fn apt_install_with(packages: &[&str], options: &[&str]) -> Result<()> {
    eprintln!("setup: installing {}", packages.join(" "));
    apt_update()?;
    sh::run(
        sh::as_root("apt-get", &NONINTERACTIVE)?
            .args(["install", "-y"])
            .args(options)
            .args(packages),
    )
}

const NONINTERACTIVE: [(&str, &str); 1] = [("DEBIAN_FRONTEND", "noninteractive")];

/// Refreshes apt's package lists (as root).
pub fn apt_update() -> Result<()> {
    sh::run(sh::as_root("apt-get", &NONINTERACTIVE)?.arg("update"))
}

/// aya-build compiles the eBPF crate with `cargo +nightly -Z build-std`, which needs rust-src.
fn nightly_rust_src() -> Result<()> {
    let components = sh::probe(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match components {
        Some(list) if list.lines().any(|c| c.trim() == "rust-src") => {
            eprintln!("setup: nightly rust-src ok");
            Ok(())
        }
        Some(_) => {
            eprintln!("setup: installing rust-src for nightly");
            sh::run(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))
        }
        None => {
            eprintln!("setup: installing nightly toolchain with rust-src");
            sh::run(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
        }
    }
}

fn bpf_linker() -> Result<()> {
    // main has put $CARGO_HOME/bin on PATH, so this also finds an earlier `cargo install`.
    if sh::probe(Command::new("bpf-linker").arg("--version")).is_some() {
        eprintln!("setup: bpf-linker ok");
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER_VERSION} (takes a few minutes)");
    let install = |locked: bool| {
        let mut cmd = Command::new("cargo");
        cmd.args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION]);
        if locked {
            cmd.arg("--locked");
        }
        // Without LLVM_PREFIX the build does not find Debian's LLVM: "unable to find library -lLLVM".
        cmd.args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22");
        cmd
    };
    if sh::run(&mut install(true)).is_ok() {
        return Ok(());
    }
    // --locked builds bpf-linker's tested dependency set; should that set stop building
    // (a yanked or broken crate), a fresh resolution is worth one try.
    eprintln!("setup: retrying bpf-linker without --locked");
    sh::run(&mut install(false))
}

fn test_tools() -> Result<()> {
    install_missing(TEST_TOOLS, "test tools")
}

/// Installs the packages of the `tools` (tool, package) not on PATH.
fn install_missing(tools: &[(&str, &str)], what: &str) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(tool, _)| sh::which(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        eprintln!("setup: {what} ok");
        return Ok(());
    }
    apt_install(&missing)
}

/// qemu, a static busybox and virtme-ng: what the kernel matrix boots its guests with.
fn guest_tools() -> Result<()> {
    let mut missing: Vec<&str> = GUEST_TOOLS
        .iter()
        .filter(|(tool, _)| sh::which(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !installed_packages(&[STATIC_BUSYBOX])?.contains(STATIC_BUSYBOX) {
        missing.push(STATIC_BUSYBOX);
    }
    if missing.is_empty() {
        eprintln!("setup: qemu and busybox-static ok");
    } else {
        // Without recommends: they are qemu's GTK and SDL front ends, audio and extra block
        // drivers, hundreds of MB that a guest on a serial console never uses. Its BIOS
        // (seabios) and option ROMs are hard dependencies and come anyway.
        apt_install_with(&missing, &["--no-install-recommends"])?;
    }
    virtme_ng()
}

fn virtme_ng() -> Result<()> {
    if let Some(vng) = vng() {
        eprintln!("setup: vng ok ({})", vng.display());
        return Ok(());
    }
    // Debian's own python3 comes without pip.
    if sh::probe(Command::new("python3").args(["-m", "pip", "--version"])).is_none() {
        apt_install(&["python3-pip"])?;
    }
    eprintln!("setup: installing virtme-ng {VIRTME_NG_VERSION} with pip");
    // As root, like the apt packages: the guests are booted as root (the tests in them need
    // it), and root's python would not see a package in the caller's --user site. Debian
    // marks its python "externally managed" and pip then refuses without the override;
    // virtme-ng is not packaged for Debian 12, so there is no apt alternative.
    let pip_env = [
        ("PIP_BREAK_SYSTEM_PACKAGES", "1"),
        ("PIP_ROOT_USER_ACTION", "ignore"),
    ];
    sh::run(sh::as_root("python3", &pip_env)?.args([
        "-m",
        "pip",
        "install",
        &format!("virtme-ng=={VIRTME_NG_VERSION}"),
    ]))?;
    match vng() {
        Some(vng) => {
            eprintln!("setup: vng installed ({})", vng.display());
            Ok(())
        }
        None => bail!(
            "pip installed virtme-ng, but no `vng` is on PATH or in python3's script directories"
        ),
    }
}

/// Prints the directories where pip puts commands for this python3: its own (a venv's or
/// pyenv's bin, /usr/local/bin for Debian's python) and the per-user one (~/.local/bin).
const PYTHON_SCRIPT_DIRS: &str = r#"
import sysconfig
print(sysconfig.get_path("scripts"))
for scheme in ("posix_local", "posix_user"):
    if scheme in sysconfig.get_scheme_names():
        print(sysconfig.get_path("scripts", scheme))
"#;

/// virtme-ng's `vng`. Looked for first where pip put it for python3, since PATH may lack
/// that directory (pyenv, ~/.local/bin, sudo's secure_path) or lead to a pyenv shim of
/// another python version; then on PATH.
pub fn vng() -> Option<PathBuf> {
    let dirs =
        sh::probe(Command::new("python3").args(["-c", PYTHON_SCRIPT_DIRS])).unwrap_or_default();
    dirs.lines()
        .map(|dir| Path::new(dir.trim()).join("vng"))
        .find(|vng| sh::is_executable(vng))
        .or_else(|| sh::which("vng"))
}
