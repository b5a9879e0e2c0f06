//! A pseudo-terminal whose slave becomes a child's controlling terminal, as a terminal
//! emulator does it, so tests can hang it up by closing the master.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::{
    ffi::CStr,
    fs::File,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    process::{Child, Command, Stdio},
};

pub struct Pty {
    pub master: File,
    slave: File,
    /// `pts/N`, as hupwatch and ps(1) name it.
    pub name: String,
}

impl Pty {
    pub fn open() -> Self {
        let (mut master, mut slave) = (0, 0);
        // SAFETY: openpty writes two fds; the name, termios and winsize pointers may be NULL.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: fresh fds we own. The master must not leak into children, or closing it
        // here would not hang the terminal up.
        let (master, slave) = unsafe {
            libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(slave, libc::F_SETFD, libc::FD_CLOEXEC);
            (File::from_raw_fd(master), File::from_raw_fd(slave))
        };
        // SAFETY: ttyname returns a static buffer, copied at once.
        let path = unsafe { CStr::from_ptr(libc::ttyname(slave.as_raw_fd())) }
            .to_string_lossy()
            .into_owned();
        let name = path.strip_prefix("/dev/").unwrap_or(&path).to_string();
        Self {
            master,
            slave,
            name,
        }
    }

    /// Spawns `command` as the leader of a new session whose controlling terminal is this
    /// pty, with stdin, stdout and stderr on it.
    pub fn spawn(&self, command: &mut Command) -> Child {
        let stdio = || Stdio::from(OwnedFd::from(self.slave.try_clone().unwrap()));
        command.stdin(stdio()).stdout(stdio()).stderr(stdio());
        spawn_leading_session(command)
    }

    /// Like [`Pty::spawn`], but only stdin is the terminal: the caller sets stdout and stderr.
    pub fn spawn_keeping_output(&self, command: &mut Command) -> Child {
        command.stdin(Stdio::from(OwnedFd::from(self.slave.try_clone().unwrap())));
        spawn_leading_session(command)
    }

    /// Closes both ends held here: the kernel hangs the terminal up.
    pub fn hang_up(self) {
        drop(self);
    }
}

/// Spawns `command` as a session leader that takes its stdin (a tty) as controlling terminal.
fn spawn_leading_session(command: &mut Command) -> Child {
    // SAFETY: setsid and ioctl are async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().expect("child starts on the pty")
}
