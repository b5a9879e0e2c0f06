//! Drawing `hupwatch top`: the header, the table of processes or one process in full, and
//! the footer. Everything a process chose for itself (its name, command line, the reasons
//! quoting them) is escaped before it reaches the terminal: with --from, the document
//! comes from whatever answers at that address.
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap},
};

use super::{
    app::{App, Mode, SortKey, memory, slope},
    keys::HELP,
};
use crate::{
    notify::exhaustion::DEFAULT_EXHAUSTION_NS,
    output::{escape_unsafe, shown},
    sink::{
        forecast,
        groups::{group_cells, sized},
    },
    tracker::{ProcessView, SessionsView},
    units::{format_duration, format_size, rfc3339},
};

const BARS: [char; 8] = [
    '\u{2581}', '\u{2582}', '\u{2583}', '\u{2584}', '\u{2585}', '\u{2586}', '\u{2587}', '\u{2588}',
];
const SPARK_WIDTH: usize = 20;
/// Groups (programs) named in the header, the largest by memory.
const LARGEST_GROUPS: usize = 2;
const DETAIL_HELP: &str = "Esc back  \u{2191}\u{2193} scroll  k end  q quit";

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_lines(app)), header);
    let detail = match &app.mode {
        Mode::Detail { pid, scroll } => Some((*pid, *scroll)),
        Mode::Confirm { back, .. } => match **back {
            Mode::Detail { pid, scroll } => Some((pid, scroll)),
            _ => None,
        },
        _ => None,
    };
    match detail {
        Some((pid, scroll)) => draw_detail(frame, app, pid, scroll, body),
        None => draw_table(frame, app, body),
    }
    frame.render_widget(Paragraph::new(footer_line(app)), footer);
}

fn header_lines(app: &App) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let rows = app.rows();
    let total = app.view.as_ref().map_or(0, |v| v.processes.len());
    let (flagged, held) = app.flagged_memory();
    let source = app
        .view
        .as_ref()
        .and_then(|v| v.source.clone())
        .unwrap_or_else(|| "-".into());
    let lost = app
        .view
        .as_ref()
        .and_then(|v| v.events_lost)
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    let mut first = vec![
        Span::styled("hupwatch top", bold),
        Span::raw(format!(
            "  source: {}  ({})  |  shown {} of {total}  flagged {flagged} holding {}  |  sort: {}  |  events lost {lost}",
            escape_unsafe(&source),
            app.origin,
            rows.len(),
            sized(held.bytes(), held.measure()),
            app.sort.name(),
        )),
    ];
    if !app.filter.is_empty() {
        first.push(Span::raw(format!(
            "  filter: {}",
            escape_unsafe(&app.filter)
        )));
    }
    let second = match (&app.error, &app.view) {
        (Some(error), _) => Line::styled(
            format!("cannot read the sessions: {}", escape_unsafe(error)),
            Style::new().fg(Color::Red),
        ),
        (None, None) => Line::raw("waiting for the first look at the sessions\u{2026}"),
        (None, Some(view)) => memory_line(view),
    };
    vec![Line::from(first), largest_groups(app), second]
}

/// The one or two programs holding the most memory, as `hupwatch sessions` ends.
fn largest_groups(app: &App) -> Line<'static> {
    let Some(view) = &app.view else {
        return Line::raw("");
    };
    let shown: Vec<String> = view
        .groups
        .iter()
        .take(LARGEST_GROUPS)
        .map(|g| {
            group_cells(g, view, None)
                .into_iter()
                .filter(|cell| !cell.is_empty())
                .collect::<Vec<_>>()
                .join("  ")
        })
        .collect();
    if shown.is_empty() {
        return Line::raw("");
    }
    Line::raw(format!("largest: {}", shown.join("  |  ")))
}

