//! Processes that exist before the probes attach, as `existing` events.
use std::collections::{HashMap, HashSet};

use crate::{
    decode::Clock,
    event::{Event, EventKind, Existing},
    host::{self, ProcSnapshot, ProcessTree},
    origin,
};

/// One `existing` event per process in `procs`, oldest first, so that a parent comes
/// before its children (an adoptive parent is an ancestor, so older too). Kernel threads are left
/// out, and so are `exclude_pid` (hupwatch itself) and its descendants; 0 excludes
/// nothing, since every process descends from pid 0. `now_ns` stamps each event;
/// `boot_epoch_ns` (CLOCK_REALTIME − CLOCK_BOOTTIME) turns start times into epoch ns;
/// `tty_name` names a `tty_nr` (the encodings of Linux and macOS differ).
pub fn existing_events(
    procs: &[ProcSnapshot],
    now_ns: u64,
    boot_epoch_ns: u64,
    exclude_pid: u32,
    tty_name: fn(u32) -> Option<String>,
) -> Vec<Event> {
    // A zombie has exited (its exit event is out already) and no longer leads or parents
    // anything that matters; it waits only for its parent to reap it.
    let procs: Vec<&ProcSnapshot> = procs.iter().filter(|p| !is_zombie(p)).collect();
    let by_pid: HashMap<u32, &ProcSnapshot> = procs.iter().map(|p| (p.info.pid, *p)).collect();
    let excluded = match exclude_pid {
        0 => HashSet::new(),
        root => ProcessTree::new(procs.iter().map(|p| &p.info)).subtree(root),
    };
    let mut kept: Vec<&ProcSnapshot> = procs
        .into_iter()
        .filter(|p| !is_kernel_thread(p) && !excluded.contains(&p.info.pid))
        .collect();
    kept.sort_by_key(|p| (p.started_boot_ns, p.info.pid));
    kept.into_iter()
        .map(|p| existing_event(p, &by_pid, now_ns, boot_epoch_ns, tty_name(p.info.tty_nr)))
        .collect()
}

fn is_zombie(p: &ProcSnapshot) -> bool {
    matches!(p.state, 'Z' | 'X')
}

/// This machine's process table: /proc on Linux, libproc on macOS.
pub struct HostScan {
    pub procs: Vec<ProcSnapshot>,
    /// Added to `started_boot_ns` to give Unix-epoch time.
    pub boot_epoch_ns: u64,
    pub tty_name: fn(u32) -> Option<String>,
}

pub fn scan_host(clock: &Clock) -> HostScan {
    HostScan {
        procs: host::processes(),
        boot_epoch_ns: host::boot_epoch_ns(clock),
        tty_name: host::tty_name,
    }
}

/// Scans the process table now, with the clock offset read now.
pub fn scan_existing(exclude_pid: u32) -> Vec<Event> {
    scan_existing_with(&Clock::now(), exclude_pid)
}

/// Scans the process table with the caller's clock, so start times agree with the kernel events
/// decoded with the same [`Clock`].
pub fn scan_existing_with(clock: &Clock, exclude_pid: u32) -> Vec<Event> {
    Look::now(clock).existing(exclude_pid)
}

/// One look at the process table and when it was taken: a source that reads the table to
/// start (the proc source) hands its look on for the `existing` events, so the table is
/// read once at start, not twice.
pub struct Look {
    /// Stamped before reading: whatever the scan shows is at least this new, so a kernel
    /// event that lands during the scan sorts after the state it may have changed.
    now_ns: u64,
    scan: HostScan,
}

impl Look {
    pub fn now(clock: &Clock) -> Self {
        let now_ns = clock.epoch_now_ns();
        Look {
            now_ns,
            scan: scan_host(clock),
        }
    }

    pub fn procs(&self) -> &[ProcSnapshot] {
        &self.scan.procs
    }

    pub fn boot_epoch_ns(&self) -> u64 {
        self.scan.boot_epoch_ns
    }

    /// The `existing` events of this look (see [`existing_events`]).
    pub fn existing(&self, exclude_pid: u32) -> Vec<Event> {
        existing_events(
            &self.scan.procs,
            self.now_ns,
            self.scan.boot_epoch_ns,
            exclude_pid,
            self.scan.tty_name,
        )
    }
}

