//! The arm64 guest's line in the matrix, and the evidence printed when it fails.
use std::{fmt::Write as _, fs, time::Duration};

use serde_json::Value;

use super::{lib_tests, qemu::Boot, script, script::VERDICTS, serial::Said};
use crate::kernels::{libtest, panic, report, report::Line};

/// The guest's line: `kernel 6.1.0-57-arm64 (arm64 guest): 5/5 verdicts, 12/12 programs,
/// lib tests 267 passed, 0 failed, 0 skipped; 37 s`, then each problem. It fails on any
/// problem: a verdict not raised, a program not attached, a warning from hupwatch, a unit
/// test failing (when they were handed in), a guest that did not get to its end.
pub fn line(name: &str, boot: &Boot, lib_tests_expected: bool) -> Line {
    let console = fs::read_to_string(&boot.console).unwrap_or_default();
    let said = Said::read(&console);
    let guest = Guest {
        elapsed: boot.elapsed,
        timed_out: boot.timed_out,
        panic: panic::summary(&console),
    };
    let (text, problems) = summary(name, &said, &guest, lib_tests_expected);
    print_times(name, boot);
    if !problems.is_empty() {
        print_evidence(name, &said, boot);
    }
    report::line(name, text, !problems.is_empty())
}

/// What the host saw of the guest, besides its console's marked lines.
struct Guest {
    elapsed: Duration,
    timed_out: bool,
    panic: Option<String>,
}

/// The line's text and its problems (none: it passes).
fn summary(
    name: &str,
    said: &Said,
    guest: &Guest,
    lib_tests_expected: bool,
) -> (String, Vec<String>) {
    let (raised, mut problems) = said.verdicts();
    let (attached, all) = said.programs_attached();
    let mut text = format!(
        "kernel {name}: {}/{} verdicts, {attached}/{all} programs",
        raised.len(),
        VERDICTS.len()
    );
    if all == 0 {
        problems.push("hupwatch's metrics listed no eBPF program".into());
    }
    let refused = said.programs_refused();
    if !refused.is_empty() {
        problems.push(format!("not attached: {}", refused.join(", ")));
    }
    match said.ready_count() {
        Some(count) if count == attached => {}
        Some(count) => problems.push(format!(
            "the ready line says {count} programs attached, the metrics {attached}"
        )),
        None => problems.push("hupwatch never said it was ready".into()),
    }
    match said.hupwatch_status {
        Some(0) => {}
        Some(137) => problems.push(format!(
            "hupwatch did not stop within {} s of SIGTERM",
            script::STOP_SECS
        )),
        Some(status) => problems.push(format!("hupwatch's exit status {status} after SIGTERM")),
        None => problems.push("hupwatch's exit status is missing".into()),
    }
    selftest(said, &mut text, &mut problems);
    for warning in said.warnings() {
        problems.push(format!("hupwatch said: {warning}"));
    }
    if !said.garbled.is_empty() {
        problems.push(format!(
            "{} alert lines came through the console garbled",
            said.garbled.len()
        ));
    }
    if lib_tests_expected {
        let counts = said.lib_test_counts();
        match counts {
            Some(counts) => {
                let _ = write!(
                    text,
                    ", lib tests {} passed, {} failed, {} skipped",
                    counts.passed, counts.failed, counts.filtered_out
                );
                if counts.filtered_out != lib_tests::SKIP.len() as u64 {
                    problems.push(format!(
                        "{} lib tests skipped where lib_tests::SKIP names {}",
                        counts.filtered_out,
                        lib_tests::SKIP.len()
                    ));
                }
                if counts.failed > 0 {
                    problems.push(format!("{} lib tests failed", counts.failed));
                }
            }
            None => {
                text.push_str(", lib tests gave no result");
            }
        }
        match said.lib_tests_status {
            Some(0) => {}
            // busybox's timeout ends them with SIGTERM.
            Some(143) => problems.push(format!(
                "lib tests killed (SIGTERM) after the guest's {} s",
                script::LIB_TESTS_SECS
            )),
            Some(status) => problems.push(format!("lib tests' exit status {status}")),
            None if counts.is_none() => problems.push("the lib tests did not run".into()),
            None => problems.push("the lib tests' exit status is missing".into()),
        }
    }
    let _ = write!(text, "; {} s", guest.elapsed.as_secs());
    if guest.timed_out {
        problems.push(format!("guest killed after {} s", guest.elapsed.as_secs()));
    } else if !said.done {
        problems.push("the guest stopped before its end (see its console)".into());
    }
    if let Some(panic) = &guest.panic {
        problems.push(format!("the guest's kernel panicked: {panic}"));
    }
    for problem in &problems {
        let _ = write!(text, "; {problem}");
    }
    (text, problems)
}

