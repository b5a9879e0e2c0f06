//! `hupwatch sessions` as a table people read: one row per live session, largest RSS first.
use std::io::{self, Write};

use crate::{
    output::{escaped, shown},
    sink::groups::{origin, write_groups},
    tracker::{ProcessView, SessionsView},
    units::{format_duration, format_size},
};

const CMDLINE_WIDTH: usize = 60;

/// The table, then the sessions added up per group (`view.groups`); `home` is shown as
/// `~` in directories.
pub fn write_table(
    out: &mut impl Write,
    view: &SessionsView,
    home: Option<&str>,
) -> io::Result<()> {
    if view.processes.is_empty() {
        return writeln!(out, "no sessions to show");
    }
    let rows: Vec<[String; COLUMNS]> = view.processes.iter().map(|p| row(p, home)).collect();
    let header = [
        "PID", "COMM", "STATE", "TTY", "AGE", "IDLE", "RSS", "SWAP", "GROWTH", "FROM", "VERDICTS",
        "CMDLINE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    write_row(out, &header.map(String::from), &widths)?;
    for row in &rows {
        write_row(out, row, &widths)?;
    }
    let flagged = view
        .processes
        .iter()
        .filter(|p| !p.verdicts.is_empty())
        .count();
    writeln!(
        out,
        "{} sessions, {flagged} with verdicts{}",
        view.processes.len(),
        if view
            .processes
            .iter()
            .any(|p| p.verdicts.iter().any(|v| v.inferred))
        {
            "; * = inferred from /proc, not seen happening"
        } else {
            ""
        }
    )?;
    write_groups(out, view, home)
}

const COLUMNS: usize = 12;

fn write_row(
    out: &mut impl Write,
    cells: &[String; COLUMNS],
    widths: &[usize; COLUMNS],
) -> io::Result<()> {
    let last = cells.len() - 1;
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i == last {
            writeln!(out, "{cell}")?;
        } else {
            write!(out, "{cell:<width$}  ")?;
        }
    }
    Ok(())
}

fn row(p: &ProcessView, home: Option<&str>) -> [String; COLUMNS] {
    // Every text cell is escaped, not only the names: with --from, the document comes from
    // whatever answers at that address.
    let tty = match (&p.tty, &p.came_from_tty) {
        (Some(tty), _) => printable(tty, usize::MAX),
        (None, Some(from)) => format!("(was {})", printable(from, usize::MAX)),
        (None, None) => "-".into(),
    };
    let growth = p
        .growth
        .as_ref()
        .filter(|g| g.slope_bytes_per_second.abs() >= 1.0)
        .map(|g| {
            let per_hour = g.slope_bytes_per_second * 3600.0;
            let sign = if per_hour < 0.0 { "-" } else { "+" };
            format!("{sign}{}/h", format_size(per_hour.abs() as u64))
        })
        .unwrap_or_else(|| "-".into());
    let verdicts: Vec<String> = p
        .verdicts
        .iter()
        .map(|v| format!("{}{}", v.kind.name(), if v.inferred { "*" } else { "" }))
        .collect();
    [
        p.pid.to_string(),
        shown(&p.comm),
        if p.ignored {
            format!("{} (ignored)", printable(&p.state, usize::MAX))
        } else {
            printable(&p.state, usize::MAX)
        },
        tty,
        format_duration((p.age_seconds * 1e9) as u64),
        idle(p.idle_seconds),
        p.rss_bytes.map_or("-".into(), format_size),
        p.swap_bytes.map_or("-".into(), format_size),
        growth,
        origin(p.terminal_program.as_deref(), p.cwd.as_deref(), home),
        if verdicts.is_empty() {
            "-".into()
        } else {
            verdicts.join(",")
        },
        printable(p.cmdline.as_deref().unwrap_or(""), CMDLINE_WIDTH),
    ]
}

/// How long it has sat idle: `-` until known, `busy` while it uses a CPU.
pub fn idle(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 1.0 => "busy".into(),
        Some(s) => format_duration((s * 1e9) as u64),
    }
}

