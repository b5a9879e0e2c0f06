//! Re-sync from /proc after lost events: nothing stale or contradicted survives it, and
//! what is still true is neither lost nor raised twice.
use super::*;
use crate::watch::Watch;

/// What /proc shows of `pid` at `t`: started at `started`, parent `ppid`, session `sid`.
fn proc_seen(t: f64, pid: u32, comm: &str, started: f64, ppid: u32, sid: u32) -> Event {
    let mut e = existing(pid, comm, sid, None);
    e.time_ns = at(t);
    if let EventKind::Existing(Existing {
        started_ns,
        ppid: p,
        hangup,
        from_terminal,
        ..
    }) = &mut e.kind
    {
        *started_ns = at(started);
        *p = ppid;
        *hangup = Disposition::Default;
        *from_terminal = true;
    }
    e
}

fn with_tty(mut e: Event, name: &str) -> Event {
    if let EventKind::Existing(Existing { tty, .. }) = &mut e.kind {
        *tty = Some(name.into());
    }
    e
}

fn with_hangup(mut e: Event, d: Disposition) -> Event {
    if let EventKind::Existing(Existing { hangup, .. }) = &mut e.kind {
        *hangup = d;
    }
    e
}

fn reparented(mut e: Event) -> Event {
    if let EventKind::Existing(Existing { reparented, .. }) = &mut e.kind {
        *reparented = true;
    }
    e
}

/// The login shell as /proc shows it: still there, on pts/3.
fn shell_seen(t: f64) -> Event {
    let mut e = with_tty(proc_seen(t, 100, "bash", -3600.0, 1000, 100), "pts/3");
    if let EventKind::Existing(Existing { hangup, .. }) = &mut e.kind {
        *hangup = Disposition::Handler;
    }
    e
}

/// A shell on pts/3 that started `agent` (200), which called setsid at 1 s: detached.
fn detached_agent() -> (Tracker, Vec<Alert>) {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        exec(1.001, 200, 100, "agent", 100, Some("pts/3")),
        setsid(1.002, 200, "agent", 100, Some("pts/3")),
    ];
    run(&script, 2.0)
}

fn resync_at(tracker: &mut Tracker, t: f64, scan: &[Event]) -> (Resync, Vec<Alert>) {
    let (done, mut alerts) = tracker.resync(scan, &Watch::Everything);
    alerts.extend(tracker.advance(at(t)));
    (done, alerts)
}

#[test]
fn a_process_whose_exit_was_lost_is_resolved_and_forgotten() {
    let (mut tracker, alerts) = detached_agent();
    assert_eq!(raised(&alerts), [(200, VerdictKind::Detached)]);
    // Its exit fell into the lost events: /proc has only the shell.
    let (done, alerts) = resync_at(&mut tracker, 10.0, &[shell_seen(5.0)]);
    assert_eq!(resolved(&alerts), [(200, VerdictKind::Detached)]);
    assert!(
        alerts[0]
            .verdict
            .reason
            .to_string()
            .contains("gone from /proc")
    );
    assert_eq!(raised(&alerts), []);
    assert!(tracker.process(200).is_none());
    assert_eq!(done.gone, 1);
    assert!(
        tracker
            .view(at(10.0))
            .processes
            .iter()
            .all(|p| p.pid != 200)
    );
}

#[test]
fn a_process_still_there_keeps_its_verdict_and_raises_nothing_twice() {
    let (mut tracker, _) = detached_agent();
    let agent = proc_seen(5.0, 200, "agent", 1.0, 1, 200);
    let (done, alerts) = resync_at(&mut tracker, 60.0, &[shell_seen(5.0), agent]);
    assert_eq!(alerts, [], "nothing changed, so nothing is said");
    assert_eq!(done, Resync::default());
    let p = tracker.process(200).unwrap();
    assert!(p.verdicts.contains_key(&VerdictKind::Detached));
    assert!(
        !p.verdicts[&VerdictKind::Detached].inferred,
        "the evidence seen stays"
    );
}

#[test]
fn a_detach_that_was_lost_is_found_in_proc_and_marked_inferred() {
    // The shell is known; the fork, exec and setsid of `agent` were all lost.
    let (mut tracker, _) = run(&[shell()], 1.0);
    let agent = proc_seen(5.0, 200, "agent", 1.0, 100, 200);
    let (done, alerts) = resync_at(&mut tracker, 6.0, &[shell_seen(5.0), agent]);
    assert_eq!(done.added, 1);
    assert_eq!(raised(&alerts), [(200, VerdictKind::Detached)]);
    assert!(alerts[0].verdict.inferred);
}

#[test]
fn processes_not_watched_are_not_taken_in() {
    let (mut tracker, _) = run(&[shell()], 1.0);
    let other = proc_seen(5.0, 300, "other", 1.0, 100, 300);
    let (done, mut alerts) = tracker.resync(&[shell_seen(5.0), other], &Watch::Pids([100].into()));
    alerts.extend(tracker.advance(at(6.0)));
    assert_eq!((done.added, alerts.len()), (0, 0));
    assert!(tracker.process(300).is_none());
}

