//! What `hupwatch top` shows and remembers: the last sessions document, a short memory and
//! CPU history per process, the sort order, the filter, the selection and the screen it is
//! on. Pure state: no terminal, no I/O.
use std::collections::{HashMap, HashSet, VecDeque};

use crate::tracker::{ProcessView, SessionTree, SessionsView, Total};

/// How many readings of each process are kept (one a second: the last minute).
pub const HISTORY: usize = 60;
/// How many of the last readings the CPU share is measured over. The daemon reads CPU
/// time every few seconds, not at every reading, so one step would jump between 0 and
/// several times the truth.
const CPU_WINDOW: usize = 20;
/// Messages kept for the status line and printed when top ends.
const MESSAGES: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Memory,
    Growth,
    Cpu,
    Age,
}

impl SortKey {
    pub fn name(self) -> &'static str {
        match self {
            SortKey::Memory => "memory",
            SortKey::Growth => "growth",
            SortKey::Cpu => "cpu",
            SortKey::Age => "age",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The table of processes.
    List,
    /// Typing a filter (the table stays visible and follows it).
    Filter,
    /// One process in full: its verdicts, their reasons and evidence, its timeline.
    Detail { pid: u32, scroll: u16 },
    /// Asked whether to end this process.
    Confirm {
        pid: u32,
        comm: String,
        back: Box<Mode>,
    },
}

/// One reading of a process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    /// The document's time, seconds.
    pub at: f64,
    pub memory: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

/// The last [`HISTORY`] readings of one process.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Its start time: a pid reused by another process starts a new history.
    started_ns: u64,
    pub readings: VecDeque<Reading>,
}

impl History {
    fn push(&mut self, reading: Reading) {
        if self
            .readings
            .back()
            .is_some_and(|last| last.at >= reading.at)
        {
            return; // the same document twice, or a clock that went back
        }
        if self.readings.len() == HISTORY {
            self.readings.pop_front();
        }
        self.readings.push_back(reading);
    }

    /// The memory readings, oldest first (unknown ones left out).
    pub fn memory(&self) -> Vec<u64> {
        self.readings.iter().filter_map(|r| r.memory).collect()
    }

    /// Percent of one CPU over the last readings, when two of them know the CPU time.
    pub fn cpu_percent(&self) -> Option<f64> {
        let known: Vec<(f64, f64)> = self
            .readings
            .iter()
            .rev()
            .take(CPU_WINDOW)
            .filter_map(|r| Some((r.at, r.cpu_seconds?)))
            .collect();
        let (&(t1, c1), &(t0, c0)) = (known.first()?, known.last()?);
        let span = t1 - t0;
        (span > 0.0).then(|| ((c1 - c0).max(0.0) / span) * 100.0)
    }
}

pub struct App {
    /// Where the sessions come from, for the header ("in-process, http://..." or the URL).
    pub origin: String,
    pub view: Option<SessionsView>,
    /// Why the last look failed, until one succeeds.
    pub error: Option<String>,
    pub history: HashMap<u32, History>,
    pub sort: SortKey,
    pub filter: String,
    pub mode: Mode,
    /// The selected process, by pid, so the selection follows it when rows move.
    pub selected: Option<u32>,
    /// Its row, for when it is gone: the row at the same place is selected instead.
    pub selected_row: usize,
    /// One line for the footer (an answer to the last key, an end's outcome, a warning).
    pub status: Option<String>,
    /// Lines the in-process watcher wrote on stderr while the screen was drawn, and what
    /// became of the processes ended, oldest first; printed on stderr when top ends.
    pub messages: VecDeque<String>,
    /// Processes being ended now.
    pub ending: HashSet<u32>,
    /// The JSON log lines of the processes ended (`hupwatch reap --yes`'s), printed on
    /// stdout when top ends.
    pub ended_log: Vec<String>,
    /// `t`: one row per session tree (its largest member by the sort, standing for it)
    /// instead of one per process.
    pub trees: bool,
}