/// `text` in at most `width` characters, cut with `…`. Spaces are kept (a command line is
/// mostly spaces); characters a terminal would act on are escaped as `\n`, `\u{1b}` and
/// so on ([`escaped`]), never cut in the middle, so a hostile argument cannot add rows,
/// move the cursor, colour the terminal or reorder the line.
pub fn printable(text: &str, width: usize) -> String {
    let pieces: Vec<std::borrow::Cow<'_, str>> = text
        .char_indices()
        .map(|(i, c)| match escaped(c) {
            Some(escape) => escape.into(),
            None => text[i..i + c.len_utf8()].into(),
        })
        .collect();
    let chars = |piece: &std::borrow::Cow<'_, str>| piece.chars().count();
    if pieces.iter().map(chars).sum::<usize>() <= width {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut used = 0;
    for piece in &pieces {
        if used + chars(piece) > width - 1 {
            break;
        }
        used += chars(piece);
        out.push_str(piece);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::Disposition, verdict::VerdictKind};

    fn process(pid: u32, comm: &str, rss_mib: u64) -> ProcessView {
        let mut p = ProcessView {
            comm: comm.into(),
            cmdline: Some(format!("{comm} --serve")),
            age_seconds: 7200.0,
            state: "terminal_lost".into(),
            sid: Some(pid),
            came_from_tty: Some("pts/3".into()),
            hangup: Disposition::Ignore,
            inferred: true,
            ..ProcessView::example(pid, rss_mib << 20, VerdictKind::Orphaned)
        };
        p.verdicts[0].inferred = true;
        p
    }

    #[test]
    fn rows_are_aligned_and_hostile_names_cannot_add_lines() {
        let view = SessionsView::with_sessions(vec![
            process(10, "node", 900),
            process(11, "bad\nname", 12),
        ]);
        let mut out = Vec::new();
        write_table(&mut out, &view, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("PID"));
        assert!(lines[1].contains("(was pts/3)"));
        assert!(lines[1].contains("orphaned*"));
        assert!(lines[1].contains("900.0 MiB"));
        assert!(lines[1].contains("2h"));
        assert!(lines[2].contains("\"bad\\nname\""));
        assert!(lines[2].ends_with("bad\\nname --serve"), "{}", lines[2]);
        assert_eq!(lines[1].find("STATE"), None);
        assert_eq!(lines[0].find("STATE"), lines[1].find("terminal_lost"));
        assert!(lines[3].contains("inferred"));
    }

    #[test]
    fn where_each_came_from_how_long_it_idled_and_the_totals_per_program() {
        let started = |p: ProcessView, from: &str, cwd: &str, idle: Option<f64>| ProcessView {
            terminal_program: Some(from.into()),
            cwd: Some(cwd.into()),
            idle_seconds: idle,
            started_ns: 1_000_000_000,
            ..p
        };
        let mut view = SessionsView {
            time_ns: 7_201_000_000_000,
            ..SessionsView::with_sessions(vec![
                started(
                    process(10, "claude", 900),
                    "vscode",
                    "/home/a/web",
                    Some(5400.0),
                ),
                started(
                    process(11, "claude", 700),
                    "iTerm.app",
                    "/home/a/api",
                    Some(0.2),
                ),
                ProcessView {
                    verdicts: Vec::new(),
                    ..process(12, "node", 100)
                },
            ])
        };
        view.memory.ram_bytes = Some(4 << 30);
        view.regroup(crate::tracker::GroupBy::Name);
        let mut out = Vec::new();
        write_table(&mut out, &view, Some("/home/a")).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].find("FROM"),
            lines[1].find("vscode ~/web"),
            "{text}"
        );
        assert_eq!(lines[0].find("IDLE"), lines[1].find("1h30m"), "{text}");
        assert!(lines[2].contains("iTerm.app ~/api") && lines[2].contains("busy"));
        assert!(
            lines[3].contains("  -  "),
            "unknown origin and idle: {}",
            lines[3]
        );
        assert_eq!(
            lines[4],
            "3 sessions, 2 with verdicts; * = inferred from /proc, not seen happening"
        );
        assert_eq!(
            &lines[5..],
            [
                "by program:",
                "claude  2 sessions  1.6 GiB RSS (39% of RAM)   2 flagged  oldest 2h  iTerm.app 1, vscode 1",
                "node    1 session   100.0 MiB RSS (2% of RAM)  0 flagged",
            ],
            "{text}"
        );
    }

    /// Names and command lines a process chooses for itself, as hupwatch gets them: the
    /// kernel's and /proc's bytes are decoded lossily, so invalid UTF-8 arrives as U+FFFD.
    fn hostile() -> Vec<(String, String)> {
        let lossy = crate::host::linux::join_cmdline(b"evil\xff\xfe\0--flag\0");
        assert_eq!(lossy, "evil\u{fffd}\u{fffd} --flag");
        vec![
            (
                "new\nline".into(),
                "sh -c 'echo a\n12345  forged  row'".into(),
            ),
            ("say\"hi\"".into(), "echo \"quoted\" 'single'".into()),
            ("back\\slash".into(), "C:\\dir\\n not a newline".into()),
            (
                "\u{1b}[31mred".into(),
                "\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}".into(),
            ),
            (
                "csi\u{9b}31m".into(),
                "rlo \u{202e}txt.exe \r\u{8}\u{7f}".into(),
            ),
            ("bad\u{fffd}utf8".into(), lossy),
            ("long".into(), format!("node {}", "x".repeat(4096))),
        ]
    }

    #[test]
    fn hostile_names_and_command_lines_cannot_forge_rows_or_reach_the_terminal() {
        let mut processes: Vec<ProcessView> = hostile()
            .into_iter()
            .enumerate()
            .map(|(i, (comm, cmdline))| ProcessView {
                cmdline: Some(cmdline),
                ..process(100 + i as u32, &comm, 100 - i as u64)
            })
            .collect();
        // With --from, every text field comes from whatever answers at that address.
        processes[0].tty = Some("pts/1\n99999  forged".into());
        processes[1].came_from_tty = Some("\u{1b}[2J".into());
        processes[2].state = "attached\r\u{1b}[1A".into();
        let count = processes.len();
        let view = SessionsView::with_sessions(processes);
        let mut out = Vec::new();
        write_table(&mut out, &view, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            count + 2,
            "a header, one row each, a total:\n{text}"
        );
        for (i, line) in lines[1..=count].iter().enumerate() {
            assert!(line.starts_with(&(100 + i).to_string()), "{line}");
            assert!(line.chars().count() < 200, "a row stays short: {line}");
        }
        assert!(
            text.chars().all(|c| c == '\n' || escaped(c).is_none()),
            "a character a terminal acts on got through:\n{text:?}"
        );
        for shown in [
            "\"new\\nline\"",
            "sh -c 'echo a\\n12345  forged  row'",
            "pts/1\\n99999  forged",
            "\"say\\\"hi\\\"\"",
            "echo \"quoted\" 'single'",
            "\"back\\\\slash\"",
            "C:\\dir\\n not a newline",
            "\"\\u{1b}[31mred\"",
            "\\u{1b}[31mred\\u{1b}[0m \\u{1b}]0;title\\u{7}",
            "(was \\u{1b}[2J)",
            "attached\\r\\u{1b}[1A",
            "\"csi\\u{9b}31m\"",
            "rlo \\u{202e}txt.exe \\r\\u{8}\\u{7f}",
            "bad\u{fffd}utf8",
            "evil\u{fffd}\u{fffd} --flag",
        ] {
            assert!(text.contains(shown), "{shown} not in\n{text}");
        }
        // The 4 KiB argument is cut to the column, with a mark.
        let long = lines.iter().find(|l| l.contains(" long ")).unwrap();
        let cell = &long[long.find("node ").unwrap()..];
        assert_eq!(cell.chars().count(), CMDLINE_WIDTH);
        assert!(cell.ends_with("xx…"), "{cell}");
    }

    #[test]
    fn a_cut_never_splits_an_escape() {
        let text = format!("{}\u{1b}[31m", "a".repeat(CMDLINE_WIDTH - 3));
        let cut = printable(&text, CMDLINE_WIDTH);
        assert_eq!(cut, format!("{}…", "a".repeat(CMDLINE_WIDTH - 3)));
        assert_eq!(printable("a\tb", 10), "a\\tb");
        assert_eq!(printable("ab", 2), "ab");
        assert_eq!(printable("abc", 2), "a…");
    }

    #[test]
    fn says_so_when_there_is_nothing() {
        let view = SessionsView::with_sessions(Vec::new());
        let mut out = Vec::new();
        write_table(&mut out, &view, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no sessions to show\n");
    }
}
