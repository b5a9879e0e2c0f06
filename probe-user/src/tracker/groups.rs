//! Sessions added up per program (or per working directory, or per terminal program): how
//! many, the memory they hold together, how many are flagged, the oldest, and which
//! terminals they came from. What a person with 23 forgotten sessions of one program
//! needs to see first. Pure.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::measure::{Held, MemoryMeasure, Total};
use crate::origin::program_name;

/// What sessions are grouped by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The program: the process name, a renamed one (`tmux: server`) by the part before
    /// its colon.
    #[default]
    Name,
    /// The working directory: the project.
    Cwd,
    /// The program hosting the terminal it was started in.
    TerminalProgram,
    /// The program at the root of its session tree (the command typed at the terminal);
    /// sessions in no tree go under `(no tree)`.
    TreeRoot,
}

impl GroupBy {
    pub const ALL: [GroupBy; 4] = [Self::Name, Self::Cwd, Self::TerminalProgram, Self::TreeRoot];

    /// The name serde and `--group-by` give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Cwd => "cwd",
            Self::TerminalProgram => "terminal_program",
            Self::TreeRoot => "tree_root",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|by| by.name() == text)
    }
}

/// The group of sessions whose directory or terminal program is not known.
pub const UNKNOWN: &str = "(unknown)";
/// The group of sessions in no session tree (`--group-by tree_root`).
pub const NO_TREE: &str = "(no tree)";
/// Where the groups past a bound are summed (the metrics keep 20).
pub const OTHER: &str = "other";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionGroup {
    pub name: String,
    pub sessions: u64,
    /// What the sessions whose memory is known hold together, by `memory_measure`.
    pub memory_bytes: u64,
    /// `pss` (PSS + SwapPss, Linux, once every one of them has been read), `rss` (RSS +
    /// swap) or `footprint` (macOS): see measure.rs.
    #[serde(default)]
    pub memory_measure: MemoryMeasure,
    /// RSS + swap of the same sessions, summed whatever the measure: what RSS alone says,
    /// shared pages counted once per process. Null from a daemon older than the field.
    #[serde(default)]
    pub rss_memory_bytes: Option<u64>,
    /// Sessions with a verdict.
    pub flagged: u64,
    /// When the longest-running of them started, Unix-epoch ns; null when none is known.
    pub oldest_started_ns: Option<u64>,
    /// How many came from each terminal program (those whose program is unknown are not
    /// counted).
    pub terminal_programs: BTreeMap<String, u64>,
}

/// One session as the grouping sees it.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub comm: &'a str,
    pub cwd: Option<&'a str>,
    pub terminal_program: Option<&'a str>,
    pub memory: Held,
    pub flagged: bool,
    /// 0 when unknown.
    pub started_ns: u64,
    /// The name of its session tree's root; None in no tree.
    pub tree_root: Option<&'a str>,
}

impl<'a> Member<'a> {
    fn key(&self, by: GroupBy) -> &'a str {
        match by {
            GroupBy::Name => program_name(self.comm),
            GroupBy::Cwd => self.cwd.unwrap_or(UNKNOWN),
            GroupBy::TerminalProgram => self.terminal_program.unwrap_or(UNKNOWN),
            GroupBy::TreeRoot => self.tree_root.map_or(NO_TREE, program_name),
        }
    }
}

/// The memory a session holds: the footprint where the OS has one (macOS), else RSS plus
/// swap (a leak that pages out still holds memory); None until its RSS is known.
pub fn memory_bytes(
    rss_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    footprint_bytes: Option<u64>,
) -> Option<u64> {
    footprint_bytes.or_else(|| Some(rss_bytes?.saturating_add(swap_bytes.unwrap_or(0))))
}

/// The members grouped `by` their key, largest memory first (then most sessions, then by
/// name).
pub fn group<'a>(members: impl IntoIterator<Item = Member<'a>>, by: GroupBy) -> Vec<SessionGroup> {
    let mut groups: HashMap<&str, (SessionGroup, Total)> = HashMap::new();
    for m in members {
        let key = m.key(by);
        let (g, total) = groups
            .entry(key)
            .or_insert_with(|| (empty(key.to_string()), Total::default()));
        g.sessions += 1;
        total.add(m.memory);
        g.flagged += u64::from(m.flagged);
        if m.started_ns != 0 {
            g.oldest_started_ns = Some(
                g.oldest_started_ns
                    .map_or(m.started_ns, |t| t.min(m.started_ns)),
            );
        }
        if let Some(program) = m.terminal_program {
            // Looked up before inserting: a scrape groups every session, most of them
            // from a program already counted.
            match g.terminal_programs.get_mut(program) {
                Some(n) => *n += 1,
                None => {
                    g.terminal_programs.insert(program.to_string(), 1);
                }
            }
        }
    }
    let mut groups: Vec<SessionGroup> = groups
        .into_values()
        .map(|(mut g, total)| {
            g.memory_bytes = total.bytes();
            g.memory_measure = total.measure();
            g.rss_memory_bytes = Some(total.rss_bytes());
            g
        })
        .collect();
    sort(&mut groups);
    groups
}

