//! The user database (passwd, group, through the C library so NSS sources count): whom
//! `run --user` becomes and who belongs to `--api-group`.
use std::ffi::{CStr, CString};

/// A user account as the switch to it needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
}

/// The account named `name`; None when there is none (or the database cannot be read).
pub fn user_named(name: &str) -> Option<Account> {
    let cname = CString::new(name).ok()?;
    with_passwd(|pwd, buf, result| {
        // SAFETY: every pointer is valid for the call; buf's length is passed with it.
        unsafe { libc::getpwnam_r(cname.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

/// The account of `uid`; None when it has none.
pub fn user_of(uid: u32) -> Option<Account> {
    with_passwd(|pwd, buf, result| {
        // SAFETY: as in user_named.
        unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result) }
    })
}

/// The gid of the group named `name`, or None.
pub fn group_named(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed group is a valid out-parameter for getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf's length is passed with it.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

/// Whether `uid`'s account has `gid` as its primary or a supplementary group, as the
/// group database says now (so a membership change counts from the next connection).
pub fn belongs_to(uid: u32, gid: u32) -> bool {
    let Some(account) = user_of(uid) else {
        return false;
    };
    account.gid == gid || supplementary(&account).contains(&gid)
}

fn supplementary(account: &Account) -> Vec<u32> {
    let Ok(name) = CString::new(account.name.as_str()) else {
        return Vec::new();
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups = vec![0; usize::try_from(count).unwrap_or(64)];
        let asked = count;
        // SAFETY: groups holds `count` entries, which getgrouplist writes at most; it sets
        // count to the number needed when they do not fit.
        #[cfg(target_os = "macos")]
        let rc = unsafe {
            libc::getgrouplist(
                name.as_ptr(),
                account.gid as libc::c_int,
                groups.as_mut_ptr(),
                &mut count,
            )
        };
        // SAFETY: as above.
        #[cfg(not(target_os = "macos"))]
        let rc = unsafe {
            libc::getgrouplist(name.as_ptr(), account.gid, groups.as_mut_ptr(), &mut count)
        };
        if rc >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            // macOS's list is of ints; gids are unsigned.
            #[cfg(target_os = "macos")]
            return groups.into_iter().map(|g| g as u32).collect();
            #[cfg(not(target_os = "macos"))]
            return groups;
        }
        // macOS does not say how many it needs: ask for more, within reason.
        if count <= asked {
            count = asked.saturating_mul(2);
        }
        if count > 65_536 {
            return Vec::new();
        }
    }
}

fn with_passwd(
    call: impl Fn(&mut libc::passwd, &mut Vec<libc::c_char>, &mut *mut libc::passwd) -> libc::c_int,
) -> Option<Account> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter for getpw*_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    if call(&mut pwd, &mut buf, &mut result) != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside buf.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Some(Account {
        name,
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_by_uid() {
        let root = user_named("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_of(0).unwrap().name, "root");
        assert_eq!(user_named("no-such-user-hupwatch-test"), None);
        assert_eq!(group_named("no-such-group-hupwatch-test"), None);
    }

    #[test]
    fn membership_counts_the_primary_group() {
        let gid = group_named(if cfg!(target_os = "macos") {
            "wheel"
        } else {
            "root"
        })
        .unwrap();
        assert!(belongs_to(0, gid));
        assert!(!belongs_to(u32::MAX - 7, gid));
    }
}
