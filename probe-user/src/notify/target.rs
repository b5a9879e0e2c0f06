//! Whose session bus hupwatch notifies, and whether it must switch user to reach it.
use std::{
    ffi::{CStr, OsString},
    os::unix::{ffi::OsStringExt, fs::MetadataExt},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{anyhow, bail};

/// Users below this uid are system accounts, never a desktop.
pub const FIRST_DESKTOP_UID: u32 = 1000;
const RUN_USER: &str = "/run/user";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// hupwatch's own user's bus: delivered in-process.
    InProcess { address: String },
    /// Another user's bus: delivered by a helper running as that user.
    Helper { uid: u32, gid: u32, address: String },
}

/// What the choice depends on, read from the process and the machine.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub euid: u32,
    pub sudo_uid: Option<u32>,
    pub sudo_gid: Option<u32>,
    /// DBUS_SESSION_BUS_ADDRESS.
    pub env_address: Option<String>,
    /// XDG_RUNTIME_DIR.
    pub runtime_dir: Option<String>,
    /// Users >= [`FIRST_DESKTOP_UID`] that own a /run/user/UID/bus, ascending.
    pub buses: Vec<u32>,
}

/// The choice before a gid is looked up: in-process on an address, or a user and its bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    InProcess(String),
    User { uid: u32, address: String },
}

/// See `Notifier::start`. Prints one line when several desktop users were found.
pub fn choose(user: Option<u32>) -> anyhow::Result<Target> {
    let facts = Facts::read();
    let choice = decide(&facts, user, graphical_users)?;
    Ok(match choice {
        Choice::InProcess(address) => Target::InProcess { address },
        Choice::User { uid, address } => {
            let gid = match (facts.sudo_uid, facts.sudo_gid) {
                (Some(sudo_uid), Some(gid)) if sudo_uid == uid => gid,
                _ => gid_of(uid).ok_or_else(|| {
                    anyhow!("uid {uid} has no entry in the user database (no group to run as)")
                })?,
            };
            Target::Helper { uid, gid, address }
        }
    })
}

impl Facts {
    pub fn read() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            // SAFETY: geteuid has no preconditions.
            euid: unsafe { libc::geteuid() },
            sudo_uid: var("SUDO_UID").and_then(|v| v.parse().ok()),
            sudo_gid: var("SUDO_GID").and_then(|v| v.parse().ok()),
            env_address: var("DBUS_SESSION_BUS_ADDRESS"),
            runtime_dir: var("XDG_RUNTIME_DIR"),
            buses: user_buses(Path::new(RUN_USER)),
        }
    }
}

/// The decision, from `facts`; `graphical` asks loginctl which users have an active
/// graphical session (asked only when several users have a bus).
pub fn decide(
    facts: &Facts,
    user: Option<u32>,
    graphical: impl FnOnce() -> Vec<u32>,
) -> anyhow::Result<Choice> {
    let own = || {
        facts
            .env_address
            .clone()
            .unwrap_or_else(|| match &facts.runtime_dir {
                Some(dir) => format!("unix:path={dir}/bus"),
                None => bus_address(facts.euid),
            })
    };
    // SUDO_UID's own address, if sudo kept it (`sudo -E`); else its standard bus.
    let address_of = |uid: u32| match (&facts.env_address, facts.sudo_uid) {
        (Some(address), Some(sudo_uid)) if sudo_uid == uid => address.clone(),
        _ => bus_address(uid),
    };
    if let Some(uid) = user {
        if uid == facts.euid {
            return Ok(Choice::InProcess(own()));
        }
        if facts.euid != 0 {
            bail!(
                "only root can notify another user's desktop (asked for uid {uid}, running as uid {})",
                facts.euid
            );
        }
        return Ok(Choice::User {
            uid,
            address: address_of(uid),
        });
    }
    if facts.euid != 0 {
        return Ok(Choice::InProcess(own()));
    }
    if let Some(uid) = facts.sudo_uid.filter(|uid| *uid != 0) {
        return Ok(Choice::User {
            uid,
            address: address_of(uid),
        });
    }
    // Root in its own desktop session.
    if let Some(address) = &facts.env_address {
        return Ok(Choice::InProcess(address.clone()));
    }
    let uid = match facts.buses.as_slice() {
        [] => bail!(
            "no desktop user's session bus in {RUN_USER} (no user >= {FIRST_DESKTOP_UID} is logged in)"
        ),
        [uid] => *uid,
        several => {
            let listed = several
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let active = graphical();
            match several.iter().find(|uid| active.contains(uid)) {
                Some(uid) => {
                    eprintln!(
                        "hupwatch: notify: users {listed} have a session bus; notifying uid {uid}, whose graphical session is active (loginctl)"
                    );
                    *uid
                }
                None => {
                    eprintln!(
                        "hupwatch: notify: users {listed} have a session bus and loginctl shows none of them in an active graphical session; notifying the first, uid {}",
                        several[0]
                    );
                    several[0]
                }
            }
        }
    };
    Ok(Choice::User {
        uid,
        address: bus_address(uid),
    })
}

