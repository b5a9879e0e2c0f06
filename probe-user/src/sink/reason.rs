//! A verdict's reason in words: one sentence a person can act on. The JSON documents carry
//! the sentence; reading one back (`--from`) keeps it as said.
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    units::{format_duration, format_size},
    verdict::reason::{Contradiction, Detach, Hangup, Ignoring, Reason},
};

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IgnoredInStatus => f.write_str("SIGHUP is ignored (SigIgn in /proc/PID/status)"),
            Self::IgnoredSignal {
                sender_comm,
                sender_pid,
            } => write!(f, "a SIGHUP from {sender_comm} ({sender_pid}) was ignored"),
            Self::IgnoresHangup(how) => {
                let how = match how {
                    Ignoring::Inherited => "inherited SIG_IGN for SIGHUP",
                    Ignoring::StartedIgnoring => "was started with SIGHUP set to SIG_IGN",
                    Ignoring::SetIgnore => "set SIGHUP to SIG_IGN",
                };
                write!(f, "it {how}: a closing terminal will not end it")
            }
            Self::ReparentedTo { ppid } => {
                write!(f, "its parent is gone: it was reparented to pid {ppid}")
            }
            Self::AdoptedBeforeStart { session } => write!(
                f,
                "its parent was gone before it started: init adopted it, yet it belongs to session {session}"
            ),
            Self::ForkerGoneBeforeExec { forked_by, ppid } => write!(
                f,
                "its parent ({forked_by}) exited before it started; pid {ppid} adopted it"
            ),
            Self::ParentExited { comm, pid } => {
                write!(f, "its parent {comm} ({pid}) exited and it was reparented")
            }
            Self::ParentReplaced { old_ppid, ppid } => write!(
                f,
                "its parent ({old_ppid}) exited and it was reparented to pid {ppid}"
            ),
            Self::LeadsSessionFromTerminal => f.write_str(
                "it leads a session without a terminal, yet came from one (its environment says so)",
            ),
            Self::Detached(how) => match how {
                Detach::Ancestor { comm, pid } => write!(
                    f,
                    "its ancestor {comm} ({pid}) left its terminal; it has no terminal"
                ),
                Detach::Setsid { old_sid, old_tty } => write!(
                    f,
                    "it called setsid() and left session {old_sid} on {}; it took no new terminal",
                    old_tty.as_deref().unwrap_or("a terminal")
                ),
                Detach::GaveUp { tty } => write!(
                    f,
                    "it gave up its terminal {} (TIOCNOTTY)",
                    tty.as_deref().unwrap_or("")
                ),
                Detach::StartedDetached { parent_tty } => write!(
                    f,
                    "it was started in a new session without a terminal by a parent on {}",
                    parent_tty.as_deref().unwrap_or("a terminal")
                ),
                Detach::Unknown => f.write_str("it left its terminal"),
            },
            Self::LeaderGone { sid } => write!(
                f,
                "the leader of its session {sid} is gone and it has no terminal: it outlived its terminal session"
            ),
            Self::HungUp { how, sid, grace_ns } => {
                match how {
                    Hangup::Kernel => {
                        f.write_str("the kernel sent SIGHUP: its terminal hung up")?
                    }
                    Hangup::LeaderPassedOn { comm, pid } => {
                        write!(f, "its session leader {comm} ({pid}) passed on a hangup")?
                    }
                    Hangup::LeaderExited { comm, pid, tty } => {
                        write!(f, "its session leader {comm} ({pid}) on {tty} exited")?
                    }
                }
                write!(
                    f,
                    " (session {sid}); it was still alive {} later",
                    format_duration(*grace_ns)
                )
            }
            Self::HandlerSurvived { grace_ns } => write!(
                f,
                "a SIGHUP reached its handler and it was still alive {} later",
                format_duration(*grace_ns)
            ),
            Self::Growth {
                footprint,
                from_bytes,
                to_bytes,
                span_ns,
                slope_bytes_per_second,
                idle,
            } => write!(
                f,
                "{} rose steadily from {} to {} in {}{}, {}/s",
                if *footprint {
                    "its physical footprint"
                } else {
                    "RSS + swap"
                },
                format_size(*from_bytes),
                format_size(*to_bytes),
                format_duration(*span_ns),
                if *idle {
                    " while idle (almost no CPU time used)"
                } else {
                    ""
                },
                format_size(slope_bytes_per_second.max(0.0) as u64),
            ),
            Self::CpuSpin {
                cpu_seconds,
                window_ns,
            } => write!(
                f,
                "it used {cpu_seconds:.0} s of CPU in the last {} ({:.0} % of a CPU) with no terminal to answer to",
                format_duration(*window_ns),
                cpu_seconds * 1e11 / *window_ns as f64
            ),
            Self::Zombies {
                count,
                oldest_exit_ns,
            } => {
                write!(
                    f,
                    "{count} of its children exited and it has not reaped them"
                )?;
                match oldest_exit_ns {
                    Some(t) => write!(f, "; the oldest exited at {}", crate::units::rfc3339(*t)),
                    None => Ok(()),
                }
            }
            Self::Stopped { since_ns, grace_ns } => write!(
                f,
                "it has been stopped since {} (more than {}) and nothing is left to continue it",
                crate::units::rfc3339(*since_ns),
                format_duration(*grace_ns)
            ),
            Self::Continued => f.write_str("it runs again"),
            Self::Calmed => f.write_str("it no longer keeps a CPU busy"),
            Self::Reaped { count } => write!(f, "its exited children were reaped ({count} left)"),
            Self::Exited => f.write_str("the process exited"),
            Self::PidReused => f.write_str("its pid was reused; its exit was not seen"),
            Self::Vanished => {
                f.write_str("it is gone from /proc; its exit was among the lost events")
            }
            Self::Contradicted(now) => {
                let now = match now {
                    Contradiction::HasTerminalAgain => "it has a controlling terminal again",
                    Contradiction::NoLongerIgnoresHangup => "SIGHUP is no longer ignored",
                };
                write!(f, "/proc shows that {now} (checked after lost events)")
            }
            Self::Said(sentence) => f.write_str(sentence),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::Said)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_are_put_in_words_here() {
        let growth = Reason::Growth {
            footprint: false,
            from_bytes: 77 << 20,
            to_bytes: 172 << 20,
            span_ns: 90_000_000_000,
            slope_bytes_per_second: 1_100_000.0,
            idle: true,
        };
        let said = growth.to_string();
        assert!(
            said.starts_with("RSS + swap rose steadily from 77.0 MiB to 172.0 MiB in 1m30s"),
            "{said}"
        );
        assert!(said.contains("while idle"), "{said}");
        let hung_up = Reason::HungUp {
            how: Hangup::LeaderExited {
                comm: "bash".into(),
                pid: 7,
                tty: "pts/3".into(),
            },
            sid: 7,
            grace_ns: 10_000_000_000,
        };
        assert_eq!(
            hung_up.to_string(),
            "its session leader bash (7) on pts/3 exited (session 7); it was still alive 10s later"
        );
    }

    #[test]
    fn the_json_carries_the_sentence_and_reads_back_as_said() {
        let json = serde_json::to_string(&Reason::ReparentedTo { ppid: 1 }).unwrap();
        assert_eq!(json, "\"its parent is gone: it was reparented to pid 1\"");
        let back: Reason = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.to_string(),
            "its parent is gone: it was reparented to pid 1"
        );
    }
}
