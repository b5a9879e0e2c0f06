//! How `hupwatch trace` prints events: one JSON object per line, or one human line.
use std::io::{self, Write};

use crate::event::{Event, EventKind, Existing};

pub fn write_json(out: &mut impl Write, event: &Event) -> io::Result<()> {
    write_json_line(out, event)
}

/// `value` as one line of JSON, with every character [`escaped`] would change written as a
/// `\uXXXX` escape: the same JSON to a parser, but a process-chosen name (a C1 control, a
/// bidirectional override) cannot drive the terminal it is printed on. JSON escapes only
/// the C0 controls itself.
pub fn write_json_line(out: &mut impl Write, value: &impl serde::Serialize) -> io::Result<()> {
    let text = serde_json::to_string(value)?;
    let mut line = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if escaped(c).is_some() {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                line.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            line.push(c);
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

pub fn write_human(out: &mut impl Write, event: &Event) -> io::Result<()> {
    write!(
        out,
        "{} {:<14} pid={} comm={}",
        clock_time(event.time_ns),
        event.kind.name(),
        event.pid,
        shown(&event.comm)
    )?;
    match &event.kind {
        EventKind::Exec {
            ppid,
            filename,
            tty,
            terminal_program,
            cwd,
            ..
        } => {
            write!(out, " ppid={ppid} filename={}", shown(filename))?;
            if let Some(tty) = tty {
                write!(out, " tty={}", shown(tty))?;
            }
            write_origin(out, terminal_program.as_deref(), cwd.as_deref())
        }
        EventKind::Fork { ppid } => write!(out, " ppid={ppid}"),
        EventKind::Exit {
            ppid,
            exit_code,
            exit_signal,
            core_dumped,
            peak_rss_bytes,
            swap_bytes,
        } => {
            write!(out, " ppid={ppid}")?;
            match (exit_code, exit_signal) {
                (Some(code), _) => write!(out, " exit_code={code}")?,
                (None, Some(sig)) => write!(
                    out,
                    " killed_by={}{}",
                    crate::signals::name(*sig),
                    if *core_dumped { " (core dumped)" } else { "" }
                )?,
                (None, None) => write!(out, " exit=unknown")?,
            }
            match peak_rss_bytes {
                Some(peak) => write!(out, " peak_rss={}", mib(*peak))?,
                None => write!(out, " peak_rss=unknown")?,
            }
            match swap_bytes {
                Some(swap) if *swap > 0 => write!(out, " swap={}", mib(*swap)),
                _ => Ok(()),
            }
        }
        EventKind::Setsid {
            ok,
            sid,
            errno,
            old_sid,
            old_tty,
        } => match (ok, sid) {
            (true, Some(sid)) => write!(
                out,
                " new_session={sid} left_session={old_sid} left_tty={}",
                old_tty.as_deref().map_or("none".into(), shown)
            ),
            _ => write!(out, " failed errno={}", errno.unwrap_or(0)),
        },
        EventKind::DetachTty { sid, tty, fd } => {
            write!(
                out,
                " gave_up_tty={} session={sid} fd={fd}",
                tty.as_deref().map_or("none".into(), shown)
            )
        }
        EventKind::Pdeathsig { signal_name, .. } => {
            write!(out, " on_parent_death={}", shown(signal_name))
        }
        EventKind::Signal {
            signal_name,
            origin,
            result,
            sender_pid,
            sender_comm,
            ..
        } => write!(
            out,
            " {} from pid={sender_pid} comm={} origin={} result={}",
            shown(signal_name),
            shown(sender_comm),
            origin.as_str(),
            result.as_str()
        ),
        EventKind::SignalDeliver {
            signal_name,
            disposition,
            ..
        } => {
            write!(
                out,
                " {} disposition={}",
                shown(signal_name),
                disposition.as_str()
            )
        }
        EventKind::Sigaction {
            signal_name,
            disposition,
            ..
        } => {
            write!(out, " {} now={}", shown(signal_name), disposition.as_str())
        }
        EventKind::Reparented { old_ppid, ppid } => {
            write!(out, " parent {old_ppid} gone, now ppid={ppid}")
        }
        EventKind::AttachTty { sid, fd } => write!(out, " took_tty_of_fd={fd} session={sid}"),
        EventKind::Stopped {} | EventKind::Continued {} => Ok(()),
        EventKind::Zombies {
            count,
            oldest_exit_ns,
        } => {
            write!(out, " unreaped_children={count}")?;
            match oldest_exit_ns {
                Some(t) => write!(out, " oldest_exit={}", crate::units::rfc3339(*t)),
                None => Ok(()),
            }
        }
        EventKind::Origin {
            terminal_program,
            cwd,
        } => write!(
            out,
            " from={} cwd={}",
            shown(terminal_program.as_deref().unwrap_or("-")),
            shown(cwd.as_deref().unwrap_or("-"))
        ),
        EventKind::Existing(Existing {
            ppid,
            sid,
            tty,
            hangup,
            rss_bytes,
            terminal_program,
            cwd,
            ..
        }) => {
            write!(
                out,
                " ppid={ppid} session={sid} tty={} sighup={} rss={}",
                tty.as_deref().map_or("none".into(), shown),
                hangup.as_str(),
                mib(*rss_bytes)
            )?;
            write_origin(out, terminal_program.as_deref(), cwd.as_deref())
        }
        EventKind::Rss {
            rss_bytes,
            peak_rss_bytes,
            swap_bytes,
            footprint_bytes,
            ..
        } => {
            write!(
                out,
                " rss={} peak={}",
                mib(*rss_bytes),
                mib(*peak_rss_bytes)
            )?;
            if let Some(swap) = swap_bytes {
                write!(out, " swap={}", mib(*swap))?;
            }
            match footprint_bytes {
                Some(footprint) => write!(out, " footprint={}", mib(*footprint)),
                None => Ok(()),
            }
        }
        EventKind::Pss {
            pss_bytes,
            swap_pss_bytes,
        } => {
            write!(out, " pss={}", mib(*pss_bytes))?;
            match swap_pss_bytes {
                Some(swap) => write!(out, " swap_pss={}", mib(*swap)),
                None => Ok(()),
            }
        }
    }?;
    out.write_all(b"\n")
}

/// Where a process was started, when known: ` from=vscode cwd=/home/a/proj`.
fn write_origin(
    out: &mut impl Write,
    terminal_program: Option<&str>,
    cwd: Option<&str>,
) -> io::Result<()> {
    if let Some(program) = terminal_program {
        write!(out, " from={}", shown(program))?;
    }
    match cwd {
        Some(cwd) => write!(out, " cwd={}", shown(cwd)),
        None => Ok(()),
    }
}

/// An error writing to stdout, unless the reader went away (`hupwatch trace | head`),
/// which is a normal end for a command that prints.
pub fn unless_reader_gone(e: io::Error) -> anyhow::Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e.into())
    }
}

