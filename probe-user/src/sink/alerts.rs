//! Alerts as JSON lines: one object per raised verdict, and a `resolved` line for it when
//! its process is gone. The fields are a documented contract (docs/alerts.md).
use std::io::{self, Write};

use serde::Serialize;

use crate::{
    event::Event,
    tracker::{Alert, AlertStatus},
    units::rfc3339,
    verdict::{VerdictKind, growth::Growth},
};

#[derive(Serialize)]
struct AlertLine<'a> {
    status: AlertStatus,
    alert: VerdictKind,
    time: String,
    pid: u32,
    comm: &'a str,
    cmdline: Option<&'a str>,
    /// The program hosting the terminal it was started in, and its working directory;
    /// null when unknown.
    terminal_program: Option<&'a str>,
    cwd: Option<&'a str>,
    started: String,
    age_seconds: f64,
    /// Null when its memory was never read.
    rss_bytes: Option<u64>,
    swap_bytes: Option<u64>,
    /// macOS's physical footprint; absent on Linux.
    #[serde(skip_serializing_if = "Option::is_none")]
    footprint_bytes: Option<u64>,
    inferred: bool,
    reason: &'a crate::verdict::reason::Reason,
    evidence: &'a [Event],
    #[serde(skip_serializing_if = "Option::is_none")]
    growth: Option<&'a Growth>,
}

pub fn write_alert(out: &mut impl Write, alert: &Alert) -> io::Result<()> {
    let line = AlertLine {
        status: alert.status,
        alert: alert.verdict.kind,
        time: rfc3339(alert.verdict.time_ns),
        pid: alert.pid,
        comm: &alert.comm,
        cmdline: alert.cmdline.as_deref(),
        terminal_program: alert.terminal_program.as_deref(),
        cwd: alert.cwd.as_deref(),
        started: rfc3339(alert.started_ns),
        age_seconds: (alert.age_seconds * 1000.0).round() / 1000.0,
        rss_bytes: alert.rss_bytes,
        swap_bytes: alert.swap_bytes,
        footprint_bytes: alert.footprint_bytes,
        inferred: alert.verdict.inferred,
        reason: &alert.verdict.reason,
        evidence: &alert.verdict.evidence,
        growth: alert.verdict.growth.as_ref(),
    };
    crate::output::write_json_line(out, &line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::reason::Reason;
    use crate::{event::EventKind, verdict::Verdict};

    #[test]
    fn one_line_with_the_documented_fields() {
        let evidence = Event {
            kind: EventKind::Fork { ppid: 1 },
            time_ns: 1_700_000_000_000_000_000,
            pid: 42,
            comm: "x".into(),
        };
        let alert = Alert {
            status: AlertStatus::Raised,
            verdict: Verdict {
                kind: VerdictKind::Orphaned,
                time_ns: 1_700_000_000_500_000_000,
                reason: Reason::Said("its parent\nexited".into()),
                evidence: vec![evidence],
                inferred: false,
                growth: None,
            },
            pid: 42,
            comm: "evil\"\ncomm".into(),
            cmdline: Some("evil --x".into()),
            started_ns: 1_699_999_990_000_000_000,
            age_seconds: 10.5,
            rss_bytes: Some(1 << 20),
            swap_bytes: None,
            footprint_bytes: None,
            terminal_program: None,
            cwd: None,
        };
        let mut out = Vec::new();
        write_alert(&mut out, &alert).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one line: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "raised");
        assert_eq!(v["alert"], "orphaned");
        assert_eq!(v["time"], "2023-11-14T22:13:20.500Z");
        assert_eq!(v["started"], "2023-11-14T22:13:10.000Z");
        assert_eq!(v["comm"], "evil\"\ncomm");
        assert_eq!(v["age_seconds"], 10.5);
        assert_eq!(v["inferred"], false);
        assert_eq!(v["rss_bytes"], 1 << 20);
        assert!(v["swap_bytes"].is_null(), "unknown is null, never 0");
        assert!(
            v.get("footprint_bytes").is_none(),
            "no footprint where the OS has none (Linux)"
        );
        let mac = Alert {
            footprint_bytes: Some(3 << 30),
            terminal_program: None,
            cwd: None,
            ..alert
        };
        let mut out = Vec::new();
        write_alert(&mut out, &mac).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["footprint_bytes"],
            3u64 << 30,
            "macOS's footprint beside the RSS"
        );
        assert_eq!(v["evidence"][0]["event"], "fork");
        assert!(v.get("growth").is_none());
    }

    #[test]
    fn hostile_names_and_command_lines_read_back_exactly_from_one_line() {
        let lossy = crate::host::linux::join_cmdline(b"evil\xff\xfe\0--flag\0");
        let long = format!("node {}", "x".repeat(4096));
        let hostile = [
            "new\nline\n{\"status\":\"resolved\"}",
            "say \"hi\" \\\"",
            "back\\slash\\n\\u0041",
            "\u{1b}[31mred\u{1b}[0m\u{7}\r\u{8}",
            "rlo \u{202e}\u{2028}\u{0}\u{7f}\u{9b}",
            &lossy,
            &long,
        ];
        for text in hostile {
            let alert = Alert {
                status: AlertStatus::Raised,
                verdict: Verdict {
                    kind: VerdictKind::Detached,
                    time_ns: 1_700_000_000_000_000_000,
                    reason: Reason::Said("it left its terminal's session".into()),
                    evidence: vec![Event {
                        kind: EventKind::Fork { ppid: 1 },
                        time_ns: 1_700_000_000_000_000_000,
                        pid: 42,
                        comm: text.into(),
                    }],
                    inferred: false,
                    growth: None,
                },
                pid: 42,
                comm: text.into(),
                cmdline: Some(text.into()),
                started_ns: 1_699_999_990_000_000_000,
                age_seconds: 10.0,
                rss_bytes: Some(1 << 20),
                swap_bytes: Some(0),
                footprint_bytes: None,
                terminal_program: None,
                cwd: None,
            };
            let mut out = Vec::new();
            write_alert(&mut out, &alert).unwrap();
            let line = String::from_utf8(out).unwrap();
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
            // JSON escapes every C0 control character, ESC included.
            assert!(
                !line.trim_end().chars().any(|c| (c as u32) < 0x20),
                "a raw control character: {line:?}"
            );
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["comm"], text);
            assert_eq!(v["cmdline"], text);
            assert_eq!(v["evidence"][0]["comm"], text);
            assert_eq!(v["status"], "raised", "nothing forged a field");
        }
        assert_eq!(
            lossy, "evil\u{fffd}\u{fffd} --flag",
            "/proc bytes decode lossily"
        );
    }
}
