//! The terminal `hupwatch top` draws on, and giving it back as it was: raw mode off, the
//! main screen back, the cursor shown. That happens when top ends, when a guard is dropped
//! on the way out of an error, and in a panic hook, before the panic is reported. While the
//! screen is drawn, whatever the in-process watcher writes on stderr (warnings, loss
//! reports) is captured instead of scribbled over the screen.
use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    os::fd::FromRawFd,
    sync::{
        Once,
        atomic::{AtomicBool, AtomicI32, Ordering},
    },
};

use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor, execute,
        terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    },
};
use tokio::sync::mpsc::UnboundedSender;

pub type Screen = Terminal<CrosstermBackend<io::Stdout>>;

/// Raw mode and the alternate screen are on.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// stderr as it was before it was captured, or -1.
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);
static HOOK: Once = Once::new();

/// Gives the terminal back when dropped.
pub struct Guard {
    pub screen: Screen,
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, the alternate screen, the cursor hidden; the panic hook that undoes them.
pub fn enter() -> io::Result<Guard> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    terminal::enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let entered = execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)
        .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
    match entered {
        Ok(screen) => Ok(Guard { screen }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// Leaves the alternate screen, shows the cursor, turns raw mode off and gives stderr
/// back. Safe to call more than once, and from the panic hook.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }
    release_stderr();
}

/// Sends what is written on stderr from now on to `lines`, a line at a time, until
/// [`release_stderr`].
pub fn capture_stderr(lines: UnboundedSender<String>) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two descriptors into the array it is given.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let [read, write] = fds;
    // SAFETY: dup of a descriptor this process holds.
    let saved = unsafe { libc::dup(libc::STDERR_FILENO) };
    if saved < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: both were just opened here and are not used elsewhere.
        unsafe {
            libc::close(read);
            libc::close(write);
        }
        return Err(e);
    }
    for fd in [read, saved] {
        // SAFETY: fcntl on descriptors this process holds; the pipe's read end and the
        // saved stderr must not leak into programs a source starts (dtrace).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: dup2 onto stderr, which this process owns; `write` is closed after, so
    // stderr holds the pipe's only write end.
    let moved = unsafe { libc::dup2(write, libc::STDERR_FILENO) };
    let e = io::Error::last_os_error();
    // SAFETY: `write` was opened above and is not used after this.
    unsafe { libc::close(write) };
    if moved < 0 {
        // SAFETY: both were opened above.
        unsafe {
            libc::close(read);
            libc::close(saved);
        }
        return Err(e);
    }
    SAVED_STDERR.store(saved, Ordering::SeqCst);
    // SAFETY: `read` is open, owned by nothing else, and handed over to the File.
    let reader = unsafe { File::from_raw_fd(read) };
    std::thread::Builder::new()
        .name("top-stderr".into())
        .spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// Puts stderr back as it was before [`capture_stderr`]; the reader sees the pipe's end.
pub fn release_stderr() {
    let saved = SAVED_STDERR.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the descriptor dup'ed in capture_stderr, owned here.
        unsafe {
            libc::dup2(saved, libc::STDERR_FILENO);
            libc::close(saved);
        }
    }
}
