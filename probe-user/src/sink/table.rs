//! `hupwatch sessions` as a table people read: one row per live session, largest RSS first.
use std::io::{self, Write};

use crate::{
    output::shown,
    tracker::{ProcessView, SessionsView},
    units::{format_duration, format_size},
};

const CMDLINE_WIDTH: usize = 60;

pub fn write_table(out: &mut impl Write, view: &SessionsView) -> io::Result<()> {
    if view.processes.is_empty() {
        return writeln!(out, "no sessions to show");
    }
    let rows: Vec<[String; 9]> = view.processes.iter().map(row).collect();
    let header = [
        "PID", "COMM", "STATE", "TTY", "AGE", "RSS", "GROWTH", "VERDICTS", "CMDLINE",
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
    )
}

fn write_row(out: &mut impl Write, cells: &[String; 9], widths: &[usize; 9]) -> io::Result<()> {
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

fn row(p: &ProcessView) -> [String; 9] {
    let tty = match (&p.tty, &p.came_from_tty) {
        (Some(tty), _) => tty.clone(),
        (None, Some(from)) => format!("(was {from})"),
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
    let cmdline = printable(p.cmdline.as_deref().unwrap_or(""));
    [
        p.pid.to_string(),
        shown(&p.comm),
        p.state.clone(),
        tty,
        format_duration((p.age_seconds * 1e9) as u64),
        format_size(p.rss_bytes),
        growth,
        if verdicts.is_empty() {
            "-".into()
        } else {
            verdicts.join(",")
        },
        truncate(&cmdline, CMDLINE_WIDTH),
    ]
}

/// Spaces kept (a command line is mostly spaces); control characters escaped, so a hostile
/// argument cannot add rows or move the cursor.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width - 1).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Disposition,
        verdict::{Verdict, VerdictKind},
    };

    fn process(pid: u32, comm: &str, rss_mib: u64) -> ProcessView {
        ProcessView {
            pid,
            ppid: 1,
            comm: comm.into(),
            cmdline: Some(format!("{comm} --serve")),
            started_ns: 0,
            age_seconds: 7200.0,
            state: "terminal_lost".into(),
            tty: None,
            sid: Some(pid),
            came_from_tty: Some("pts/3".into()),
            hangup: Disposition::Ignore,
            rss_bytes: rss_mib << 20,
            peak_rss_bytes: rss_mib << 20,
            cpu_seconds: None,
            growth: None,
            verdicts: vec![Verdict {
                kind: VerdictKind::Orphaned,
                time_ns: 0,
                reason: String::new(),
                evidence: Vec::new(),
                inferred: true,
                growth: None,
            }],
            inferred: true,
            group: "all".into(),
            timeline: Vec::new(),
        }
    }

    #[test]
    fn rows_are_aligned_and_hostile_names_cannot_add_lines() {
        let view = SessionsView {
            time_ns: 0,
            processes: vec![process(10, "node", 900), process(11, "bad\nname", 12)],
            hangup_exits: Vec::new(),
            hangup_exit_total: 0,
            dropped_processes: 0,
        };
        let mut out = Vec::new();
        write_table(&mut out, &view).unwrap();
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
    fn says_so_when_there_is_nothing() {
        let view = SessionsView {
            time_ns: 0,
            processes: Vec::new(),
            hangup_exits: Vec::new(),
            hangup_exit_total: 0,
            dropped_processes: 0,
        };
        let mut out = Vec::new();
        write_table(&mut out, &view).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no sessions to show\n");
    }
}
