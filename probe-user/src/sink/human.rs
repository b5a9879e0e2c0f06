//! Alerts as a person reads them on a terminal: one line each, with the time, whether it
//! was raised or resolved, the verdict, the process, its memory and age, the reason, and
//! the key evidence in a few words. Colour only where the terminal takes it.
use std::io::{self, Write};

use crate::{
    event::{Event, EventKind},
    tracker::{Alert, AlertStatus},
    units::{format_duration, format_size},
};

/// Whether alert lines get ANSI colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    On,
    Off,
}

impl Colour {
    /// On for a terminal that is not `dumb`, unless `NO_COLOR` is set (no-color.org).
    pub fn for_terminal(is_terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if is_terminal && !no_color && !dumb {
            Self::On
        } else {
            Self::Off
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        match self {
            Self::On => format!("\x1b[{code}m{text}\x1b[0m"),
            Self::Off => text.to_string(),
        }
    }
}

const RED: &str = "1;31";
const GREEN: &str = "32";
const DIM: &str = "2";
const BOLD: &str = "1";

/// Longest command line shown, in characters; the JSON keeps it whole.
const COMMAND_SHOWN: usize = 60;

pub fn write_alert(out: &mut impl Write, alert: &Alert, colour: Colour) -> io::Result<()> {
    let (status, status_colour) = match alert.status {
        AlertStatus::Raised => ("raised  ", RED),
        AlertStatus::Resolved => ("resolved", GREEN),
    };
    let memory = alert
        .footprint_bytes
        .or(alert.rss_bytes)
        .map_or_else(|| "memory ?".to_string(), format_size);
    let age = format_duration((alert.age_seconds.max(0.0) * 1e9) as u64);
    let command = alert
        .cmdline
        .as_deref()
        .map(|c| shorten(c, COMMAND_SHOWN))
        .unwrap_or_default();
    writeln!(
        out,
        "{} {} {} {} {:<15} {:>10}  up {:<8} {}{}{}{}",
        colour.paint(DIM, &clock(alert.verdict.time_ns)),
        colour.paint(status_colour, status),
        // Padded before painting: escape codes would count as width.
        colour.paint(BOLD, &format!("{:<15}", alert.verdict.kind.name())),
        alert.pid,
        printable(&alert.comm),
        memory,
        age,
        printable(&alert.verdict.reason.to_string()),
        evidence(&alert.verdict.evidence)
            .map(|e| colour.paint(DIM, &format!(" [{e}]")))
            .unwrap_or_default(),
        started_in(alert)
            .map(|from| colour.paint(DIM, &format!(" [from {from}]")))
            .unwrap_or_default(),
        if command.is_empty() {
            String::new()
        } else {
            colour.paint(DIM, &format!(" ({command})"))
        },
    )
}

/// Where it was started (`vscode …/web`), when anything of it is known.
fn started_in(alert: &Alert) -> Option<String> {
    (alert.terminal_program.is_some() || alert.cwd.is_some()).then(|| {
        super::groups::origin(
            alert.terminal_program.as_deref(),
            alert.cwd.as_deref(),
            None,
        )
    })
}

/// The first piece of evidence in a few words: what happened, to whom, when.
fn evidence(events: &[Event]) -> Option<String> {
    let e = events.first()?;
    let what = match &e.kind {
        EventKind::Signal {
            signal_name,
            sender_comm,
            sender_pid,
            ..
        } => format!(
            "{signal_name} from {} ({sender_pid})",
            printable(sender_comm)
        ),
        EventKind::SignalDeliver { signal_name, .. } => format!("{signal_name} delivered"),
        EventKind::Sigaction {
            signal_name,
            disposition,
            ..
        } => format!("sigaction {signal_name} {}", disposition.as_str()),
        kind => kind.name().replace('_', " "),
    };
    Some(format!(
        "{what}: {} ({}) at {}",
        printable(&e.comm),
        e.pid,
        clock(e.time_ns)
    ))
}

/// HH:MM:SS in local time.
fn clock(epoch_ns: u64) -> String {
    // libc deprecates time_t on musl only because its width follows musl 1.2 in a later
    // release; localtime_r takes whatever width it has.
    #[allow(deprecated)]
    let seconds = (epoch_ns / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which is plain data.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&seconds, &mut tm) }.is_null() {
        return "--:--:--".into();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Control characters from a process's own name or arguments cannot move the cursor.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn shorten(text: &str, most: usize) -> String {
    let text = printable(text);
    if text.chars().count() <= most {
        return text;
    }
    let kept: String = text.chars().take(most - 1).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Verdict, VerdictKind, reason::Reason};

    fn alert(status: AlertStatus) -> Alert {
        Alert {
            status,
            verdict: Verdict {
                kind: VerdictKind::Orphaned,
                time_ns: 1_700_000_000_000_000_000,
                reason: Reason::ParentExited {
                    comm: "bash".into(),
                    pid: 41,
                },
                evidence: vec![Event {
                    kind: EventKind::Exit {
                        ppid: 1,
                        exit_code: Some(0),
                        exit_signal: None,
                        core_dumped: false,
                        peak_rss_bytes: None,
                        swap_bytes: None,
                    },
                    time_ns: 1_699_999_999_900_000_000,
                    pid: 41,
                    comm: "bash".into(),
                }],
                inferred: false,
                growth: None,
            },
            pid: 42,
            comm: "claude\x1b[2J".into(),
            cmdline: Some(format!("node cli.js {}", "ENV=x ".repeat(500))),
            started_ns: 1_699_990_000_000_000_000,
            age_seconds: 11_000.0,
            rss_bytes: Some(3 << 30),
            swap_bytes: Some(0),
            footprint_bytes: None,
            terminal_program: None,
            cwd: None,
        }
    }

    fn line(alert: &Alert, colour: Colour) -> String {
        let mut out = Vec::new();
        write_alert(&mut out, alert, colour).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_short_line_a_person_reads() {
        let text = line(&alert(AlertStatus::Raised), Colour::Off);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.len() < 300, "{} bytes: {text}", text.len());
        for part in [
            "raised",
            "orphaned",
            " 42 ",
            "3.0 GiB",
            "up 3h3m",
            "its parent bash (41) exited",
            "[exit: bash (41) at",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert!(!text.contains('\x1b'), "no colour asked for: {text:?}");
        assert!(
            text.contains("claude?[2J"),
            "control characters neutralised: {text}"
        );
    }

    #[test]
    fn where_it_was_started_is_said_when_known() {
        let mut started = alert(AlertStatus::Raised);
        assert!(!line(&started, Colour::Off).contains("[from"));
        started.terminal_program = Some("vscode".into());
        started.cwd = Some("/home/dev/projects/web".into());
        let text = line(&started, Colour::Off);
        assert!(
            text.contains(" [from vscode /home/dev/projects/web]"),
            "{text}"
        );
        started.terminal_program = None;
        assert!(line(&started, Colour::Off).contains(" [from /home/dev/projects/web]"));
    }

    #[test]
    fn colour_only_when_asked_and_resolved_reads_resolved() {
        let text = line(&alert(AlertStatus::Resolved), Colour::On);
        assert!(text.contains("\x1b[32mresolved\x1b[0m"), "{text:?}");
    }
}
