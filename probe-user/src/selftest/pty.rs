//! The pseudo-terminal the test processes run on. The self-test holds only the master
//! side, as a terminal emulator does; closing it is the hangup.
use std::{
    ffi::CStr,
    fs::File,
    io::{self, Write},
    os::fd::FromRawFd,
    path::PathBuf,
};

pub struct Terminal {
    master: File,
    /// The slave's path, which the launcher opens for the shell.
    pub slave: PathBuf,
}

impl Terminal {
    pub fn open() -> io::Result<Self> {
        // SAFETY: posix_openpt returns a new fd or -1.
        let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd this owns from here on.
        let master = unsafe { File::from_raw_fd(fd) };
        // SAFETY: fcntl, grantpt, unlockpt on the fd just opened. The master must reach no
        // child: a copy held anywhere else would keep the terminal from hanging up.
        let ok = unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
                && libc::grantpt(fd) == 0
                && libc::unlockpt(fd) == 0
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: ptsname returns a static buffer (or NULL), copied at once; this runs
        // before any other thread could call it.
        let name = unsafe { libc::ptsname(fd) };
        if name.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: not NULL, a C string.
        let slave = PathBuf::from(unsafe { CStr::from_ptr(name) }.to_string_lossy().as_ref());
        Ok(Self { master, slave })
    }

    /// Types a line, as a person at the terminal would.
    pub fn type_line(&mut self, line: &str) -> io::Result<()> {
        self.master.write_all(format!("{line}\n").as_bytes())
    }

    /// Closes the master: the kernel hangs the terminal up and sends its session leader
    /// SIGHUP.
    pub fn hang_up(self) {
        drop(self.master);
    }
}
