//! Which processes hupwatch reports on: `--match NAME` (comm), `--match-cmdline REGEX` and
//! `--pid PID`, each with the descendants of what it matches. With none of them, every
//! process is traced.
use std::collections::HashSet;

use probe_common::{COMM_LEN, reason};
use regex::Regex;

use crate::host::{ProcInfo, ProcessTree};

/// The group of every process when no matching flag was given.
pub const GROUP_ALL: &str = "all";
/// The group of `--match-cmdline` matches: the regex itself would make a poor label.
pub const GROUP_CMDLINE: &str = "cmdline";

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error(
        "--match needs a process name, got an empty one; give the name `ps -o comm` shows, like --match bash"
    )]
    EmptyName,
    #[error(
        "--match-cmdline {pattern:?} is not a valid regular expression ({detail}); quote it and escape special characters"
    )]
    BadRegex { pattern: String, detail: String },
    #[error(
        "--match-cmdline {pattern:?} is too big: it compiles to more than {} MiB; use smaller repetition counts or a simpler expression",
        limit >> 20
    )]
    RegexTooBig { pattern: String, limit: usize },
    #[error("--pid {0}: no such process; list processes with `ps -e`")]
    NoSuchPid(u32),
}

#[derive(Clone, Debug, Default)]
pub struct Matcher {
    names: Vec<String>,
    cmdline: Option<Regex>,
    pids: Vec<u32>,
}

impl Matcher {
    pub fn new(names: &[String], cmdline: Option<&str>, pids: &[u32]) -> Result<Self, MatchError> {
        if names.iter().any(|n| n.is_empty()) {
            return Err(MatchError::EmptyName);
        }
        let cmdline = cmdline
            .map(|pattern| {
                Regex::new(pattern).map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => MatchError::RegexTooBig {
                        pattern: pattern.to_string(),
                        limit,
                    },
                    other => MatchError::BadRegex {
                        pattern: pattern.to_string(),
                        detail: other
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    },
                })
            })
            .transpose()?;
        Ok(Self {
            names: names.iter().map(|n| truncate_comm(n).to_string()).collect(),
            cmdline,
            pids: pids.to_vec(),
        })
    }

    /// True when no matching flag was given.
    pub fn traces_everything(&self) -> bool {
        self.names.is_empty() && self.cmdline.is_none() && self.pids.is_empty()
    }

    pub fn matches_cmdlines(&self) -> bool {
        self.cmdline.is_some()
    }

    /// The `--match` names, cut to what the kernel keeps of a name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// The names as the kernel's `comm` keys: at most 15 bytes, NUL-padded.
    pub fn comm_keys(&self) -> Vec<[u8; COMM_LEN]> {
        self.names.iter().map(|n| comm_key(n)).collect()
    }

    /// Whether a process matches on its own (not through an ancestor).
    pub fn matches(&self, comm: &str, cmdline: &str) -> bool {
        self.names.iter().any(|n| n == truncate_comm(comm))
            || self.cmdline.as_ref().is_some_and(|re| re.is_match(cmdline))
    }

    /// The `group` label values of the metrics, fixed for the run and so bounded by the
    /// command line: `all` when every process is watched; otherwise `pid:N` for each
    /// `--pid`, each `--match` name, and `cmdline` for `--match-cmdline`.
    pub fn group_names(&self) -> Vec<String> {
        if self.traces_everything() {
            return vec![GROUP_ALL.to_string()];
        }
        let pids = self.pids.iter().map(|pid| format!("pid:{pid}"));
        let names = self.names.iter().cloned();
        let cmdline = self.cmdline.iter().map(|_| GROUP_CMDLINE.to_string());
        pids.chain(names).chain(cmdline).collect()
    }

    /// The index in [`Matcher::group_names`] of the group a process is in by itself, not
    /// through an ancestor. A pid named on the command line is the most specific match.
    pub fn own_group(&self, pid: u32, comm: &str, cmdline: &str) -> Option<u16> {
        if self.traces_everything() {
            return Some(0);
        }
        let comm = truncate_comm(comm);
        let pids = self.pids.iter().position(|&p| p == pid);
        let names = || {
            let name = self.names.iter().position(|n| n == comm)?;
            Some(self.pids.len() + name)
        };
        let by_cmdline = || {
            let re = self.cmdline.as_ref()?;
            re.is_match(cmdline)
                .then_some(self.pids.len() + self.names.len())
        };
        pids.or_else(names).or_else(by_cmdline).map(|i| i as u16)
    }

    /// The processes of `procs` to track at start, with why: those that match, those named
    /// by `--pid`, and every descendant of either. `self_pid` and its descendants never are.
    pub fn seed(&self, procs: &[ProcInfo], self_pid: u32) -> Result<Vec<(u32, u32)>, MatchError> {
        for &pid in &self.pids {
            if !procs.iter().any(|p| p.pid == pid) {
                return Err(MatchError::NoSuchPid(pid));
            }
        }
        let tree = ProcessTree::new(procs);
        // hupwatch and anything it started are never tracked: mark them seen up front.
        let mut seen: HashSet<u32> = tree.subtree(self_pid);
        let mut stack = Vec::new();
        let mut chosen: Vec<(u32, u32)> = Vec::new();
        for p in procs {
            if seen.contains(&p.pid) {
                continue;
            }
            let why = if self.pids.contains(&p.pid) {
                reason::SEEDED
            } else if self.names.iter().any(|n| n == truncate_comm(&p.comm)) {
                reason::MATCHED_COMM
            } else if self
                .cmdline
                .as_ref()
                .is_some_and(|re| re.is_match(&p.cmdline))
            {
                reason::MATCHED_CMDLINE
            } else {
                continue;
            };
            if seen.insert(p.pid) {
                chosen.push((p.pid, why));
                stack.push(p.pid);
            }
        }
        while let Some(parent) = stack.pop() {
            for &child in tree.children(parent) {
                if seen.insert(child) {
                    chosen.push((child, reason::INHERITED));
                    stack.push(child);
                }
            }
        }
        Ok(chosen)
    }
}

