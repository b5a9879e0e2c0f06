//! What the OS says about a process right now, and who is reaping: read fresh by `reap`,
//! never taken from a sessions view that may be minutes old.
use super::select::{Identity, Reaper};

/// The process as it is now; `None` when it is gone.
pub fn look(pid: u32) -> Option<Identity> {
    crate::host::identity(pid)
}

/// This hupwatch, and whose processes it may end: under sudo, the user who ran sudo.
pub fn reaper() -> Reaper {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|v| v.parse().ok());
    Reaper {
        protected_pids: ancestors(std::process::id()),
        uid: if uid == 0 { sudo_uid.unwrap_or(0) } else { uid },
    }
}

/// `pid` and its ancestors up to init.
fn ancestors(pid: u32) -> Vec<u32> {
    let mut chain = vec![pid];
    let mut at = pid;
    while let Some((parent, _)) = crate::host::parent_of(at) {
        if parent <= 1 || chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        at = parent;
    }
    chain
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_and_its_parent_are_protected() {
        let reaper = reaper();
        assert_eq!(reaper.protected_pids[0], std::process::id());
        let parent = crate::host::linux::read_stat(std::process::id())
            .unwrap()
            .ppid;
        if parent > 1 {
            assert!(reaper.protected_pids.contains(&parent));
        }
        let me = look(std::process::id()).expect("this process exists");
        assert!(!me.kernel_thread);
        assert_eq!(me.uid, unsafe { libc::getuid() });
    }
}
