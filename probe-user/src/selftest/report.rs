//! What a self-test found, as JSON for a bug report (field names are a contract, unknown
//! values null) and as tables for a person.
use std::io::{self, Write};

use serde::Serialize;

use super::witness::{Os, Privileges};
use crate::units::format_size;

#[derive(Debug, Serialize)]
pub struct Report {
    /// hupwatch's version and commit.
    pub hupwatch: String,
    /// Every expected verdict was caught.
    pub passed: bool,
    pub os: Os,
    pub source: SourceInUse,
    pub privileges: Privileges,
    pub settings: Settings,
    /// The nohup that ran.
    pub nohup: String,
    pub verdicts: Vec<VerdictRow>,
    pub processes: Vec<ProcessRow>,
    pub duration_seconds: f64,
    /// Test processes the launcher ended at the end; null when it did not say.
    pub ended_processes: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct SourceInUse {
    /// `--source` as given, or `auto`.
    pub asked: String,
    /// The source that ran, after any fallback.
    pub used: Option<String>,
    /// What that source cannot give (the sessions document's `unavailable`).
    pub unavailable: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub hup_grace_seconds: f64,
    pub rss_growth_bytes: u64,
    pub rss_window_seconds: f64,
    pub rss_interval_seconds: f64,
    pub poll_interval_seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct VerdictRow {
    pub verdict: &'static str,
    /// The test process it is provoked on (its role).
    pub process: &'static str,
    pub pid: Option<u32>,
    /// The source in use can give it.
    pub expected: bool,
    /// Why not, when not expected.
    pub not_expected_why: Option<String>,
    pub caught: bool,
    /// From its cause to the self-test's first look that showed the verdict (looks are
    /// 50 ms apart).
    pub latency_seconds: Option<f64>,
    pub cause: &'static str,
    pub cause_time: Option<String>,
    /// That look.
    pub seen_time: Option<String>,
    /// The time the watcher gave the verdict (polling dates it by what it read).
    pub raised_time: Option<String>,
}

impl VerdictRow {
    pub fn missed(&self) -> bool {
        self.expected && !self.caught
    }
}

#[derive(Debug, Serialize)]
pub struct ProcessRow {
    pub process: &'static str,
    pub pid: Option<u32>,
    /// Every verdict it got, provoked or not (after the hangup all are orphaned and
    /// outlived the terminal).
    pub verdicts: Vec<String>,
    pub memory: MemoryRow,
}

/// One process's memory by hupwatch and by the OS, read one right after the other
/// while it held still (before the hangup).
#[derive(Clone, Debug, Serialize)]
pub struct MemoryRow {
    pub hupwatch_bytes: Option<u64>,
    /// rss (Linux) or footprint (macOS).
    pub hupwatch_measure: &'static str,
    pub os_bytes: Option<u64>,
    pub os_measure: &'static str,
    /// os_bytes - hupwatch_bytes.
    pub difference_bytes: Option<i64>,
}

impl Report {
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        crate::output::write_json_line(out, self)
    }

    pub fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        let expected = self.verdicts.iter().filter(|v| v.expected).count();
        let caught = self
            .verdicts
            .iter()
            .filter(|v| v.expected && v.caught)
            .count();
        writeln!(
            out,
            "hupwatch selftest: {}, {caught} of {expected} expected verdicts caught in {:.1}s",
            if self.passed { "passed" } else { "FAILED" },
            self.duration_seconds
        )?;
        let used = self.source.used.as_deref().unwrap_or("unknown");
        writeln!(out, "source      {used} (asked: {})", self.source.asked)?;
        let p = &self.privileges;
        let who = if p.root { "root" } else { "not root" };
        let caps = p
            .capabilities
            .as_deref()
            .map(|c| format!(", capabilities kept {c}"))
            .unwrap_or_default();
        writeln!(
            out,
            "privileges  {who} (uid {}, euid {}){caps}",
            p.uid, p.euid
        )?;
        let os = &self.os;
        let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        let product = os
            .product_version
            .as_deref()
            .map(|v| format!(" (macOS {v})"))
            .unwrap_or_default();
        writeln!(
            out,
            "system      {} {} {}{product}",
            os.name,
            shown(&os.kernel),
            shown(&os.arch)
        )?;
        writeln!(out, "hupwatch    {}; nohup {}", self.hupwatch, self.nohup)?;
        writeln!(out)?;
        let mut rows = vec![row(&[
            "VERDICT", "PROCESS", "PID", "CAUGHT", "AFTER", "CAUSE",
        ])];
        for v in &self.verdicts {
            let caught = match (v.expected, v.caught) {
                (true, true) => "yes",
                (true, false) => "MISSED",
                (false, true) => "yes",
                (false, false) => "-",
            };
            let after = v.latency_seconds.map(seconds).unwrap_or_else(|| "-".into());
            let cause = match &v.not_expected_why {
                Some(why) => why.clone(),
                None => v.cause.to_string(),
            };
            rows.push(vec![
                v.verdict.into(),
                v.process.into(),
                pid(v.pid),
                caught.into(),
                after,
                cause,
            ]);
        }
        write_rows(out, &rows)?;
        writeln!(out)?;
        let (ours, theirs) = self
            .processes
            .first()
            .map(|p| (p.memory.hupwatch_measure, p.memory.os_measure))
            .unwrap_or_default();
        let mut rows = vec![vec![
            "PROCESS".into(),
            "PID".into(),
            format!("HUPWATCH ({ours})"),
            format!("OS ({theirs})"),
            "VERDICTS".into(),
        ]];
        for p in &self.processes {
            let size = |b: Option<u64>| b.map(format_size).unwrap_or_else(|| "-".into());
            let verdicts = if p.verdicts.is_empty() {
                "-".to_string()
            } else {
                p.verdicts.join(",")
            };
            rows.push(vec![
                p.process.into(),
                pid(p.pid),
                size(p.memory.hupwatch_bytes),
                size(p.memory.os_bytes),
                verdicts,
            ]);
        }
        write_rows(out, &rows)?;
        match self.ended_processes {
            Some(n) => writeln!(out, "\nended its {n} test processes"),
            None => writeln!(
                out,
                "\nthe launcher did not say it ended the test processes"
            ),
        }
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "-".into(), |p| p.to_string())
}

/// `82ms`, `1.02s`.
fn seconds(s: f64) -> String {
    let ms = (s * 1000.0).round();
    if ms.abs() < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{s:.2}s")
    }
}

fn write_rows(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
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
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_read_as_people_write_them() {
        assert_eq!(seconds(0.082), "82ms");
        assert_eq!(seconds(1.0234), "1.02s");
        assert_eq!(seconds(0.9996), "1.00s");
    }

    #[test]
    fn columns_line_up() {
        let mut out = Vec::new();
        let rows = vec![row(&["A", "BB", "C"]), row(&["long", "x", "y"])];
        write_rows(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A     BB  C\nlong  x   y\n"
        );
    }
}
