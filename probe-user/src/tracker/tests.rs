//! Tracker behaviour from scripts of events: every verdict, and the cases that must not
//! raise one.
use super::*;
use crate::event::{Disposition, Existing, Origin, SignalResult};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

fn at(seconds: f64) -> u64 {
    (T0 as i128 + (seconds * 1e9) as i128) as u64
}

fn event(t: f64, pid: u32, comm: &str, kind: EventKind) -> Event {
    Event {
        kind,
        time_ns: at(t),
        pid,
        comm: comm.into(),
    }
}

fn existing(pid: u32, comm: &str, sid: u32, tty: Option<&str>) -> Event {
    event(
        0.0,
        pid,
        comm,
        EventKind::Existing(Existing {
            ppid: 1000,
            sid,
            tty: tty.map(Into::into),
            started_ns: at(-3600.0),
            cmdline: comm.into(),
            hangup: Disposition::Handler,
            rss_bytes: 10 << 20,
            swap_bytes: None,
            cpu_ns: Some(0),
            from_terminal: tty.is_some(),
            terminal_program: None,
            cwd: None,
            reparented: false,
            session_leader_alive: true,
            session_marker: None,
        }),
    )
}

fn fork(t: f64, pid: u32, ppid: u32, comm: &str) -> Event {
    event(t, pid, comm, EventKind::Fork { ppid })
}

fn exec(t: f64, pid: u32, ppid: u32, comm: &str, sid: u32, tty: Option<&str>) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Exec {
            ppid,
            filename: format!("/usr/bin/{comm}"),
            sid: Some(sid),
            tty: tty.map(Into::into),
            parent_tty: None,
            forked_by: None,
            started_ns: None,
            cmdline: Some(format!("{comm} --flag")),
            terminal_program: None,
            cwd: None,
            from_terminal: false,
            hangup: None,
        },
    )
}

fn exit(t: f64, pid: u32, comm: &str, signal: Option<u32>) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Exit {
            ppid: 1,
            exit_code: if signal.is_some() { None } else { Some(0) },
            exit_signal: signal,
            core_dumped: false,
            peak_rss_bytes: None,
            swap_bytes: None,
        },
    )
}

fn setsid(t: f64, pid: u32, comm: &str, old_sid: u32, old_tty: Option<&str>) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Setsid {
            ok: true,
            sid: Some(pid),
            errno: None,
            old_sid,
            old_tty: old_tty.map(Into::into),
        },
    )
}

fn sighup(t: f64, pid: u32, comm: &str, origin: Origin, result: SignalResult, from: u32) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Signal {
            signal: 1,
            signal_name: "SIGHUP".into(),
            origin,
            code: if origin == Origin::Kernel { 128 } else { 0 },
            result,
            group: true,
            sender_pid: from,
            sender_comm: "sender".into(),
        },
    )
}

fn deliver(t: f64, pid: u32, comm: &str, disposition: Disposition) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::SignalDeliver {
            signal: 1,
            signal_name: "SIGHUP".into(),
            disposition,
            code: 0,
        },
    )
}

fn sigaction(t: f64, pid: u32, comm: &str, disposition: Disposition) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Sigaction {
            signal: 1,
            signal_name: "SIGHUP".into(),
            disposition,
        },
    )
}

fn rss(t: f64, pid: u32, mib: u64, cpu_s: f64) -> Event {
    event(
        t,
        pid,
        "grower",
        EventKind::Rss {
            rss_bytes: mib << 20,
            peak_rss_bytes: mib << 20,
            swap_bytes: None,
            cpu_ns: Some((cpu_s * 1e9) as u64),
            footprint_bytes: None,
        },
    )
}

fn config() -> TrackerConfig {
    TrackerConfig {
        hup_grace_ns: 10 * S,
        rss_growth_bytes: 256 << 20,
        rss_window_ns: 600 * S,
        require_terminal: true,
        max_processes: 1000,
        ..TrackerConfig::default()
    }
}

/// Feeds the script, advancing time to each event, then to `until`; returns every alert.
fn run(script: &[Event], until: f64) -> (Tracker, Vec<Alert>) {
    run_with(config(), script, until)
}

