//! Turning ring-buffer records (probe-common layouts) into [`Event`]s.
use probe_common::{
    EXIT_CODE_UNKNOWN, ExecRecord, ExitRecord, ForkRecord, Header, PdeathsigRecord, SetsidRecord,
    SigactionRecord, SignalDeliverRecord, SignalRecord, TtyIoctlRecord, hangup, kind,
};

use crate::{
    event::{Disposition, Event, EventKind, Origin, SignalResult},
    signals,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its header")]
    NoHeader { len: usize },
    #[error("record of kind {kind} has {len} bytes, expected {expected}")]
    WrongSize {
        kind: u16,
        len: usize,
        expected: usize,
    },
    #[error("record of unknown kind {kind}")]
    UnknownKind { kind: u16 },
}

/// Converts the probes' CLOCK_BOOTTIME stamps to Unix-epoch nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot_to_epoch_ns: i128,
}

impl Clock {
    pub fn with_offset(boot_to_epoch_ns: i128) -> Self {
        Self { boot_to_epoch_ns }
    }

    /// Reads the offset between the two clocks now.
    pub fn now() -> Self {
        Self::with_offset(clock_ns(libc::CLOCK_REALTIME) - clock_ns(BOOT_CLOCK))
    }

    pub fn to_epoch_ns(&self, boot_ns: u64) -> u64 {
        (boot_ns as i128 + self.boot_to_epoch_ns).max(0) as u64
    }

    /// The current time in Unix-epoch nanoseconds.
    pub fn epoch_now_ns(&self) -> u64 {
        self.to_epoch_ns(clock_ns(BOOT_CLOCK) as u64)
    }
}

/// The clock the eBPF programs stamp with. On macOS, CLOCK_MONOTONIC also counts sleep.
#[cfg(target_os = "linux")]
const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_BOOTTIME;
#[cfg(not(target_os = "linux"))]
const BOOT_CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; both clocks exist on every system this runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Decodes one record. `record` is the ring buffer item as the kernel wrote it.
pub fn decode(record: &[u8], clock: &Clock) -> Result<Event, DecodeError> {
    let header: Header = read(record, None)?;
    let kind = match header.kind {
        kind::EXEC => {
            let r: ExecRecord = read(record, Some(header.kind))?;
            let len = (r.filename_len as usize).min(r.filename.len());
            EventKind::Exec {
                ppid: r.ppid,
                filename: lossy(&r.filename[..len]),
                sid: (r.sid != 0).then_some(r.sid),
                tty: tty_name(&r.tty),
                parent_tty: tty_name(&r.parent_tty),
                forked_by: (r.forked_by != 0).then_some(r.forked_by),
                started_ns: (r.start_time_ns != 0).then(|| clock.to_epoch_ns(r.start_time_ns)),
                // Left to the trace command, which reads it from /proc for tracked processes.
                cmdline: None,
                // Read by the source for every tracer (source::shared).
                terminal_program: None,
                cwd: None,
                from_terminal: false,
                hangup: match r.hangup {
                    hangup::DEFAULT => Some(Disposition::Default),
                    hangup::IGNORE => Some(Disposition::Ignore),
                    hangup::HANDLER => Some(Disposition::Handler),
                    _ => None,
                },
            }
        }
        kind::FORK => {
            let r: ForkRecord = read(record, Some(header.kind))?;
            EventKind::Fork { ppid: r.ppid }
        }
        kind::EXIT => {
            let r: ExitRecord = read(record, Some(header.kind))?;
            let (exit_code, exit_signal, core_dumped) = wait_status(r.exit_code);
            EventKind::Exit {
                ppid: r.ppid,
                exit_code,
                exit_signal,
                core_dumped,
                // 0: the programs never saw it fault (or rss_stat is not attached).
                peak_rss_bytes: (r.peak_rss_bytes > 0).then_some(r.peak_rss_bytes),
                swap_bytes: (r.peak_rss_bytes > 0).then_some(r.swap_bytes),
            }
        }
        kind::SETSID => {
            let r: SetsidRecord = read(record, Some(header.kind))?;
            let ok = r.ret >= 0;
            EventKind::Setsid {
                ok,
                sid: ok.then_some(r.ret as u32),
                errno: (!ok).then_some(-r.ret as i32),
                old_sid: r.old_sid,
                old_tty: tty_name(&r.old_tty),
            }
        }
        kind::DETACH_TTY => {
            let r: TtyIoctlRecord = read(record, Some(header.kind))?;
            EventKind::DetachTty {
                sid: r.sid,
                tty: tty_name(&r.tty),
                fd: r.fd,
            }
        }
        kind::ATTACH_TTY => {
            let r: TtyIoctlRecord = read(record, Some(header.kind))?;
            EventKind::AttachTty {
                sid: r.sid,
                fd: r.fd,
            }
        }
        kind::PDEATHSIG => {
            let r: PdeathsigRecord = read(record, Some(header.kind))?;
            EventKind::Pdeathsig {
                signal: r.signal,
                signal_name: signals::name(r.signal),
            }
        }
        kind::SIGNAL => {
            let r: SignalRecord = read(record, Some(header.kind))?;
            let signal = r.sig as u32;
            EventKind::Signal {
                signal,
                signal_name: signals::name(signal),
                origin: Origin::from_si_code(r.code),
                code: r.code,
                result: SignalResult::from_raw(r.result),
                group: r.group != 0,
                sender_pid: r.sender_pid,
                sender_comm: c_string(&r.sender_comm),
            }
        }
        kind::SIGNAL_DELIVER => {
            let r: SignalDeliverRecord = read(record, Some(header.kind))?;
            let signal = r.sig as u32;
            EventKind::SignalDeliver {
                signal,
                signal_name: signals::name(signal),
                disposition: Disposition::from_handler(r.handler),
                code: r.code,
            }
        }
        kind::SIGACTION => {
            let r: SigactionRecord = read(record, Some(header.kind))?;
            EventKind::Sigaction {
                signal: r.sig,
                signal_name: signals::name(r.sig),
                disposition: Disposition::from_handler(r.handler),
            }
        }
        other => return Err(DecodeError::UnknownKind { kind: other }),
    };
    Ok(Event {
        kind,
        time_ns: clock.to_epoch_ns(header.time_ns),
        pid: header.pid,
        comm: c_string(&header.comm),
    })
}

