//! What changed between two looks at the process table, as the events a kernel source
//! would have sent where a difference can say so: a new (pid, start) is an exec, a
//! missing one an exit; a new session, a lost or gained terminal, a new parent and a new
//! SIGHUP disposition are their own events. What happened between two looks and was
//! undone before the second (a short-lived child, a signal) is not seen.
use std::collections::{HashMap, HashSet};

use crate::{
    event::{Disposition, Event, EventKind},
    signals::SIGHUP,
};

/// One process as a look at the table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub pid: u32,
    /// Unix-epoch nanoseconds; with the pid, it names one life.
    pub started_ns: u64,
    pub ppid: u32,
    pub sid: u32,
    pub tty: Option<String>,
    pub comm: String,
    pub hangup: Disposition,
    /// Stopped by a signal (state T).
    pub stopped: bool,
}

/// The processes of the last look, and which of them are watched.
#[derive(Default)]
pub struct Table {
    procs: HashMap<u32, Seen>,
    watched: HashSet<u32>,
}

impl Table {
    /// The first look: what was there before anything could be seen happening.
    pub fn new(first: Vec<Seen>, watched: impl IntoIterator<Item = u32>) -> Self {
        Self {
            procs: first.into_iter().map(|p| (p.pid, p)).collect(),
            watched: watched.into_iter().collect(),
        }
    }

    pub fn is_watched(&self, pid: u32) -> bool {
        self.watched.contains(&pid)
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    pub fn watched_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.watched.iter().copied()
    }

    /// The OS said a watched process exited (macOS's kqueue) before the next look: its
    /// exit, now, with the status when the OS gave it. The next look does not report it again.
    pub fn exited(
        &mut self,
        pid: u32,
        now_ns: u64,
        exit_code: Option<i32>,
        exit_signal: Option<u32>,
    ) -> Option<Event> {
        if !self.watched.remove(&pid) {
            return None;
        }
        let old = self.procs.remove(&pid)?;
        let mut event = exit(&old, now_ns);
        if let EventKind::Exit {
            exit_code: code,
            exit_signal: signal,
            ..
        } = &mut event.kind
        {
            (*code, *signal) = (exit_code, exit_signal);
        }
        Some(event)
    }

    /// Takes the next look (`now`, any order) and appends the events that tell the
    /// difference, stamped `now_ns`. `adopt` is asked about each new process, with whether
    /// its parent is watched: `None` leaves it unwatched, `Some(cmdline)` watches it.
    pub fn update(
        &mut self,
        mut now: Vec<Seen>,
        now_ns: u64,
        mut adopt: impl FnMut(&Seen, bool) -> Option<Option<String>>,
        out: &mut Vec<Event>,
    ) {
        // Parents before their children, so a child of a new process is known to be watched.
        now.sort_by_key(|p| (p.started_ns, p.pid));
        let current: HashMap<u32, &Seen> = now.iter().map(|p| (p.pid, p)).collect();
        let is_same_life = |old: &Seen| {
            current
                .get(&old.pid)
                .is_some_and(|p| p.started_ns == old.started_ns)
        };
        // Exits first: a session leader's exit hangs its session up before its children's
        // new parents are told.
        let mut gone: Vec<&Seen> = self
            .procs
            .values()
            .filter(|old| !is_same_life(old) && self.watched.contains(&old.pid))
            .collect();
        gone.sort_by_key(|p| (p.started_ns, p.pid));
        for old in gone {
            out.push(exit(old, now_ns));
        }
        let mut watched = HashSet::with_capacity(self.watched.len());
        for p in &now {
            match self
                .procs
                .get(&p.pid)
                .filter(|old| old.started_ns == p.started_ns)
            {
                Some(old) => {
                    if self.watched.contains(&p.pid) {
                        watched.insert(p.pid);
                        // A new image of a watched process: its new command line.
                        let cmdline = (p.comm != old.comm)
                            .then(|| adopt(p, true).flatten())
                            .flatten();
                        changes(old, p, &current, cmdline, now_ns, out);
                    } else if p.comm != old.comm
                        && let Some(cmdline) = adopt(p, watched.contains(&p.ppid))
                    {
                        // A new image that matches (`sh -c 'exec agent'`).
                        watched.insert(p.pid);
                        out.push(exec(p, &current, cmdline.filter(|c| !c.is_empty()), now_ns));
                    }
                }
                None => {
                    if let Some(cmdline) = adopt(p, watched.contains(&p.ppid)) {
                        watched.insert(p.pid);
                        let cmdline = cmdline.filter(|c| !c.is_empty());
                        out.push(exec(p, &current, cmdline, now_ns));
                        if p.stopped {
                            out.push(event(p, EventKind::Stopped {}, now_ns));
                        }
                    }
                }
            }
        }
        self.watched = watched;
        self.procs = now.into_iter().map(|p| (p.pid, p)).collect();
    }
}