fn run_with(config: TrackerConfig, script: &[Event], until: f64) -> (Tracker, Vec<Alert>) {
    let mut tracker = Tracker::new(config);
    let mut alerts = Vec::new();
    for event in script {
        alerts.extend(tracker.advance(event.time_ns));
        alerts.extend(tracker.apply(event));
    }
    alerts.extend(tracker.advance(at(until)));
    (tracker, alerts)
}

fn raised(alerts: &[Alert]) -> Vec<(u32, VerdictKind)> {
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Raised)
        .map(|a| (a.pid, a.verdict.kind))
        .collect()
}

fn resolved(alerts: &[Alert]) -> Vec<(u32, VerdictKind)> {
    alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Resolved)
        .map(|a| (a.pid, a.verdict.kind))
        .collect()
}

/// A login shell (pid 100, session 100) on pts/3.
fn shell() -> Event {
    existing(100, "bash", 100, Some("pts/3"))
}

#[test]
fn setsid_from_a_terminal_is_detached() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        exec(1.001, 200, 100, "agent", 100, Some("pts/3")),
        setsid(1.002, 200, "agent", 100, Some("pts/3")),
    ];
    let (tracker, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::Detached)]);
    let verdict = &alerts[0].verdict;
    assert!(
        verdict.reason.to_string().contains("setsid"),
        "{}",
        verdict.reason
    );
    assert!(matches!(verdict.evidence[0].kind, EventKind::Setsid { .. }));
    assert!(!verdict.inferred);
    assert_eq!(alerts[0].cmdline.as_deref(), Some("agent --flag"));
    let view = tracker.view(at(2.0));
    let agent = view.processes.iter().find(|p| p.pid == 200).unwrap();
    assert_eq!(agent.state, "detached");
    assert_eq!(agent.came_from_tty.as_deref(), Some("pts/3"));
}

#[test]
fn a_new_shell_on_a_new_pty_is_attaching_not_detaching() {
    // What a terminal emulator, sshd, tmux or `script` does: setsid, then TIOCSCTTY, then
    // exec the shell on the new terminal.
    let script = [
        shell(),
        fork(1.0, 200, 100, "script"),
        setsid(1.0001, 200, "script", 100, Some("pts/3")),
        event(
            1.0002,
            200,
            "script",
            EventKind::AttachTty { sid: 200, fd: 0 },
        ),
        exec(1.0003, 200, 100, "bash", 200, Some("pts/7")),
    ];
    let (tracker, alerts) = run(&script, 60.0);
    assert_eq!(raised(&alerts), []);
    let view = tracker.view(at(60.0));
    let shell = view.processes.iter().find(|p| p.pid == 200).unwrap();
    assert_eq!(shell.state, "attached");
    assert_eq!(shell.tty.as_deref(), Some("pts/7"));
}

#[test]
fn setsid_without_a_terminal_in_the_lineage_is_not_detached() {
    let script = [
        existing(50, "sshd", 50, None),
        fork(1.0, 60, 50, "sshd"),
        setsid(1.001, 60, "sshd", 50, None),
    ];
    let (_, alerts) = run(&script, 10.0);
    assert_eq!(raised(&alerts), []);
}

#[test]
fn double_fork_daemon_is_detached_once_its_parent_is_gone() {
    // fork, setsid, fork again, first child exits: the grandchild carries the verdict.
    let script = [
        shell(),
        fork(1.0, 200, 100, "daemon"),
        setsid(1.001, 200, "daemon", 100, Some("pts/3")),
        fork(1.002, 201, 200, "daemon"),
        exit(1.003, 200, "daemon", None),
    ];
    let (_, alerts) = run(&script, 5.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [(201, VerdictKind::Detached), (201, VerdictKind::Orphaned)]
    );
}

#[test]
fn workers_of_a_detached_daemon_do_not_raise_their_own_alert() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "daemon"),
        setsid(1.001, 200, "daemon", 100, Some("pts/3")),
        fork(1.2, 201, 200, "worker"),
        fork(1.2, 202, 200, "worker"),
    ];
    let (_, alerts) = run(&script, 5.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::Detached)]);
}