/// A name as is when it is plain, quoted and escaped when it holds spaces, quotes,
/// backslashes or characters a terminal would act on, so a hostile name cannot forge a
/// line, move the cursor, colour the terminal or reorder what is shown.
pub fn shown(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '\\' && escaped(c).is_none());
    if plain {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => match escaped(c) {
                Some(escape) => out.push_str(&escape),
                None => out.push(c),
            },
        }
    }
    out.push('"');
    out
}

/// `text` with the characters a terminal would act on escaped ([`escaped`]), everything
/// else as is: for messages that quote what a file held.
pub fn escape_unsafe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match escaped(c) {
            Some(escape) => out.push_str(&escape),
            None => out.push(c),
        }
    }
    out
}

/// How a character that must not reach a terminal as is is written in human output (as
/// Rust writes it: `\n`, `\t`, `\u{1b}`), or None for one that may: control characters (C0,
/// DEL, C1, which move the cursor, end lines, start escape sequences) and the invisible
/// format characters that change how a line reads (bidirectional overrides and isolates,
/// zero-width characters, line and paragraph separators).
pub fn escaped(c: char) -> Option<String> {
    let invisible = matches!(
        c as u32,
        0x061C | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064 | 0x2066..=0x2069 | 0xFEFF
    );
    match c {
        '\n' => Some("\\n".into()),
        '\t' => Some("\\t".into()),
        '\r' => Some("\\r".into()),
        '\0' => Some("\\0".into()),
        c if c.is_control() || invisible => Some(format!("\\u{{{:x}}}", c as u32)),
        _ => None,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}MiB", bytes as f64 / (1 << 20) as f64)
}

