//! `hupwatch sessions --tree`: each session tree as one line of totals, its members
//! indented under it, the largest first and collapsed past a few. What a person with 20
//! left-over MCP servers needs: which session holds them, and how much.
use std::io::{self, Write};

use crate::{
    output::shown,
    sink::table::{idle, printable},
    tracker::{ProcessView, SessionTree, SessionsView},
    units::{format_duration, format_size},
};

/// Members listed under a tree; `--json` has them all.
pub const MEMBERS_SHOWN: usize = 5;
const CMDLINE_WIDTH: usize = 60;

pub fn write_trees(out: &mut impl Write, view: &SessionsView) -> io::Result<()> {
    if view.trees.is_empty() {
        return writeln!(out, "no session trees to show");
    }
    for tree in &view.trees {
        writeln!(out, "{}", heading(tree, view.time_ns))?;
        for pid in tree.members.iter().take(MEMBERS_SHOWN) {
            if let Some(p) = view.processes.iter().find(|p| p.pid == *pid) {
                writeln!(out, "  {}", member(p))?;
            }
        }
        let more = tree.members.len().saturating_sub(MEMBERS_SHOWN);
        if more > 0 {
            writeln!(out, "  and {more} more (--json lists them all)")?;
        }
    }
    let outside = view.processes.iter().filter(|p| p.tree.is_none()).count();
    let trees = view.trees.len();
    writeln!(
        out,
        "{trees} tree{} of {} processes; {outside} sessions in no tree (not started from a terminal)",
        if trees == 1 { "" } else { "s" },
        view.trees.iter().map(|t| t.members.len()).sum::<usize>(),
    )
}

/// `claude (pid 200, exited)  3 processes  1.2 GiB  +40.0 MiB/h  oldest 2h  idle 40m  terminal_lost 3`
fn heading(tree: &SessionTree, now_ns: u64) -> String {
    let root = if tree.root_alive {
        format!("{} (pid {})", shown(&tree.root_comm), tree.root_pid)
    } else {
        format!("{} (pid {}, exited)", shown(&tree.root_comm), tree.root_pid)
    };
    let count = tree.members.len();
    let mut cells = vec![
        root,
        format!("{count} process{}", if count == 1 { "" } else { "es" }),
        format!(
            "{} {}",
            format_size(tree.memory_bytes),
            tree.memory_measure.name().to_uppercase()
        ),
    ];
    if let Some(rate) = tree.growth_bytes_per_second.filter(|r| r.abs() >= 1.0) {
        let per_hour = rate * 3600.0;
        let sign = if per_hour < 0.0 { "-" } else { "+" };
        cells.push(format!("{sign}{}/h", format_size(per_hour.abs() as u64)));
    }
    if let Some(oldest) = tree.oldest_started_ns {
        cells.push(format!(
            "oldest {}",
            format_duration(now_ns.saturating_sub(oldest))
        ));
    }
    cells.push(format!("idle {}", idle(tree.idle_seconds)));
    if tree.verdicts.is_empty() {
        cells.push("no verdicts".into());
    } else {
        let verdicts: Vec<String> = tree
            .verdicts
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        cells.push(verdicts.join(", "));
    }
    cells.join("  ")
}

fn member(p: &ProcessView) -> String {
    let verdicts: Vec<&str> = p.verdicts.iter().map(|v| v.kind.name()).collect();
    format!(
        "{:>7}  {}  {}  {}  {}",
        p.pid,
        shown(&p.comm),
        p.memory_bytes().map_or("-".into(), format_size),
        if verdicts.is_empty() {
            "-".to_string()
        } else {
            verdicts.join(",")
        },
        printable(p.cmdline.as_deref().unwrap_or(""), CMDLINE_WIDTH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::TreeRef;

    #[test]
    fn a_tree_is_one_line_of_totals_and_its_members_collapse_past_five() {
        let tree = TreeRef {
            root_pid: 200,
            root_started_ns: 0,
            root_comm: "claude".into(),
        };
        let processes: Vec<ProcessView> = (0..7)
            .map(|i| ProcessView {
                tree: Some(tree.clone()),
                ..ProcessView::example(
                    300 + i,
                    (i as u64 + 1) << 20,
                    crate::verdict::VerdictKind::Orphaned,
                )
            })
            .collect();
        let mut view = SessionsView::with_sessions(processes);
        view.rebuild_trees();
        let mut out = Vec::new();
        write_trees(&mut out, &view).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("claude (pid 200, exited)  7 processes  28.0 MiB RSS"),
            "{text}"
        );
        assert!(lines[0].ends_with("orphaned 7"), "{text}");
        assert!(lines[1].contains("306"), "largest first: {text}");
        assert_eq!(lines[6], "  and 2 more (--json lists them all)");
        assert!(lines[7].starts_with("1 tree of 7 processes; 0 sessions in no tree"));
    }
}