/// `hupwatch selftest --json`: every verdict it expects caught, with the eBPF source
/// (root in the guest), and exit 0.
fn selftest(said: &Said, text: &mut String, problems: &mut Vec<String>) {
    let Some(report) = said.selftest_report() else {
        text.push_str(", selftest gave no report");
        problems.push(format!(
            "hupwatch selftest printed no JSON report (stderr: {})",
            said.selftest_stderr.join(" | ")
        ));
        return;
    };
    let rows = report["verdicts"].as_array().cloned().unwrap_or_default();
    let expected: Vec<&Value> = rows.iter().filter(|r| r["expected"] == true).collect();
    let missed: Vec<&str> = expected
        .iter()
        .filter(|r| r["caught"] != true)
        .map(|r| r["verdict"].as_str().unwrap_or("?"))
        .collect();
    let source = report["source"]["used"].as_str().unwrap_or("unknown");
    let _ = write!(
        text,
        ", selftest {}/{} caught ({source})",
        expected.len() - missed.len(),
        expected.len()
    );
    if !missed.is_empty() {
        problems.push(format!("selftest missed {}", missed.join(", ")));
    }
    if expected.len() != rows.len() || rows.is_empty() {
        problems.push(format!(
            "selftest expected {} of its {} verdicts (eBPF gives them all)",
            expected.len(),
            rows.len()
        ));
    }
    if source != "ebpf" {
        problems.push(format!("selftest ran with --source {source}, not ebpf"));
    }
    match said.selftest_status {
        Some(0) => {}
        Some(status) => problems.push(format!(
            "selftest's exit status {status} (stderr: {})",
            said.selftest_stderr.join(" | ")
        )),
        None => problems.push("selftest's exit status is missing".into()),
    }
}

/// When each stage of the guest ended, from qemu's start: the guests are slow (emulated),
/// and the timeouts are set from these.
fn print_times(name: &str, boot: &Boot) {
    let stages: Vec<String> = boot
        .progress
        .iter()
        .map(|(at, what)| format!("{what} at {} s", at.as_secs()))
        .collect();
    eprintln!(
        "==> kernel {name}: {} s in all; {}",
        boot.elapsed.as_secs(),
        stages.join(", ")
    );
}

