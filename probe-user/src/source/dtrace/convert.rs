//! DTrace records into the same [`Event`]s the eBPF source produces, so the tracker, the
//! verdicts and the metrics are the same on macOS.
use super::format::{Record, tty_name};
use crate::{
    event::{Disposition, Event, EventKind, Origin, SignalResult},
    signals::darwin_name,
};

/// Linux's si_code values, which the events carry: a signal from kill(2) or the kernel.
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;

/// Turns records into events. A `signal` record is held back until the next record: when
/// that is its `discard`, the signal was ignored, and one event says so.
#[derive(Default)]
pub struct Converter {
    pending: Option<Event>,
}

impl Converter {
    pub fn push(&mut self, record: Record, out: &mut Vec<Event>) {
        if let Record::Discard { target, signal, .. } = &record
            && let Some(mut sent) = self.pending.take()
        {
            if let EventKind::Signal {
                signal: s, result, ..
            } = &mut sent.kind
                && sent.pid == *target
                && s == signal
            {
                *result = SignalResult::Ignored;
                out.push(sent);
                return;
            }
            out.push(sent);
        }
        out.extend(self.pending.take());
        match record {
            Record::Signal { .. } => self.pending = Some(event(record)),
            record => out.push(event(record)),
        }
    }

    /// Releases a held-back signal: call at the end of the input or of a read.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        out.extend(self.pending.take());
    }
}

fn signal_kind(
    signal: u32,
    by_kernel: bool,
    result: SignalResult,
    sender_pid: u32,
    sender_comm: String,
) -> EventKind {
    EventKind::Signal {
        signal,
        signal_name: darwin_name(signal),
        origin: if by_kernel {
            Origin::Kernel
        } else {
            Origin::User
        },
        code: if by_kernel { SI_KERNEL } else { SI_USER },
        result,
        group: true,
        sender_pid,
        sender_comm,
    }
}

