//! Reading libtest's output: its `test result:` counts and its failure report.

/// What one or more `test result:` lines counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    pub measured: u64,
    pub filtered_out: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        self.measured += other.measured;
        self.filtered_out += other.filtered_out;
    }
}

/// The sum of every `test result: ok. 43 passed; 0 failed; 2 ignored; 0 measured; 1 filtered
/// out; finished in 57.12s` line in `output` (one per test binary cargo ran), or None when
/// there is none: the binary died, or never got to the end.
pub fn results(output: &str) -> Option<Counts> {
    output
        .lines()
        .filter_map(result_line)
        .reduce(|mut sum, counts| {
            sum.add(counts);
            sum
        })
}

/// The counts of one `test result:` line.
pub fn result_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    // "ok. 43 passed; ..." or "FAILED. 40 passed; ..."
    let (_, figures) = rest.split_once(". ")?;
    let mut counts = Counts::default();
    for part in figures.split(';') {
        let Some((number, what)) = part.trim().split_once(' ') else {
            continue;
        };
        let Ok(number) = number.parse() else {
            continue; // "finished in 57.12s"
        };
        match what {
            "passed" => counts.passed = number,
            "failed" => counts.failed = number,
            "ignored" => counts.ignored = number,
            "measured" => counts.measured = number,
            "filtered out" => counts.filtered_out = number,
            _ => {}
        }
    }
    Some(counts)
}

/// The part of a test binary's output that says why it failed: libtest's report, from its
/// first `failures:` line (each failing test's output, then their names) to the end. A
/// binary that died before reporting has none, and all of its output is the evidence.
pub fn failure_report(output: &str) -> &str {
    let mut offset = 0;
    for line in output.split_inclusive('\n') {
        if line.trim_end() == "failures:" {
            return &output[offset..];
        }
        offset += line.len();
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED_RUN: &str = "\
running 3 tests
test a ... ok
test b ... FAILED
test c ... ignored

failures:

---- b stdout ----
thread 'b' panicked at tests/b.rs:1:1:
rss_stat refused

failures:
    b

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 2 filtered out; finished in 57.12s

";

    #[test]
    fn counts_a_failed_run() {
        assert_eq!(
            results(FAILED_RUN),
            Some(Counts {
                passed: 1,
                failed: 1,
                ignored: 1,
                measured: 0,
                filtered_out: 2
            })
        );
    }

    #[test]
    fn sums_the_result_lines_of_several_binaries() {
        let two = "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.00s\n";
        let counts = results(two).unwrap();
        assert_eq!((counts.passed, counts.ignored), (7, 1));
    }

    #[test]
    fn a_binary_that_died_has_no_counts() {
        assert_eq!(results("running 3 tests\ntest a ... ok\n"), None);
    }

    #[test]
    fn the_failure_report_starts_at_the_first_failures_line() {
        let report = failure_report(FAILED_RUN);
        assert!(report.starts_with("failures:\n\n---- b stdout ----"));
        assert!(report.contains("test result: FAILED."));
    }

    #[test]
    fn without_a_failure_report_all_output_is_the_evidence() {
        let died = "running 3 tests\nSegmentation fault\n";
        assert_eq!(failure_report(died), died);
    }
}
