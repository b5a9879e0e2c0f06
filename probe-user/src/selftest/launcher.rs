//! The launcher: the test processes' ancestor and undertaker. hupwatch never watches its
//! own descendants, so the self-test cannot be the test processes' ancestor: it starts
//! `launch`, which starts the launcher and exits, leaving the launcher to init (or a
//! subreaper above the self-test). The launcher leaves the self-test's session (a Ctrl-C
//! or hangup there is the self-test's to handle, not its), starts the shell on the
//! terminal, and waits for its stdin, a pipe from the self-test, to close: on purpose, or
//! because the self-test died. Then it ends every test process and says how many.
use std::{
    collections::HashSet,
    fs::OpenOptions,
    io::{Read, Write},
    os::unix::{fs::OpenOptionsExt, process::CommandExt},
    path::Path,
    thread::sleep,
    time::Duration,
};

use super::{
    again::again,
    reports::{Reports, what},
};
use crate::host::{self, ProcInfo, ProcessTree};

/// The launcher's lines to the self-test, on its stdout.
pub const SHELL_LINE: &str = "shell";
pub const ENDED_LINE: &str = "ended";

/// Starts the launcher with this process's stdin and stdout and returns: the launcher is
/// reparented away from the self-test when this exits.
pub fn launch(folder: &Path, slave: &Path, nohup: &Path) -> anyhow::Result<()> {
    again("launcher", Some(folder))?
        .arg(slave)
        .arg(nohup)
        .spawn()?;
    Ok(())
}

pub fn run(folder: &Path, slave: &Path, nohup: &Path) -> anyhow::Result<()> {
    // SAFETY: setsid and signal have no preconditions; this is not a group leader (it was
    // just started by `launch`), so setsid succeeds.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    // Orphans come here rather than to init, where the ending below finds them.
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    // O_NOCTTY: the terminal is the shell's, not this session leader's.
    let terminal = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(slave)?;
    let mut shell = again("shell", Some(folder))?;
    shell
        .arg(nohup)
        .stdin(terminal.try_clone()?)
        .stdout(terminal.try_clone()?)
        .stderr(terminal);
    // SAFETY: signal, setsid and ioctl are async-signal-safe, as pre_exec requires.
    unsafe {
        shell.pre_exec(|| {
            // The launcher's SIG_IGN would survive the exec: the shell and what it starts
            // must meet the hangup as a shell would.
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shell_pid = shell.spawn()?.id();
    drop(shell);
    let mut out = std::io::stdout();
    // The self-test may be gone already; the ending below must happen anyway.
    let _ = writeln!(out, "{SHELL_LINE} {shell_pid}").and_then(|()| out.flush());
    wait_for_eof();
    let mut sessions = vec![shell_pid];
    sessions.extend(Reports::read(folder).pid(what::SETSID));
    let ended = end_all(std::process::id(), &sessions);
    let _ = writeln!(out, "{ENDED_LINE} {ended}").and_then(|()| out.flush());
    Ok(())
}

/// Reads stdin until it closes, reaping children meanwhile.
fn wait_for_eof() {
    let mut stdin = std::io::stdin();
    loop {
        reap();
        let mut poll = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, 200 ms.
        let ready = unsafe { libc::poll(&mut poll, 1, 200) };
        if ready > 0 {
            let mut buf = [0u8; 64];
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        } else if ready < 0
            && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            return;
        }
    }
}

fn reap() {
    // SAFETY: waitpid with WNOHANG and a null status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Kills with SIGKILL everything below `me` and everything in `sessions` (the terminal's
/// session and the one the setsid child made: on macOS an orphan goes to launchd, not
/// here), again until nothing is left (an orphan made by a kill comes here on Linux).
/// A session's id is not given to a new process while the session has members, so what
/// is in one is ours. Returns how many processes it ended.
pub fn end_all(me: u32, sessions: &[u32]) -> usize {
    let mut ended = HashSet::new();
    for _ in 0..250 {
        reap();
        let procs = host::states();
        let alive: Vec<&ProcInfo> = procs
            .iter()
            .filter(|p| !matches!(p.state, 'Z' | 'X'))
            .map(|p| &p.info)
            .collect();
        let mut targets = ProcessTree::new(alive.iter().copied()).subtree(me);
        targets.extend(
            alive
                .iter()
                .filter(|p| sessions.contains(&p.sid))
                .map(|p| p.pid),
        );
        targets.remove(&me);
        if targets.is_empty() {
            break;
        }
        for pid in targets {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            ended.insert(pid);
        }
        sleep(Duration::from_millis(20));
    }
    reap();
    ended.len()
}