fn existing_event(
    p: &ProcSnapshot,
    by_pid: &HashMap<u32, &ProcSnapshot>,
    now_ns: u64,
    boot_epoch_ns: u64,
    tty: Option<String>,
) -> Event {
    let from_env = p.terminal_env.as_ref().is_some_and(|e| e.from_terminal());
    let from_terminal = tty.is_some() || from_env;
    // Ancestors from the same look, so they are the ones the process had then.
    let parent_of = |pid: u32| by_pid.get(&pid).map(|q| (q.info.ppid, q.info.comm.clone()));
    let terminal_program = origin::terminal_program(
        p.terminal_env.as_ref(),
        origin::ancestors(p.info.pid, parent_of),
    );
    Event {
        kind: EventKind::Existing(Existing {
            ppid: p.info.ppid,
            sid: p.info.sid,
            tty,
            started_ns: boot_epoch_ns.saturating_add(p.started_boot_ns),
            cmdline: p.info.cmdline.clone(),
            hangup: p.hangup,
            rss_bytes: p.rss_bytes,
            swap_bytes: p.swap_bytes,
            cpu_ns: p.cpu_ns,
            from_terminal,
            terminal_program,
            cwd: p.cwd.clone(),
            reparented: is_reparented(p, by_pid),
            session_leader_alive: by_pid.contains_key(&p.info.sid),
            session_marker: p
                .terminal_env
                .as_ref()
                .and_then(|e| e.session_marker.clone()),
        }),
        time_ns: now_ns,
        pid: p.info.pid,
        comm: p.info.comm.clone(),
    }
}

/// The flag is what the kernel says; the pid-2 rule covers lists built without it. An
/// empty command line is required there because in a container's pid namespace pid 2 is
/// an ordinary process.
fn is_kernel_thread(p: &ProcSnapshot) -> bool {
    p.kernel_thread || (p.info.cmdline.is_empty() && (p.info.pid == 2 || p.info.ppid == 2))
}

