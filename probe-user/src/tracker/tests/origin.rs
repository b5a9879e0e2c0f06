//! Where sessions came from, as the tracker keeps it: a process started later with `TERM`
//! is a session as one running at start is, a fork shares its parent's origin, an exec
//! that could not be read keeps it, idle time comes from the CPU readings, and the view
//! adds the sessions up per program.
use super::*;

/// An exec with what the source read of where it was started.
fn exec_from(
    t: f64,
    pid: u32,
    ppid: u32,
    comm: &str,
    terminal: Option<&str>,
    cwd: Option<&str>,
    from_terminal: bool,
) -> Event {
    let mut e = exec(t, pid, ppid, comm, pid, None);
    if let EventKind::Exec {
        terminal_program,
        cwd: dir,
        from_terminal: from,
        ..
    } = &mut e.kind
    {
        *terminal_program = terminal.map(Into::into);
        *dir = cwd.map(Into::into);
        *from = from_terminal;
    }
    e
}

/// A service started by init, with nothing that says it came from a terminal.
fn service() -> Event {
    let mut e = existing(500, "launcher", 500, None);
    if let EventKind::Existing(Existing { ppid, .. }) = &mut e.kind {
        *ppid = 1;
    }
    e
}

fn session(t: &Tracker, pid: u32) -> Option<ProcessView> {
    t.view(at(100.0))
        .processes
        .into_iter()
        .find(|p| p.pid == pid)
}

#[test]
fn a_process_started_later_with_term_is_a_session_whatever_its_parent() {
    let script = [
        service(),
        fork(1.0, 501, 500, "launcher"),
        exec_from(1.0, 501, 500, "claude", None, Some("/home/a/web"), true),
        fork(2.0, 502, 500, "launcher"),
        exec_from(2.0, 502, 500, "cron-job", None, None, false),
    ];
    let (t, _) = run(&script, 3.0);
    assert!(session(&t, 500).is_none(), "the launcher is no session");
    let claude = session(&t, 501).expect("TERM in its environment makes it one");
    assert_eq!(claude.cwd.as_deref(), Some("/home/a/web"));
    assert!(session(&t, 502).is_none(), "without TERM it is not one");
}

#[test]
fn a_fork_shares_its_parents_origin_and_an_unread_exec_keeps_it() {
    let script = [
        shell(),
        exec_from(
            1.0,
            100,
            99,
            "bash",
            Some("vscode"),
            Some("/home/a/web"),
            true,
        ),
        fork(2.0, 101, 100, "bash"),
        // Gone before the source could read it: nothing known of its own.
        exec_from(2.0, 101, 100, "node", None, None, false),
        fork(3.0, 102, 100, "bash"),
        exec_from(3.0, 102, 100, "tmux", Some("tmux"), Some("/srv"), true),
    ];
    let (t, _) = run(&script, 4.0);
    let origin = |pid| {
        let p = session(&t, pid).unwrap();
        (p.terminal_program, p.cwd)
    };
    let vscode = (Some("vscode".to_string()), Some("/home/a/web".to_string()));
    assert_eq!(origin(100), vscode);
    assert_eq!(origin(101), vscode);
    assert_eq!(origin(102), (Some("tmux".into()), Some("/srv".into())));
}

#[test]
fn idle_time_comes_from_the_cpu_readings() {
    let config = TrackerConfig {
        cpu_read_ns: 10 * S,
        ..config()
    };
    let script = [
        shell(),
        rss(0.0, 100, 10, 1.0),
        rss(10.0, 100, 10, 3.0),
        rss(20.0, 100, 10, 3.0),
    ];
    let (t, _) = run_with(config.clone(), &script[..3], 10.0);
    assert_eq!(session(&t, 100).unwrap().idle_seconds, Some(0.0), "busy");
    let (t, _) = run_with(config.clone(), &script, 20.0);
    let idle = |t: &Tracker, now: f64| {
        t.view(at(now))
            .processes
            .into_iter()
            .find(|p| p.pid == 100)
            .and_then(|p| p.idle_seconds)
    };
    assert_eq!(
        idle(&t, 20.0),
        Some(10.0),
        "idle since the reading before the still one"
    );
    assert_eq!(idle(&t, 3600.0), Some(3590.0), "silence is no CPU used");
    let (t, _) = run_with(config, &[shell()], 1.0);
    assert_eq!(idle(&t, 1.0), None, "unknown before two readings");
}

#[test]
fn the_sessions_are_added_up_per_program() {
    let script = [
        shell(),
        fork(1.0, 101, 100, "bash"),
        exec_from(1.0, 101, 100, "claude", Some("vscode"), Some("/w"), true),
        rss(1.5, 101, 300, 0.0),
        fork(2.0, 102, 100, "bash"),
        exec_from(2.0, 102, 100, "claude", Some("iTerm.app"), Some("/w"), true),
        rss(2.5, 102, 200, 0.0),
    ];
    let (t, _) = run(&script, 3.0);
    let view = t.view(at(3.0));
    assert_eq!(view.group_by, GroupBy::Name);
    let claude = &view.groups[0];
    assert_eq!(claude.name, "claude");
    assert_eq!((claude.sessions, claude.memory_bytes), (2, 500 << 20));
    assert_eq!(claude.terminal_programs.len(), 2);
    let metrics = t.metrics_view(at(3.0), 10);
    assert_eq!(metrics.programs, view.groups, "the metrics count the same");
}

/// A late `origin` event (its parent was gone before its own origin could be read) fills
/// what the fork inherited as unknown, and never overwrites what is known.
#[test]
fn a_late_origin_fills_only_what_is_unknown() {
    let late = |t: f64, pid: u32, terminal: &str, cwd: &str| Event {
        kind: EventKind::Origin {
            terminal_program: Some(terminal.into()),
            cwd: Some(cwd.into()),
        },
        time_ns: at(t),
        pid,
        comm: "tmux: server".into(),
    };
    let script = [
        service(),
        fork(1.0, 501, 500, "launcher"),
        // Its origin could not be read: it was gone.
        exec_from(1.0, 501, 500, "tmux", None, None, true),
        fork(1.1, 502, 501, "tmux"),
        late(1.2, 502, "vscode", "/home/a/web"),
        fork(2.0, 503, 500, "launcher"),
        exec_from(
            2.0,
            503,
            500,
            "claude",
            Some("iTerm.app"),
            Some("/home/a/api"),
            true,
        ),
        late(2.1, 503, "vscode", "/elsewhere"),
    ];
    let (t, _) = run(&script, 3.0);
    let server = session(&t, 502).expect("a fork of a session is one");
    assert_eq!(server.terminal_program.as_deref(), Some("vscode"));
    assert_eq!(server.cwd.as_deref(), Some("/home/a/web"));
    let claude = session(&t, 503).unwrap();
    assert_eq!(claude.terminal_program.as_deref(), Some("iTerm.app"));
    assert_eq!(claude.cwd.as_deref(), Some("/home/a/api"));
}