#[test]
fn started_by_setsid_from_a_shell_is_detached() {
    // `setsid agent` where only `agent` is watched: the exec shows a session leader
    // without a terminal whose parent has one.
    let mut exec = exec(1.0, 300, 100, "agent", 300, None);
    if let EventKind::Exec { parent_tty, .. } = &mut exec.kind {
        *parent_tty = Some("pts/3".into());
    }
    let (_, alerts) = run(&[shell(), exec], 2.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Detached)]);
}

#[test]
fn sig_ign_is_hangup_ignored_and_the_exec_after_nohup_names_the_command() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        sigaction(1.001, 200, "nohup", Disposition::Ignore),
        exec(1.002, 200, 100, "sleep", 100, Some("pts/3")),
    ];
    let (_, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
    assert_eq!(alerts[0].comm, "sleep", "raised after the exec settled");
    assert!(matches!(
        alerts[0].verdict.evidence[0].kind,
        EventKind::Sigaction { .. }
    ));
}

#[test]
fn children_inherit_sig_ign_but_only_the_top_is_flagged() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        sigaction(1.001, 200, "nohup", Disposition::Ignore),
        fork(1.5, 201, 200, "child"),
    ];
    let (_, alerts) = run(&script, 5.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
}

#[test]
fn an_ignored_sighup_is_hangup_ignored_but_not_when_the_target_was_exiting() {
    let ignored = [
        existing(200, "agent", 100, Some("pts/3")),
        sighup(1.0, 200, "agent", Origin::User, SignalResult::Ignored, 999),
    ];
    let (_, alerts) = run(&ignored, 3.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
    assert!(alerts[0].verdict.reason.to_string().contains("ignored"));

    // The kernel reports signals to an exiting process as ignored.
    let dying = [
        existing(200, "agent", 100, Some("pts/3")),
        sighup(1.0, 200, "agent", Origin::User, SignalResult::Ignored, 999),
        exit(1.01, 200, "agent", Some(9)),
    ];
    let (_, alerts) = run(&dying, 3.0);
    assert_eq!(raised(&alerts), []);
}

#[test]
fn a_handler_that_keeps_running_past_the_grace_period_survived() {
    let script = [
        existing(200, "agent", 100, Some("pts/3")),
        sighup(
            1.0,
            200,
            "agent",
            Origin::User,
            SignalResult::Delivered,
            999,
        ),
        deliver(1.001, 200, "agent", Disposition::Handler),
    ];
    let (_, early) = run(&script, 10.9);
    assert_eq!(raised(&early), [], "not before the grace period");
    let (_, alerts) = run(&script, 11.1);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupSurvived)]);
    assert_eq!(alerts[0].verdict.evidence.len(), 1);
}

#[test]
fn a_process_that_exits_on_sighup_gets_no_verdict_and_its_latency_is_recorded() {
    let script = [
        shell(),
        sighup(5.0, 100, "bash", Origin::Kernel, SignalResult::Delivered, 0),
        deliver(5.001, 100, "bash", Disposition::Handler),
        exit(5.25, 100, "bash", Some(1)),
    ];
    let (tracker, alerts) = run(&script, 60.0);
    assert!(alerts.is_empty(), "{alerts:?}");
    let exits: Vec<&HangupExit> = tracker.hangup_exits().collect();
    assert_eq!(exits.len(), 1);
    assert!((exits[0].latency_seconds - 0.25).abs() < 1e-6);
    assert_eq!(exits[0].exit_signal, Some(1));
    assert_eq!(tracker.hangup_exit_total(), 1);
}