/// What the guest said that explains a failure: hupwatch's stderr, the alerts for the
/// scenario's processes, the failing unit tests' report; the console has everything.
fn print_evidence(name: &str, said: &Said, boot: &Boot) {
    eprintln!(
        "==> kernel {name}: evidence (full console: {})",
        boot.console.display()
    );
    eprintln!("hupwatch's stderr:");
    for line in &said.stderr {
        eprintln!("  {line}");
    }
    for (verdict, pid) in &said.subjects {
        let alerts: Vec<String> = said
            .alerts
            .iter()
            .filter(|alert| alert["pid"] == *pid && alert["status"] == "raised")
            .map(|alert| alert["alert"].as_str().unwrap_or("?").to_owned())
            .collect();
        eprintln!(
            "scenario: pid {pid} for {verdict}: raised {}",
            if alerts.is_empty() {
                "nothing".to_owned()
            } else {
                alerts.join(", ")
            }
        );
    }
    if said
        .lib_test_counts()
        .is_none_or(|counts| counts.failed > 0)
        && !said.lib_tests.is_empty()
    {
        let log = said.lib_tests.join("\n");
        eprintln!("{}", libtest::failure_report(&log).trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSING: &str = "hupwatch-arm64: release 6.1.0-57-arm64
hupwatch-arm64: stderr hupwatch: ready: 2 programs attached, tracing every process
hupwatch-arm64: metric hupwatch_probe_attached{program=\"rss_stat\"} 1
hupwatch-arm64: metric hupwatch_probe_attached{program=\"signal_deliver\"} 1
hupwatch-arm64: subject rss_growth 10
hupwatch-arm64: subject detached 11
hupwatch-arm64: subject hangup_ignored 12
hupwatch-arm64: subject terminal_lost 12
hupwatch-arm64: subject orphaned 13
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"rss_growth\",\"pid\":10}
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"detached\",\"pid\":11}
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"hangup_ignored\",\"pid\":12}
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"terminal_lost\",\"pid\":12}
hupwatch-arm64: alert {\"status\":\"raised\",\"alert\":\"orphaned\",\"pid\":13}
hupwatch-arm64: hupwatch-exit 0
hupwatch-arm64: selftest {\"passed\":true,\"source\":{\"used\":\"ebpf\"},\"verdicts\":[{\"verdict\":\"detached\",\"expected\":true,\"caught\":true},{\"verdict\":\"orphaned\",\"expected\":true,\"caught\":true}]}
hupwatch-arm64: selftest-stderr hupwatch: ready: 12 programs attached
hupwatch-arm64: selftest-exit 0
hupwatch-arm64: done
";

    fn guest() -> Guest {
        Guest {
            elapsed: Duration::from_secs(95),
            timed_out: false,
            panic: None,
        }
    }

    #[test]
    fn a_guest_that_did_everything_passes_with_its_counts() {
        let (text, problems) = summary(
            "6.1.0-57-arm64 (arm64 guest)",
            &Said::read(PASSING),
            &guest(),
            false,
        );
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(
            text,
            "kernel 6.1.0-57-arm64 (arm64 guest): 5/5 verdicts, 2/2 programs, selftest 2/2 caught (ebpf); 95 s"
        );
    }

    #[test]
    fn a_refused_program_and_a_missing_verdict_fail_and_are_named() {
        let console = PASSING
            .replace(
                "program=\"signal_deliver\"} 1",
                "program=\"signal_deliver\"} 0",
            )
            .replace(
                "\"alert\":\"orphaned\",\"pid\":13",
                "\"alert\":\"orphaned\",\"pid\":14",
            );
        let (text, problems) = summary("arm64", &Said::read(&console), &guest(), false);
        assert!(
            text.starts_with(
                "kernel arm64: 4/5 verdicts, 1/2 programs, selftest 2/2 caught (ebpf); 95 s; "
            ),
            "{text}"
        );
        assert!(
            problems.contains(&"no orphaned alert for pid 13".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"not attached: signal_deliver".to_owned()),
            "{problems:?}"
        );
        assert!(
            problems.contains(&"the ready line says 2 programs attached, the metrics 1".to_owned()),
            "{problems:?}"
        );
    }

    #[test]
    fn lib_tests_handed_in_must_report_and_pass() {
        let (text, problems) = summary("arm64", &Said::read(PASSING), &guest(), true);
        assert!(text.contains("lib tests gave no result"), "{text}");
        assert_eq!(problems, ["the lib tests did not run"]);

        let ran = format!(
            "{PASSING}hupwatch-arm64: libtest test result: FAILED. 7 passed; 1 failed; 0 ignored; 0 measured; {} filtered out; finished in 9.00s\n\
             hupwatch-arm64: libtest-exit 101\n",
            lib_tests::SKIP.len()
        );
        let (text, problems) = summary("arm64", &Said::read(&ran), &guest(), true);
        assert!(
            text.contains(&format!(
                ", lib tests 7 passed, 1 failed, {} skipped; 95 s",
                lib_tests::SKIP.len()
            )),
            "{text}"
        );
        assert_eq!(
            problems,
            ["1 lib tests failed", "lib tests' exit status 101"]
        );
    }

    #[test]
    fn a_selftest_that_missed_a_verdict_or_gave_no_report_fails() {
        let missed = PASSING
            .replace(
                "\"orphaned\",\"expected\":true,\"caught\":true",
                "\"orphaned\",\"expected\":true,\"caught\":false",
            )
            .replace("selftest-exit 0", "selftest-exit 1");
        let (text, problems) = summary("arm64", &Said::read(&missed), &guest(), false);
        assert!(text.contains(", selftest 1/2 caught (ebpf)"), "{text}");
        assert_eq!(
            problems,
            [
                "selftest missed orphaned",
                "selftest's exit status 1 (stderr: hupwatch: ready: 12 programs attached)"
            ]
        );
        let silent: String = PASSING
            .lines()
            .filter(|l| !l.contains(" selftest "))
            .map(|l| format!("{l}\n"))
            .collect();
        let (text, problems) = summary("arm64", &Said::read(&silent), &guest(), false);
        assert!(text.contains(", selftest gave no report"), "{text}");
        assert_eq!(
            problems,
            [
                "hupwatch selftest printed no JSON report (stderr: hupwatch: ready: 12 programs attached)"
            ]
        );
    }

    #[test]
    fn a_guest_killed_or_cut_short_fails() {
        let cut = PASSING.replace("hupwatch-arm64: done\n", "");
        let hung = PASSING.replace("hupwatch-exit 0", "hupwatch-exit 137");
        let (_, problems) = summary("arm64", &Said::read(&hung), &guest(), false);
        assert_eq!(problems, ["hupwatch did not stop within 30 s of SIGTERM"]);
        let (_, problems) = summary("arm64", &Said::read(&cut), &guest(), false);
        assert_eq!(
            problems,
            ["the guest stopped before its end (see its console)"]
        );
        let killed = Guest {
            timed_out: true,
            ..guest()
        };
        let (text, _) = summary("arm64", &Said::read(&cut), &killed, false);
        assert!(text.ends_with("; guest killed after 95 s"), "{text}");
    }
}