/// Whether the exec record says its process is already tracked.
/// Whether the subject was in the tracked set (exec and setsid records say so).
pub fn is_tracked(record: &[u8]) -> bool {
    read::<Header>(record, None).is_ok_and(|h| h.flags & probe_common::flags::TRACKED != 0)
}

fn read<T: Copy>(record: &[u8], kind: Option<u16>) -> Result<T, DecodeError> {
    let expected = size_of::<T>();
    let fits = match kind {
        None => record.len() >= expected,
        Some(_) => record.len() == expected,
    };
    if !fits {
        return Err(match kind {
            None => DecodeError::NoHeader { len: record.len() },
            Some(kind) => DecodeError::WrongSize {
                kind,
                len: record.len(),
                expected,
            },
        });
    }
    // SAFETY: the length was checked, T is a plain-old-data record from probe-common, and
    // read_unaligned copes with the ring buffer's 8-byte alignment.
    Ok(unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<T>()) })
}

/// Splits a kernel exit code (wait-status layout) into exit status, signal and core flag.
pub fn wait_status(raw: u32) -> (Option<i32>, Option<u32>, bool) {
    if raw == EXIT_CODE_UNKNOWN {
        return (None, None, false);
    }
    let signal = raw & 0x7f;
    if signal == 0 {
        (Some(((raw >> 8) & 0xff) as i32), None, false)
    } else {
        (None, Some(signal), raw & 0x80 != 0)
    }
}

