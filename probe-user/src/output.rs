//! How `hupwatch trace` prints events: one JSON object per line, or one human line.
use std::io::{self, Write};

use crate::event::{Event, EventKind};

pub fn write_json(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event)?;
    out.write_all(b"\n")
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
            ..
        } => {
            write!(out, " ppid={ppid} filename={}", shown(filename))?;
            if let Some(tty) = tty {
                write!(out, " tty={tty}")?;
            }
            Ok(())
        }
        EventKind::Fork { ppid } => write!(out, " ppid={ppid}"),
        EventKind::Exit {
            ppid,
            exit_code,
            exit_signal,
            core_dumped,
            peak_rss_bytes,
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
            write!(out, " peak_rss={}", mib(*peak_rss_bytes))
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
                old_tty.as_deref().unwrap_or("none")
            ),
            _ => write!(out, " failed errno={}", errno.unwrap_or(0)),
        },
        EventKind::DetachTty { sid, tty, fd } => {
            write!(
                out,
                " gave_up_tty={} session={sid} fd={fd}",
                tty.as_deref().unwrap_or("none")
            )
        }
        EventKind::Pdeathsig { signal_name, .. } => write!(out, " on_parent_death={signal_name}"),
        EventKind::Signal {
            signal_name,
            origin,
            result,
            sender_pid,
            sender_comm,
            ..
        } => write!(
            out,
            " {signal_name} from pid={sender_pid} comm={} origin={} result={}",
            shown(sender_comm),
            origin.as_str(),
            result.as_str()
        ),
        EventKind::SignalDeliver {
            signal_name,
            disposition,
            ..
        } => {
            write!(out, " {signal_name} disposition={}", disposition.as_str())
        }
        EventKind::Sigaction {
            signal_name,
            disposition,
            ..
        } => {
            write!(out, " {signal_name} now={}", disposition.as_str())
        }
        EventKind::Reparented { old_ppid, ppid } => {
            write!(out, " parent {old_ppid} gone, now ppid={ppid}")
        }
        EventKind::AttachTty { sid, fd } => write!(out, " took_tty_of_fd={fd} session={sid}"),
        EventKind::Existing {
            ppid,
            sid,
            tty,
            hangup,
            rss_bytes,
            ..
        } => write!(
            out,
            " ppid={ppid} session={sid} tty={} sighup={} rss={}",
            tty.as_deref().unwrap_or("none"),
            hangup.as_str(),
            mib(*rss_bytes)
        ),
        EventKind::Rss {
            rss_bytes,
            peak_rss_bytes,
            ..
        } => {
            write!(
                out,
                " rss={} peak={}",
                mib(*rss_bytes),
                mib(*peak_rss_bytes)
            )
        }
    }?;
    out.write_all(b"\n")
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

/// A name as is when it is plain, quoted and escaped when it holds spaces, quotes or
/// control characters, so a hostile name cannot forge a line.
pub fn shown(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\');
    if plain {
        name.to_string()
    } else {
        format!("{name:?}")
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
    fn human_lines_escape_hostile_names() {
        let mut out = Vec::new();
        write_human(&mut out, &hangup()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "01:02:03.000456 signal         pid=42 comm=\"evil\\nname\" SIGHUP from pid=0 comm=swapper/0 origin=kernel result=ignored\n"
        );
    }
}