#[test]
fn every_hangup_exit_counts_in_the_latency_histogram_however_many_come_between_scrapes() {
    // 300 shells hung up and gone before anything reads the tracker: the sessions API
    // keeps the last 256, the histogram counts all 300.
    let mut script = Vec::new();
    for i in 0..300u32 {
        let (pid, t) = (1000 + i, 5.0 + f64::from(i) * 0.01);
        script.push(existing(pid, "bash", pid, Some("pts/3")));
        script.push(sighup(
            t,
            pid,
            "bash",
            Origin::Kernel,
            SignalResult::Delivered,
            0,
        ));
        script.push(exit(t + 0.002, pid, "bash", Some(1)));
    }
    let (tracker, _) = run(&script, 60.0);
    assert_eq!(tracker.hangup_exits().count(), 256);
    let view = tracker.metrics_view(at(60.0), 0);
    assert_eq!(view.hangup_latency.count, 300);
    assert_eq!(view.hangup_latency.at_most[1], 300, "all within 5 ms");
    // What a scrape shows.
    let mut metrics = crate::sink::metrics::Metrics::new(0, &[]);
    let text = String::from_utf8(metrics.render(&view)).unwrap();
    assert!(
        text.contains("hupwatch_hangup_exit_latency_seconds_count 300")
            && text.contains("hupwatch_hangup_exit_latency_seconds_bucket{le=\"0.005\"} 300"),
        "{text}"
    );
}

#[test]
fn nohup_job_outlives_its_terminal() {
    // The terminal hangs up: the kernel signals the shell, the shell exits, the nohup'd job
    // in the same session lives on.
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        sigaction(1.001, 200, "nohup", Disposition::Ignore),
        exec(1.002, 200, 100, "sleep", 100, Some("pts/3")),
        sighup(
            30.0,
            100,
            "bash",
            Origin::Kernel,
            SignalResult::Delivered,
            0,
        ),
        exit(30.01, 100, "bash", Some(1)),
    ];
    let (tracker, alerts) = run(&script, 45.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (200, VerdictKind::HangupIgnored),
            (200, VerdictKind::TerminalLost),
            (200, VerdictKind::Orphaned),
        ]
    );
    let lost = alerts
        .iter()
        .find(|a| a.verdict.kind == VerdictKind::TerminalLost)
        .unwrap();
    assert!(
        lost.verdict.reason.to_string().contains("hung up"),
        "{}",
        lost.verdict.reason
    );
    let view = tracker.view(at(45.0));
    assert_eq!(view.processes[0].state, "terminal_lost");
    assert_eq!(view.processes[0].tty, None);
}

#[test]
fn a_session_leader_passing_on_a_hangup_counts_as_the_terminal_hanging_up() {
    let script = [
        shell(),
        existing(200, "agent", 100, Some("pts/3")),
        sighup(
            30.0,
            200,
            "agent",
            Origin::User,
            SignalResult::Delivered,
            100,
        ),
        deliver(30.001, 200, "agent", Disposition::Handler),
        exit(30.01, 100, "bash", Some(1)),
    ];
    let (_, alerts) = run(&script, 45.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (200, VerdictKind::HangupSurvived),
            (200, VerdictKind::TerminalLost)
        ]
    );
}

#[test]
fn an_orphan_is_reported_and_resolved_when_it_exits() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        fork(1.1, 300, 200, "agent"),
        exit(2.0, 200, "bash", None),
        exit(9.0, 300, "agent", None),
    ];
    let (_, alerts) = run(&script, 10.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert_eq!(resolved(&alerts), [(300, VerdictKind::Orphaned)]);
    let done = alerts.last().unwrap();
    assert!(matches!(
        done.verdict.evidence[0].kind,
        EventKind::Exit { .. }
    ));
    assert_eq!(done.verdict.time_ns, at(9.0));
}

#[test]
fn a_short_lived_orphan_is_not_reported() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        fork(1.1, 300, 200, "true"),
        exit(2.0, 200, "bash", None),
        exit(2.01, 300, "true", None),
    ];
    let (_, alerts) = run(&script, 10.0);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn steady_growth_is_rss_growth_and_a_spike_is_not() {
    let mut steady = vec![existing(200, "grower", 100, Some("pts/3"))];
    for i in 1..=20 {
        steady.push(rss(i as f64 * 10.0, 200, 100 + i * 20, i as f64));
    }
    let (_, alerts) = run(&steady, 300.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::RssGrowth)]);
    let growth = alerts[0].verdict.growth.as_ref().unwrap();
    assert!(growth.slope_bytes_per_second > 1.9e6, "{growth:?}");
    assert_eq!(growth.idle, Some(false));

    let mut spike = vec![existing(200, "grower", 100, Some("pts/3"))];
    for i in 1..=20u64 {
        let mib = if i == 10 { 900 } else { 100 };
        spike.push(rss(i as f64 * 10.0, 200, mib, i as f64));
    }
    let (_, alerts) = run(&spike, 300.0);
    assert_eq!(raised(&alerts), []);
}