fn event(p: &Seen, kind: EventKind, now_ns: u64) -> Event {
    Event {
        kind,
        time_ns: now_ns,
        pid: p.pid,
        comm: p.comm.clone(),
    }
}

fn exit(old: &Seen, now_ns: u64) -> Event {
    let kind = EventKind::Exit {
        ppid: old.ppid,
        // A process table keeps no status for a process that is gone.
        exit_code: None,
        exit_signal: None,
        core_dumped: false,
        peak_rss_bytes: None,
        swap_bytes: None,
    };
    event(old, kind, now_ns)
}

fn exec(p: &Seen, current: &HashMap<u32, &Seen>, cmdline: Option<String>, now_ns: u64) -> Event {
    let kind = EventKind::Exec {
        ppid: p.ppid,
        filename: p.comm.clone(),
        sid: Some(p.sid),
        tty: p.tty.clone(),
        parent_tty: current.get(&p.ppid).and_then(|parent| parent.tty.clone()),
        forked_by: None,
        started_ns: Some(p.started_ns),
        cmdline,
        // Read by the source for every tracer (source::shared).
        terminal_program: None,
        cwd: None,
        from_terminal: false,
        hangup: Some(p.hangup),
    };
    event(p, kind, now_ns)
}

/// The events that turn `old` into `new`, one life of one process; `cmdline` is the new
/// image's when it exec'd.
fn changes(
    old: &Seen,
    new: &Seen,
    current: &HashMap<u32, &Seen>,
    cmdline: Option<String>,
    now_ns: u64,
    out: &mut Vec<Event>,
) {
    if new.comm != old.comm {
        // A new image in the same process: an exec without a fork.
        out.push(exec(
            new,
            current,
            cmdline.filter(|c| !c.is_empty()),
            now_ns,
        ));
    }
    if new.sid != old.sid {
        let kind = EventKind::Setsid {
            ok: true,
            sid: Some(new.sid),
            errno: None,
            old_sid: old.sid,
            old_tty: old.tty.clone(),
        };
        out.push(event(new, kind, now_ns));
        if new.tty.is_some() {
            out.push(event(new, attach(new), now_ns));
        }
    } else {
        match (&old.tty, &new.tty) {
            (Some(tty), None) if gave_up_terminal(new, current) => {
                let kind = EventKind::DetachTty {
                    sid: new.sid,
                    tty: Some(tty.clone()),
                    fd: 0,
                };
                out.push(event(new, kind, now_ns));
            }
            (None, Some(_)) if new.sid == new.pid => out.push(event(new, attach(new), now_ns)),
            _ => {}
        }
    }
    if new.ppid != old.ppid {
        let kind = EventKind::Reparented {
            old_ppid: old.ppid,
            ppid: new.ppid,
        };
        out.push(event(new, kind, now_ns));
    }
    match (old.stopped, new.stopped) {
        (false, true) => out.push(event(new, EventKind::Stopped {}, now_ns)),
        (true, false) => out.push(event(new, EventKind::Continued {}, now_ns)),
        _ => {}
    }
    if new.hangup != old.hangup {
        let kind = EventKind::Sigaction {
            signal: SIGHUP,
            signal_name: "SIGHUP".into(),
            disposition: new.hangup,
        };
        out.push(event(new, kind, now_ns));
    }
}