fn event(record: Record) -> Event {
    let (time_ns, pid, comm, kind) = match record {
        Record::Exec {
            time_ns,
            pid,
            ppid,
            sid,
            tty_dev,
            start_ns,
            ignores_hangup,
            comm,
        } => (
            time_ns,
            pid,
            comm.clone(),
            EventKind::Exec {
                ppid,
                filename: comm,
                sid: Some(sid),
                tty: tty_name(tty_dev),
                parent_tty: None,
                forked_by: None,
                started_ns: Some(start_ns),
                cmdline: None,
                // Read by the source for every tracer (source::shared).
                terminal_program: None,
                cwd: None,
                from_terminal: false,
                hangup: Some(if ignores_hangup {
                    Disposition::Ignore
                } else {
                    Disposition::Default
                }),
            },
        ),
        Record::Fork {
            time_ns,
            child,
            parent,
            comm,
        } => (time_ns, child, comm, EventKind::Fork { ppid: parent }),
        Record::Exit {
            time_ns,
            pid,
            ppid,
            status,
            comm,
        } => {
            let signal = (status & 0x7f) as u32;
            let kind = EventKind::Exit {
                ppid,
                exit_code: (signal == 0).then_some((status >> 8) & 0xff),
                exit_signal: (signal != 0).then_some(signal),
                core_dumped: signal != 0 && status & 0x80 != 0,
                // The RSS sampler fills in the peak it saw.
                peak_rss_bytes: None,
                swap_bytes: None,
            };
            (time_ns, pid, comm, kind)
        }
        Record::Signal {
            time_ns,
            target,
            signal,
            sender,
            by_kernel,
            target_comm,
            sender_comm,
        } => {
            let kind = signal_kind(
                signal,
                by_kernel,
                SignalResult::Delivered,
                sender,
                sender_comm,
            );
            (time_ns, target, target_comm, kind)
        }
        // Without its `signal` record: still an ignored signal.
        Record::Discard {
            time_ns,
            target,
            signal,
            target_comm,
        } => {
            let kind = signal_kind(signal, false, SignalResult::Ignored, 0, String::new());
            (time_ns, target, target_comm, kind)
        }
        Record::Handle {
            time_ns,
            pid,
            signal,
            comm,
        } => (
            time_ns,
            pid,
            comm,
            EventKind::SignalDeliver {
                signal,
                signal_name: darwin_name(signal),
                disposition: Disposition::Handler,
                code: SI_USER,
            },
        ),
        Record::Setsid {
            time_ns,
            pid,
            result,
            errno,
            old_sid,
            old_tty_dev,
            comm,
        } => (
            time_ns,
            pid,
            comm,
            EventKind::Setsid {
                ok: result >= 0,
                sid: u32::try_from(result).ok(),
                errno: (result < 0).then_some(errno),
                old_sid,
                old_tty: tty_name(old_tty_dev),
            },
        ),
        Record::Tty {
            time_ns,
            pid,
            attach,
            sid,
            fd,
            tty_dev,
            comm,
        } => {
            let kind = if attach {
                EventKind::AttachTty { sid, fd }
            } else {
                EventKind::DetachTty {
                    sid,
                    tty: tty_name(tty_dev),
                    fd,
                }
            };
            (time_ns, pid, comm, kind)
        }
        Record::Sigaction {
            time_ns,
            pid,
            signal,
            action,
            comm,
        } => (
            time_ns,
            pid,
            comm,
            EventKind::Sigaction {
                signal,
                signal_name: darwin_name(signal),
                disposition: match action {
                    0 => Disposition::Default,
                    1 => Disposition::Ignore,
                    _ => Disposition::Handler,
                },
            },
        ),
    };
    Event {
        kind,
        time_ns,
        pid,
        comm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(target: u32, signal: u32) -> Record {
        Record::Signal {
            time_ns: 1,
            target,
            signal,
            sender: 0,
            by_kernel: true,
            target_comm: "sleep".into(),
            sender_comm: String::new(),
        }
    }

    fn discard(target: u32, signal: u32) -> Record {
        Record::Discard {
            time_ns: 1,
            target,
            signal,
            target_comm: "sleep".into(),
        }
    }

    fn results(records: Vec<Record>) -> Vec<(u32, SignalResult)> {
        let mut converter = Converter::default();
        let mut out = Vec::new();
        for record in records {
            converter.push(record, &mut out);
        }
        converter.flush(&mut out);
        out.iter()
            .map(|e| match &e.kind {
                EventKind::Signal { result, .. } => (e.pid, *result),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_signal_followed_by_its_discard_is_one_ignored_signal() {
        assert_eq!(
            results(vec![signal(42, 1), discard(42, 1)]),
            [(42, SignalResult::Ignored)]
        );
        assert_eq!(
            results(vec![signal(42, 1), signal(43, 1), discard(43, 1)]),
            [(42, SignalResult::Delivered), (43, SignalResult::Ignored)]
        );
        assert_eq!(
            results(vec![signal(42, 1), discard(42, 15)]),
            [(42, SignalResult::Delivered), (42, SignalResult::Ignored)]
        );
        assert_eq!(
            results(vec![signal(42, 1)]),
            [(42, SignalResult::Delivered)]
        );
    }

    #[test]
    fn exit_statuses_are_decoded_as_wait_statuses() {
        let exit = |status| {
            let mut out = Vec::new();
            Converter::default().push(
                Record::Exit {
                    time_ns: 1,
                    pid: 42,
                    ppid: 1,
                    status,
                    comm: "x".into(),
                },
                &mut out,
            );
            match out.remove(0).kind {
                EventKind::Exit {
                    exit_code,
                    exit_signal,
                    core_dumped,
                    ..
                } => (exit_code, exit_signal, core_dumped),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(exit(3 << 8), (Some(3), None, false));
        assert_eq!(exit(1), (None, Some(1), false));
        assert_eq!(exit(0x80 | 11), (None, Some(11), true));
    }
}