/// The machine's memory and its forecast, by the OOM killer that acts first where one
/// acts before the kernel's (red when it acts, or memory runs out, within
/// `--notify-exhaustion`'s default, yellow while something grows), then what the source
/// cannot see.
fn memory_line(view: &SessionsView) -> Line<'static> {
    let mut spans = Vec::new();
    if let Some(words) = forecast::headline(&view.memory) {
        let soon = DEFAULT_EXHAUSTION_NS as f64 / 1e9;
        let style = match view.memory.acts_in_seconds() {
            Some(s) if s < soon => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            Some(_) => Style::new().fg(Color::Yellow),
            None => Style::new(),
        };
        spans.push(Span::styled(words, style));
    }
    if !view.unavailable.is_empty() {
        if !spans.is_empty() {
            spans.push(Span::raw("  |  "));
        }
        spans.push(Span::styled(
            format!(
                "unavailable from this source: {}",
                escape_unsafe(&view.unavailable.join(", "))
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    Line::from(spans)
}

fn footer_line(app: &App) -> Line<'static> {
    match &app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled("/", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(escape_unsafe(&app.filter)),
            Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
            Span::raw("  name or verdict; Enter keeps it, Esc clears it"),
        ]),
        Mode::Confirm { pid, comm, .. } => Line::styled(
            format!("end {pid} {}? y/n", shown(comm)),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
        Mode::Detail { .. } => Line::raw(
            app.status
                .as_deref()
                .map_or_else(|| DETAIL_HELP.to_string(), escape_unsafe),
        ),
        Mode::List => Line::raw(
            app.status
                .as_deref()
                .map_or_else(|| HELP.to_string(), escape_unsafe),
        ),
    }
}

fn draw_table(frame: &mut Frame, app: &App, area: Rect) {
    let sorted = |key: SortKey, title: &'static str| {
        if app.sort == key {
            format!("{title}\u{25bc}")
        } else {
            title.to_string()
        }
    };
    let header = Row::new(vec![
        Cell::from("PID"),
        Cell::from("NAME"),
        Cell::from("STATE"),
        Cell::from("VERDICTS"),
        Cell::from(sorted(SortKey::Memory, "MEMORY")),
        Cell::from(sorted(SortKey::Growth, "GROWTH")),
        Cell::from("LAST MINUTE"),
        Cell::from(sorted(SortKey::Cpu, "CPU%")),
        Cell::from(sorted(SortKey::Age, "AGE")),
        Cell::from("COMMAND"),
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows: Vec<Row> = app.rows().into_iter().map(|p| row(app, p)).collect();
    let empty = rows.is_empty();
    let widths = [
        Constraint::Length(7),
        Constraint::Length(15),
        Constraint::Length(13),
        Constraint::Length(24),
        Constraint::Length(10),
        Constraint::Length(12),
        Constraint::Length(SPARK_WIDTH as u16),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let table = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(app.selected.map(|_| app.selected_row));
    frame.render_stateful_widget(table, area, &mut state);
    if empty && app.view.is_some() {
        let text = if app.filter.is_empty() {
            "no sessions to show".to_string()
        } else {
            format!(
                "nothing matches the filter {:?} (Esc clears it)",
                escape_unsafe(&app.filter)
            )
        };
        let below = Rect {
            y: area.y.saturating_add(2),
            height: area.height.saturating_sub(2).min(1),
            ..area
        };
        frame.render_widget(Paragraph::new(text), below);
    }
}

fn row<'a>(app: &App, p: &ProcessView) -> Row<'a> {
    let verdicts: Vec<String> = p
        .verdicts
        .iter()
        .map(|v| format!("{}{}", v.kind.name(), if v.inferred { "*" } else { "" }))
        .collect();
    let state = if p.ignored {
        format!("{} (ignored)", escape_unsafe(&p.state))
    } else {
        escape_unsafe(&p.state)
    };
    let history = app
        .history
        .get(&p.pid)
        .map(|h| h.memory())
        .unwrap_or_default();
    let flagged = !p.verdicts.is_empty();
    let verdict_style = if flagged {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    let ending = app.ending.contains(&p.pid);
    // Collapsed to trees: the tree's name, members, memory and verdicts on its row.
    let tree = app.trees.then(|| app.tree_of(p)).flatten();
    let (name, verdicts, memory_cell) = match tree {
        Some(t) => (
            format!(
                "{} +{}",
                shown(&t.root_comm),
                t.members.len().saturating_sub(1)
            ),
            t.verdicts
                .iter()
                .map(|(kind, n)| format!("{kind}\u{d7}{n}"))
                .collect(),
            format!(
                "{} {}",
                format_size(t.memory_bytes),
                t.memory_measure.name()
            ),
        ),
        None => (
            shown(&p.comm),
            verdicts,
            memory(p).map_or("-".into(), format_size),
        ),
    };
    Row::new(vec![
        Cell::from(p.pid.to_string()),
        Cell::from(name),
        Cell::from(if ending {
            "ending\u{2026}".into()
        } else {
            state
        }),
        Cell::from(if verdicts.is_empty() {
            "-".into()
        } else {
            verdicts.join(",")
        })
        .style(verdict_style),
        Cell::from(memory_cell),
        Cell::from(growth(p)),
        Cell::from(spark(&history, SPARK_WIDTH)).style(Style::new().fg(Color::Cyan)),
        Cell::from(
            app.cpu_percent(p.pid)
                .map_or("-".into(), |c| format!("{c:.1}")),
        ),
        Cell::from(format_duration((p.age_seconds.max(0.0) * 1e9) as u64)),
        Cell::from(command(p)),
    ])
}

/// The growth rate per hour, `+41.0 MiB/h`; `-` when unknown or flat.
pub fn growth(p: &ProcessView) -> String {
    match slope(p) {
        Some(s) if s.abs() >= 1.0 => {
            let per_hour = s * 3600.0;
            let sign = if per_hour < 0.0 { "-" } else { "+" };
            format!("{sign}{}/h", format_size(per_hour.abs() as u64))
        }
        _ => "-".into(),
    }
}

fn command(p: &ProcessView) -> String {
    match p.cmdline.as_deref() {
        Some(cmdline) if !cmdline.is_empty() => escape_unsafe(cmdline),
        _ => format!("[{}]", escape_unsafe(&p.comm)),
    }
}

/// The last `width` values as a line of bars, lowest to highest of those shown.
pub fn spark(values: &[u64], width: usize) -> String {
    let shown = &values[values.len().saturating_sub(width)..];
    let (Some(&low), Some(&high)) = (shown.iter().min(), shown.iter().max()) else {
        return String::new();
    };
    shown
        .iter()
        .map(|&v| {
            let level = if high == low {
                0
            } else {
                ((v - low) as u128 * 7 / (high - low) as u128) as usize
            };
            BARS[level]
        })
        .collect()
}

fn draw_detail(frame: &mut Frame, app: &App, pid: u32, scroll: u16, area: Rect) {
    let Some(p) = app.process(pid) else {
        let text = format!(
            "{pid} is no longer among the sessions (it exited, or a look failed); Esc goes back"
        );
        frame.render_widget(Paragraph::new(text).block(Block::bordered()), area);
        return;
    };
    let [summary, chart, body] = Layout::vertical([
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Min(1),
    ])
    .areas(area);
    let title = format!(" {} {} ", p.pid, shown(&p.comm));
    frame.render_widget(
        Paragraph::new(summary_lines(app, p))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title)),
        summary,
    );
    let history = app
        .history
        .get(&pid)
        .map(|h| h.memory())
        .unwrap_or_default();
    let (low, high) = (
        history.iter().min().copied().unwrap_or(0),
        history.iter().max().copied().unwrap_or(0),
    );
    // Drawn from just below the lowest reading, so a small change is visible; memory
    // that holds still is a low line, not a full block.
    let base = ((high - low) / 8).max(1);
    let lifted: Vec<u64> = history.iter().map(|v| v - low + base).collect();
    let shown_len = usize::from(chart.width.saturating_sub(2));
    let lifted = &lifted[lifted.len().saturating_sub(shown_len)..];
    let top = if high == low { 8 } else { high - low + base };
    frame.render_widget(
        Sparkline::default()
            .data(lifted)
            .max(top)
            .style(Style::new().fg(Color::Cyan))
            .block(Block::bordered().title(format!(
                " memory, last {} readings: {} to {} ",
                history.len(),
                format_size(low),
                format_size(high)
            ))),
        chart,
    );
    frame.render_widget(
        Paragraph::new(detail_lines(p))
            .wrap(Wrap { trim: false })
            .scroll((scroll, 0))
            .block(Block::bordered().title(" verdicts and timeline ")),
        body,
    );
}

fn summary_lines(app: &App, p: &ProcessView) -> Vec<Line<'static>> {
    let tty = match (&p.tty, &p.came_from_tty) {
        (Some(tty), _) => escape_unsafe(tty),
        (None, Some(from)) => format!("none (was {})", escape_unsafe(from)),
        (None, None) => "none".into(),
    };
    let size = |bytes: Option<u64>| bytes.map_or("-".into(), format_size);
    vec![
        Line::raw(format!(
            "state {}{}  parent {}  session {}  terminal {tty}  SIGHUP {}  age {}",
            escape_unsafe(&p.state),
            if p.ignored { " (ignored)" } else { "" },
            p.ppid,
            p.sid.map_or("-".into(), |s| s.to_string()),
            p.hangup.as_str(),
            format_duration((p.age_seconds.max(0.0) * 1e9) as u64),
        )),
        Line::raw(format!(
            "memory {}  rss {}  swap {}  peak rss {}{}  growth {}",
            size(memory(p)),
            size(p.rss_bytes),
            size(p.swap_bytes),
            size(p.peak_rss_bytes),
            p.footprint_bytes
                .map_or(String::new(), |f| format!("  footprint {}", format_size(f))),
            growth(p),
        )),
        Line::raw(format!(
            "cpu {}  cpu time {}  group {}{}",
            app.cpu_percent(p.pid)
                .map_or("-".into(), |c| format!("{c:.1}%")),
            p.cpu_seconds.map_or("-".into(), |c| format!("{c:.2}s")),
            escape_unsafe(&p.group),
            if p.inferred {
                "  (first seen in /proc, not starting)"
            } else {
                ""
            },
        )),
        Line::raw(format!(
            "from {}  cwd {}  idle {}",
            p.terminal_program
                .as_deref()
                .map_or("-".into(), escape_unsafe),
            p.cwd.as_deref().map_or("-".into(), escape_unsafe),
            match p.idle_seconds {
                None => "-".into(),
                Some(s) if s < 1.0 => "no (busy)".into(),
                Some(s) => format_duration((s * 1e9) as u64),
            },
        )),
        Line::raw(format!("command {}", command(p))),
    ]
}

fn detail_lines(p: &ProcessView) -> Vec<Line<'static>> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    if p.verdicts.is_empty() {
        lines.push(Line::raw("no verdicts"));
    }
    for v in &p.verdicts {
        lines.push(Line::from(vec![
            Span::styled(
                v.kind.name(),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                "  raised {}{}",
                rfc3339(v.time_ns),
                if v.inferred {
                    "  (inferred from /proc, not seen happening)"
                } else {
                    ""
                }
            )),
        ]));
        lines.push(Line::raw(format!(
            "  reason: {}",
            escape_unsafe(&v.reason.to_string())
        )));
        if let Some(g) = &v.growth {
            lines.push(Line::raw(format!(
                "  growth: {}/h over {}, from {} to {}, R\u{b2} {:.2}{}",
                format_size((g.slope_bytes_per_second.max(0.0) * 3600.0) as u64),
                format_duration((g.span_seconds.max(0.0) * 1e9) as u64),
                format_size(g.from_bytes),
                format_size(g.to_bytes),
                g.r_squared,
                if g.idle == Some(true) { ", idle" } else { "" },
            )));
        }
        if v.evidence.is_empty() {
            lines.push(Line::raw("  evidence: none recorded"));
        } else {
            lines.push(Line::raw("  evidence:"));
            lines.extend(
                v.evidence
                    .iter()
                    .map(|e| Line::raw(format!("    {}", event_line(e)))),
            );
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled(
        format!("timeline ({} events)", p.timeline.len()),
        bold,
    ));
    if p.timeline.is_empty() {
        lines.push(Line::raw("  (kept only for processes with a verdict)"));
    }
    lines.extend(
        p.timeline
            .iter()
            .map(|e| Line::raw(format!("  {}", event_line(e)))),
    );
    lines
}

