//! One-shot reads of /proc: the processes that exist before the probes attach, and
//! command lines for matching. Processes vanish between listing and reading; such reads
//! give `None` and are not errors.
use std::{fs, path::Path};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Arguments joined by single spaces.
    pub cmdline: String,
    pub sid: u32,
    /// `tty_nr` from /proc/PID/stat: the controlling terminal's device number, 0 for none.
    pub tty_nr: u32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

/// The fields of /proc/PID/stat this project uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub ppid: u32,
    pub sid: u32,
    pub tty_nr: u32,
    pub start_ticks: u64,
}

/// Parses /proc/PID/stat. The comm sits in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is rest[N - 3].
    let field = |n: usize| rest.get(n - 3).copied();
    Some(Stat {
        comm,
        ppid: field(4)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        tty_nr: field(7)?.parse::<i64>().ok()? as u32,
        start_ticks: field(22)?.parse().ok()?,
    })
}

pub fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The command line with NUL separators turned into spaces (empty for kernel threads).
pub fn read_cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(join_cmdline(&raw))
}

pub fn join_cmdline(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(&[0]).unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

pub fn read_process(pid: u32) -> Option<ProcInfo> {
    let stat = read_stat(pid)?;
    Some(ProcInfo {
        pid,
        ppid: stat.ppid,
        cmdline: read_cmdline(pid).unwrap_or_default(),
        comm: stat.comm,
        sid: stat.sid,
        tty_nr: stat.tty_nr,
        start_ticks: stat.start_ticks,
    })
}

/// Every process (thread-group leader) visible in `root`, normally /proc.
pub fn scan_in(root: &Path) -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().filter_map(read_process).collect()
}

pub fn scan() -> Vec<ProcInfo> {
    scan_in(Path::new("/proc"))
}

pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_hostile_comm() {
        let text = "1234 (a) b (c)) S 1 1234 1234 34817 1234 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.sid, 1234);
        assert_eq!(stat.tty_nr, 34817);
        assert_eq!(stat.start_ticks, 987654);
    }

    #[test]
    fn rejects_truncated_stat() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn joins_command_line_arguments() {
        assert_eq!(
            join_cmdline(b"node\0/usr/bin/claude\0--resume\0"),
            "node /usr/bin/claude --resume"
        );
        assert_eq!(join_cmdline(b""), "");
    }

    #[test]
    fn reads_this_test_process() {
        let me = read_process(std::process::id()).unwrap();
        assert_eq!(me.pid, std::process::id());
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(!me.cmdline.is_empty());
        assert!(scan().iter().any(|p| p.pid == me.pid));
    }
}