/// The programs `--ignore` names, matched the way a person names a program: its process
/// name, the name before a colon of a process that renamed itself (`tmux: server`,
/// `sshd: user@pts/0`), or the file name of the program it runs.
#[derive(Clone, Debug, Default)]
pub struct Ignored {
    names: Vec<String>,
}

impl Ignored {
    pub fn new(names: &[String]) -> Self {
        Self {
            names: names.to_vec(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name it was ignored under, if any.
    pub fn matches(&self, comm: &str, cmdline: &str) -> Option<&str> {
        let before_colon = comm.split_once(':').map_or(comm, |(name, _)| name).trim();
        let program = cmdline
            .split_whitespace()
            .next()
            .map(|argv0| argv0.rsplit('/').next().unwrap_or(argv0))
            .map(|argv0| argv0.split_once(':').map_or(argv0, |(name, _)| name))
            .unwrap_or_default();
        self.names
            .iter()
            .find(|n| {
                let n = n.as_str();
                n == comm || truncate_comm(n) == comm || n == before_colon || n == program
            })
            .map(String::as_str)
    }
}

fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(COMM_LEN - 1);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

pub fn comm_key(name: &str) -> [u8; COMM_LEN] {
    let mut key = [0u8; COMM_LEN];
    let name = truncate_comm(name);
    key[..name.len()].copy_from_slice(name.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, comm: &str, cmdline: &str) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            comm: comm.into(),
            cmdline: cmdline.into(),
            sid: pid,
            tty_nr: 0,
            start_ticks: 0,
        }
    }

    fn table() -> Vec<ProcInfo> {
        vec![
            proc(1, 0, "systemd", "/sbin/init"),
            proc(10, 1, "bash", "-bash"),
            proc(11, 10, "node", "node /usr/lib/claude/cli.js --resume"),
            proc(12, 11, "rg", "rg foo"),
            proc(13, 12, "cat", "cat"),
            proc(20, 1, "hupwatch", "hupwatch trace"),
            proc(21, 20, "sleep", "sleep 1"),
            proc(30, 1, "sleep", "sleep 100"),
        ]
    }

    #[test]
    fn ignored_programs_are_named_as_a_person_names_them() {
        let ignored = Ignored::new(&["tmux".into(), "ssh-agent".into(), "screen".into()]);
        assert_eq!(ignored.matches("tmux: server", "tmux new -d"), Some("tmux"));
        assert_eq!(ignored.matches("tmux", "tmux attach"), Some("tmux"));
        assert_eq!(
            ignored.matches("ssh-agent", "/usr/bin/ssh-agent -s"),
            Some("ssh-agent")
        );
        assert_eq!(
            ignored.matches("SCREEN", "/usr/bin/screen -S x"),
            Some("screen")
        );
        assert_eq!(ignored.matches("bash", "-bash"), None);
        assert_eq!(ignored.matches("tmuxinator", "tmuxinator start"), None);
    }

    #[test]
    fn no_flags_means_everything() {
        assert!(Matcher::new(&[], None, &[]).unwrap().traces_everything());
        assert!(
            !Matcher::new(&["x".into()], None, &[])
                .unwrap()
                .traces_everything()
        );
    }

    #[test]
    fn seeds_matches_and_their_descendants_but_not_itself() {
        let m = Matcher::new(&["node".into(), "sleep".into()], None, &[]).unwrap();
        let seeded = m.seed(&table(), 20).unwrap();
        assert_eq!(
            seeded,
            vec![
                (11, reason::MATCHED_COMM),
                (30, reason::MATCHED_COMM),
                (12, reason::INHERITED),
                (13, reason::INHERITED),
            ]
        );
    }

    #[test]
    fn seeds_by_command_line_regex() {
        let m = Matcher::new(&[], Some(r"claude/cli\.js"), &[]).unwrap();
        let pids: Vec<u32> = m
            .seed(&table(), 20)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pids, vec![11, 12, 13]);
        assert!(m.matches("node", "node /usr/lib/claude/cli.js"));
        assert!(!m.matches("node", "node server.js"));
    }