/// A user's standard session bus.
pub fn bus_address(uid: u32) -> String {
    format!("unix:path={RUN_USER}/{uid}/bus")
}

/// Users >= [`FIRST_DESKTOP_UID`] whose `DIR/UID/bus` exists and is theirs, ascending.
pub fn user_buses(run_user: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(run_user) else {
        return Vec::new();
    };
    let mut uids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|uid| *uid >= FIRST_DESKTOP_UID)
        .filter(|uid| {
            std::fs::metadata(run_user.join(uid.to_string()).join("bus"))
                .is_ok_and(|m| m.uid() == *uid)
        })
        .collect();
    uids.sort_unstable();
    uids
}

/// Users with an active graphical (x11, wayland, mir) session, as loginctl tells; none
/// when it cannot.
fn graphical_users() -> Vec<u32> {
    let Some(list) = output(Command::new("loginctl").args(["list-sessions", "--no-legend"])) else {
        return Vec::new();
    };
    session_ids(&list)
        .iter()
        .filter_map(|id| {
            let show = output(Command::new("loginctl").args([
                "show-session",
                id,
                "-p",
                "User",
                "-p",
                "Type",
                "-p",
                "Active",
                "-p",
                "Class",
            ]))?;
            graphical_active_user(&show)
        })
        .collect()
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.stderr(std::process::Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The session ids in `loginctl list-sessions --no-legend`: each line's first word.
pub fn session_ids(list: &str) -> Vec<String> {
    list.lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The user of a session in `loginctl show-session ID -p User -p Type -p Active -p Class`
/// when it is an active graphical user session.
pub fn graphical_active_user(show: &str) -> Option<u32> {
    let value = |key: &str| {
        show.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    let graphical = matches!(value("Type"), Some("x11" | "wayland" | "mir"));
    let active = value("Active") == Some("yes");
    let user_class = value("Class").is_none_or(|class| class == "user");
    (graphical && active && user_class)
        .then(|| value("User")?.parse().ok())
        .flatten()
}

/// A user's primary group, from the user database.
pub fn gid_of(uid: u32) -> Option<u32> {
    passwd(uid, |pw| pw.pw_gid)
}

/// A user's home directory, from the user database.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    passwd(uid, |pw| {
        // SAFETY: getpwuid_r filled pw_dir with a NUL-terminated string in our buffer.
        let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
        PathBuf::from(OsString::from_vec(dir.to_bytes().to_vec()))
    })
}

fn passwd<T>(uid: u32, read: impl FnOnce(&libc::passwd) -> T) -> Option<T> {
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid passwd (null pointers, zero ids) to be filled in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: entry, a buffer of its stated length and the result pointer are ours; the
    // strings it points to live in `buffer`, which outlives `read`.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    (status == 0 && !found.is_null()).then(|| read(&entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Facts {
        Facts::default()
    }

    fn no_loginctl() -> Vec<u32> {
        panic!("loginctl is asked only when several users have a bus")
    }

    #[test]
    fn a_user_notifies_its_own_bus() {
        let mut facts = Facts {
            euid: 1000,
            ..Facts::default()
        };
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::InProcess("unix:path=/run/user/1000/bus".into())
        );
        facts.runtime_dir = Some("/tmp/rt".into());
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::InProcess("unix:path=/tmp/rt/bus".into())
        );
        facts.env_address = Some("unix:abstract=/tmp/x".into());
        assert_eq!(
            decide(&facts, Some(1000), no_loginctl).unwrap(),
            Choice::InProcess("unix:abstract=/tmp/x".into())
        );
        let err = decide(&facts, Some(1001), no_loginctl).unwrap_err();
        assert!(err.to_string().contains("only root"), "{err}");
    }

    #[test]
    fn root_under_sudo_notifies_the_sudo_user() {
        let mut facts = Facts {
            sudo_uid: Some(1001),
            buses: vec![1000, 1001],
            ..root()
        };
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::User {
                uid: 1001,
                address: "unix:path=/run/user/1001/bus".into()
            }
        );
        // `sudo -E` kept the user's own address.
        facts.env_address = Some("unix:path=/tmp/dbus-x".into());
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::User {
                uid: 1001,
                address: "unix:path=/tmp/dbus-x".into()
            }
        );
        // An explicit user wins; its bus is the standard one.
        assert_eq!(
            decide(&facts, Some(1000), no_loginctl).unwrap(),
            Choice::User {
                uid: 1000,
                address: "unix:path=/run/user/1000/bus".into()
            }
        );
    }

    #[test]
    fn root_as_a_service_finds_the_desktop_user() {
        let mut facts = Facts {
            buses: vec![1000],
            ..root()
        };
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::User {
                uid: 1000,
                address: "unix:path=/run/user/1000/bus".into()
            }
        );
        facts.buses = vec![1000, 1002];
        assert_eq!(
            decide(&facts, None, || vec![1002]).unwrap(),
            Choice::User {
                uid: 1002,
                address: "unix:path=/run/user/1002/bus".into()
            }
        );
        assert_eq!(
            decide(&facts, None, Vec::new).unwrap(),
            Choice::User {
                uid: 1000,
                address: "unix:path=/run/user/1000/bus".into()
            }
        );
        facts.buses.clear();
        let err = decide(&facts, None, no_loginctl).unwrap_err();
        assert!(err.to_string().contains("no desktop user"), "{err}");
        // Root in a desktop session of its own.
        facts.env_address = Some("unix:path=/run/user/0/bus".into());
        assert_eq!(
            decide(&facts, None, no_loginctl).unwrap(),
            Choice::InProcess("unix:path=/run/user/0/bus".into())
        );
    }

    #[test]
    fn loginctl_output_is_read() {
        let list = "      2 1000 alice seat0 tty2\n     c1  120 gdm   seat0 tty1\n";
        assert_eq!(session_ids(list), ["2", "c1"]);
        let show = "User=1000\nType=wayland\nActive=yes\nClass=user\n";
        assert_eq!(graphical_active_user(show), Some(1000));
        assert_eq!(
            graphical_active_user("User=120\nType=wayland\nActive=yes\nClass=greeter\n"),
            None
        );
        assert_eq!(
            graphical_active_user("User=1000\nType=tty\nActive=yes\nClass=user\n"),
            None
        );
        assert_eq!(
            graphical_active_user("User=1000\nType=x11\nActive=no\nClass=user\n"),
            None
        );
    }

    #[test]
    fn buses_are_found_by_owner() {
        let dir = std::env::temp_dir().join(format!("hupwatch-buses-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        for name in ["1000", "42", "notauid"] {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join("bus"), "").unwrap();
        }
        let found = user_buses(&dir);
        // Each bus is owned by whoever runs the test: 1000's counts only if that is 1000.
        assert_eq!(found, if me == 1000 { vec![1000] } else { vec![] });
        assert!(user_buses(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gid_of(0), Some(0));
        assert_eq!(home_of(0), Some(PathBuf::from("/root")));
    }
}
