//! `run --user` and `--api-group`: names turned into ids, or a one-line error with the fix.
use crate::{error::UserError, host::users, privileges::SwitchTo};

/// The user `run` becomes after attaching when none is named: the one the .deb creates.
pub const DEFAULT_USER: &str = "hupwatch";

/// Whom `run` becomes once attached, and a note for the ready line. Named and missing, or
/// named without root to switch from, is an error; the default missing stays root, saying
/// so, since a tarball or source install has no such user until someone creates it.
pub fn run_as(asked: Option<&str>) -> Result<(Option<SwitchTo>, String), UserError> {
    let name = asked.unwrap_or(DEFAULT_USER);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if name == "root" {
        return Ok((None, String::new()));
    }
    if cfg!(not(target_os = "linux")) {
        return match asked {
            Some(_) => Err(UserError::new(
                "--user works on Linux only: on macOS DTrace and the process table of other users need root throughout; drop --user",
            )),
            None => Ok((None, String::new())),
        };
    }
    if !root {
        return match asked {
            Some(_) => Err(UserError::new(format!(
                "--user {name}: hupwatch switches user after attaching, which needs it started as root; run it with sudo or drop --user"
            ))),
            None => Ok((None, String::new())),
        };
    }
    match users::user_named(name) {
        Some(account) if account.uid == 0 => Ok((None, String::new())),
        Some(account) => Ok((
            Some(SwitchTo {
                uid: account.uid,
                gid: account.gid,
            }),
            format!("; running as user {}", account.name),
        )),
        None if asked.is_some() => Err(UserError::new(format!(
            "--user {name}: no such user; create it ({}) or pass --user root",
            create_command(name)
        ))),
        None => Ok((
            None,
            format!(
                "; running as root (no user {name} to switch to: {})",
                create_command(name)
            ),
        )),
    }
}

/// How to create a user like the .deb's.
fn create_command(name: &str) -> String {
    format!(
        "useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin {name}"
    )
}

/// The group whose members see every process through the API, like root.
pub fn api_group(asked: Option<&str>) -> Result<Option<u32>, UserError> {
    let Some(name) = asked else {
        return Ok(None);
    };
    users::group_named(name).map(Some).ok_or_else(|| {
        UserError::new(format!(
            "--api-group {name}: no such group; create it (groupadd {name}) or name another"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_or_a_uid_0_account_means_no_switch() {
        assert_eq!(run_as(Some("root")).unwrap().0, None);
    }

    #[test]
    fn an_unknown_group_is_an_error_naming_the_fix() {
        let err = api_group(Some("no-such-group-hupwatch")).unwrap_err();
        assert!(err.to_string().contains("groupadd"), "{err}");
        assert_eq!(api_group(None).unwrap(), None);
    }
}