/// A NUL-terminated kernel string; invalid UTF-8 is replaced, never dropped.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    lossy(&bytes[..end])
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The kernel names pty slaves `pts3`; people and ps(1) call them `pts/3`.
pub fn tty_name(bytes: &[u8]) -> Option<String> {
    let name = c_string(bytes);
    if name.is_empty() {
        return None;
    }
    match name.strip_prefix("pts") {
        Some(index) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("pts/{index}"))
        }
        _ => Some(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T>(value: &T) -> Vec<u8> {
        // SAFETY: test records are plain-old-data with explicit padding.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    fn comm(name: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..name.len()].copy_from_slice(name.as_bytes());
        out
    }

    fn header(kind: u16, pid: u32, name: &str) -> Header {
        Header {
            kind,
            flags: 0,
            pid,
            tid: pid,
            _pad: 0,
            time_ns: 5_000,
            comm: comm(name),
        }
    }

    const CLOCK: Clock = Clock {
        boot_to_epoch_ns: 1_000_000,
    };

    #[test]
    fn decodes_a_kernel_hangup_that_was_ignored() {
        let record = SignalRecord {
            header: header(kind::SIGNAL, 4242, "sleep"),
            sig: 1,
            code: 128,
            result: 1,
            group: 1,
            sender_pid: 7,
            sender_tid: 8,
            sender_comm: comm("kworker/0:1"),
        };
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(event.pid, 4242);
        assert_eq!(event.comm, "sleep");
        assert_eq!(event.time_ns, 1_005_000);
        assert_eq!(
            event.kind,
            EventKind::Signal {
                signal: 1,
                signal_name: "SIGHUP".into(),
                origin: Origin::Kernel,
                code: 128,
                result: SignalResult::Ignored,
                group: true,
                sender_pid: 7,
                sender_comm: "kworker/0:1".into(),
            }
        );
    }

    #[test]
    fn decodes_exit_by_signal_and_by_status() {
        let mut record = ExitRecord {
            header: header(kind::EXIT, 10, "sh"),
            ppid: 1,
            exit_code: 1,
            peak_rss_bytes: 4096,
            swap_bytes: 0,
        };
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Exit {
                ppid: 1,
                exit_code: None,
                exit_signal: Some(1),
                core_dumped: false,
                peak_rss_bytes: Some(4096),
                swap_bytes: Some(0),
            }
        );
        // Never seen to fault: both unknown, not 0.
        record.peak_rss_bytes = 0;
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert!(matches!(
            event.kind,
            EventKind::Exit {
                peak_rss_bytes: None,
                swap_bytes: None,
                ..
            }
        ));
        record.peak_rss_bytes = 4096;
        record.exit_code = 3 << 8;
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert!(matches!(
            event.kind,
            EventKind::Exit {
                exit_code: Some(3),
                exit_signal: None,
                ..
            }
        ));
        record.exit_code = 11 | 0x80;
        assert_eq!(wait_status(record.exit_code), (None, Some(11), true));
        assert_eq!(wait_status(EXIT_CODE_UNKNOWN), (None, None, false));
    }

    #[test]
    fn decodes_setsid_success_and_failure() {
        let mut old_tty = [0u8; 16];
        old_tty[..4].copy_from_slice(b"pts7");
        let mut record = SetsidRecord {
            header: header(kind::SETSID, 99, "setsid"),
            ret: 99,
            old_sid: 50,
            _pad: 0,
            old_tty,
        };
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Setsid {
                ok: true,
                sid: Some(99),
                errno: None,
                old_sid: 50,
                old_tty: Some("pts/7".into())
            }
        );
        record.ret = -1; // EPERM: already a group leader
        record.old_tty = [0; 16];
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Setsid {
                ok: false,
                sid: None,
                errno: Some(1),
                old_sid: 50,
                old_tty: None
            }
        );
    }

    fn exec_record(filename: &str) -> ExecRecord {
        let mut bytes = [0u8; 256];
        bytes[..filename.len()].copy_from_slice(filename.as_bytes());
        ExecRecord {
            header: header(kind::EXEC, 3, "true"),
            ppid: 2,
            filename_len: filename.len() as u32,
            sid: 0,
            hangup: hangup::UNKNOWN,
            forked_by: 0,
            _pad: 0,
            start_time_ns: 0,
            tty: [0; 16],
            parent_tty: [0; 16],
            filename: bytes,
        }
    }

    #[test]
    fn decodes_exec_filename_by_its_length() {
        let mut record = exec_record("/bin/true");
        record.filename[9..12].copy_from_slice(b"old");
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Exec {
                ppid: 2,
                filename: "/bin/true".into(),
                sid: None,
                tty: None,
                parent_tty: None,
                forked_by: None,
                started_ns: None,
                cmdline: None,
                terminal_program: None,
                cwd: None,
                from_terminal: false,
                hangup: None,
            },
            "zero session, start time and empty ttys mean unknown or none"
        );
    }

    #[test]
    fn the_kernels_sighup_disposition_at_exec_is_kept() {
        for (raw, want) in [
            (hangup::IGNORE, Some(Disposition::Ignore)),
            (hangup::DEFAULT, Some(Disposition::Default)),
            (hangup::HANDLER, Some(Disposition::Handler)),
            (hangup::UNKNOWN, None),
            (99, None),
        ] {
            let mut record = exec_record("/usr/bin/sleep");
            record.hangup = raw;
            let event = decode(&bytes_of(&record), &CLOCK).unwrap();
            let EventKind::Exec { hangup, .. } = event.kind else {
                panic!("an exec")
            };
            assert_eq!(hangup, want, "raw value {raw}");
        }
    }

    #[test]
    fn decodes_exec_session_terminals_and_start_time() {
        let mut record = exec_record("/usr/bin/sleep");
        record.sid = 3;
        record.start_time_ns = 2_000;
        record.tty = comm("pts12");
        record.parent_tty = comm("tty1");
        record.forked_by = 7;
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::Exec {
                ppid: 2,
                filename: "/usr/bin/sleep".into(),
                sid: Some(3),
                tty: Some("pts/12".into()),
                parent_tty: Some("tty1".into()),
                forked_by: Some(7),
                started_ns: Some(1_002_000),
                cmdline: None,
                terminal_program: None,
                cwd: None,
                from_terminal: false,
                hangup: None,
            }
        );
    }

    #[test]
    fn decodes_attach_and_detach_from_the_same_layout() {
        let mut record = TtyIoctlRecord {
            header: header(kind::ATTACH_TTY, 40, "bash"),
            sid: 40,
            fd: 0,
            tty: [0; 16],
        };
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(event.kind, EventKind::AttachTty { sid: 40, fd: 0 });
        assert_eq!(event.kind.name(), "attach_tty");
        record.header.kind = kind::DETACH_TTY;
        record.fd = 5;
        record.tty = comm("pts0");
        let event = decode(&bytes_of(&record), &CLOCK).unwrap();
        assert_eq!(
            event.kind,
            EventKind::DetachTty {
                sid: 40,
                tty: Some("pts/0".into()),
                fd: 5
            }
        );
    }

    #[test]
    fn decodes_dispositions() {
        for (handler, disposition) in [
            (0, Disposition::Default),
            (1, Disposition::Ignore),
            (0x5555_0000, Disposition::Handler),
        ] {
            let record = SigactionRecord {
                header: header(kind::SIGACTION, 3, "nohup"),
                sig: 1,
                _pad: 0,
                handler,
                sa_flags: 0,
            };
            let event = decode(&bytes_of(&record), &CLOCK).unwrap();
            assert_eq!(
                event.kind,
                EventKind::Sigaction {
                    signal: 1,
                    signal_name: "SIGHUP".into(),
                    disposition
                }
            );
        }
    }

    #[test]
    fn rejects_short_wrong_sized_and_unknown_records() {
        assert_eq!(
            decode(&[0u8; 10], &CLOCK),
            Err(DecodeError::NoHeader { len: 10 })
        );
        let record = PdeathsigRecord {
            header: header(kind::PDEATHSIG, 1, "x"),
            signal: 9,
            _pad: 0,
        };
        let mut bytes = bytes_of(&record);
        bytes.push(0);
        assert_eq!(
            decode(&bytes, &CLOCK),
            Err(DecodeError::WrongSize {
                kind: kind::PDEATHSIG,
                len: 49,
                expected: 48
            })
        );
        let unknown = header(77, 1, "x");
        assert_eq!(
            decode(&bytes_of(&unknown), &CLOCK),
            Err(DecodeError::UnknownKind { kind: 77 })
        );
    }

    #[test]
    fn keeps_invalid_utf8_names_visible() {
        let mut name = comm("ab");
        name[2] = 0xff;
        assert_eq!(c_string(&name), "ab\u{fffd}");
        assert_eq!(tty_name(b"tty1\0\0"), Some("tty1".into()));
        assert_eq!(tty_name(b"ptsx"), Some("ptsx".into()));
        assert_eq!(tty_name(&[0; 16]), None);
    }
}
