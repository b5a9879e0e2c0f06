//! What a person is told when the kernel refuses a program: one line with the verifier's
//! own reason and what is lost, and the verifier's log (tens to hundreds of lines) kept in
//! a file that line names, or printed with `--verbose`.
use std::{io::Write, os::unix::fs::OpenOptionsExt, path::PathBuf};

use aya::programs::ProgramError;

/// Why a program could not be loaded or attached, in a few words, and the verifier's log
/// when the verifier was what refused it.
pub struct Refusal {
    pub reason: String,
    pub verifier_log: Option<String>,
}

impl Refusal {
    pub fn of(error: &ProgramError) -> Self {
        match error {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                let log = verifier_log.to_string();
                let reason = match verdict_line(&log) {
                    Some(line) => format!("the verifier refused it: {line}"),
                    None => format!("loading it failed: {io_error}"),
                };
                Self {
                    reason,
                    verifier_log: Some(log).filter(|l| !l.trim().is_empty()),
                }
            }
            other => Self {
                reason: first_line(&format!("{other:#}")),
                verifier_log: None,
            },
        }
    }

    /// A refusal with no verifier behind it.
    pub fn said(reason: &str) -> Self {
        Self {
            reason: reason.to_string(),
            verifier_log: None,
        }
    }

    /// Where the log went, for the warning line: a new file only this user can read (or,
    /// with `verbose`, stderr right after the warning). `None` when there is no log.
    pub fn keep_log(&self, program: &str, verbose: bool) -> Option<LogPlace> {
        let log = self.verifier_log.as_ref()?;
        if verbose {
            return Some(LogPlace::Printed(log.clone()));
        }
        let path = std::env::temp_dir().join(format!(
            "hupwatch-verifier-{program}-{}.log",
            std::process::id()
        ));
        // create_new: never follows a planted link or overwrites someone's file.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut file| file.write_all(log.as_bytes()));
        Some(match written {
            Ok(()) => LogPlace::File(path),
            Err(_) => LogPlace::Unsaved,
        })
    }
}

pub enum LogPlace {
    File(PathBuf),
    Printed(String),
    Unsaved,
}

impl LogPlace {
    /// The end of the warning line that says where the log is.
    pub fn mention(&self) -> String {
        match self {
            Self::File(path) => format!("verifier log in {}", path.display()),
            Self::Printed(_) => "verifier log follows".into(),
            Self::Unsaved => "run with --verbose for the verifier log".into(),
        }
    }
}

/// The verifier states why it refused on the last line before its statistics.
fn verdict_line(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take_while(|l| !l.starts_with("verification time") && !l.starts_with("processed "))
        .last()
        .map(|l| l.chars().take(200).collect())
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of Debian 12's 6.1 verifier refusing the rss_stat of an earlier build.
    const LOG: &str =
        "85: (0f) r6 += r1                     ; R1_w=856 R6_w=ptr_mm_struct(off=856,imm=0)
; intrinsics::volatile_load(src)
86: (79) r8 = *(u64 *)(r6 +0)
access beyond struct raw_spinlock at off 0 size 8
verification time 1392 usec
stack depth 48+0
processed 63 insns (limit 1000000) max_states_per_insn 0 total_states 6 peak_states 6 mark_read 2
";

    #[test]
    fn the_verifiers_reason_is_its_last_line_before_the_statistics() {
        let refusal = Refusal::of(&ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EACCES),
            verifier_log: aya_obj::VerifierLog::new(LOG.into()),
        });
        assert_eq!(
            refusal.reason,
            "the verifier refused it: access beyond struct raw_spinlock at off 0 size 8"
        );
        assert_eq!(refusal.verifier_log.as_deref(), Some(LOG));
    }

    #[test]
    fn without_a_log_the_system_call_error_is_the_reason() {
        let refusal = Refusal::of(&ProgramError::LoadError {
            io_error: std::io::Error::from_raw_os_error(libc::EINVAL),
            verifier_log: aya_obj::VerifierLog::new(String::new()),
        });
        assert!(
            refusal
                .reason
                .starts_with("loading it failed: Invalid argument")
        );
        assert!(refusal.keep_log("x", false).is_none());
    }

    #[test]
    fn the_log_goes_to_a_new_private_file() {
        let refusal = Refusal {
            reason: String::new(),
            verifier_log: Some(LOG.into()),
        };
        let program = format!("test{}", std::process::id());
        let Some(LogPlace::File(path)) = refusal.keep_log(&program, false) else {
            panic!("no file");
        };
        let mode = std::fs::metadata(&path).unwrap().permissions();
        let text = std::fs::read_to_string(&path).unwrap();
        // A second refusal in the same process does not overwrite the first.
        let again = refusal.keep_log(&program, false);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, LOG);
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        assert!(matches!(again, Some(LogPlace::Unsaved)));
    }
}
