//! Reading the guest's console: the lines /init and the scenario marked (script.rs), and
//! what they add up to.
use serde_json::Value;

use super::script::{MARK, VERDICTS};
use crate::kernels::libtest::{self, Counts};

/// What the guest said.
#[derive(Debug, Default)]
pub struct Said {
    /// `uname -r` in the guest.
    pub release: Option<String>,
    /// hupwatch's stderr, line by line.
    pub stderr: Vec<String>,
    /// `hupwatch_probe_attached{program="NAME"} 0|1` from its /metrics: every program
    /// hupwatch has, and whether it attached.
    pub programs: Vec<(String, bool)>,
    /// (verdict, pid): the process the scenario started for each verdict.
    pub subjects: Vec<(String, u32)>,
    /// hupwatch's exit status after SIGTERM (137: it had to be killed).
    pub hupwatch_status: Option<i32>,
    /// hupwatch's alert lines.
    pub alerts: Vec<Value>,
    /// Lines among the alerts that were not JSON (or not objects).
    pub garbled: Vec<String>,
    /// The library's unit tests' output and exit status, when they ran.
    pub lib_tests: Vec<String>,
    pub lib_tests_status: Option<i32>,
    /// `hupwatch selftest --json`'s stdout (one JSON line), its stderr and exit status.
    pub selftest: Vec<String>,
    pub selftest_stderr: Vec<String>,
    pub selftest_status: Option<i32>,
    /// /init got to its end.
    pub done: bool,
}

impl Said {
    /// Reads the console's text. A line may carry kernel output before the mark (the two
    /// share the serial port), and ends in `\r\n` (the terminal's output processing).
    pub fn read(console: &str) -> Said {
        let mut said = Said::default();
        for line in console.lines() {
            let Some((_, marked)) = line.trim_end_matches('\r').split_once(MARK) else {
                continue;
            };
            let marked = marked.strip_prefix(' ').unwrap_or(marked);
            let (what, rest) = marked.split_once(' ').unwrap_or((marked, ""));
            match what {
                "release" => said.release = Some(rest.trim().to_owned()),
                "stderr" => said.stderr.push(rest.to_owned()),
                "metric" => said.programs.extend(program_attached(rest)),
                "subject" => said.subjects.extend(subject(rest)),
                "alert" => match serde_json::from_str::<Value>(rest) {
                    Ok(alert) if alert.is_object() => said.alerts.push(alert),
                    _ => said.garbled.push(rest.to_owned()),
                },
                "libtest" => said.lib_tests.push(rest.to_owned()),
                "hupwatch-exit" => said.hupwatch_status = rest.trim().parse().ok(),
                "libtest-exit" => said.lib_tests_status = rest.trim().parse().ok(),
                "selftest" => said.selftest.push(rest.to_owned()),
                "selftest-stderr" => said.selftest_stderr.push(rest.to_owned()),
                "selftest-exit" => said.selftest_status = rest.trim().parse().ok(),
                "done" => said.done = true,
                _ => {}
            }
        }
        said
    }

    /// The verdicts raised for the process the scenario named for them, in VERDICTS'
    /// order, and the ones that were not (with the pid, when there was one).
    pub fn verdicts(&self) -> (Vec<&'static str>, Vec<String>) {
        let mut raised = Vec::new();
        let mut missing = Vec::new();
        for verdict in VERDICTS {
            let pids: Vec<u32> = self
                .subjects
                .iter()
                .filter(|(kind, _)| kind == verdict)
                .map(|(_, pid)| *pid)
                .collect();
            if pids.iter().any(|pid| self.raised(verdict, *pid)) {
                raised.push(verdict);
            } else if let Some(pid) = pids.first() {
                missing.push(format!("no {verdict} alert for pid {pid}"));
            } else {
                missing.push(format!("the scenario started no process for {verdict}"));
            }
        }
        (raised, missing)
    }

    fn raised(&self, verdict: &str, pid: u32) -> bool {
        self.alerts.iter().any(|alert| {
            alert["status"] == "raised" && alert["alert"] == verdict && alert["pid"] == pid
        })
    }

    /// (attached, all) programs, from the metrics.
    pub fn programs_attached(&self) -> (usize, usize) {
        let attached = self.programs.iter().filter(|(_, on)| *on).count();
        (attached, self.programs.len())
    }

