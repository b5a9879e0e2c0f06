//! The self-test's side of the launcher (launcher.rs): start it, learn the shell's pid,
//! and have it end every test process, also when the self-test fails or is interrupted
//! (on drop). Should the self-test itself be killed, its end of the pipe closes and the
//! launcher ends them all the same.
use std::{
    io::Read,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{ChildStdin, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use super::{
    again::again,
    launcher::{ENDED_LINE, SHELL_LINE},
    reports::Reports,
};

/// How long the launcher may take to start the shell, and to end everything.
const LAUNCHER_LIMIT: Duration = Duration::from_secs(15);

pub struct Crew {
    folder: PathBuf,
    /// Closing it tells the launcher to end everything.
    control: Option<ChildStdin>,
    said: ChildStdout,
    pending: Vec<u8>,
    /// The shell, leader of the terminal's session: what the watcher is told to watch.
    pub shell: u32,
    /// How many processes the launcher ended, once it has; None until then, or when it
    /// never said.
    ended: Option<Option<usize>>,
}

impl Crew {
    pub fn start(folder: &Path, slave: &Path, nohup: &Path) -> anyhow::Result<Self> {
        let mut launch = again("launch", Some(folder))?
            .arg(slave)
            .arg(nohup)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        // Taken before the wait, which would close stdin.
        let (Some(control), Some(said)) = (launch.stdin.take(), launch.stdout.take()) else {
            anyhow::bail!("the self-test's launcher has no pipes");
        };
        let status = launch.wait()?;
        let mut crew = Self {
            folder: folder.to_path_buf(),
            control: Some(control),
            said,
            pending: Vec::new(),
            shell: 0,
            ended: None,
        };
        if !status.success() {
            anyhow::bail!("the self-test's launcher did not start ({status})");
        }
        let line = crew.line(LAUNCHER_LIMIT);
        crew.shell = line
            .as_deref()
            .and_then(|l| l.strip_prefix(SHELL_LINE)?.trim().parse().ok())
            .ok_or_else(|| {
                anyhow::anyhow!("the self-test's launcher did not start the shell on its terminal")
            })?;
        Ok(crew)
    }

    pub fn reports(&self) -> Reports {
        Reports::read(&self.folder)
    }

    /// Has the launcher end every test process; how many it ended (None: it never said
    /// within its time, or died).
    pub fn end(&mut self) -> Option<usize> {
        if let Some(ended) = self.ended {
            return ended;
        }
        drop(self.control.take());
        let ended = self
            .line(LAUNCHER_LIMIT)
            .and_then(|l| l.strip_prefix(ENDED_LINE)?.trim().parse().ok());
        self.ended = Some(ended);
        ended
    }

    /// The launcher's next line, waiting up to `limit`; None at its end or the limit.
    fn line(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Some(String::from_utf8_lossy(&line).trim().to_string());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut poll = libc::pollfd {
                fd: self.said.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let wait_ms = left.as_millis().min(1000) as libc::c_int;
            // SAFETY: one pollfd, a bounded wait.
            if unsafe { libc::poll(&mut poll, 1, wait_ms) } <= 0 {
                continue;
            }
            let mut buf = [0u8; 256];
            match self.said.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        self.end();
    }
}
