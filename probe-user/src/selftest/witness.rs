//! What the machine says for itself, beside what hupwatch measured: the OS and kernel,
//! the privileges in force, and each test process's memory as the OS's own tools show it.
//! Read here rather than through host/ on purpose: host/ is what is being checked, so the
//! witness must not be host/ reading the same numbers twice.
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Os {
    /// uname's sysname: Linux, Darwin.
    pub name: String,
    /// The kernel release (uname -r).
    pub kernel: Option<String>,
    /// macOS's product version (sw_vers); null on Linux.
    pub product_version: Option<String>,
    /// The machine (uname -m).
    pub arch: Option<String>,
}

pub fn os() -> Os {
    // SAFETY: utsname is plain data; uname fills it.
    let mut names: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a writable utsname.
    let ok = unsafe { libc::uname(&mut names) } == 0;
    let field = |f: &[libc::c_char]| -> Option<String> {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        (ok && !bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
    };
    Os {
        name: field(&names.sysname).unwrap_or_else(|| std::env::consts::OS.to_string()),
        kernel: field(&names.release),
        product_version: product_version(),
        arch: field(&names.machine),
    }
}

#[cfg(target_os = "macos")]
fn product_version() -> Option<String> {
    let mut buf = [0u8; 64];
    let mut len = buf.len();
    // SAFETY: a named sysctl read into a buffer of the length given.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.osproductversion".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0).then(|| {
        let text = &buf[..len.min(buf.len())];
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        String::from_utf8_lossy(&text[..end]).into_owned()
    })
}

#[cfg(not(target_os = "macos"))]
fn product_version() -> Option<String> {
    None
}

#[derive(Clone, Debug, Serialize)]
pub struct Privileges {
    /// Running as root (effective uid 0).
    pub root: bool,
    pub uid: u32,
    pub euid: u32,
    /// Linux: the effective capability set the watcher kept once its source started
    /// (/proc/self/status CapEff, hex); null elsewhere.
    pub capabilities: Option<String>,
}

/// Read after the watcher started: what it runs with from then on.
pub fn privileges() -> Privileges {
    // SAFETY: getuid and geteuid have no preconditions.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    Privileges {
        root: euid == 0,
        uid,
        euid,
        capabilities: capabilities(),
    }
}

#[cfg(target_os = "linux")]
fn capabilities() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| format!("0x{}", v.trim()))
}

#[cfg(not(target_os = "linux"))]
fn capabilities() -> Option<String> {
    None
}

/// Which figure the OS's side of the memory comparison is.
#[cfg(target_os = "linux")]
pub const OS_MEASURE: &str = "resident set, /proc/PID/statm";
#[cfg(not(target_os = "linux"))]
pub const OS_MEASURE: &str = "footprint, top -l 1 -stats mem";

/// The process's memory as the OS's own view gives it; None when it is gone or unreadable.
#[cfg(target_os = "linux")]
pub fn memory(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// macOS: top's MEM column, the physical footprint Activity Monitor shows.
#[cfg(not(target_os = "linux"))]
pub fn memory(pid: u32) -> Option<u64> {
    let out = std::process::Command::new("/usr/bin/top")
        .args(["-l", "1", "-pid", &pid.to_string(), "-stats", "mem"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(top_size)
}

/// A size as top prints it: `1552K+`, `12M`, `1.5G-`, `512B`.
#[cfg(any(not(target_os = "linux"), test))]
fn top_size(text: &str) -> Option<u64> {
    let text = text.trim().trim_end_matches(['+', '-']);
    let unit_at = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(unit_at);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "B" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    Some((number * scale as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_sizes_are_read_with_their_unit_and_trend_mark() {
        assert_eq!(top_size("1552K+"), Some(1552 << 10));
        assert_eq!(top_size("12M"), Some(12 << 20));
        assert_eq!(top_size("1.5G-"), Some(3 << 29));
        assert_eq!(top_size("512B"), Some(512));
        assert_eq!(top_size("MEM"), None);
        assert_eq!(top_size("12"), None);
    }

    #[test]
    fn the_os_names_itself() {
        let os = os();
        assert!(!os.name.is_empty());
        assert!(os.kernel.is_some());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn statm_gives_this_process_some_memory() {
        assert!(memory(std::process::id()).is_some_and(|b| b > 0));
        assert!(privileges().capabilities.is_some());
    }
}