#[test]
fn growth_without_cpu_is_marked_idle() {
    let mut idle = vec![existing(200, "grower", 100, Some("pts/3"))];
    for i in 1..=20 {
        idle.push(rss(i as f64 * 10.0, 200, 100 + i * 20, 0.0));
    }
    let (_, alerts) = run(&idle, 300.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::RssGrowth)]);
    assert!(alerts[0].verdict.reason.to_string().contains("idle"));
}

#[test]
fn pid_reuse_starts_a_new_life() {
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        sigaction(1.001, 200, "nohup", Disposition::Ignore),
        // Its exit was lost; the pid comes back as an unrelated process.
        exec(50.0, 200, 100, "make", 100, Some("pts/3")),
    ];
    let mut reuse = script.to_vec();
    if let EventKind::Exec { started_ns, .. } = &mut reuse[3].kind {
        *started_ns = Some(at(49.9));
    }
    let (tracker, alerts) = run(&reuse, 60.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
    assert_eq!(
        resolved(&alerts),
        [(200, VerdictKind::HangupIgnored)],
        "the first life ended"
    );
    let p = tracker.process(200).unwrap();
    assert_eq!(p.comm, "make");
    assert_eq!(p.hangup, Disposition::Default, "nothing of the old life");
    assert!(p.verdicts.is_empty());
}

#[test]
fn a_snapshot_reports_yesterdays_orphans_at_once_marked_inferred() {
    let mut orphan = existing(400, "agent", 400, None);
    if let EventKind::Existing(Existing {
        ppid,
        reparented,
        from_terminal,
        hangup,
        ..
    }) = &mut orphan.kind
    {
        *ppid = 1;
        *reparented = true;
        *from_terminal = true;
        *hangup = Disposition::Ignore;
    }
    let (_, alerts) = run(&[orphan], 0.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (400, VerdictKind::Detached),
            (400, VerdictKind::HangupIgnored),
            (400, VerdictKind::Orphaned)
        ]
    );
    assert!(alerts.iter().all(|a| a.verdict.inferred));
    assert!(alerts[0].age_seconds >= 3600.0);
}

#[test]
fn a_snapshot_of_a_process_whose_session_leader_is_gone_is_terminal_lost() {
    let mut job = existing(400, "agent", 350, None);
    if let EventKind::Existing(Existing {
        from_terminal,
        session_leader_alive,
        ..
    }) = &mut job.kind
    {
        *from_terminal = true;
        *session_leader_alive = false;
    }
    let (_, alerts) = run(&[job], 0.0);
    assert_eq!(raised(&alerts), [(400, VerdictKind::TerminalLost)]);
}

#[test]
fn session_0_has_no_leader_to_lose() {
    // What init starts without setsid (a CI runner, say) lives in the kernel's session 0.
    let mut runner = existing(400, "runner", 0, None);
    if let EventKind::Existing(Existing {
        from_terminal,
        session_leader_alive,
        ..
    }) = &mut runner.kind
    {
        *from_terminal = true;
        *session_leader_alive = false;
    }
    let (_, alerts) = run(&[runner], 10.0);
    assert_eq!(raised(&alerts), []);
}