fn attach(p: &Seen) -> EventKind {
    EventKind::AttachTty { sid: p.sid, fd: 0 }
}

/// A process that lost its terminal gave it up itself (TIOCNOTTY) when its session's
/// leader still has it, or when it leads the session. When the leader lost it too, the
/// terminal hung up: that is the leader's story (its exit, usually), not a detach.
fn gave_up_terminal(p: &Seen, current: &HashMap<u32, &Seen>) -> bool {
    p.sid == p.pid
        || current
            .get(&p.sid)
            .is_some_and(|leader| leader.tty.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000;

    fn seen(pid: u32, ppid: u32, sid: u32, tty: Option<&str>) -> Seen {
        Seen {
            pid,
            started_ns: u64::from(pid),
            ppid,
            sid,
            tty: tty.map(Into::into),
            comm: format!("p{pid}"),
            hangup: Disposition::Default,
            stopped: false,
        }
    }

    /// A login shell on pts/3 (pid 10) under sshd (pid 5), watched.
    fn shell_table() -> Table {
        Table::new(
            vec![seen(5, 1, 5, None), seen(10, 5, 10, Some("pts/3"))],
            [10],
        )
    }

    fn kinds(events: &[Event]) -> Vec<(u32, &'static str)> {
        events.iter().map(|e| (e.pid, e.kind.name())).collect()
    }

    /// Children of watched processes only, as with no matching flag given.
    fn never(_: &Seen, parent_watched: bool) -> Option<Option<String>> {
        parent_watched.then_some(None)
    }

    #[test]
    fn a_child_of_a_watched_process_is_an_exec_with_its_parents_terminal() {
        let mut table = shell_table();
        let mut out = Vec::new();
        let child = seen(20, 10, 20, None); // setsid cmd
        table.update(
            vec![seen(5, 1, 5, None), seen(10, 5, 10, Some("pts/3")), child],
            T,
            never,
            &mut out,
        );
        assert_eq!(kinds(&out), [(20, "exec")]);
        let EventKind::Exec {
            sid,
            tty,
            parent_tty,
            started_ns,
            ..
        } = &out[0].kind
        else {
            unreachable!()
        };
        assert_eq!(
            (*sid, tty.as_deref(), parent_tty.as_deref(), *started_ns),
            (Some(20), None, Some("pts/3"), Some(20))
        );
        assert!(table.is_watched(20));
    }

    #[test]
    fn unwatched_processes_are_not_reported_unless_adopted() {
        let mut table = shell_table();
        let mut out = Vec::new();
        let stranger = seen(30, 5, 30, None);
        table.update(
            vec![
                seen(5, 1, 5, None),
                seen(10, 5, 10, Some("pts/3")),
                stranger,
            ],
            T,
            never,
            &mut out,
        );
        assert!(out.is_empty());
        let mut table = shell_table();
        table.update(
            vec![seen(5, 1, 5, None), seen(30, 5, 30, None)],
            T,
            |p, _| (p.pid == 30).then(|| Some("agent --serve".to_string())),
            &mut out,
        );
        assert_eq!(kinds(&out), [(10, "exit"), (30, "exec")]);
    }

    #[test]
    fn a_pid_with_another_start_is_an_exit_then_an_exec() {
        let mut table = shell_table();
        let mut out = Vec::new();
        let mut reused = seen(10, 5, 10, Some("pts/3"));
        reused.started_ns = 99;
        table.update(
            vec![seen(5, 1, 5, None), reused],
            T,
            |_, _| Some(None),
            &mut out,
        );
        assert_eq!(kinds(&out), [(10, "exit"), (10, "exec")]);
    }

    #[test]
    fn session_terminal_parent_and_disposition_changes_are_events() {
        let mut table = Table::new(
            vec![
                seen(10, 5, 10, Some("pts/3")),
                seen(11, 10, 10, Some("pts/3")),
                seen(12, 10, 10, Some("pts/3")),
            ],
            [10, 11, 12],
        );
        let mut out = Vec::new();
        let mut moved = seen(11, 1, 11, None); // setsid, then its parent was gone
        moved.started_ns = 11;
        let mut gave_up = seen(12, 10, 10, None); // TIOCNOTTY, SIGHUP ignored
        gave_up.hangup = Disposition::Ignore;
        table.update(
            vec![seen(10, 5, 10, Some("pts/3")), moved, gave_up],
            T,
            never,
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [
                (11, "setsid"),
                (11, "reparented"),
                (12, "detach_tty"),
                (12, "sigaction")
            ]
        );
        let EventKind::Setsid {
            old_sid, old_tty, ..
        } = &out[0].kind
        else {
            unreachable!()
        };
        assert_eq!((*old_sid, old_tty.as_deref()), (10, Some("pts/3")));
    }

    #[test]
    fn a_hung_up_terminal_is_the_leaders_exit_not_a_detach_of_its_jobs() {
        let mut table = Table::new(
            vec![
                seen(10, 5, 10, Some("pts/3")),
                seen(11, 10, 10, Some("pts/3")),
            ],
            [10, 11],
        );
        let mut out = Vec::new();
        table.update(vec![seen(11, 1, 10, None)], T, never, &mut out);
        assert_eq!(kinds(&out), [(10, "exit"), (11, "reparented")]);
    }

    #[test]
    fn an_exit_told_before_the_next_look_is_reported_once() {
        let mut table = shell_table();
        let exit = table.exited(10, T, Some(0), None).expect("watched");
        assert_eq!(
            exit.kind,
            EventKind::Exit {
                ppid: 5,
                exit_code: Some(0),
                exit_signal: None,
                core_dumped: false,
                peak_rss_bytes: None,
                swap_bytes: None,
            }
        );
        assert_eq!(table.exited(5, T, None, None), None, "not watched");
        let mut out = Vec::new();
        table.update(vec![seen(5, 1, 5, None)], T, never, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn an_unwatched_process_that_execs_into_a_match_is_watched_from_then_on() {
        let mut table = Table::new(vec![seen(5, 1, 5, None)], []);
        let mut out = Vec::new();
        let mut agent = seen(5, 1, 5, None);
        agent.comm = "agent".into();
        let adopt = |p: &Seen, _| (p.comm == "agent").then(|| Some("agent --serve".into()));
        table.update(vec![agent], T, adopt, &mut out);
        assert_eq!(kinds(&out), [(5, "exec")]);
        assert!(table.is_watched(5));
    }

    #[test]
    fn a_stop_and_a_continue_are_events() {
        let mut table = shell_table();
        let mut out = Vec::new();
        let mut stopped = seen(10, 5, 10, Some("pts/3"));
        stopped.stopped = true;
        table.update(vec![seen(5, 1, 5, None), stopped], T, never, &mut out);
        table.update(
            vec![seen(5, 1, 5, None), seen(10, 5, 10, Some("pts/3"))],
            T,
            never,
            &mut out,
        );
        assert_eq!(kinds(&out), [(10, "stopped"), (10, "continued")]);
    }

    #[test]
    fn a_new_image_is_an_exec_of_the_same_life() {
        let mut table = shell_table();
        let mut out = Vec::new();
        let mut execd = seen(10, 5, 10, Some("pts/3"));
        execd.comm = "vim".into();
        table.update(vec![seen(5, 1, 5, None), execd], T, never, &mut out);
        assert_eq!(kinds(&out), [(10, "exec")]);
        assert_eq!(out[0].comm, "vim");
    }
}
