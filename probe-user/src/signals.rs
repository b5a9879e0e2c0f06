//! Signal numbers and names as Linux numbers them (x86_64 and aarch64 agree), and the
//! names of macOS's numbers, which differ above SIGTERM.

const NAMES: [&str; 32] = [
    "",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

pub const SIGHUP: u32 = 1;
pub const SIGINT: u32 = 2;
pub const SIGTERM: u32 = 15;
const SIGRTMIN: u32 = 32;
const SIGRTMAX: u32 = 64;

/// The signals whose default action stops a process (by name, the same on every OS).
pub fn is_stop_name(name: &str) -> bool {
    matches!(name, "SIGSTOP" | "SIGTSTP" | "SIGTTIN" | "SIGTTOU")
}

/// `SIGHUP` for 1, `SIGRTMIN+3` for 35, `SIG99` for numbers Linux does not define.
pub fn name(signal: u32) -> String {
    match signal {
        1..=31 => NAMES[signal as usize].to_string(),
        SIGRTMIN => "SIGRTMIN".to_string(),
        33..=SIGRTMAX => format!("SIGRTMIN+{}", signal - SIGRTMIN),
        _ => format!("SIG{signal}"),
    }
}

/// macOS's signal numbers (sys/signal.h), which differ from Linux's above SIGTERM.
const DARWIN_SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGEMT",
    "SIGFPE",
    "SIGKILL",
    "SIGBUS",
    "SIGSEGV",
    "SIGSYS",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGURG",
    "SIGSTOP",
    "SIGTSTP",
    "SIGCONT",
    "SIGCHLD",
    "SIGTTIN",
    "SIGTTOU",
    "SIGIO",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGINFO",
    "SIGUSR1",
    "SIGUSR2",
];

/// The name of a macOS signal number (DTrace reports those).
pub fn darwin_name(signal: u32) -> String {
    signal
        .checked_sub(1)
        .and_then(|i| DARWIN_SIGNALS.get(i as usize))
        .map_or_else(|| format!("SIG{signal}"), |name| (*name).to_string())
}

/// Parses `HUP`, `SIGHUP`, `hup` or `1`.
pub fn parse(text: &str) -> Option<u32> {
    if let Ok(number) = text.parse::<u32>() {
        return (1..=SIGRTMAX).contains(&number).then_some(number);
    }
    let upper = text.to_ascii_uppercase();
    let wanted = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    (1..=31).find(|&n| NAMES[n as usize] == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macos_numbers_have_their_own_names() {
        assert_eq!(darwin_name(1), "SIGHUP");
        assert_eq!(darwin_name(30), "SIGUSR1");
        assert_eq!(darwin_name(20), "SIGCHLD");
        assert_eq!(darwin_name(99), "SIG99");
    }

    #[test]
    fn names_standard_and_realtime_signals() {
        assert_eq!(name(1), "SIGHUP");
        assert_eq!(name(9), "SIGKILL");
        assert_eq!(name(15), "SIGTERM");
        assert_eq!(name(31), "SIGSYS");
        assert_eq!(name(32), "SIGRTMIN");
        assert_eq!(name(35), "SIGRTMIN+3");
        assert_eq!(name(0), "SIG0");
        assert_eq!(name(200), "SIG200");
    }

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("HUP"), Some(1));
        assert_eq!(parse("sigterm"), Some(15));
        assert_eq!(parse("9"), Some(9));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("SIGNOPE"), None);
    }
}
