//! Session trees: what a person calls "a session" of an agent CLI is the tree it started
//! (npm or uv wrappers, MCP and language servers under them), and that whole tree is what
//! leaks when the terminal goes. Membership is decided once, when a process is first seen
//! or starts, and never from its current parent: a member that was reparented to init or
//! called setsid stays in the tree it was started in. Pure.
use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Held, MemoryMeasure, Process, Total, tree_ref::TreeRef};

fn rooted_at(p: &Process) -> TreeRef {
    TreeRef {
        root_pid: p.pid,
        root_started_ns: p.started_ns,
        root_comm: p.comm.clone(),
    }
}

/// A process leading a terminal session of its own (a shell in a terminal window, a tmux
/// pane, an ssh login): it is the terminal, not a session that could outlive it, and the
/// commands typed there each start a tree.
pub(super) fn leads_a_terminal(p: &Process) -> bool {
    p.sid == Some(p.pid) && p.tty.is_some()
}

/// The tree `p` belongs to, given its parent when hupwatch tracks the parent. A tree once
/// joined is kept (through reparenting, setsid, the root's exit); a process that starts
/// leading a terminal of its own leaves it. A command typed at a terminal's shell roots a
/// tree, and so does a process that came from a terminal whose parent hupwatch never saw.
pub fn tree_of(p: &Process, parent: Option<&Process>) -> Option<TreeRef> {
    if leads_a_terminal(p) {
        return None;
    }
    if let Some(tree) = &p.tree {
        let mut tree = tree.clone();
        if tree.root_pid == p.pid && tree.root_started_ns == p.started_ns {
            // The root after exec: `bash` became `claude`.
            tree.root_comm = p.comm.clone();
        }
        return Some(tree);
    }
    match parent {
        Some(parent) if parent.tree.is_some() => parent.tree.clone(),
        Some(parent) if leads_a_terminal(parent) => Some(rooted_at(p)),
        _ if p.lineage.is_some() => Some(rooted_at(p)),
        _ => None,
    }
}

/// Session markers ([`crate::origin::SESSION_MARKERS`]) and the tree each first joined:
/// two processes found already orphaned (their parents gone before hupwatch looked) that
/// carry the same agent session id or terminal tab are one tree. Bounded: past
/// [`Markers::MOST`] it starts afresh, which only loses joins, never makes wrong ones.
#[derive(Debug, Default)]
pub struct Markers(HashMap<String, TreeRef>);

impl Markers {
    pub const MOST: usize = 4096;

    fn join(&mut self, marker: &str, own: TreeRef) -> TreeRef {
        if let Some(tree) = self.0.get(marker) {
            return tree.clone();
        }
        if self.0.len() >= Self::MOST {
            self.0.clear();
        }
        self.0.insert(marker.to_string(), own.clone());
        own
    }
}

/// [`tree_of`] for a process first seen already running: one that would root a tree only
/// because its parent is gone (not a command typed at a live shell) joins the tree its
/// session marker joined first.
pub fn tree_of_found(
    p: &Process,
    parent: Option<&Process>,
    marker: Option<&str>,
    markers: &mut Markers,
) -> Option<TreeRef> {
    let own = tree_of(p, parent)?;
    let rooted_here = own.root_pid == p.pid && own.root_started_ns == p.started_ns;
    let typed = parent.is_some_and(leads_a_terminal);
    match marker {
        Some(marker) if rooted_here && !typed && p.tree.is_none() => {
            Some(markers.join(marker, own))
        }
        _ => Some(own),
    }
}

