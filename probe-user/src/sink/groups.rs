//! Session groups and origins in the few words a person reads at once: `claude  23
//! sessions  19.5 GiB PSS (122% of RAM)  20 flagged  oldest 6d18h  vscode 15, iTerm.app 8`,
//! and a directory as `~/proj`. Everything a process chose for itself (its name, its
//! directory, a TERM_PROGRAM) is escaped: with `--from` the document comes from whatever
//! answers at that address.
use std::io::{self, Write};

use crate::{
    output::escape_unsafe,
    tracker::{GroupBy, MemoryMeasure, SessionGroup, SessionsView},
    units::{format_duration, format_size},
};

/// Groups listed at the end of `hupwatch sessions`; `--json` has them all.
pub const GROUPS_SHOWN: usize = 10;
/// Widest a directory is shown in a table cell, in characters.
pub const DIR_WIDTH: usize = 24;

/// The closing lines of `hupwatch sessions`: a heading, then one aligned line per group,
/// the largest first.
pub fn write_groups(
    out: &mut impl Write,
    view: &SessionsView,
    home: Option<&str>,
) -> io::Result<()> {
    if view.groups.is_empty() {
        return Ok(());
    }
    let heading = match view.group_by {
        GroupBy::Name => "by program",
        GroupBy::Cwd => "by directory",
        GroupBy::TerminalProgram => "by terminal program",
        GroupBy::TreeRoot => "by session tree's root program",
    };
    writeln!(out, "{heading}:")?;
    let rows: Vec<Vec<String>> = view
        .groups
        .iter()
        .take(GROUPS_SHOWN)
        .map(|g| group_cells(g, view, home))
        .collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let more = view.groups.len().saturating_sub(GROUPS_SHOWN);
    if more > 0 {
        writeln!(out, "and {more} more (--json lists them all)")?;
    }
    Ok(())
}

/// One group in words, a cell per figure: name, sessions, memory (and its share of RAM),
/// flagged, the oldest's age, and, unless grouped by it, the terminal programs by count.
pub fn group_cells(g: &SessionGroup, view: &SessionsView, home: Option<&str>) -> Vec<String> {
    let name = match view.group_by {
        GroupBy::Cwd => short_dir(&g.name, home, DIR_WIDTH),
        _ => escape_unsafe(&g.name),
    };
    let mut cells = vec![
        name,
        format!(
            "{} session{}",
            g.sessions,
            if g.sessions == 1 { "" } else { "s" }
        ),
        memory(g.memory_bytes, g.memory_measure, view.memory.ram_bytes),
        format!("{} flagged", g.flagged),
    ];
    cells.push(g.oldest_started_ns.map_or(String::new(), |started| {
        format!(
            "oldest {}",
            format_duration(view.time_ns.saturating_sub(started))
        )
    }));
    if view.group_by != GroupBy::TerminalProgram {
        cells.push(terminal_programs(g));
    }
    cells
}

/// `19.5 GiB PSS (122% of RAM)`: the total, the measure it is by, and its share of RAM
/// when RAM is known.
pub fn memory(bytes: u64, measure: MemoryMeasure, total: Option<u64>) -> String {
    let size = sized(bytes, measure);
    match total.filter(|t| *t > 0) {
        Some(total) => format!(
            "{size} ({:.0}% of RAM)",
            bytes as f64 * 100.0 / total as f64
        ),
        None => size,
    }
}

/// `19.5 GiB PSS`: a total with the measure it is by, as a person reads it.
pub fn sized(bytes: u64, measure: MemoryMeasure) -> String {
    format!("{} {}", format_size(bytes), measure_word(measure))
}

/// PSS and RSS as people write them; `footprint` as Activity Monitor's help does.
pub fn measure_word(measure: MemoryMeasure) -> &'static str {
    match measure {
        MemoryMeasure::Pss => "PSS",
        MemoryMeasure::Rss => "RSS",
        MemoryMeasure::Footprint => "footprint",
    }
}

