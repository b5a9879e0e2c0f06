//! Exit notification on macOS without DTrace: a kqueue with one `EVFILT_PROC` /
//! `NOTE_EXIT` registration per watched pid, itself polled by tokio. A polling source learns
//! of an exit when it happens instead of at its next scan.
use std::{
    io, mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    ptr,
};

use tokio::io::{Interest, unix::AsyncFd};

use super::darwin_data::exit_status;

/// One process that exited. The status is only known for our own children (and, on newer
/// kernels, processes we may SIGKILL); for the rest both are None.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exited {
    pub pid: u32,
    pub code: Option<i32>,
    pub signal: Option<u32>,
}

/// A kqueue of exit notifications.
pub struct ExitWatch {
    queue: AsyncFd<OwnedFd>,
}

impl ExitWatch {
    /// Must be called inside a tokio runtime with I/O enabled.
    pub fn new() -> io::Result<Self> {
        // SAFETY: kqueue has no memory preconditions. Its descriptor is not inherited
        // across fork, so it cannot leak into the processes we start.
        let fd = unsafe { libc::kqueue() };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the OwnedFd is open, moves into the AsyncFd and stays there until the
        // AsyncFd drops it, and always gives the same descriptor.
        let queue = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self { queue })
    }

    /// Reports `pid`'s exit once through [`exited`](Self::exited). Ok(false) when it has
    /// already gone, zombies included: the kernel does not attach to those, so the caller
    /// must treat the pid as exited now.
    pub fn watch(&mut self, pid: u32) -> io::Result<bool> {
        let fd = self.queue.get_ref().as_raw_fd();
        // The status comes only with NOTE_EXITSTATUS, which the kernel refuses (EACCES)
        // for processes that are not our children and that we may not signal: those are
        // watched for the exit alone.
        let result = match register(fd, pid, libc::NOTE_EXIT | libc::NOTE_EXITSTATUS) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => register(fd, pid, libc::NOTE_EXIT),
            other => other,
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The exits since the last call, waiting for at least one. Each registration fires
    /// once: a pid is reported once per [`watch`](Self::watch).
    pub async fn exited(&mut self) -> io::Result<Vec<Exited>> {
        loop {
            let mut ready = self.queue.readable().await?;
            let found = drain(ready.get_inner().as_raw_fd())?;
            if !found.is_empty() {
                return Ok(found);
            }
            // Nothing queued: the readiness left by the last drain, or a spurious wake.
            // Clearing it makes the next wait block until the kqueue fires again.
            ready.clear_ready();
        }
    }
}

fn register(kq: RawFd, pid: u32, fflags: u32) -> io::Result<()> {
    let change = libc::kevent {
        ident: pid as libc::uintptr_t,
        filter: libc::EVFILT_PROC,
        flags: libc::EV_ADD | libc::EV_ONESHOT,
        fflags,
        data: 0,
        udata: ptr::null_mut(),
    };
    loop {
        // SAFETY: one valid change; with no room for events, a failed registration comes
        // back as -1 and errno rather than as an EV_ERROR event.
        let status = unsafe { libc::kevent(kq, &change, 1, ptr::null_mut(), 0, ptr::null()) };
        if status >= 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Everything queued now, without waiting.
fn drain(kq: RawFd) -> io::Result<Vec<Exited>> {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: kevent is plain data (its null udata included); all zeroes is valid.
    let mut events: [libc::kevent; 64] = unsafe { mem::zeroed() };
    let mut found = Vec::new();
    loop {
        // SAFETY: `events` is writable for its length; no changes are passed.
        let count = unsafe {
            libc::kevent(
                kq,
                ptr::null(),
                0,
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                &zero,
            )
        };
        if count < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        let count = count as usize;
        found.extend(events[..count].iter().filter_map(exit_of));
        if count < events.len() {
            return Ok(found);
        }
    }
}

fn exit_of(event: &libc::kevent) -> Option<Exited> {
    if event.filter != libc::EVFILT_PROC
        || event.flags & libc::EV_ERROR != 0
        || event.fflags & libc::NOTE_EXIT == 0
    {
        return None;
    }
    // `data` holds the status only when the kernel says so in fflags.
    let (code, signal) = if event.fflags & libc::NOTE_EXITSTATUS != 0 {
        exit_status(event.data as i64)
    } else {
        (None, None)
    };
    Some(Exited {
        pid: event.ident as u32,
        code,
        signal,
    })
}