    #[test]
    fn seeds_a_pid_and_its_tree() {
        let m = Matcher::new(&[], None, &[10]).unwrap();
        let pids: Vec<u32> = m
            .seed(&table(), 20)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pids, vec![10, 11, 12, 13]);
        assert!(matches!(
            Matcher::new(&[], None, &[999]).unwrap().seed(&table(), 20),
            Err(MatchError::NoSuchPid(999))
        ));
    }

    #[test]
    fn each_matching_flag_is_a_group_and_a_named_pid_is_the_most_specific() {
        let m = Matcher::new(&["node".into(), "sleep".into()], Some("cli\\.js"), &[30]).unwrap();
        assert_eq!(m.group_names(), ["pid:30", "node", "sleep", "cmdline"]);
        assert_eq!(m.own_group(30, "sleep", "sleep 100"), Some(0));
        assert_eq!(m.own_group(11, "node", "node cli.js"), Some(1));
        assert_eq!(m.own_group(31, "sleep", "sleep 1"), Some(2));
        assert_eq!(m.own_group(40, "deno", "deno cli.js"), Some(3));
        assert_eq!(m.own_group(12, "rg", "rg foo"), None);

        let everything = Matcher::default();
        assert_eq!(everything.group_names(), ["all"]);
        assert_eq!(everything.own_group(12, "rg", "rg foo"), Some(0));
    }

    #[test]
    fn names_are_compared_as_the_kernel_truncates_them() {
        let m = Matcher::new(&["a-very-long-process-name".into()], None, &[]).unwrap();
        assert!(m.matches("a-very-long-pro", ""));
        assert_eq!(&m.comm_keys()[0][..16], b"a-very-long-pro\0");
    }

    #[test]
    fn rejects_bad_input_with_the_fix() {
        let err = Matcher::new(&[], Some("(unclosed"), &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("--match-cmdline \"(unclosed\" is not a valid regular expression"),
            "{err}"
        );
        assert!(matches!(
            Matcher::new(&["".into()], None, &[]),
            Err(MatchError::EmptyName)
        ));
        // Valid syntax, but more than the regex crate's size limit: named as too big, not
        // as a syntax error to escape.
        let err = Matcher::new(&[], Some("a{1000}{1000}"), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "--match-cmdline \"a{1000}{1000}\" is too big: it compiles to more than 10 MiB; use smaller repetition counts or a simpler expression"
        );
    }
}