    /// The programs that did not attach.
    pub fn programs_refused(&self) -> Vec<&str> {
        self.programs
            .iter()
            .filter(|(_, on)| !on)
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// "12" of `hupwatch: ready: 12 programs attached, ...`.
    pub fn ready_count(&self) -> Option<usize> {
        self.stderr.iter().find_map(|line| {
            let rest = line.strip_prefix("hupwatch: ready: ")?;
            let (number, rest) = rest.split_once(' ')?;
            rest.starts_with("programs attached")
                .then(|| number.parse().ok())
                .flatten()
        })
    }

    /// hupwatch's warnings (a refused program, a tracepoint missing...): none is expected.
    pub fn warnings(&self) -> Vec<&str> {
        self.stderr
            .iter()
            .filter(|line| line.starts_with("hupwatch: warning") || line.contains("refused"))
            .map(String::as_str)
            .collect()
    }

    /// The library tests' `test result:` counts, if they got to the end.
    /// The self-test's report: its first line that is a JSON object.
    pub fn selftest_report(&self) -> Option<Value> {
        self.selftest
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(Value::is_object)
    }

    pub fn lib_test_counts(&self) -> Option<Counts> {
        libtest::results(&self.lib_tests.join("\n"))
    }
}

/// `hupwatch_probe_attached{program="rss_stat"} 1` -> ("rss_stat", true).
fn program_attached(line: &str) -> Option<(String, bool)> {
    let rest = line.strip_prefix("hupwatch_probe_attached{program=\"")?;
    let (name, value) = rest.split_once("\"}")?;
    let attached = value.trim().parse::<f64>().ok()? == 1.0;
    Some((name.to_owned(), attached))
}

/// `rss_growth 123` -> ("rss_growth", 123).
fn subject(rest: &str) -> Option<(String, u32)> {
    let (verdict, pid) = rest.trim().split_once(' ')?;
    Some((verdict.to_owned(), pid.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a real console: the kernel's lines, CRLF line ends, a kernel message
    /// run into a marked line, and lines that are not the script's.
    const CONSOLE: &str = "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x000f0510]\r
hupwatch-arm64: release 6.1.0-57-arm64\r
hupwatch-arm64: progress booted\r
hupwatch-arm64: stderr hupwatch: ready: 12 programs attached, tracing every process; sessions at http://127.0.0.1:9464/api/sessions\r
hupwatch-arm64: metric hupwatch_probe_attached{program=\"rss_stat\"} 1\r
hupwatch-arm64: metric hupwatch_probe_attached{program=\"signal_deliver\"} 0\r
hupwatch-arm64: subject rss_growth 120\r
hupwatch-arm64: subject detached 130\r
[   12.345678] random: crng init done\rhupwatch-arm64: subject orphaned 140\r
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"rss_growth\",\"pid\":120}\r
hupwatch-arm64: alert {\"status\":\"resolved\",\"alert\":\"detached\",\"pid\":130}\r
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"orphaned\",\"pid\":999}\r
hupwatch-arm64: alert {\"status\":\"rai\r
hupwatch-arm64: hupwatch-exit 0\r
hupwatch-arm64: libtest running 2 tests\r
hupwatch-arm64: libtest test a ... ok\r
hupwatch-arm64: libtest test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; finished in 0.01s\r
hupwatch-arm64: libtest-exit 0\r
hupwatch-arm64: done\r
[   99.000000] reboot: Power down\r
";

    #[test]
    fn reads_every_kind_of_marked_line() {
        let said = Said::read(CONSOLE);
        assert_eq!(said.release.as_deref(), Some("6.1.0-57-arm64"));
        assert_eq!(said.stderr.len(), 1);
        assert_eq!(said.ready_count(), Some(12));
        assert_eq!(said.programs_attached(), (1, 2));
        assert_eq!(said.programs_refused(), ["signal_deliver"]);
        assert_eq!(
            said.subjects,
            [
                ("rss_growth".to_owned(), 120),
                ("detached".to_owned(), 130),
                ("orphaned".to_owned(), 140)
            ]
        );
        assert_eq!(said.hupwatch_status, Some(0));
        assert_eq!(said.alerts.len(), 3);
        assert_eq!(said.garbled, ["{\"status\":\"rai"]);
        assert_eq!(said.lib_test_counts().map(|c| c.filtered_out), Some(3));
        assert_eq!(said.lib_tests_status, Some(0));
        assert!(said.done);
    }

    #[test]
    fn a_verdict_counts_only_when_raised_for_the_process_named_for_it() {
        let (raised, missing) = Said::read(CONSOLE).verdicts();
        assert_eq!(raised, ["rss_growth"]);
        assert_eq!(
            missing,
            [
                "no detached alert for pid 130",
                "the scenario started no process for hangup_ignored",
                "no orphaned alert for pid 140",
                "the scenario started no process for terminal_lost",
            ]
        );
    }

    #[test]
    fn warnings_and_refusals_are_picked_out_of_stderr() {
        let console = "hupwatch-arm64: stderr hupwatch: warning: this kernel refused rss_stat on kmem/rss_stat: ...\r\n\
                       hupwatch-arm64: stderr hupwatch: ready: 10 programs attached, tracing every process\r\n";
        let said = Said::read(console);
        assert_eq!(said.warnings().len(), 1);
        assert_eq!(said.ready_count(), Some(10));
    }

    #[test]
    fn a_guest_that_died_early_said_little() {
        let said = Said::read("[    1.0] Kernel panic - not syncing: Attempted to kill init!\r\n");
        assert!(!said.done);
        assert_eq!(said.release, None);
        assert_eq!(said.lib_test_counts(), None);
        assert_eq!(said.programs_attached(), (0, 0));
    }
}