#[test]
fn a_child_on_a_terminal_of_its_own_loses_it_even_when_its_parent_lost_another() {
    let mut runner = existing(400, "runner", 350, None);
    if let EventKind::Existing(Existing {
        from_terminal,
        session_leader_alive,
        ..
    }) = &mut runner.kind
    {
        *from_terminal = true;
        *session_leader_alive = false;
    }
    let script = [
        runner,
        fork(1.0, 500, 400, "runner"),
        setsid(1.0001, 500, "runner", 350, None),
        event(
            1.0002,
            500,
            "runner",
            EventKind::AttachTty { sid: 500, fd: 0 },
        ),
        exec(1.0003, 500, 400, "sleep", 500, Some("pts/7")),
        sighup(5.0, 500, "sleep", Origin::Kernel, SignalResult::Ignored, 0),
    ];
    let (_, alerts) = run(&script, 30.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (400, VerdictKind::TerminalLost),
            (500, VerdictKind::HangupIgnored),
            (500, VerdictKind::TerminalLost),
        ]
    );
}

#[test]
fn services_without_a_terminal_are_not_sessions_when_everything_is_watched() {
    let mut service = existing(500, "daemon", 500, None);
    if let EventKind::Existing(Existing {
        ppid,
        reparented,
        hangup,
        ..
    }) = &mut service.kind
    {
        *ppid = 1;
        *reparented = true;
        *hangup = Disposition::Ignore;
    }
    let (tracker, alerts) = run(std::slice::from_ref(&service), 5.0);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(tracker.view(at(5.0)).processes.is_empty());

    // When the user names the process, it counts whatever its origin.
    let named = TrackerConfig {
        require_terminal: false,
        ..config()
    };
    let (_, alerts) = run_with(named, &[service], 5.0);
    let mut got = raised(&alerts);
    got.sort();
    assert_eq!(
        got,
        [
            (500, VerdictKind::HangupIgnored),
            (500, VerdictKind::Orphaned)
        ]
    );
}

#[test]
fn each_verdict_is_raised_once_per_process() {
    let script = [
        existing(200, "agent", 100, Some("pts/3")),
        sighup(1.0, 200, "agent", Origin::User, SignalResult::Ignored, 999),
        sighup(2.0, 200, "agent", Origin::User, SignalResult::Ignored, 999),
        sigaction(3.0, 200, "agent", Disposition::Ignore),
    ];
    let (_, alerts) = run(&script, 10.0);
    assert_eq!(raised(&alerts), [(200, VerdictKind::HangupIgnored)]);
}

#[test]
fn the_tracker_is_bounded() {
    let small = TrackerConfig {
        max_processes: 10,
        require_terminal: false,
        ..config()
    };
    let script: Vec<Event> = (0..50).map(|i| fork(1.0, 1000 + i, 1, "x")).collect();
    let (tracker, _) = run_with(small, &script, 2.0);
    assert_eq!(tracker.len(), 10);
    assert_eq!(tracker.dropped_processes(), 40);
}

#[test]
fn the_timeline_keeps_the_latest_events() {
    let mut script = vec![existing(200, "agent", 100, Some("pts/3"))];
    for i in 0..100 {
        script.push(sighup(
            i as f64,
            200,
            "agent",
            Origin::User,
            SignalResult::Delivered,
            9,
        ));
    }
    let (tracker, _) = run(&script, 100.0);
    let p = tracker.process(200).unwrap();
    assert_eq!(p.timeline.len(), process::TIMELINE_LEN);
    assert_eq!(p.timeline.back().unwrap().time_ns, at(99.0));
}

#[test]
fn a_flood_of_routine_signals_leaves_the_lifecycle_in_the_timeline() {
    // Bun signals its own threads with SIGPWR on every collection.
    let mut script = vec![existing(200, "claude", 100, Some("pts/3"))];
    script.push(event(
        1.0,
        200,
        "claude",
        EventKind::Setsid {
            ok: true,
            sid: Some(200),
            errno: None,
            old_sid: 100,
            old_tty: Some("pts/3".into()),
        },
    ));
    for i in 0..200 {
        let pwr = EventKind::Signal {
            signal: 30,
            signal_name: "SIGPWR".into(),
            origin: Origin::User,
            code: 0,
            result: SignalResult::Delivered,
            group: false,
            sender_pid: 200,
            sender_comm: "claude".into(),
        };
        script.push(event(2.0 + f64::from(i) * 0.01, 200, "claude", pwr));
    }
    let (tracker, _) = run(&script, 10.0);
    let timeline = &tracker.process(200).unwrap().timeline;
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds.len(), process::TIMELINE_LEN);
    assert_eq!(kinds[..2], ["existing", "setsid"], "{kinds:?}");
    assert_eq!(
        timeline.back().unwrap().time_ns,
        at(2.0 + 1.99),
        "the latest signal too"
    );
}