/// An orphan is adopted by init, or by the nearest child subreaper, which for a desktop
/// or ssh login is the user's systemd. pid 1 and the kernel's own (ppid 0) have no parent
/// to lose.
fn is_reparented(p: &ProcSnapshot, by_pid: &HashMap<u32, &ProcSnapshot>) -> bool {
    if p.info.pid == 1 || p.info.ppid == 0 {
        return false;
    }
    p.info.ppid == 1
        || by_pid
            .get(&p.info.ppid)
            .is_some_and(|parent| parent.info.comm == "systemd")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Disposition,
        host::{ProcInfo, linux as procfs},
    };

    const NOW: u64 = 1_700_000_000_000_000_000;
    const BOOT: u64 = 1_699_990_000_000_000_000;
    const PTS_3: u32 = (136 << 8) | 3;

    fn proc(pid: u32, ppid: u32, comm: &str, cmdline: &str) -> ProcSnapshot {
        ProcSnapshot {
            info: ProcInfo {
                pid,
                ppid,
                comm: comm.into(),
                cmdline: cmdline.into(),
                sid: pid,
                tty_nr: 0,
                start_ticks: 0,
            },
            state: 'S',
            kernel_thread: false,
            started_boot_ns: 5_000_000_000,
            cpu_ns: Some(20_000_000),
            rss_bytes: 4 << 20,
            swap_bytes: Some(0),
            hangup: Disposition::Default,
            terminal_env: None,
            cwd: None,
            uid: Some(1000),
        }
    }

    fn in_session(mut p: ProcSnapshot, sid: u32) -> ProcSnapshot {
        p.info.sid = sid;
        p
    }

    fn kthread(pid: u32, ppid: u32, comm: &str) -> ProcSnapshot {
        let mut p = proc(pid, ppid, comm, "");
        p.kernel_thread = true;
        p.rss_bytes = 0;
        p
    }

    /// A host: init, kthreadd and a worker, a login shell on pts/3 running an editor, the
    /// user's systemd with a service, and a daemon that init adopted.
    fn host() -> Vec<ProcSnapshot> {
        let mut shell = proc(1000, 999, "bash", "-bash");
        shell.info.tty_nr = PTS_3;
        let mut editor = in_session(proc(1001, 1000, "vim", "vim notes"), 1000);
        editor.info.tty_nr = PTS_3;
        vec![
            proc(1, 0, "systemd", "/sbin/init"),
            kthread(2, 0, "kthreadd"),
            kthread(3, 2, "kworker/0:0"),
            proc(999, 1, "sshd", "sshd: me@pts/3"),
            shell,
            editor,
            proc(1500, 1, "systemd", "/lib/systemd/systemd --user"),
            proc(1501, 1500, "pipewire", "/usr/bin/pipewire"),
            in_session(proc(2000, 1, "daemon", "./daemon --fork"), 1990),
        ]
    }

    fn events(procs: &[ProcSnapshot], exclude: u32) -> Vec<Event> {
        existing_events(procs, NOW, BOOT, exclude, procfs::tty_name)
    }

    fn find(events: &[Event], pid: u32) -> &EventKind {
        &events
            .iter()
            .find(|e| e.pid == pid)
            .unwrap_or_else(|| panic!("no event for pid {pid}"))
            .kind
    }

    fn field<T>(events: &[Event], pid: u32, get: impl Fn(&EventKind) -> T) -> T {
        get(find(events, pid))
    }

    fn reparented(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::Existing(Existing {
                reparented: true,
                ..
            })
        )
    }

    fn leader_alive(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::Existing(Existing {
                session_leader_alive: true,
                ..
            })
        )
    }

    fn from_terminal(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::Existing(Existing {
                from_terminal: true,
                ..
            })
        )
    }

    #[test]
    fn parents_come_before_their_children_even_when_pids_wrapped() {
        let mut parent = proc(900, 1, "bash", "-bash");
        parent.started_boot_ns = 1_000_000_000;
        let mut child = proc(50, 900, "agent", "agent");
        child.started_boot_ns = 2_000_000_000;
        let events = existing_events(&[child, parent], NOW, BOOT, 0, procfs::tty_name);
        let pids: Vec<u32> = events.iter().map(|e| e.pid).collect();
        assert_eq!(pids, [900, 50]);
    }

    #[test]
    fn carries_every_field() {
        let mut p = in_session(proc(4242, 1, "sleep", "nohup sleep 1000"), 4000);
        p.info.tty_nr = PTS_3;
        p.hangup = Disposition::Ignore;
        p.rss_bytes = 123 << 20;
        p.cpu_ns = Some(7_000_000);
        p.started_boot_ns = 60_000_000_000;
        let leader = proc(4000, 1, "bash", "bash");
        let out = events(&[leader, p], 0);
        assert_eq!(
            out[1],
            Event {
                kind: EventKind::Existing(Existing {
                    ppid: 1,
                    sid: 4000,
                    tty: Some("pts/3".into()),
                    started_ns: BOOT + 60_000_000_000,
                    cmdline: "nohup sleep 1000".into(),
                    hangup: Disposition::Ignore,
                    rss_bytes: 123 << 20,
                    swap_bytes: Some(0),
                    cpu_ns: Some(7_000_000),
                    from_terminal: true,
                    terminal_program: None,
                    cwd: None,
                    reparented: true,
                    session_leader_alive: true,
                    session_marker: None,
                }),
                time_ns: NOW,
                pid: 4242,
                comm: "sleep".into(),
            }
        );
        assert_eq!(out[1].kind.name(), "existing");
    }

    #[test]
    fn keeps_hostile_comms_intact() {
        let comms = ["a) b (c)", "x\ny", " ( ", "))", ""];
        let procs: Vec<ProcSnapshot> = comms
            .iter()
            .zip(100..)
            .map(|(comm, pid)| proc(pid, 1, comm, "cmd"))
            .collect();
        let out = events(&procs, 0);
        let seen: Vec<&str> = out.iter().map(|e| e.comm.as_str()).collect();
        assert_eq!(seen, comms);
        for event in &out {
            let json = serde_json::to_string(event).unwrap();
            assert!(!json.contains('\n'), "one event per line: {json}");
            assert_eq!(&serde_json::from_str::<Event>(&json).unwrap(), event);
        }
    }

    #[test]
    fn a_zombie_is_gone_and_leads_nothing() {
        let mut procs = host();
        procs[4].state = 'Z'; // the login shell, leader of session 1000
        let out = events(&procs, 0);
        assert!(out.iter().all(|e| e.pid != 1000));
        assert!(!field(&out, 1001, leader_alive));
    }

    #[test]
    fn leaves_out_kernel_threads() {
        let mut procs = host();
        // Without the flag, as a list built by hand would be.
        procs.push(proc(4, 2, "kworker/R-rcu_g", ""));
        let pids: Vec<u32> = events(&procs, 0).iter().map(|e| e.pid).collect();
        assert_eq!(pids, [1, 999, 1000, 1001, 1500, 1501, 2000]);
    }

    #[test]
    fn keeps_pid_2_of_a_container() {
        let procs = [
            proc(1, 0, "tini", "tini -- app"),
            proc(2, 1, "app", "app --serve"),
            proc(3, 2, "worker", "app --worker"),
        ];
        let pids: Vec<u32> = events(&procs, 0).iter().map(|e| e.pid).collect();
        assert_eq!(pids, [1, 2, 3]);
    }

    #[test]
    fn excludes_itself_and_its_descendants() {
        let mut procs = host();
        procs.extend([
            proc(3000, 1000, "hupwatch", "hupwatch watch"),
            proc(3001, 3000, "sh", "sh -c notify"),
            proc(3002, 3001, "notify-send", "notify-send hi"),
            proc(3003, 1000, "sibling", "sibling"),
        ]);
        let pids: Vec<u32> = events(&procs, 3000).iter().map(|e| e.pid).collect();
        assert!(!pids.iter().any(|p| (3000..=3002).contains(p)), "{pids:?}");
        assert!(pids.contains(&3003));
        assert!(pids.contains(&1000), "its parent stays");
        assert_eq!(events(&procs, 0).len(), pids.len() + 3);
    }

    #[test]
    fn init_adoption_is_reparenting() {
        let out = events(&host(), 0);
        assert!(field(&out, 2000, reparented));
        assert!(field(&out, 999, reparented), "ppid 1 counts whoever it is");
        assert!(!field(&out, 1, reparented), "init has no parent to lose");
        assert!(!field(&out, 1000, reparented));
        assert!(!field(&out, 1001, reparented));
    }

    #[test]
    fn the_users_systemd_is_a_subreaper() {
        let mut procs = host();
        procs.push(proc(1502, 1500, "nohup-job", "long job"));
        procs.push(proc(1600, 1500, "systemd-journal", "x"));
        procs.push(proc(1601, 1600, "child", "y"));
        procs.push(proc(1602, 1000, "(systemd)", "z"));
        procs.push(proc(1603, 1602, "grandchild", "w"));
        let out = events(&procs, 0);
        assert!(field(&out, 1501, reparented));
        assert!(field(&out, 1502, reparented));
        assert!(
            !field(&out, 1601, reparented),
            "only the comm systemd itself"
        );
        assert!(!field(&out, 1603, reparented));
    }

    #[test]
    fn no_parent_is_not_reparenting() {
        let procs = [proc(1, 0, "init", "init"), proc(7, 0, "odd", "odd")];
        let out = events(&procs, 0);
        assert!(!field(&out, 1, reparented));
        assert!(!field(&out, 7, reparented));
    }

    #[test]
    fn session_leader_liveness() {
        let out = events(&host(), 0);
        assert!(
            field(&out, 1001, leader_alive),
            "the shell leads the editor"
        );
        assert!(field(&out, 1000, leader_alive), "a leader is alive itself");
        assert!(
            !field(&out, 2000, leader_alive),
            "its session's leader 1990 is gone"
        );
    }

    #[test]
    fn a_leader_left_out_as_hupwatch_still_counts() {
        let procs = [
            proc(50, 1, "hupwatch", "hupwatch"),
            in_session(proc(51, 50, "child", "child"), 50),
            in_session(proc(52, 1, "escaped", "escaped"), 50),
        ];
        let out = events(&procs, 50);
        assert_eq!(out.len(), 1);
        assert!(field(&out, 52, leader_alive));
    }

    #[test]
    fn terminal_from_tty_or_environment() {
        let mut procs = host();
        let mut via_env = proc(2100, 1, "tmux", "tmux");
        via_env.terminal_env = Some(origin::TerminalEnv::parse_block(b"TERM=xterm\0"));
        procs.push(via_env);
        let out = events(&procs, 0);
        assert!(field(&out, 1000, from_terminal), "it has pts/3");
        assert!(field(&out, 2100, from_terminal), "TERM in its environment");
        assert!(!field(&out, 2000, from_terminal));
        assert!(!field(&out, 1501, from_terminal));
        assert_eq!(
            field(&out, 1001, |k| match k {
                EventKind::Existing(Existing { tty, .. }) => tty.clone(),
                _ => None,
            }),
            Some("pts/3".to_string())
        );
    }

    fn origin_of(events: &[Event], pid: u32) -> (Option<String>, Option<String>) {
        field(events, pid, |k| match k {
            EventKind::Existing(Existing {
                terminal_program,
                cwd,
                ..
            }) => (terminal_program.clone(), cwd.clone()),
            _ => unreachable!(),
        })
    }

    #[test]
    fn where_it_was_started_from_its_environment_or_the_ancestors_in_the_same_look() {
        let mut procs = host();
        let mut from_vscode = proc(2200, 1, "claude", "claude");
        from_vscode.terminal_env = Some(origin::TerminalEnv::parse_block(
            b"TERM=xterm-256color\0TERM_PROGRAM=vscode\0",
        ));
        from_vscode.cwd = Some("/home/a/proj".into());
        procs.push(from_vscode);
        // The editor's environment is unreadable; its shell's parent is sshd.
        let out = events(&procs, 0);
        assert_eq!(
            origin_of(&out, 2200),
            (Some("vscode".into()), Some("/home/a/proj".into()))
        );
        assert_eq!(origin_of(&out, 1001), (Some("ssh".into()), None));
        assert_eq!(origin_of(&out, 1501), (None, None), "systemd's service");
        assert!(
            field(&out, 2200, from_terminal),
            "a terminal's variables, no tty"
        );
    }

    fn spawn_sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep(1) runs")
    }

    #[test]
    fn scans_this_machine_and_finds_this_test() {
        let clock = Clock::now();
        let before = clock.epoch_now_ns();
        let mut child = spawn_sleeper();
        let after = clock.epoch_now_ns();
        let out = scan_existing_with(&clock, 0);
        let _ = child.kill();
        let _ = child.wait();

        let me = std::process::id();
        let event = out
            .iter()
            .find(|e| e.pid == me)
            .expect("this test is listed");
        assert!(event.time_ns >= after);
        let EventKind::Existing(Existing {
            ppid,
            started_ns,
            rss_bytes,
            cpu_ns,
            cmdline,
            ..
        }) = &event.kind
        else {
            panic!("not an existing event: {event:?}");
        };
        assert_eq!(*ppid, std::os::unix::process::parent_id());
        assert!(*started_ns <= before, "it started before this test ran");
        assert!(
            before - started_ns < 3_600_000_000_000,
            "started {started_ns}"
        );
        assert!(*rss_bytes > 0);
        assert!(cpu_ns.is_some());
        assert!(!cmdline.is_empty());

        // A start time to the tick must land within one tick of the kernel's clock.
        let tick = procfs::ticks_to_ns(1, procfs::clock_ticks_per_second());
        let child_event = out.iter().find(|e| e.pid == child.id()).unwrap();
        let EventKind::Existing(Existing { started_ns, .. }) = child_event.kind else {
            panic!("not an existing event: {child_event:?}");
        };
        assert!(
            started_ns + tick + 2_000_000 >= before && started_ns <= after,
            "{before} <= {started_ns} <= {after}"
        );
        assert!(out.iter().all(|e| e.pid != 2), "kthreadd is not listed");
    }

    #[test]
    fn a_scan_leaves_out_itself_and_its_children() {
        let mut child = spawn_sleeper();
        let me = std::process::id();
        let out = scan_existing(me);
        let _ = child.kill();
        let _ = child.wait();
        assert!(out.iter().all(|e| e.pid != me && e.pid != child.id()));
        assert!(
            out.iter()
                .any(|e| e.pid == std::os::unix::process::parent_id()),
            "its parent is someone else's"
        );
    }
}