impl App {
    pub fn new(origin: String) -> Self {
        Self {
            origin,
            view: None,
            error: None,
            history: HashMap::new(),
            sort: SortKey::Memory,
            filter: String::new(),
            mode: Mode::List,
            selected: None,
            selected_row: 0,
            status: None,
            messages: VecDeque::new(),
            ending: HashSet::new(),
            trees: false,
            ended_log: Vec::new(),
        }
    }

    /// A new sessions document, or why there is none this time.
    pub fn update(&mut self, got: Result<SessionsView, String>) {
        let mut view = match got {
            Ok(view) => view,
            Err(why) => {
                self.error = Some(why);
                return;
            }
        };
        if view.trees.is_empty() {
            // A daemon older than trees: make them from its processes.
            view.rebuild_trees();
        }
        self.error = None;
        let at = view.time_ns as f64 / 1e9;
        let live: HashSet<u32> = view.processes.iter().map(|p| p.pid).collect();
        self.history.retain(|pid, _| live.contains(pid));
        for p in &view.processes {
            let history = self.history.entry(p.pid).or_default();
            if history.started_ns != p.started_ns {
                *history = History {
                    started_ns: p.started_ns,
                    readings: VecDeque::new(),
                };
            }
            history.push(Reading {
                at,
                memory: memory(p),
                cpu_seconds: p.cpu_seconds,
            });
        }
        self.view = Some(view);
        self.fix_selection();
    }

    pub fn say(&mut self, line: String) {
        self.status = Some(line);
    }

    /// A line for the record (printed when top ends); the latest also goes to the footer.
    pub fn note(&mut self, line: String) {
        if self.messages.len() == MESSAGES {
            self.messages.pop_front();
        }
        self.messages.push_back(line.clone());
        self.status = Some(line);
    }

    /// The processes shown: those the filter lets through, in the chosen order.
    pub fn rows(&self) -> Vec<&ProcessView> {
        let Some(view) = &self.view else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&ProcessView> = view
            .processes
            .iter()
            .filter(|p| needle.is_empty() || passes(p, &needle))
            .collect();
        rows.sort_by(|a, b| {
            let order = match self.sort {
                SortKey::Memory => memory(b).cmp(&memory(a)),
                SortKey::Growth => by_desc(slope(a), slope(b)),
                SortKey::Cpu => by_desc(self.cpu_percent(a.pid), self.cpu_percent(b.pid)),
                SortKey::Age => b.age_seconds.total_cmp(&a.age_seconds),
            };
            order.then(a.pid.cmp(&b.pid))
        });
        if self.trees {
            // The first of each tree in this order stands for it.
            let mut seen = HashSet::new();
            rows.retain(|p| {
                p.tree
                    .as_ref()
                    .is_none_or(|t| seen.insert((t.root_pid, t.root_started_ns)))
            });
        }
        rows
    }

    /// The session tree `p` belongs to, when the view has it.
    pub fn tree_of(&self, p: &ProcessView) -> Option<&SessionTree> {
        let tree = p.tree.as_ref()?;
        self.view
            .as_ref()?
            .trees
            .iter()
            .find(|t| t.root_pid == tree.root_pid && t.root_started_ns == tree.root_started_ns)
    }

    pub fn toggle_trees(&mut self) {
        self.trees = !self.trees;
        self.fix_selection();
        self.status = Some(if self.trees {
            "one row per session tree: its largest member, the tree's totals".into()
        } else {
            "one row per process".into()
        });
    }

    pub fn process(&self, pid: u32) -> Option<&ProcessView> {
        self.view.as_ref()?.processes.iter().find(|p| p.pid == pid)
    }

    pub fn cpu_percent(&self, pid: u32) -> Option<f64> {
        self.history.get(&pid)?.cpu_percent()
    }