#[test]
fn without_a_readable_tracked_set_children_of_tracked_processes_are_taken_in() {
    let (mut tracker, _) = run(&[shell()], 1.0);
    let child = with_tty(proc_seen(5.0, 200, "make", 1.0, 100, 100), "pts/3");
    let grandchild = with_tty(proc_seen(5.0, 201, "cc", 1.1, 200, 100), "pts/3");
    let stranger = proc_seen(5.0, 300, "other", 1.0, 1, 300);
    let scan = [shell_seen(5.0), child, grandchild, stranger];
    let (done, _) = tracker.resync(&scan, &Watch::Descendants);
    assert_eq!(done.added, 2);
    assert!(tracker.process(201).is_some() && tracker.process(300).is_none());
}

#[test]
fn a_detached_verdict_is_withdrawn_when_proc_shows_a_terminal_again() {
    let (mut tracker, _) = detached_agent();
    // It took pts/9 as its controlling terminal; the TIOCSCTTY was lost.
    let agent = with_tty(proc_seen(5.0, 200, "agent", 1.0, 100, 200), "pts/9");
    let (done, alerts) = resync_at(&mut tracker, 60.0, &[shell_seen(5.0), agent]);
    assert_eq!(resolved(&alerts), [(200, VerdictKind::Detached)]);
    assert!(
        alerts[0]
            .verdict
            .reason
            .to_string()
            .contains("controlling terminal again"),
        "{}",
        alerts[0].verdict.reason
    );
    assert_eq!(raised(&alerts), []);
    assert_eq!(done.withdrawn, 1);
    let view = tracker.view(at(60.0));
    let agent = view.processes.iter().find(|p| p.pid == 200).unwrap();
    assert_eq!(
        (agent.state.as_str(), agent.verdicts.len()),
        ("attached", 0)
    );
}

#[test]
fn hangup_ignored_is_withdrawn_when_sig_ign_is_gone_and_found_when_it_appears() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        exec(1.001, 200, 100, "nohup", 100, Some("pts/3")),
        sigaction(1.002, 200, "nohup", Disposition::Ignore),
        fork(1.5, 300, 100, "bash"),
        exec(1.501, 300, 100, "make", 100, Some("pts/3")),
    ];
    let (mut tracker, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
    // While events were lost, 200 restored the default and 300 set SIG_IGN.
    let nohup = with_tty(proc_seen(5.0, 200, "nohup", 1.0, 100, 100), "pts/3");
    let make = with_tty(proc_seen(5.0, 300, "make", 1.5, 100, 100), "pts/3");
    let make = with_hangup(make, Disposition::Ignore);
    let (done, alerts) = resync_at(&mut tracker, 6.0, &[shell_seen(5.0), nohup, make]);
    assert_eq!(resolved(&alerts), [(200, VerdictKind::HangupIgnored)]);
    assert_eq!(raised(&alerts), [(300, VerdictKind::HangupIgnored)]);
    assert!(alerts[1].verdict.inferred);
    assert_eq!(done.withdrawn, 1);
}

#[test]
fn a_pending_detach_contradicted_by_proc_never_becomes_a_verdict() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        exec(1.001, 200, 100, "agent", 100, Some("pts/3")),
        setsid(1.002, 200, "agent", 100, Some("pts/3")),
    ];
    // The re-sync comes before the finding settles; the agent took a terminal since.
    let (mut tracker, alerts) = run(&script, 1.01);
    assert_eq!(alerts, []);
    let agent = with_tty(proc_seen(1.02, 200, "agent", 1.0, 100, 200), "pts/9");
    let (_, alerts) = resync_at(&mut tracker, 30.0, &[shell_seen(1.02), agent]);
    assert_eq!(alerts, []);
}

#[test]
fn a_parent_whose_exit_was_lost_leaves_an_orphan() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        exec(1.001, 200, 100, "runner", 100, Some("pts/3")),
        fork(1.1, 300, 200, "runner"),
    ];
    let (mut tracker, _) = run(&script, 2.0);
    // The runner exited unseen; its child was reparented to init.
    let child = reparented(with_tty(
        proc_seen(5.0, 300, "runner", 1.1, 1, 100),
        "pts/3",
    ));
    let (done, alerts) = resync_at(&mut tracker, 6.0, &[shell_seen(5.0), child]);
    assert_eq!(done.gone, 1);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert_eq!(tracker.process(300).unwrap().ppid, 1);
}

#[test]
fn a_pid_reused_while_blind_is_a_new_life() {
    let (mut tracker, _) = detached_agent();
    // 200 exited unseen and the pid now belongs to an unrelated process on pts/3.
    let newcomer = with_tty(proc_seen(5.0, 200, "vim", 4.0, 100, 100), "pts/3");
    let (done, alerts) = resync_at(&mut tracker, 60.0, &[shell_seen(5.0), newcomer]);
    assert_eq!(resolved(&alerts), [(200, VerdictKind::Detached)]);
    assert_eq!(raised(&alerts), []);
    assert_eq!((done.gone, done.added), (1, 1));
    let p = tracker.process(200).unwrap();
    assert_eq!((p.comm.as_str(), p.inferred), ("vim", true));
}
