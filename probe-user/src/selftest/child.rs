//! The test processes, each hupwatch run again in its role (again.rs): each does the one
//! thing its verdict is about, tells the reports file when, and waits to be ended.
use std::{
    io::BufRead,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread::sleep,
    time::{Duration, Instant},
};

use super::{
    again::{COMMAND, again},
    plan::{GROW_EVERY, GROW_STEP, GROW_STEPS, ORPHAN_PARENT_LIVES},
    reports::{now_ns, tell, what},
};

/// The longest a test process lives, whatever happens to the self-test and its launcher:
/// a safety net, not the way they end (the launcher ends them within a second).
const LIFETIME: Duration = Duration::from_secs(600);

/// Waits to be ended; exits on its own after [`LIFETIME`].
pub fn sleep_out() -> anyhow::Result<()> {
    sleep(LIFETIME);
    Ok(())
}

/// The terminal's session leader, as a login shell: when a line is typed, it starts the
/// others as a shell's commands would, then waits for them; the hangup ends it.
pub fn shell(folder: &Path, nohup: &Path) -> anyhow::Result<()> {
    tell(folder, what::SHELL, std::process::id(), now_ns())?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(());
    }
    again("setsid", Some(folder))?
        .stdin(Stdio::null())
        .spawn()?;
    // nohup as typed at a prompt with its output sent away (with output on the terminal
    // it would write nohup.out into the working directory).
    let before = now_ns();
    let nohup = Command::new(nohup)
        .arg(std::env::current_exe()?)
        .args([COMMAND, "sleep"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    tell(folder, what::NOHUP, nohup.id(), before)?;
    // The catcher and nohup stay in the shell's foreground process group, which the kernel
    // sends SIGHUP when the shell dies of the hangup; the grower and the orphan are
    // background jobs in groups of their own, as a shell with job control makes them.
    again("catcher", Some(folder))?
        .stdin(Stdio::null())
        .spawn()?;
    again("grower", Some(folder))?
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()?;
    again("orphan-parent", Some(folder))?
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()?;
    let started = Instant::now();
    while started.elapsed() < LIFETIME {
        // SAFETY: waitpid with a null status pointer reaps any child.
        if unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } < 0 {
            sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

/// Leaves the terminal's session with setsid() and lives on: `detached`.
pub fn detach(folder: &Path) -> anyhow::Result<()> {
    let before = now_ns();
    // SAFETY: setsid has no preconditions; it fails only for a process group leader.
    if unsafe { libc::setsid() } < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    tell(folder, what::SETSID, std::process::id(), before)?;
    sleep_out()
}

static CAUGHT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hangup(_signal: libc::c_int) {
    // Only an atomic store: the rest happens outside the handler.
    CAUGHT.store(true, Ordering::SeqCst);
}

/// Catches SIGHUP and stays: `hangup_survived` once it lives a grace period past it.
pub fn catcher(folder: &Path) -> anyhow::Result<()> {
    // SAFETY: a zeroed sigaction with a handler that only stores to an atomic.
    let installed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_hangup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut())
    };
    if installed != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let pid = std::process::id();
    tell(folder, what::CATCHER, pid, now_ns())?;
    let started = Instant::now();
    while started.elapsed() < LIFETIME {
        sleep(Duration::from_millis(20));
        if CAUGHT.swap(false, Ordering::SeqCst) {
            tell(folder, what::CAUGHT, pid, now_ns())?;
        }
    }
    Ok(())
}

/// Touches 2 MiB more every 40 ms up to 128 MiB, then holds it: `rss_growth`.
pub fn grower(folder: &Path) -> anyhow::Result<()> {
    let pid = std::process::id();
    tell(folder, what::GROW, pid, now_ns())?;
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(GROW_STEPS);
    for _ in 0..GROW_STEPS {
        // Not zeroes: a zeroed allocation can be mapped without touching a page.
        kept.push(vec![0x5a; GROW_STEP]);
        sleep(GROW_EVERY);
    }
    tell(folder, what::GROWN, pid, now_ns())?;
    std::hint::black_box(&kept);
    sleep_out()
}

/// Starts the orphan, lives a few polls and exits without waiting for it: the orphan is
/// reparented, `orphaned`.
pub fn orphan_parent(folder: &Path) -> anyhow::Result<()> {
    let orphan = again("sleep", None)?.stdin(Stdio::null()).spawn()?;
    tell(folder, what::ORPHAN, orphan.id(), now_ns())?;
    sleep(ORPHAN_PARENT_LIVES);
    tell(folder, what::PARENT_EXIT, std::process::id(), now_ns())?;
    std::process::exit(0)
}