    pub fn set_sort(&mut self, key: SortKey) {
        self.sort = key;
        self.fix_selection();
        self.status = None;
    }

    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.fix_selection();
    }

    /// Moves the selection by `step` rows, staying within the table.
    pub fn move_selection(&mut self, step: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let row = self
            .selected_row
            .saturating_add_signed(step)
            .min(rows.len() - 1);
        let pid = rows[row].pid;
        self.selected_row = row;
        self.selected = Some(pid);
    }

    /// Keeps the selection on its process, or on its row when the process is gone.
    fn fix_selection(&mut self) {
        let rows = self.rows();
        if rows.is_empty() {
            self.selected = None;
            self.selected_row = 0;
            return;
        }
        let found = self
            .selected
            .and_then(|pid| rows.iter().position(|p| p.pid == pid));
        let row = found.unwrap_or(self.selected_row.min(rows.len() - 1));
        let pid = rows[row].pid;
        self.selected_row = row;
        self.selected = Some(pid);
    }

    /// The flagged rows shown, and what they hold together by one measure (PSS once
    /// every one of them has a reading; see tracker/measure.rs).
    pub fn flagged_memory(&self) -> (usize, Total) {
        let rows = self.rows();
        let flagged: Vec<&&ProcessView> = rows.iter().filter(|p| !p.verdicts.is_empty()).collect();
        let total = flagged.iter().map(|p| p.held()).collect();
        (flagged.len(), total)
    }
}

/// The memory a process holds: macOS's physical footprint where there is one, else RSS and
/// swap (a leak that pages out still grows); None until it was read.
pub fn memory(p: &ProcessView) -> Option<u64> {
    p.memory_bytes()
}

pub fn slope(p: &ProcessView) -> Option<f64> {
    p.growth.as_ref().map(|g| g.slope_bytes_per_second)
}

