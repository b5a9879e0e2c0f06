//! Ending the chosen processes: the signal, the grace period, then SIGKILL, each step
//! logged as one JSON line. On Linux every signal goes through a pidfd opened after the
//! start time was checked, so a pid reused in the meantime is never hit.
use std::{
    io::{self, Write},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use super::{identity, select::Target};
use crate::{signals, units::rfc3339};

const POLL: Duration = Duration::from_millis(20);
/// How long a process gets to disappear after SIGKILL before it counts as not ended
/// (stuck in uninterruptible sleep, say).
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Ends `targets`; returns how many could not be ended.
pub async fn end_all(
    targets: &[Target],
    signal: u32,
    grace: Duration,
    out: &mut impl Write,
) -> io::Result<usize> {
    let mut failed = 0;
    let mut live = Vec::new();
    for target in targets {
        let handle = match Handle::open(target) {
            Ok(handle) => handle,
            Err(reason) => {
                log(out, target, "skipped", Detail::reason(reason))?;
                continue;
            }
        };
        match handle.signal(signal) {
            Ok(()) => {
                log(out, target, "signal", Detail::signal(signal))?;
                live.push((target, handle, Instant::now()));
            }
            Err(e) => {
                failed += 1;
                let what = Detail {
                    error: Some(e.to_string()),
                    ..Detail::signal(signal)
                };
                log(out, target, "failed", what)?;
            }
        }
    }
    wait(&mut live, grace, out).await?;
    if signal != libc::SIGKILL as u32 {
        for (target, handle, _) in &live {
            let sigkill = libc::SIGKILL as u32;
            let after = Detail {
                grace_seconds: Some(grace.as_secs_f64()),
                ..Detail::signal(sigkill)
            };
            match handle.signal(sigkill) {
                Ok(()) => log(out, target, "signal", after)?,
                Err(e) => log(out, target, "failed", Detail::error(e.to_string()))?,
            }
        }
        wait(&mut live, AFTER_KILL, out).await?;
    }
    for (target, _, _) in &live {
        failed += 1;
        let reason = "still alive after SIGKILL".to_string();
        log(out, target, "failed", Detail::error(reason))?;
    }
    Ok(failed)
}

/// Waits up to `limit` for the processes in `live` to exit, logging and dropping each one
/// that does.
async fn wait(
    live: &mut Vec<(&Target, Handle, Instant)>,
    limit: Duration,
    out: &mut impl Write,
) -> io::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let mut result = Ok(());
        live.retain(|(target, handle, signalled)| {
            if !handle.exited() {
                return true;
            }
            let after = Detail {
                after_seconds: Some(signalled.elapsed().as_secs_f64()),
                ..Detail::default()
            };
            if result.is_ok() {
                result = log(out, target, "exited", after);
            }
            false
        });
        result?;
        if live.is_empty() || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One action, as a JSON line.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    action: &'a str,
    pid: u32,
    comm: &'a str,
    cmdline: Option<&'a str>,
    verdicts: Vec<&'static str>,
    #[serde(flatten)]
    detail: Detail,
}

#[derive(Default, Serialize)]
struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<String>,
    /// For SIGKILL: how long the first signal was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    grace_seconds: Option<f64>,
    /// For `exited`: seconds since the last signal.
    #[serde(skip_serializing_if = "Option::is_none")]
    after_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Detail {
    fn signal(signal: u32) -> Self {
        Self {
            signal: Some(signals::name(signal)),
            ..Self::default()
        }
    }

    fn reason(reason: &'static str) -> Self {
        Self {
            reason: Some(reason),
            ..Self::default()
        }
    }

    fn error(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

fn log(out: &mut impl Write, target: &Target, action: &str, detail: Detail) -> io::Result<()> {
    let p = &target.process;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let line = Line {
        time: rfc3339(now),
        action,
        pid: p.pid,
        comm: &p.comm,
        cmdline: p.cmdline.as_deref(),
        verdicts: p.verdicts.iter().map(|v| v.kind.name()).collect(),
        detail,
    };
    crate::output::write_json_line(out, &line)?;
    out.flush()
}

/// A process that was checked to be the chosen one.
struct Handle {
    #[cfg(not(target_os = "linux"))]
    pid: u32,
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

impl Handle {
    fn open(target: &Target) -> Result<Self, &'static str> {
        let pid = target.process.pid;
        #[cfg(target_os = "linux")]
        let fd = {
            use std::os::fd::FromRawFd;
            // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            if fd < 0 {
                return Err("already gone");
            }
            // SAFETY: the descriptor was just created and is owned by nobody else.
            unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
        };
        // Checked after the pidfd exists: from here on the pid cannot be reused under it.
        match identity::look(pid) {
            None => Err("already gone"),
            Some(now) if now.start != target.identity.start => {
                Err("its pid now belongs to another process")
            }
            Some(_) => Ok(Self {
                #[cfg(not(target_os = "linux"))]
                pid,
                #[cfg(target_os = "linux")]
                fd,
            }),
        }
    }

    #[cfg(target_os = "linux")]
    fn signal(&self, signal: u32) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal with a null siginfo behaves as kill() on the pidfd.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn signal(&self, signal: u32) -> io::Result<()> {
        // SAFETY: kill has no memory preconditions.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, signal as libc::c_int) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Whether it has exited (a zombie waiting for its parent counts as exited).
    #[cfg(target_os = "linux")]
    fn exited(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        let ready = unsafe { libc::poll(&mut poll, 1, 0) };
        ready > 0
    }

    #[cfg(not(target_os = "linux"))]
    fn exited(&self) -> bool {
        identity::look(self.pid).is_none()
    }
}
