//! Session trees from scripts of events: a command typed at a shell roots a tree, its
//! descendants stay in it through setsid, reparenting and the root's exit, and a shell
//! that leads a terminal of its own (a tmux pane) starts afresh.
use super::*;

fn reparented(t: f64, pid: u32, comm: &str, ppid: u32) -> Event {
    event(
        t,
        pid,
        comm,
        EventKind::Reparented {
            ppid,
            old_ppid: 200,
        },
    )
}

/// The shell on pts/1 (pid 100, its session's leader), and `claude` typed there, which
/// starts npm, which starts a node server that calls setsid; then claude is killed.
fn agent_session() -> Vec<Event> {
    vec![
        existing(100, "bash", 100, Some("pts/1")),
        fork(1.0, 200, 100, "bash"),
        exec(1.1, 200, 100, "claude", 100, Some("pts/1")),
        fork(2.0, 300, 200, "claude"),
        exec(2.1, 300, 200, "npm", 100, Some("pts/1")),
        fork(3.0, 400, 300, "npm"),
        exec(3.1, 400, 300, "node", 100, Some("pts/1")),
        setsid(3.2, 400, "node", 100, Some("pts/1")),
        exit(5.0, 200, "claude", Some(9)),
        reparented(5.0, 300, "npm", 1),
    ]
}

#[test]
fn a_typed_command_roots_a_tree_that_keeps_its_members_after_it_dies() {
    let (tracker, _) = run(&agent_session(), 6.0);
    let view = tracker.view(at(6.0));
    assert_eq!(view.trees.len(), 1, "{:?}", view.trees);
    let tree = &view.trees[0];
    assert_eq!((tree.root_pid, tree.root_alive), (200, false));
    assert_eq!(tree.root_comm, "claude", "named after exec, not as forked");
    let mut members = tree.members.clone();
    members.sort_unstable();
    assert_eq!(
        members,
        vec![300, 400],
        "npm and the node that called setsid"
    );
    let shell = view.processes.iter().find(|p| p.pid == 100).unwrap();
    assert_eq!(
        shell.tree, None,
        "the shell is the terminal, not a session of it"
    );
}

#[test]
fn a_shell_leading_a_terminal_of_its_own_starts_new_trees() {
    let mut script = agent_session();
    // The node server starts a pane shell on a new terminal, and a command is typed there.
    script.extend([
        fork(6.0, 500, 400, "node"),
        exec(6.1, 500, 400, "bash", 500, Some("pts/7")),
        fork(7.0, 600, 500, "bash"),
        exec(7.1, 600, 500, "vim", 500, Some("pts/7")),
    ]);
    let (tracker, _) = run(&script, 8.0);
    let view = tracker.view(at(8.0));
    let tree_of = |pid: u32| {
        view.processes
            .iter()
            .find(|p| p.pid == pid)
            .and_then(|p| p.tree.as_ref())
            .map(|t| t.root_pid)
    };
    assert_eq!(tree_of(500), None);
    assert_eq!(tree_of(600), Some(600));
    assert_eq!(tree_of(400), Some(200));
}

#[test]
fn a_start_up_scan_puts_children_in_their_parents_tree() {
    let mut cli = existing(210, "claude", 100, Some("pts/1"));
    let mut server = existing(310, "node", 310, None);
    if let EventKind::Existing(e) = &mut cli.kind {
        e.ppid = 100;
    }
    if let EventKind::Existing(e) = &mut server.kind {
        e.ppid = 210;
        e.from_terminal = true;
    }
    let script = [existing(100, "bash", 100, Some("pts/1")), cli, server];
    let (tracker, _) = run(&script, 1.0);
    let view = tracker.view(at(1.0));
    assert_eq!(view.trees.len(), 1, "{:?}", view.trees);
    let mut members = view.trees[0].members.clone();
    members.sort_unstable();
    assert_eq!((view.trees[0].root_pid, members), (210, vec![210, 310]));
    assert_eq!(view.trees[0].memory_bytes, 2 * (10 << 20));
}

/// Two servers found already orphaned (their CLI and its wrapper gone before hupwatch
/// looked) that carry the same agent session id are one tree; a third with another id,
/// and a command typed at a live shell with the first id, are not in it.
#[test]
fn orphans_found_at_start_join_by_their_session_marker() {
    let orphan = |pid: u32, marker: &str| {
        let mut e = existing(pid, "node", pid, None);
        if let EventKind::Existing(x) = &mut e.kind {
            x.ppid = 1;
            x.from_terminal = true;
            x.session_marker = Some(format!("CLAUDE_CODE_SESSION_ID={marker}"));
        }
        e
    };
    let mut typed = existing(700, "vim", 100, Some("pts/1"));
    if let EventKind::Existing(x) = &mut typed.kind {
        x.ppid = 100;
        x.session_marker = Some("CLAUDE_CODE_SESSION_ID=a".into());
    }
    let script = [
        existing(100, "bash", 100, Some("pts/1")),
        orphan(300, "a"),
        orphan(301, "a"),
        orphan(302, "b"),
        typed,
    ];
    let (tracker, _) = run(&script, 1.0);
    let view = tracker.view(at(1.0));
    let root = |pid: u32| {
        view.processes
            .iter()
            .find(|p| p.pid == pid)
            .and_then(|p| p.tree.as_ref())
            .map(|t| t.root_pid)
    };
    assert_eq!((root(300), root(301)), (Some(300), Some(300)));
    assert_eq!(root(302), Some(302));
    assert_eq!(
        root(700),
        Some(700),
        "typed at a live shell: a tree of its own"
    );
}