/// Largest first, unknown last.
fn by_desc(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// The filter matches the name or a verdict, ignoring case.
fn passes(p: &ProcessView, needle: &str) -> bool {
    p.comm.to_lowercase().contains(needle)
        || p.verdicts.iter().any(|v| v.kind.name().contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{VerdictKind, growth::Growth};

    fn view(time_s: u64, processes: Vec<ProcessView>) -> SessionsView {
        SessionsView {
            time_ns: time_s * 1_000_000_000,
            source: Some("proc".into()),
            ..SessionsView::with_sessions(processes)
        }
    }

    fn process(pid: u32, comm: &str, mib: u64, verdict: VerdictKind) -> ProcessView {
        ProcessView {
            comm: comm.into(),
            ..ProcessView::example(pid, mib << 20, verdict)
        }
    }

    fn growth(slope_bytes_per_second: f64) -> Growth {
        Growth {
            slope_bytes_per_second,
            fitted_growth_bytes: 0.0,
            r_squared: 1.0,
            rise_bytes: 0,
            late_rise_bytes: 0,
            span_seconds: 60.0,
            samples: 60,
            from_bytes: 0,
            to_bytes: 0,
            cpu_seconds: None,
            idle: None,
        }
    }

    fn pids(app: &App) -> Vec<u32> {
        app.rows().iter().map(|p| p.pid).collect()
    }

    #[test]
    fn t_collapses_each_session_tree_to_its_largest_member() {
        let tree = crate::tracker::TreeRef {
            root_pid: 9,
            root_started_ns: 0,
            root_comm: "claude".into(),
        };
        let member = |pid, mib| ProcessView {
            tree: Some(tree.clone()),
            ..process(pid, "node", mib, VerdictKind::Orphaned)
        };
        let mut app = App::new("test".into());
        let mut got = view(
            1,
            vec![
                member(10, 100),
                member(11, 300),
                process(12, "x", 50, VerdictKind::Orphaned),
            ],
        );
        got.rebuild_trees();
        app.update(Ok(got));
        assert_eq!(pids(&app), [11, 10, 12]);
        app.toggle_trees();
        assert_eq!(
            pids(&app),
            [11, 12],
            "the tree's largest member stands for it"
        );
        let t = app.tree_of(app.process(11).unwrap()).unwrap();
        assert_eq!((t.members.len(), t.memory_bytes), (2, 400 << 20));
        app.toggle_trees();
        assert_eq!(pids(&app), [11, 10, 12]);
    }

    #[test]
    fn rows_sort_by_memory_growth_cpu_and_age() {
        let mut app = App::new("test".into());
        let mut a = process(10, "a", 100, VerdictKind::Orphaned);
        let mut b = process(11, "b", 300, VerdictKind::Detached);
        let c = ProcessView {
            swap_bytes: Some(250 << 20),
            ..process(12, "c", 100, VerdictKind::Orphaned)
        };
        a.age_seconds = 50.0;
        b.growth = Some(growth(5.0));
        a.growth = Some(growth(50.0));
        a.cpu_seconds = Some(1.0);
        b.cpu_seconds = Some(1.0);
        app.update(Ok(view(1, vec![a.clone(), b.clone(), c.clone()])));
        a.cpu_seconds = Some(1.5);
        b.cpu_seconds = Some(3.0);
        app.update(Ok(view(2, vec![a, b, c])));
        assert_eq!(pids(&app), [12, 11, 10], "RSS + swap, largest first");
        app.set_sort(SortKey::Growth);
        assert_eq!(pids(&app), [10, 11, 12], "unknown growth last");
        app.set_sort(SortKey::Cpu);
        assert_eq!(pids(&app), [11, 10, 12]);
        assert_eq!(app.cpu_percent(11), Some(200.0));
        app.set_sort(SortKey::Age);
        assert_eq!(pids(&app), [10, 11, 12]);
    }

    #[test]
    fn the_filter_matches_names_and_verdicts_and_the_selection_follows_its_process() {
        let mut app = App::new("test".into());
        app.update(Ok(view(
            1,
            vec![
                process(10, "Node", 300, VerdictKind::Orphaned),
                process(11, "sleep", 200, VerdictKind::Detached),
                process(12, "vim", 100, VerdictKind::HangupIgnored),
            ],
        )));
        app.move_selection(1);
        assert_eq!(app.selected, Some(11));
        app.set_sort(SortKey::Age);
        assert_eq!(
            app.selected,
            Some(11),
            "re-sorting keeps the process selected"
        );
        app.set_filter("node".into());
        assert_eq!(pids(&app), [10]);
        assert_eq!(app.selected, Some(10));
        app.set_filter("detach".into());
        assert_eq!(pids(&app), [11]);
        app.set_filter("nothing".into());
        assert_eq!(app.selected, None);
    }

    #[test]
    fn history_is_bounded_and_forgets_processes_that_are_gone_or_replaced() {
        let mut app = App::new("test".into());
        for t in 0..100 {
            app.update(Ok(view(
                t,
                vec![process(10, "a", t, VerdictKind::Orphaned)],
            )));
        }
        let history = &app.history[&10];
        assert_eq!(history.readings.len(), HISTORY);
        assert_eq!(history.memory().last(), Some(&(99 << 20)));
        let reused = ProcessView {
            started_ns: 5,
            ..process(10, "b", 1, VerdictKind::Orphaned)
        };
        app.update(Ok(view(100, vec![reused])));
        assert_eq!(
            app.history[&10].readings.len(),
            1,
            "a reused pid starts over"
        );
        app.update(Ok(view(
            101,
            vec![process(11, "c", 1, VerdictKind::Orphaned)],
        )));
        assert!(!app.history.contains_key(&10));
        app.update(Err("gone".into()));
        assert_eq!(app.error.as_deref(), Some("gone"));
        assert_eq!(pids(&app), [11], "a failed look keeps the last document");
    }
}