/// `HH:MM:SS.micros` in UTC.
fn clock_time(epoch_ns: u64) -> String {
    let secs = epoch_ns / 1_000_000_000;
    let micros = (epoch_ns % 1_000_000_000) / 1_000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{micros:06}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Origin, SignalResult};

    fn hangup() -> Event {
        Event {
            kind: EventKind::Signal {
                signal: 1,
                signal_name: "SIGHUP".into(),
                origin: Origin::Kernel,
                code: 128,
                result: SignalResult::Ignored,
                group: true,
                sender_pid: 0,
                sender_comm: "swapper/0".into(),
            },
            time_ns: 3_723_000_456_000,
            pid: 42,
            comm: "evil\nname".into(),
        }
    }

    #[test]
    fn json_lines_carry_the_documented_fields() {
        let mut out = Vec::new();
        write_json(&mut out, &hangup()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches('\n').count(),
            1,
            "one line even with a newline in comm"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["event"], "signal");
        assert_eq!(value["signal_name"], "SIGHUP");
        assert_eq!(value["origin"], "kernel");
        assert_eq!(value["result"], "ignored");
        assert_eq!(value["pid"], 42);
        assert_eq!(value["comm"], "evil\nname");
        assert_eq!(value["time_ns"], 3_723_000_456_000u64);
        let back: Event = serde_json::from_value(value).unwrap();
        assert_eq!(back, hangup());
    }

    #[test]
    fn names_a_terminal_would_act_on_are_quoted_and_escaped() {
        for (name, expected) in [
            ("bash", "bash"),
            ("naïve-名前", "naïve-名前"),
            ("new\nline", r#""new\nline""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("back\\slash", r#""back\\slash""#),
            ("\u{1b}[31mred", r#""\u{1b}[31mred""#),
            ("csi\u{9b}2J", r#""csi\u{9b}2J""#),
            ("del\u{7f}nul\u{0}", r#""del\u{7f}nul\0""#),
            // Invisible, but they reorder or hide what follows.
            ("rlo\u{202e}exe.txt", r#""rlo\u{202e}exe.txt""#),
            ("zero\u{200b}width", r#""zero\u{200b}width""#),
            ("line\u{2028}sep", r#""line\u{2028}sep""#),
            ("bad\u{fffd}utf8", "bad\u{fffd}utf8"),
            ("", r#""""#),
        ] {
            assert_eq!(shown(name), expected, "{name:?}");
        }
        let long = "x".repeat(4096);
        assert_eq!(shown(&long), long, "long but plain: as is");
    }

    /// Every string of an event is the source's to choose, and a `--replay` recording can
    /// hold anything: terminals and signal names are escaped as names are.
    #[test]
    fn human_lines_escape_every_string_a_recording_holds() {
        let hostile = "pts/1\n12:00:00.000000 exit \u{1b}[31m";
        let events = [
            EventKind::Exec {
                ppid: 1,
                filename: "/bin/sh".into(),
                sid: None,
                tty: Some(hostile.into()),
                parent_tty: None,
                forked_by: None,
                started_ns: None,
                cmdline: None,
                terminal_program: Some(hostile.into()),
                cwd: Some(hostile.into()),
                from_terminal: false,
                hangup: None,
            },
            EventKind::Setsid {
                ok: true,
                sid: Some(2),
                errno: None,
                old_sid: 1,
                old_tty: Some(hostile.into()),
            },
            EventKind::DetachTty {
                sid: 1,
                tty: Some(hostile.into()),
                fd: 0,
            },
            EventKind::Pdeathsig {
                signal: 9,
                signal_name: hostile.into(),
            },
            EventKind::Signal {
                signal: 1,
                signal_name: hostile.into(),
                origin: Origin::Kernel,
                code: 128,
                result: SignalResult::Ignored,
                group: true,
                sender_pid: 0,
                sender_comm: hostile.into(),
            },
            EventKind::SignalDeliver {
                signal: 1,
                signal_name: hostile.into(),
                disposition: crate::event::Disposition::Handler,
                code: 0,
            },
            EventKind::Sigaction {
                signal: 1,
                signal_name: hostile.into(),
                disposition: crate::event::Disposition::Ignore,
            },
            EventKind::Existing(Existing {
                ppid: 1,
                sid: 1,
                tty: Some(hostile.into()),
                started_ns: 0,
                cmdline: hostile.into(),
                hangup: crate::event::Disposition::Default,
                rss_bytes: 0,
                swap_bytes: None,
                cpu_ns: None,
                from_terminal: true,
                terminal_program: Some(hostile.into()),
                cwd: Some(hostile.into()),
                reparented: false,
                session_leader_alive: true,
                session_marker: None,
            }),
        ];
        for kind in events {
            let event = Event {
                kind,
                time_ns: 0,
                pid: 1,
                comm: hostile.into(),
            };
            let mut out = Vec::new();
            write_human(&mut out, &event).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.matches('\n').count(), 1, "{text:?}");
            assert!(
                text.trim_end().chars().all(|c| escaped(c).is_none()),
                "{text:?}"
            );
            assert!(
                text.contains(r#""pts/1\n12:00:00.000000 exit \u{1b}[31m""#),
                "{text}"
            );
        }
    }

    #[test]
    fn human_lines_escape_hostile_names() {
        let mut out = Vec::new();
        write_human(&mut out, &hangup()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "01:02:03.000456 signal         pid=42 comm=\"evil\\nname\" SIGHUP from pid=0 comm=swapper/0 origin=kernel result=ignored\n"
        );
    }

    #[test]
    fn json_lines_escape_what_would_drive_a_terminal() {
        // A C1 CSI (ESC [ in one byte), a right-to-left override, DEL and a character
        // outside the BMP: the first three must not reach a terminal raw.
        let name = "a\u{9b}31m\u{202e}b\u{7f}c\u{1f600}";
        let mut out = Vec::new();
        write_json_line(&mut out, &serde_json::json!({ "comm": name })).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"comm\":\"a\\u009b31m\\u202eb\\u007fc\u{1f600}\"}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["comm"], name, "the same JSON to a parser");
    }
}