fn event_line(event: &crate::event::Event) -> String {
    let mut out = Vec::new();
    match crate::output::write_human(&mut out, event) {
        Ok(()) => escape_unsafe(String::from_utf8_lossy(&out).trim_end()),
        Err(_) => event.kind.name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_spans_the_lowest_to_the_highest_reading() {
        assert_eq!(spark(&[], 5), "");
        assert_eq!(spark(&[3, 3], 5), "\u{2581}\u{2581}");
        assert_eq!(
            spark(&[0, 10, 0, 7, 14], 4),
            "\u{2586}\u{2581}\u{2584}\u{2588}"
        );
    }

    fn text(line: &Line) -> String {
        line.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    fn with_memory(available: u64, growth: f64, unavailable: &[&str]) -> SessionsView {
        let mut view = SessionsView::with_sessions(Vec::new());
        view.memory = crate::tracker::MemoryForecast::new(
            crate::host::MachineMemory {
                ram_bytes: None,
                total_bytes: Some(16 << 30),
                available_bytes: Some(available),
                pressure_some_avg10: Some(0.0),
                ..crate::host::MachineMemory::default()
            },
            growth,
        );
        view.unavailable = unavailable.iter().map(|w| w.to_string()).collect();
        view
    }

    #[test]
    fn the_header_says_when_memory_runs_out() {
        // 1.2 GiB an hour with 2.6 GiB left.
        let growth = 1.2 * (1u64 << 30) as f64 / 3600.0;
        let line = memory_line(&with_memory((growth * 7800.5) as u64, growth, &[]));
        assert_eq!(text(&line), "memory full in 2h10m at +1.2 GiB/h");
        assert_eq!(
            line.spans[0].style.fg,
            Some(Color::Yellow),
            "2h10m is not yet soon"
        );
        let line = memory_line(&with_memory(1 << 30, 1048576.0, &[]));
        assert_eq!(text(&line), "memory full in 17m4s at +3.5 GiB/h");
        assert_eq!(line.spans[0].style.fg, Some(Color::Red));
    }

    #[test]
    fn the_header_names_the_killer_that_acts_first() {
        // earlyoom at 10%/10% of 16 GiB RAM and no swap acts at 1.6 GiB available; with
        // 2.6 GiB left at 1 MiB/s that is 17 minutes, where memory runs out in 44.
        let mut view = SessionsView::with_sessions(Vec::new());
        let found = crate::host::OomKillers {
            earlyoom: Some(crate::host::Earlyoom {
                pid: 7,
                memory_percent: 10.0,
                memory_kib: None,
                swap_percent: 10.0,
                swap_kib: None,
                dry_run: false,
            }),
            by_oom_score: vec![crate::host::Candidate {
                pid: 9,
                comm: "firefox".into(),
                oom_score: 812,
            }],
            ..Default::default()
        };
        view.memory = crate::tracker::MemoryForecast::new(
            crate::host::MachineMemory {
                ram_bytes: Some(16 << 30),
                total_bytes: Some(16 << 30),
                available_bytes: Some(2662 << 20),
                killers: Some(found),
                ..crate::host::MachineMemory::default()
            },
            1048576.0,
        );
        let line = memory_line(&view);
        assert_eq!(
            text(&line),
            "earlyoom acts in ~17 min (MemAvailable ≤ 10%; no swap) at +3.5 GiB/h; \
             it would kill: firefox (oom_score 812)"
        );
        assert_eq!(
            line.spans[0].style.fg,
            Some(Color::Red),
            "its time, not memory's"
        );
    }

    #[test]
    fn the_header_says_what_is_available_when_nothing_grows() {
        let view = with_memory(9 * (1 << 30) + (800 << 20), 0.0, &["hangup_survived"]);
        assert_eq!(
            text(&memory_line(&view)),
            "memory: 9.8 GiB available  |  unavailable from this source: hangup_survived"
        );
        let mut unknown = view.clone();
        unknown.memory = Default::default();
        assert_eq!(
            text(&memory_line(&unknown)),
            "unavailable from this source: hangup_survived"
        );
    }
}