/// `vscode 15, iTerm.app 8`: most first.
fn terminal_programs(g: &SessionGroup) -> String {
    let mut counts: Vec<(&String, &u64)> = g.terminal_programs.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(program, n)| format!("{} {n}", escape_unsafe(program)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a process was started, in a few characters: `vscode ~/proj`, either half alone,
/// or `-`.
pub fn origin(terminal_program: Option<&str>, cwd: Option<&str>, home: Option<&str>) -> String {
    let dir = cwd.map(|cwd| short_dir(cwd, home, DIR_WIDTH));
    match (terminal_program.map(escape_unsafe), dir) {
        (Some(program), Some(dir)) => format!("{program} {dir}"),
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => "-".into(),
    }
}

/// `dir` with `home` shown as `~`, cut from the left to `width` characters (`…/web/src`),
/// then escaped (so an escape is never cut in two).
pub fn short_dir(dir: &str, home: Option<&str>, width: usize) -> String {
    let under_home = home.and_then(|home| {
        let rest = dir.strip_prefix(home)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("~{rest}"))
    });
    let dir = under_home.as_deref().unwrap_or(dir);
    let count = dir.chars().count();
    if count <= width {
        return escape_unsafe(dir);
    }
    // Whole components where possible: the end of a path names the project.
    let tail: String = dir.chars().skip(count - (width - 1)).collect();
    let tail = match tail.find('/') {
        Some(slash) if slash + 1 < tail.len() => &tail[slash..],
        _ => &tail,
    };
    format!("…{}", escape_unsafe(tail))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    fn claude() -> SessionGroup {
        SessionGroup {
            name: "claude".into(),
            sessions: 23,
            memory_bytes: 19_500 << 20,
            memory_measure: MemoryMeasure::Pss,
            rss_memory_bytes: Some(41_000 << 20),
            flagged: 20,
            oldest_started_ns: Some(HOUR),
            terminal_programs: BTreeMap::from([
                ("iTerm.app".to_string(), 8),
                ("vscode".to_string(), 15),
            ]),
        }
    }

    fn view(groups: Vec<SessionGroup>, by: GroupBy) -> SessionsView {
        SessionsView {
            time_ns: HOUR + 162 * HOUR,
            memory: crate::tracker::MemoryForecast {
                ram_bytes: Some(16 << 30),
                ..Default::default()
            },
            groups,
            group_by: by,
            ..SessionsView::with_sessions(Vec::new())
        }
    }

    fn lines(view: &SessionsView) -> Vec<String> {
        let mut out = Vec::new();
        write_groups(&mut out, view, Some("/home/a")).unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn a_group_reads_at_once() {
        let small = SessionGroup {
            name: "node".into(),
            sessions: 1,
            memory_bytes: 300 << 20,
            memory_measure: MemoryMeasure::Rss,
            rss_memory_bytes: Some(300 << 20),
            flagged: 0,
            oldest_started_ns: None,
            terminal_programs: BTreeMap::new(),
        };
        let lines = lines(&view(vec![claude(), small], GroupBy::Name));
        assert_eq!(
            lines,
            [
                "by program:",
                "claude  23 sessions  19.0 GiB PSS (119% of RAM)  20 flagged  oldest 6d18h  vscode 15, iTerm.app 8",
                "node    1 session    300.0 MiB RSS (2% of RAM)   0 flagged",
            ]
        );
    }

    #[test]
    fn without_ram_no_share_and_grouped_by_program_no_program_list() {
        let mut v = view(vec![claude()], GroupBy::TerminalProgram);
        v.memory.ram_bytes = None;
        v.groups[0].name = "vscode".into();
        assert_eq!(
            lines(&v)[1],
            "vscode  23 sessions  19.0 GiB PSS  20 flagged  oldest 6d18h"
        );
    }

    #[test]
    fn directories_are_short_and_escaped() {
        let home = Some("/home/a");
        assert_eq!(short_dir("/home/a/proj", home, 24), "~/proj");
        assert_eq!(short_dir("/home/a", home, 24), "~");
        assert_eq!(short_dir("/home/ab/proj", home, 24), "/home/ab/proj");
        assert_eq!(
            short_dir("/home/a/src/company/monorepo/services/web", home, 24),
            "…/monorepo/services/web"
        );
        assert_eq!(
            short_dir("/x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", None, 12),
            "…aaaaaaaaaaa"
        );
        assert_eq!(short_dir("/tmp/new\nline", None, 24), "/tmp/new\\nline");
        let mut v = view(vec![claude()], GroupBy::Cwd);
        v.groups[0].name = "/home/a/web".into();
        assert!(
            lines(&v)[1].starts_with("~/web  23 sessions"),
            "{:?}",
            lines(&v)
        );
    }

    #[test]
    fn an_origin_in_a_few_characters() {
        let home = Some("/home/a");
        assert_eq!(
            origin(Some("vscode"), Some("/home/a/proj"), home),
            "vscode ~/proj"
        );
        assert_eq!(origin(Some("tmux"), None, home), "tmux");
        assert_eq!(origin(None, Some("/srv/app"), home), "/srv/app");
        assert_eq!(origin(None, None, home), "-");
        assert_eq!(origin(Some("\u{1b}[2Jx"), None, None), "\\u{1b}[2Jx");
    }

    #[test]
    fn many_groups_are_cut_with_a_count() {
        let groups: Vec<SessionGroup> = (0..13)
            .map(|i| SessionGroup {
                name: format!("p{i}"),
                ..claude()
            })
            .collect();
        let lines = lines(&view(groups, GroupBy::Name));
        assert_eq!(lines.len(), 1 + GROUPS_SHOWN + 1);
        assert_eq!(lines.last().unwrap(), "and 3 more (--json lists them all)");
    }
}
