//! The kernel matrix's output: one line per kernel, and the evidence for each failure.
use std::{fmt::Write as _, process::Command};

use anyhow::{Result, bail};

use super::{binaries::Filter, guest, libtest::Counts};
use crate::sh;

/// The result of one kernel, as one line of the summary.
pub struct Line {
    kernel: String,
    text: String,
    failed: bool,
}

/// A line made elsewhere: `text` is all of it, `kernel` names it when the matrix fails.
pub fn line(kernel: &str, text: String, failed: bool) -> Line {
    Line {
        kernel: kernel.to_owned(),
        text,
        failed,
    }
}

pub fn not_run(kernel: &str, why: &str, fails: bool) -> Line {
    Line {
        kernel: kernel.to_owned(),
        text: format!("kernel {kernel}: NOT RUN: {why}"),
        failed: fails,
    }
}

pub fn could_not_run(kernel: &str, err: &anyhow::Error) -> Line {
    Line {
        kernel: kernel.to_owned(),
        text: format!("kernel {kernel}: FAILED to run: {err:#}"),
        failed: true,
    }
}

/// The host kernel's line, from the host's `cargo test` output (`counts`) and outcome.
pub fn host_line(counts: Option<Counts>, outcome: &Result<()>) -> Line {
    let release = sh::probe(Command::new("uname").arg("-r"))
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|| "?".to_owned());
    let counts = counts.unwrap_or_default();
    let mut text = format!(
        "kernel {release} (host): {} passed, {} failed",
        counts.passed, counts.failed
    );
    if counts.ignored > 0 {
        let _ = write!(text, ", {} ignored", counts.ignored);
    }
    if let Err(err) = outcome {
        let _ = write!(text, "; {err:#}");
    }
    Line {
        kernel: format!("{release} (host)"),
        text,
        failed: outcome.is_err(),
    }
}

/// The guest's line: its counts, its time, and what went wrong; `what` follows the
/// kernel's name (` (OOM guard, 640M)`), or is empty.
pub fn guest_line(name: &str, what: &str, run: &guest::GuestRun) -> Line {
    let name = format!("{}{what}", run.release.as_deref().unwrap_or(name));
    let mut counts = Counts::default();
    let mut host_only = 0;
    let mut problems = Vec::new();
    for binary in &run.binaries {
        if let Some(binary_counts) = binary.counts {
            counts.add(binary_counts);
            // What a Skip filter leaves out is host only; what an Only filter leaves out
            // does not depend on the kernel and is not counted.
            if let Filter::Skip(_) = binary.filter {
                host_only += binary_counts.filtered_out;
            }
        }
        if let Some(trouble) = binary.trouble() {
            problems.push(format!("{}: {trouble}", binary.target));
        }
    }
    if run.timed_out {
        problems.push(format!("guest killed after {} s", run.timeout.as_secs()));
    } else if run.binaries.iter().all(|b| b.status.is_none()) {
        problems.push(format!(
            "the guest ran no test (vng's exit status {:?}; see {})",
            run.vng_status,
            run.console.display()
        ));
    }
    let mut text = format!(
        "kernel {name}: {} passed, {} failed",
        counts.passed, counts.failed
    );
    if counts.ignored > 0 {
        let _ = write!(text, ", {} ignored", counts.ignored);
    }
    let _ = write!(
        text,
        ", {host_only} not run (host only); {} s",
        run.elapsed.as_secs()
    );
    for problem in &problems {
        let _ = write!(text, "; {problem}");
    }
    // A panic the second boot made up for is no failure, but it is never silent.
    for panic in &run.panics {
        let _ = write!(text, "; the guest's kernel panicked: {panic}");
    }
    Line {
        kernel: name,
        text,
        failed: !problems.is_empty(),
    }
}

/// How long each binary took: the guests are slow (emulated), and the timeouts are set
/// from these.
pub fn print_times(name: &str, run: &guest::GuestRun) {
    let times: Vec<String> = run
        .binaries
        .iter()
        .map(|binary| match binary.seconds {
            Some(seconds) => format!("{} {seconds} s", binary.target),
            None => format!("{} -", binary.target),
        })
        .collect();
    eprintln!(
        "==> kernel {name}: {} s in all: {}",
        run.elapsed.as_secs(),
        times.join(", ")
    );
}

/// Each failing binary's failure report (or whole log, when it died before reporting), so
/// that CI's output says why.
pub fn print_failures(name: &str, run: &guest::GuestRun) {
    for binary in &run.binaries {
        let Some(trouble) = binary.trouble() else {
            continue;
        };
        eprintln!(
            "==> kernel {name}: {}: {trouble}; full log: {}",
            binary.target,
            binary.log_path.display()
        );
        let report = super::libtest::failure_report(&binary.log);
        if report.trim().is_empty() {
            eprintln!("(no output)");
        } else {
            eprintln!("{}", report.trim_end());
        }
    }
}

/// Prints one line per kernel, then fails if any kernel failed or was not run, naming them.
pub fn conclude(lines: &[Line]) -> Result<()> {
    eprintln!("==> kernel matrix");
    for line in lines {
        eprintln!("{}", line.text);
    }
    let failed: Vec<&str> = lines
        .iter()
        .filter(|line| line.failed)
        .map(|line| line.kernel.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "the kernel matrix failed on {} of {} kernels: {} (see their lines above)",
            failed.len(),
            lines.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_not_run_says_why_and_is_named_when_the_matrix_fails() {
        let lines = [
            not_run("5.15", "no vmlinuz-5.15.* in /w/shared/kernels", true),
            not_run("6.1 (Debian 12)", "apt-get download failed", false),
        ];
        assert_eq!(
            lines[0].text,
            "kernel 5.15: NOT RUN: no vmlinuz-5.15.* in /w/shared/kernels"
        );
        let err = conclude(&lines).unwrap_err().to_string();
        assert!(err.contains("1 of 2 kernels: 5.15 "), "{err}");
    }

    #[test]
    fn kernels_not_run_that_do_not_fail_still_print_but_pass() {
        assert!(conclude(&[not_run("5.15", "no image", false)]).is_ok());
    }
}