fn empty(name: String) -> SessionGroup {
    SessionGroup {
        name,
        sessions: 0,
        memory_bytes: 0,
        memory_measure: MemoryMeasure::Rss,
        rss_memory_bytes: Some(0),
        flagged: 0,
        oldest_started_ns: None,
        terminal_programs: BTreeMap::new(),
    }
}

fn sort(groups: &mut [SessionGroup]) {
    groups.sort_by(|a, b| {
        b.memory_bytes
            .cmp(&a.memory_bytes)
            .then(b.sessions.cmp(&a.sessions))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The first `keep` groups (largest first, as [`group`] sorts them), and the rest added up
/// as one group named [`OTHER`]: a bounded set for the metrics' labels.
pub fn bounded(mut groups: Vec<SessionGroup>, keep: usize) -> Vec<SessionGroup> {
    if groups.len() <= keep {
        return groups;
    }
    let rest = groups.split_off(keep);
    let mut other = empty(OTHER.to_string());
    // One measure for the sum, as within a group: PSS only if every group used it.
    let measure = if rest
        .iter()
        .any(|g| g.memory_measure == MemoryMeasure::Footprint)
    {
        MemoryMeasure::Footprint
    } else if rest.iter().all(|g| g.memory_measure == MemoryMeasure::Pss) {
        MemoryMeasure::Pss
    } else {
        MemoryMeasure::Rss
    };
    other.memory_measure = measure;
    for g in rest {
        let rss = g.rss_memory_bytes.unwrap_or(g.memory_bytes);
        let bytes = match measure {
            MemoryMeasure::Rss => rss,
            _ => g.memory_bytes,
        };
        other.sessions += g.sessions;
        other.memory_bytes = other.memory_bytes.saturating_add(bytes);
        other.rss_memory_bytes = other.rss_memory_bytes.map(|sum| sum.saturating_add(rss));
        other.flagged += g.flagged;
        other.oldest_started_ns = match (other.oldest_started_ns, g.oldest_started_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (program, n) in g.terminal_programs {
            *other.terminal_programs.entry(program).or_default() += n;
        }
    }
    groups.push(other);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member<'a>(
        comm: &'a str,
        cwd: Option<&'a str>,
        from: Option<&'a str>,
        mib: Option<u64>,
    ) -> Member<'a> {
        Member {
            comm,
            cwd,
            terminal_program: from,
            memory: Held::new(mib.map(|m| m << 20), None, None, None, None),
            flagged: false,
            started_ns: 0,
            tree_root: None,
        }
    }

    fn sessions() -> Vec<Member<'static>> {
        let mut members = vec![
            member("claude", Some("/home/a/web"), Some("vscode"), Some(900)),
            member("claude", Some("/home/a/api"), Some("vscode"), Some(800)),
            member("claude", Some("/home/a/web"), Some("iTerm.app"), Some(700)),
            member("claude", Some("/home/a/api"), None, None),
            member("tmux: server", None, Some("vscode"), Some(5)),
            member("tmux", Some("/home/a"), Some("tmux"), Some(3)),
            member("node", Some("/home/a/web"), Some("vscode"), Some(2000)),
        ];
        members[0].flagged = true;
        members[2].flagged = true;
        members[0].started_ns = 300;
        members[1].started_ns = 100;
        members[3].started_ns = 200;
        members
    }

    #[test]
    fn by_program_with_totals_of_their_members_largest_first() {
        let groups = group(sessions(), GroupBy::Name);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["claude", "node", "tmux"]);
        let claude = &groups[0];
        assert_eq!(claude.sessions, 4);
        assert_eq!(
            claude.memory_bytes,
            (900 + 800 + 700) << 20,
            "unknown adds nothing"
        );
        assert_eq!(claude.flagged, 2);
        assert_eq!(
            claude.oldest_started_ns,
            Some(100),
            "unknown starts are left out"
        );
        assert_eq!(
            claude.terminal_programs,
            BTreeMap::from([("iTerm.app".to_string(), 1), ("vscode".to_string(), 2)])
        );
        let tmux = &groups[2];
        assert_eq!(
            (tmux.sessions, tmux.memory_bytes),
            (2, 8 << 20),
            "tmux: server is tmux"
        );
        assert_eq!(tmux.oldest_started_ns, None);
    }

    #[test]
    fn by_directory_or_terminal_program_with_unknown_as_a_group_of_its_own() {
        let by_cwd = group(sessions(), GroupBy::Cwd);
        let web = by_cwd.iter().find(|g| g.name == "/home/a/web").unwrap();
        assert_eq!((web.sessions, web.memory_bytes), (3, 3600 << 20));
        assert!(by_cwd.iter().any(|g| g.name == UNKNOWN && g.sessions == 1));
        let by_program = group(sessions(), GroupBy::TerminalProgram);
        let names: Vec<&str> = by_program.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["vscode", "iTerm.app", "tmux", UNKNOWN]);
        assert_eq!(by_program[0].sessions, 4);
        let total: u64 = by_program.iter().map(|g| g.sessions).sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn ties_go_to_more_sessions_then_the_name() {
        let members = [
            member("b", None, None, None),
            member("a", None, None, None),
            member("c", None, None, None),
            member("c", None, None, None),
        ];
        let names: Vec<String> = group(members, GroupBy::Name)
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    #[test]
    fn past_the_bound_the_rest_is_other() {
        let members: Vec<Member<'static>> = ["a", "b", "c", "d"]
            .iter()
            .zip([40, 30, 20, 10])
            .map(|(name, mib)| Member {
                started_ns: mib,
                flagged: mib < 25,
                ..member(name, None, Some("ssh"), Some(mib))
            })
            .collect();
        let groups = bounded(group(members, GroupBy::Name), 2);
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b", OTHER]);
        let other = &groups[2];
        assert_eq!(
            (other.sessions, other.memory_bytes, other.flagged),
            (2, 30 << 20, 2)
        );
        assert_eq!(other.oldest_started_ns, Some(10));
        assert_eq!(other.terminal_programs["ssh"], 2);
        assert_eq!(
            bounded(group(sessions(), GroupBy::Name), 20).len(),
            3,
            "under the bound"
        );
    }

    #[test]
    fn each_group_says_its_measure_and_other_takes_pss_only_if_all_did() {
        let with_pss = |comm, rss_mib: u64, pss_mib: Option<u64>| Member {
            memory: Held::new(
                Some(rss_mib << 20),
                Some(0),
                pss_mib.map(|p| p << 20),
                Some(0),
                None,
            ),
            ..member(comm, None, None, None)
        };
        let members = [
            with_pss("node", 300, Some(110)),
            with_pss("node", 300, Some(110)),
            with_pss("uv", 200, Some(150)),
            with_pss("bash", 50, None),
        ];
        let groups = group(members, GroupBy::Name);
        let of = |name: &str| groups.iter().find(|g| g.name == name).unwrap().clone();
        let node = of("node");
        assert_eq!(
            (
                node.memory_bytes,
                node.memory_measure,
                node.rss_memory_bytes
            ),
            (220 << 20, MemoryMeasure::Pss, Some(600 << 20))
        );
        let bash = of("bash");
        assert_eq!(
            (bash.memory_bytes, bash.memory_measure),
            (50 << 20, MemoryMeasure::Rss)
        );
        // Summed past the bound: uv (PSS) and bash (RSS) make an RSS `other`.
        let bounded = bounded(groups.clone(), 1);
        let other = &bounded[1];
        assert_eq!(other.name, OTHER);
        assert_eq!(
            (other.memory_bytes, other.memory_measure),
            (250 << 20, MemoryMeasure::Rss)
        );
        // Both PSS: the `other` is PSS.
        let pss_only: Vec<SessionGroup> = groups
            .into_iter()
            .filter(|g| g.memory_measure == MemoryMeasure::Pss)
            .collect();
        let other = &bounded_last(pss_only);
        assert_eq!(
            (
                other.memory_bytes,
                other.memory_measure,
                other.rss_memory_bytes
            ),
            (150 << 20, MemoryMeasure::Pss, Some(200 << 20))
        );
    }

    fn bounded_last(groups: Vec<SessionGroup>) -> SessionGroup {
        bounded(groups, 1).pop().unwrap()
    }

    #[test]
    fn memory_is_the_footprint_or_rss_and_swap() {
        assert_eq!(memory_bytes(Some(10), Some(5), None), Some(15));
        assert_eq!(memory_bytes(Some(10), None, None), Some(10));
        assert_eq!(memory_bytes(Some(10), None, Some(40)), Some(40));
        assert_eq!(memory_bytes(None, Some(5), None), None);
    }

    #[test]
    fn group_by_names_round_trip() {
        for by in GroupBy::ALL {
            assert_eq!(GroupBy::parse(by.name()), Some(by));
            assert_eq!(serde_json::to_value(by).unwrap(), by.name());
        }
        assert_eq!(GroupBy::parse("comm"), None);
    }
}