#[test]
fn a_parent_change_seen_in_proc_is_an_orphaning() {
    let script = [
        existing(300, "agent", 100, Some("pts/3")),
        event(
            5.0,
            300,
            "agent",
            EventKind::Reparented {
                old_ppid: 1000,
                ppid: 1,
            },
        ),
    ];
    let mut tracker = Tracker::new(config());
    tracker.apply(&script[0]);
    assert_eq!(tracker.unwatched_parents(), [(300, 1000)]);
    let (tracker, alerts) = run(&script, 6.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert!(
        alerts[0]
            .verdict
            .reason
            .to_string()
            .contains("reparented to pid 1")
    );
    assert_eq!(tracker.unwatched_parents(), []);
}

#[test]
fn sig_ign_set_before_the_exec_is_seen_at_the_exec() {
    // `nohup agent` when only `agent` is watched: nohup's sigaction happened unseen.
    let mut exec = exec(1.0, 300, 100, "agent", 100, Some("pts/3"));
    if let EventKind::Exec { hangup, .. } = &mut exec.kind {
        *hangup = Some(Disposition::Ignore);
    }
    let (_, alerts) = run(&[shell(), exec], 2.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::HangupIgnored)]);
    assert!(matches!(
        alerts[0].verdict.evidence[0].kind,
        EventKind::Exec { .. }
    ));
}

#[test]
fn setsid_cmd_from_a_shell_is_detached_when_only_cmd_is_watched() {
    // setsid(1) forked and called setsid unwatched; the source passes that on just before
    // the exec that makes the process watched.
    let mut exec = exec(1.01, 300, 1, "agent", 300, None);
    if let EventKind::Exec { started_ns, .. } = &mut exec.kind {
        *started_ns = Some(at(0.5));
    }
    let script = [setsid(1.0, 300, "setsid", 100, Some("pts/3")), exec];
    let (tracker, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Detached)]);
    assert_eq!(alerts[0].comm, "agent");
    assert_eq!(tracker.process(300).unwrap().started_ns, at(0.5));
}

