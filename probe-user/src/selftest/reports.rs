//! What the test processes tell the self-test: one line per thing that happened, appended
//! to a file in the self-test's private folder (`WHAT PID EPOCH_NS`). A file, not a pipe:
//! every process can append to it whatever became of its parent, and the launcher reads
//! it too, to find the sessions it must end.
use std::{
    collections::HashMap,
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// The file's name in the private folder.
const FILE: &str = "reports";

/// Things that happen, by the name the lines give them.
pub mod what {
    /// The shell runs (pid: the shell).
    pub const SHELL: &str = "shell";
    /// Right before setsid() (pid: the setsid child).
    pub const SETSID: &str = "setsid";
    /// Right before nohup started (pid: nohup's).
    pub const NOHUP: &str = "nohup";
    /// The SIGHUP handler is in place (pid: the catcher).
    pub const CATCHER: &str = "catcher";
    /// The handler ran (pid: the catcher).
    pub const CAUGHT: &str = "caught";
    /// Right before the first allocation (pid: the grower).
    pub const GROW: &str = "grow";
    /// The grower holds what it has (pid: the grower).
    pub const GROWN: &str = "grown";
    /// The orphan started (pid: the orphan, written by its parent).
    pub const ORPHAN: &str = "orphan";
    /// Right before the orphan's parent exits (pid: the parent).
    pub const PARENT_EXIT: &str = "parent-exit";
}

pub fn path(folder: &Path) -> PathBuf {
    folder.join(FILE)
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Appends one line; a line is written in one write(2), so lines never interleave.
pub fn tell(folder: &Path, what: &str, pid: u32, time_ns: u64) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(folder))?;
    file.write_all(format!("{what} {pid} {time_ns}\n").as_bytes())
}

/// What the file says so far: the first line of each kind.
#[derive(Clone, Debug, Default)]
pub struct Reports {
    seen: HashMap<String, (u32, u64)>,
}

impl Reports {
    pub fn read(folder: &Path) -> Self {
        Self::parse(&std::fs::read_to_string(path(folder)).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Self {
        let mut seen = HashMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(what), Some(pid), Some(time), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                continue;
            };
            if let (Ok(pid), Ok(time)) = (pid.parse(), time.parse()) {
                seen.entry(what.to_string()).or_insert((pid, time));
            }
        }
        Self { seen }
    }

    pub fn pid(&self, what: &str) -> Option<u32> {
        self.seen.get(what).map(|&(pid, _)| pid)
    }

    pub fn time_ns(&self, what: &str) -> Option<u64> {
        self.seen.get(what).map(|&(_, time)| time)
    }

    pub fn has(&self, what: &str) -> bool {
        self.seen.contains_key(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_of_each_kind_counts_and_torn_lines_do_not() {
        let reports =
            Reports::parse("setsid 10 5\nsetsid 11 6\ngrow 12\ngrown 12 9 x\nnohup 13 7\n");
        assert_eq!(reports.pid(what::SETSID), Some(10));
        assert_eq!(reports.time_ns(what::SETSID), Some(5));
        assert!(!reports.has(what::GROW) && !reports.has(what::GROWN));
        assert_eq!(reports.pid(what::NOHUP), Some(13));
    }
}