/// What every member of the trees with a flagged member holds together, given each
/// session's (tree, flagged, held): what ending those trees whole would free, by one
/// measure for all of them ([`Total`]). Sessions in no tree add nothing.
pub fn flagged_trees_total<'a, I>(members: I) -> Total
where
    I: Iterator<Item = (Option<&'a TreeRef>, bool, Held)> + Clone,
{
    let key = |t: &TreeRef| (t.root_pid, t.root_started_ns);
    let flagged: HashSet<(u32, u64)> = members
        .clone()
        .filter(|(_, flagged, _)| *flagged)
        .filter_map(|(tree, _, _)| tree.map(key))
        .collect();
    members
        .filter(|(tree, _, _)| tree.is_some_and(|t| flagged.contains(&key(t))))
        .map(|(_, _, held)| held)
        .collect()
}

/// A tree's members added up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionTree {
    /// `PID-START` of the root ([`TreeRef::id`]).
    pub id: String,
    pub root_pid: u32,
    pub root_started_ns: u64,
    /// The root's name: its own, while it lives, else as its members last knew it.
    pub root_comm: String,
    /// The root is still among the live sessions.
    pub root_alive: bool,
    /// The live members' pids, the most memory first.
    pub members: Vec<u32>,
    /// What the members whose memory is known hold together, by `memory_measure`.
    pub memory_bytes: u64,
    /// PSS + SwapPss once every such member has a PSS reading (Linux), else RSS + swap;
    /// the footprint on macOS ([`MemoryMeasure`]).
    pub memory_measure: MemoryMeasure,
    /// The members' growth summed, bytes per second; null when none has a fit yet.
    pub growth_bytes_per_second: Option<f64>,
    /// When the longest-running member started, Unix-epoch ns.
    pub oldest_started_ns: Option<u64>,
    /// How long the whole tree has been idle: its least idle member's figure; null when
    /// any member's is unknown (a busy one would make it 0).
    pub idle_seconds: Option<f64>,
    /// How many members have each verdict.
    pub verdicts: BTreeMap<String, u64>,
    /// Members with any verdict.
    pub flagged: u64,
}

/// What the totals need of one session (the view makes these from its processes).
pub struct TreeMember<'a> {
    pub pid: u32,
    pub started_ns: u64,
    pub comm: &'a str,
    pub tree: Option<&'a TreeRef>,
    pub held: Held,
    pub growth_bytes_per_second: Option<f64>,
    pub idle_seconds: Option<f64>,
    pub verdicts: Vec<&'static str>,
}

impl TreeMember<'_> {
    /// One figure to order members by: what the totals would count for it alone.
    fn weight(&self) -> u64 {
        self.held
            .pss_bytes
            .or(self.held.footprint_bytes)
            .or(self.held.rss_bytes)
            .unwrap_or(0)
    }
}

/// The trees the sessions make, the most memory first; sessions in no tree are in none.
pub fn trees(sessions: Vec<TreeMember<'_>>) -> Vec<SessionTree> {
    let mut by_root: HashMap<(u32, u64), Vec<TreeMember<'_>>> = HashMap::new();
    for m in sessions {
        if let Some(tree) = m.tree {
            by_root
                .entry((tree.root_pid, tree.root_started_ns))
                .or_default()
                .push(m);
        }
    }
    let mut out: Vec<SessionTree> = by_root
        .into_iter()
        .map(|((root_pid, root_started_ns), mut members)| {
            members.sort_by(|a, b| b.weight().cmp(&a.weight()).then(a.pid.cmp(&b.pid)));
            let root = members
                .iter()
                .find(|p| p.pid == root_pid && p.started_ns == root_started_ns);
            let root_comm = match root {
                Some(root) => root.comm.to_string(),
                None => members[0]
                    .tree
                    .map(|t| t.root_comm.clone())
                    .unwrap_or_default(),
            };
            let mut verdicts = BTreeMap::new();
            for v in members.iter().flat_map(|p| &p.verdicts) {
                *verdicts.entry(v.to_string()).or_insert(0) += 1;
            }
            let slopes: Vec<f64> = members
                .iter()
                .filter_map(|p| p.growth_bytes_per_second)
                .collect();
            let idle: Option<Vec<f64>> = members.iter().map(|p| p.idle_seconds).collect();
            let total: Total = members.iter().map(|p| p.held).collect();
            SessionTree {
                id: format!("{root_pid}-{root_started_ns}"),
                root_pid,
                root_started_ns,
                root_comm,
                root_alive: root.is_some(),
                memory_bytes: total.bytes(),
                memory_measure: total.measure(),
                growth_bytes_per_second: (!slopes.is_empty()).then(|| slopes.iter().sum()),
                oldest_started_ns: members
                    .iter()
                    .map(|p| p.started_ns)
                    .filter(|&s| s != super::process::UNKNOWN_START)
                    .min(),
                idle_seconds: idle.and_then(|all| all.into_iter().reduce(f64::min)),
                flagged: members.iter().filter(|p| !p.verdicts.is_empty()).count() as u64,
                verdicts,
                members: members.iter().map(|p| p.pid).collect(),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.memory_bytes
            .cmp(&a.memory_bytes)
            .then(a.root_pid.cmp(&b.root_pid))
    });
    out
}
