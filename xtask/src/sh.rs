//! Running child commands with errors that name the command line that failed.
use std::{
    env,
    ffi::{OsStr, OsString},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use anyhow::{Context, Result, bail};

/// The command line as a shell user would type it, for messages.
pub fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Runs with inherited stdio and fails unless the command succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs quietly and returns stdout, or None if it could not start or failed: for probes
/// whose failure just means "not there yet".
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `cmd` with SIGHUP at its default, whatever xtask inherited. Under nohup (SIG_IGN)
/// a shell cannot trap SIGHUP and a terminal's shell outlives its hangup, which breaks the
/// tests and benchmarks that hang up terminals or trap SIGHUP.
pub fn default_sighup(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        })
    }
}

/// cargo's target folder: CARGO_TARGET_DIR when it is set.
pub fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| probe(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0"))
}

/// A command for `program` that runs as root with `vars` set: directly when we are root,
/// else via sudo. `sudo -E` keeps the caller's environment (CI, RUST_LOG, ...), and
/// `env PATH=...` undoes sudo's secure_path so root finds the same cargo and bpf-linker.
pub fn as_root(program: impl AsRef<OsStr>, vars: &[(&str, &str)]) -> Result<Command> {
    let program = program.as_ref();
    if is_root() {
        let mut cmd = Command::new(program);
        cmd.envs(vars.iter().copied());
        return Ok(cmd);
    }
    if which("sudo").is_none() {
        bail!(
            "`{}` needs root: run as root or install sudo",
            program.display()
        );
    }
    let mut cmd = Command::new("sudo");
    cmd.args(["-E", "env"]);
    let mut path = OsString::from("PATH=");
    path.push(env::var_os("PATH").unwrap_or_default());
    cmd.arg(path);
    // sudo may reset HOME, and rustup's proxies would then look for toolchains in root's home.
    for (name, dir) in [("RUSTUP_HOME", rustup_home()), ("CARGO_HOME", cargo_home())] {
        if let Some(dir) = dir {
            let mut assignment = OsString::from(format!("{name}="));
            assignment.push(dir);
            cmd.arg(assignment);
        }
    }
    // Given as arguments to env because sudo's policy may drop them even with -E.
    cmd.args(vars.iter().map(|(name, value)| format!("{name}={value}")));
    cmd.arg(program);
    Ok(cmd)
}

/// The first executable called `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

/// A file anyone may execute.
pub fn is_executable(file: &Path) -> bool {
    file.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

fn rustup_home() -> Option<PathBuf> {
    env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))
}

/// `cargo install` puts bpf-linker in $CARGO_HOME/bin, and the eBPF build finds it only
/// through PATH, which on a fresh machine may not include that directory yet.
pub fn put_cargo_bin_on_path() {
    let Some(bin) = cargo_home().map(|home| home.join("bin")) else {
        return;
    };
    let path = env::var_os("PATH").unwrap_or_default();
    if env::split_paths(&path).any(|dir| dir == bin) {
        return;
    }
    let joined = env::join_paths(std::iter::once(bin).chain(env::split_paths(&path)));
    if let Ok(joined) = joined {
        // SAFETY: called at the start of main, before xtask starts any thread, so nothing
        // can be reading the environment concurrently.
        unsafe { env::set_var("PATH", joined) };
    }
}
