//! Origins read after the fact. A process's origin is read when its exec is handed on; a
//! first process that forks and exits at once (tmux's client starting its server, a
//! program that daemonizes) is gone by then, so its children inherit nothing. For the
//! children of such a process the origin is read from the child itself, which usually
//! lives on, and handed on as an `origin` event after its fork.
use std::collections::HashSet;

use crate::{
    event::{Event, EventKind},
    host,
};

/// Processes remembered at most: beyond it a missed origin stays unknown (null), never a
/// reason to grow.
const MOST: usize = 4096;

#[derive(Default)]
pub struct LateOrigins {
    /// Processes whose origin could not be read: their forks are read instead.
    missed: HashSet<u32>,
}

impl LateOrigins {
    /// Notes what `event` says of origins; pushes onto `late` an `origin` event for a
    /// fork whose parent's origin was missed, when the child's can be read.
    pub fn follow(&mut self, event: &Event, late: &mut Vec<Event>) {
        match &event.kind {
            EventKind::Exec {
                terminal_program: None,
                cwd: None,
                ..
            } => self.miss(event.pid),
            EventKind::Exec { .. } | EventKind::Exit { .. } => {
                self.missed.remove(&event.pid);
            }
            EventKind::Fork { ppid } if self.missed.contains(ppid) => {
                let found = host::origin(event.pid);
                if found.terminal_program.is_none() && found.cwd.is_none() {
                    // Gone too: its own forks are read in turn.
                    self.miss(event.pid);
                } else {
                    late.push(Event {
                        kind: EventKind::Origin {
                            terminal_program: found.terminal_program,
                            cwd: found.cwd,
                        },
                        time_ns: event.time_ns,
                        pid: event.pid,
                        comm: event.comm.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    fn miss(&mut self, pid: u32) {
        if self.missed.len() < MOST {
            self.missed.insert(pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pid: u32, kind: EventKind) -> Event {
        Event {
            kind,
            time_ns: 1,
            pid,
            comm: "t".into(),
        }
    }

    #[test]
    fn a_fork_of_a_process_whose_origin_was_missed_is_read_itself() {
        let mut origins = LateOrigins::default();
        let mut late = Vec::new();
        // This test process stands for the child: its own origin can be read.
        let me = std::process::id();
        origins.follow(&event(me, EventKind::Fork { ppid: 1 }), &mut late);
        assert!(
            late.is_empty(),
            "a parent whose origin was read: nothing late"
        );
        origins.miss(4_000_000);
        origins.follow(&event(me, EventKind::Fork { ppid: 4_000_000 }), &mut late);
        let [
            Event {
                kind: EventKind::Origin { cwd, .. },
                pid,
                ..
            },
        ] = late.as_slice()
        else {
            panic!("one origin event: {late:?}");
        };
        assert_eq!(*pid, me);
        assert_eq!(
            cwd.as_deref(),
            std::env::current_dir()
                .ok()
                .as_deref()
                .and_then(|d| d.to_str())
        );
    }

    #[test]
    fn a_gone_child_passes_the_miss_on_and_exits_forget_it() {
        let mut origins = LateOrigins::default();
        let mut late = Vec::new();
        origins.miss(4_000_000);
        origins.follow(
            &event(4_000_001, EventKind::Fork { ppid: 4_000_000 }),
            &mut late,
        );
        assert!(late.is_empty());
        assert!(origins.missed.contains(&4_000_001));
        let exit = EventKind::Exit {
            ppid: 4_000_000,
            exit_code: Some(0),
            exit_signal: None,
            core_dumped: false,
            peak_rss_bytes: None,
            swap_bytes: None,
        };
        origins.follow(&event(4_000_001, exit), &mut late);
        assert!(!origins.missed.contains(&4_000_001));
    }
}