#[test]
fn the_first_evidence_of_an_orphaning_stands() {
    // The parent's exit was seen; the /proc check a moment later sees the new parent too.
    let script = [
        shell(),
        fork(1.0, 200, 100, "bash"),
        fork(1.1, 300, 200, "agent"),
        exit(2.0, 200, "bash", None),
        event(
            2.05,
            300,
            "agent",
            EventKind::Reparented {
                old_ppid: 200,
                ppid: 1,
            },
        ),
    ];
    let (tracker, alerts) = run(&script, 5.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert!(matches!(
        alerts[0].verdict.evidence[0].kind,
        EventKind::Exit { .. }
    ));
    assert_eq!(tracker.process(300).unwrap().ppid, 1);
    assert!(
        !tracker
            .unwatched_parents()
            .iter()
            .any(|(pid, _)| *pid == 300)
    );
}

#[test]
fn each_process_counts_under_the_flag_that_brought_it_in() {
    let groups = crate::matching::Matcher::new(&["agent".into()], Some("serve"), &[]).unwrap();
    let grouped = TrackerConfig {
        groups,
        require_terminal: false,
        ..config()
    };
    let script = [
        existing(100, "agent", 100, Some("pts/3")),
        existing(150, "python3", 150, Some("pts/4")),
        fork(1.0, 200, 100, "agent"),
        exec(1.001, 200, 100, "rg", 100, Some("pts/3")),
        fork(2.0, 300, 200, "rg"),
        exec(2.001, 300, 200, "agent", 100, Some("pts/3")),
        exec(3.0, 400, 999, "stray", 400, None),
    ];
    let (tracker, _) = run_with(grouped, &script, 5.0);
    let view = tracker.view(at(5.0));
    let group = |pid: u32| {
        let p = view.processes.iter().find(|p| p.pid == pid).unwrap();
        p.group.clone()
    };
    assert_eq!(group(100), "agent");
    assert_eq!(
        group(200),
        "agent",
        "a child counts under its parent's flag"
    );
    assert_eq!(group(300), "agent");
    assert_eq!(group(150), "other");
    assert_eq!(group(400), "other");
    let mut serving = existing(160, "python3", 160, None);
    if let EventKind::Existing(Existing { cmdline, .. }) = &mut serving.kind {
        *cmdline = "python3 -m http.server".into();
    }
    let (tracker, _) = run_with(
        TrackerConfig {
            groups: crate::matching::Matcher::new(&[], Some("server"), &[]).unwrap(),
            require_terminal: false,
            ..config()
        },
        &[serving],
        1.0,
    );
    assert_eq!(tracker.view(at(1.0)).processes[0].group, "cmdline");
}

#[test]
fn adopted_by_init_before_its_exec_is_orphaned_when_its_session_says_so() {
    // `sh -c 'agent &'` on a terminal, only agent watched: sh is gone when agent execs.
    let script = [shell(), exec(1.0, 300, 1, "agent", 100, Some("pts/3"))];
    let (_, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert!(alerts[0].verdict.reason.to_string().contains("session 100"));

    // Init's own children: in init's session, or leading their own.
    let named = TrackerConfig {
        require_terminal: false,
        ..config()
    };
    let script = [
        exec(1.0, 400, 1, "getty", 0, None),
        exec(1.0, 401, 1, "daemon", 401, None),
        exec(1.0, 402, 1, "service", 1, None),
    ];
    let (_, alerts) = run_with(named, &script, 2.0);
    assert_eq!(raised(&alerts), []);
}

#[test]
fn a_fork_seen_says_whether_init_adopted_it_before_its_exec_whatever_the_session() {
    let forked_by = |mut e: Event, by: u32| {
        if let EventKind::Exec { forked_by, .. } = &mut e.kind {
            *forked_by = Some(by);
        }
        e
    };
    let named = TrackerConfig {
        require_terminal: false,
        ..config()
    };
    // A session hupwatch cannot see into (0 when it runs under a container's init) tells
    // nothing; the forker does: sh (250) was gone when agent execed.
    let script = [
        forked_by(exec(1.0, 300, 1, "agent", 0, None), 250),
        forked_by(exec(1.0, 301, 1, "service", 0, None), 1),
        forked_by(exec(1.0, 302, 1, "child", 100, None), 1),
    ];
    let (_, alerts) = run_with(named, &script, 2.0);
    assert_eq!(raised(&alerts), [(300, VerdictKind::Orphaned)]);
    assert_eq!(
        alerts[0].verdict.reason.to_string(),
        "its parent (250) exited before it started; pid 1 adopted it"
    );
}

#[test]
fn the_metrics_view_counts_what_the_full_view_shows() {
    // /metrics is built straight from the tracker; it must agree with the sessions view.
    let mut script = vec![shell()];
    for pid in 400..410u32 {
        script.push(existing(pid, "worker", 100, Some("pts/3")));
    }
    for (n, pid) in (300..304u32).enumerate() {
        let mut detached = exec(1.0 + n as f64 * 0.01, pid, 100, "agent", pid, None);
        if let EventKind::Exec { parent_tty, .. } = &mut detached.kind {
            *parent_tty = Some("pts/3".into());
        }
        script.push(detached);
    }
    let (t, alerts) = run(&script, 2.0);
    assert_eq!(raised(&alerts).len(), 4, "four detached agents");
    let now = at(2.0);
    for limit in [0, 2, 50] {
        let direct = t.metrics_view(now, limit);
        assert_eq!(direct.flagged.len(), limit.min(4));
        let mut from_view = t.view(now).metrics(limit);
        let mut direct = direct;
        for m in [&mut direct, &mut from_view] {
            m.groups.sort_by(|a, b| a.group.cmp(&b.group));
            m.with_verdict.sort();
        }
        assert_eq!(direct, from_view, "limit {limit}");
    }
}

mod origin;
mod resync;
mod trees;
