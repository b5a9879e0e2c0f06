//! What `dtrace` says on stderr, sorted: the losses it reports (counted and exported, never
//! dropped silently), and the refusals that have a fix the user can apply.

/// One line of dtrace's stderr, understood.
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    /// `dtrace: 12 drops on CPU 3`: records lost because the principal buffer was full.
    Drops(u64),
    /// `dtrace: 5 dynamic variable drops`: `tracked[]` was full, so some processes went
    /// untracked.
    DynamicVariableDrops(u64),
    /// `dtrace: error on enabled probe ID ...`: one firing's record was not written.
    ProbeError,
    /// System Integrity Protection keeps DTrace from the kernel structures the script
    /// reads (`curproc->p_sigignore`); what it reports would be wrong.
    SipBlocks,
    /// DTrace was not run by root.
    NeedsRoot,
    /// Anything else, passed on to the user.
    Other,
}

pub fn understand(line: &str) -> Said {
    let text = line.trim();
    let lower = text.to_ascii_lowercase();
    if lower.contains("system integrity protection is on") || lower.contains("restricted by sip") {
        return Said::SipBlocks;
    }
    if lower.contains("requires additional privileges")
        || lower.contains("dtrace requires root")
        || (lower.contains("failed to initialize dtrace") && lower.contains("permission"))
    {
        return Said::NeedsRoot;
    }
    if lower.starts_with("dtrace: error on enabled probe") {
        return Said::ProbeError;
    }
    let Some(rest) = text.strip_prefix("dtrace: ") else {
        return Said::Other;
    };
    let mut words = rest.split_whitespace();
    let Some(count) = words.next().and_then(|n| n.parse::<u64>().ok()) else {
        return Said::Other;
    };
    let tail: Vec<&str> = words.collect();
    match tail.as_slice() {
        ["drops", "on", "CPU", _] | ["drop", "on", "CPU", _] => Said::Drops(count),
        ["dynamic", "variable", "drops", ..] | ["dynamic", "variable", "drop", ..] => {
            Said::DynamicVariableDrops(count)
        }
        _ => Said::Other,
    }
}

/// The one-line errors for the refusals, with their fixes.
pub const SIP_FIX: &str = "System Integrity Protection keeps DTrace from the kernel; allow it while keeping the rest of SIP: boot into Recovery, run `csrutil enable --without dtrace`, restart";
pub const ROOT_FIX: &str =
    "DTrace needs root: run `sudo hupwatch run` (or install the launchd daemon from deploy/)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_read_with_their_counts() {
        assert_eq!(
            understand("dtrace: 1234 drops on CPU 2\n"),
            Said::Drops(1234)
        );
        assert_eq!(understand("dtrace: 1 drop on CPU 0"), Said::Drops(1));
        assert_eq!(
            understand("dtrace: 56 dynamic variable drops"),
            Said::DynamicVariableDrops(56)
        );
        assert_eq!(
            understand("dtrace: 3 dynamic variable drops with non-empty dirty list"),
            Said::DynamicVariableDrops(3)
        );
        assert_eq!(
            understand(
                "dtrace: error on enabled probe ID 7 (ID 1711: proc:mach_kernel:exec-success): invalid address (0x0) in action #4"
            ),
            Said::ProbeError
        );
    }

    #[test]
    fn refusals_with_a_fix_are_recognised() {
        assert_eq!(
            understand(
                "dtrace: system integrity protection is on, some features will not be available"
            ),
            Said::SipBlocks
        );
        assert_eq!(
            understand(
                "dtrace: failed to initialize dtrace: DTrace requires additional privileges"
            ),
            Said::NeedsRoot
        );
    }

    #[test]
    fn everything_else_is_passed_on() {
        assert_eq!(understand("dtrace: 12 aggregations"), Said::Other);
        assert_eq!(understand("dtrace: drops on CPU 2"), Said::Other);
        assert_eq!(understand("something else entirely"), Said::Other);
        assert_eq!(understand(""), Said::Other);
    }
}
