//! Session trees with real processes: an agent CLI stand-in (node) typed at a shell on a
//! pseudo-terminal starts a wrapper, which starts two servers, one of them in a session of
//! its own (setsid); all of them catch SIGHUP, as agent CLIs and MCP servers do. The
//! terminal hangs up and the CLI is killed: `sessions --tree` shows one tree rooted at the
//! dead CLI holding the wrapper and both servers, with their memory added up, from the
//! eBPF daemon, from a recording (`sessions --replay`) and from the polling source; and
//! `reap --tree --yes` leaves nothing of it alive. Runs as root.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use harness::Hupwatch;
use processes::{named_program, orphan_script, running, wait_for_cmdline};
use pty::Pty;
use serde_json::Value;
use support::{HUPWATCH, event_timeout, kill, require_root, scratch_dir, unique, which};

/// Each script holds some memory, stays through SIGHUP and prints its pid.
const STAY: &str = "process.on('SIGHUP', () => {}); \
                    globalThis.held = Buffer.alloc(16 << 20, 1); \
                    setInterval(() => {}, 1000);";

fn write_scripts(dir: &Path) {
    let node = which("node");
    let node = node.display();
    let d = dir.display();
    std::fs::write(
        dir.join("cli.js"),
        format!(
            "{STAY} require('child_process').spawn('{node}', ['{d}/wrapper.js'], {{ stdio: 'ignore' }});"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("wrapper.js"),
        format!(
            "{STAY} const cp = require('child_process'); \
             cp.spawn('{node}', ['{d}/server.js', 'own-session'], {{ stdio: 'ignore', detached: true }}); \
             cp.spawn('{node}', ['{d}/server.js', 'in-session'], {{ stdio: 'ignore' }});"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("server.js"), STAY).unwrap();
}

struct Session {
    cli: u32,
    wrapper: u32,
    own_session: u32,
    in_session: u32,
}

impl Drop for Session {
    fn drop(&mut self) {
        for pid in [self.cli, self.wrapper, self.own_session, self.in_session] {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Types `node cli.js` at a shell on a fresh terminal, waits for the whole tree, hangs
/// the terminal up and kills the CLI.
fn left_behind_session(dir: &Path) -> Session {
    let d = dir.display();
    let terminal = Pty::open();
    // `; true` keeps the shell alive above the CLI, as an interactive one is.
    let mut shell = terminal.spawn(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{} {d}/cli.js; true", which("node").display())),
    );
    let session = Session {
        cli: wait_for_cmdline(&format!("{d}/cli.js")),
        wrapper: wait_for_cmdline(&format!("{d}/wrapper.js")),
        own_session: wait_for_cmdline(&format!("{d}/server.js own-session")),
        in_session: wait_for_cmdline(&format!("{d}/server.js in-session")),
    };
    // Let each allocate its buffer before the hangup.
    std::thread::sleep(Duration::from_millis(500));
    terminal.hang_up();
    let _ = shell.wait();
    kill(session.cli, libc::SIGKILL);
    session
}

/// The one tree of `document` rooted at `root`, checked: root gone, the three members,
/// and its memory the sum of theirs.
fn check_tree(document: &Value, session: &Session, source: &str) {
    let trees = document["trees"].as_array().expect("a trees list");
    let tree = trees
        .iter()
        .find(|t| t["root_pid"] == session.cli)
        .unwrap_or_else(|| panic!("{source}: no tree rooted at the CLI: {trees:?}"));
    assert_eq!(tree["root_alive"], false, "{source}: {tree}");
    assert_eq!(tree["root_comm"], "node", "{source}: {tree}");
    let mut members: Vec<u64> = tree["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_u64().unwrap())
        .collect();
    members.sort_unstable();
    let mut wanted = vec![
        u64::from(session.wrapper),
        u64::from(session.own_session),
        u64::from(session.in_session),
    ];
    wanted.sort_unstable();
    assert_eq!(members, wanted, "{source}: {tree}");
    // By the measure the tree says it used: PSS + SwapPss, or RSS + swap.
    let (main, swap) = match tree["memory_measure"].as_str() {
        Some("pss") => ("pss_bytes", "swap_pss_bytes"),
        Some("rss") => ("rss_bytes", "swap_bytes"),
        other => panic!("{source}: a Linux tree's measure is pss or rss, not {other:?}"),
    };
    let summed: u64 = document["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(&p["pid"].as_u64().unwrap()))
        .map(|p| p[main].as_u64().unwrap_or(0) + p[swap].as_u64().unwrap_or(0))
        .sum();
    let total = tree["memory_bytes"].as_u64().unwrap();
    assert!(
        total >= 3 * (16 << 20),
        "{source}: three 16 MiB buffers at least: {tree}"
    );
    assert!(
        total == summed,
        "{source}: the tree's memory ({total}) is its members' ({summed}): {tree}"
    );
}

fn wait_for_tree(hupwatch: &Hupwatch, session: &Session) -> Value {
    let deadline = Instant::now() + event_timeout();
    loop {
        let document = hupwatch.sessions_json();
        // All three members, each read after it allocated its buffer.
        let ready = document["trees"].as_array().is_some_and(|trees| {
            trees.iter().any(|t| {
                t["root_pid"] == session.cli
                    && t["members"].as_array().unwrap().len() == 3
                    && t["memory_bytes"].as_u64().unwrap_or(0) >= 3 * (16 << 20)
            })
        });
        if ready {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "no tree of three under {}: {}",
            session.cli,
            document["trees"]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_left_behind_cli_session_is_one_tree_live_replayed_and_polled_and_reap_tree_ends_it_all() {
    require_root();
    let tag = unique("tree");
    let dir = scratch_dir(&tag);
    write_scripts(&dir);
    let d = dir.display().to_string();
    let socket = dir.join("api.sock").display().to_string();
    let ebpf = Hupwatch::run(&[
        "--hup-grace",
        "1s",
        "--match-cmdline",
        &d,
        "--api-socket",
        &socket,
    ]);
    let recording = Hupwatch::start(&["--match-cmdline", &d]);
    let polled = Hupwatch::run(&[
        "--source",
        "proc",
        "--poll-interval",
        "100ms",
        "--hup-grace",
        "1s",
        "--match-cmdline",
        &d,
    ]);
    let session = left_behind_session(&dir);

    let live = wait_for_tree(&ebpf, &session);
    check_tree(&live, &session, "ebpf");
    let shown = Command::new(HUPWATCH)
        .args(["sessions", "--tree", "--from", &ebpf.api_url()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.contains(&format!("node (pid {}, exited)  3 processes", session.cli)),
        "sessions --tree:\n{text}"
    );

    // The tree's members counted under its root program (node: the CLI stand-in).
    let metrics = ebpf.http_get("/metrics");
    assert!(
        metrics.contains("hupwatch_tree_root_sessions{root_program=\"node\"} 3"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("tree_root"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    check_tree(&wait_for_tree(&polled, &session), &session, "proc");

    let file = dir.join("recording.jsonl");
    recording.save_events(&file);
    let replayed = Command::new(HUPWATCH)
        .args(["sessions", "--json", "--replay"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(replayed.status.success(), "{replayed:?}");
    let document: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    check_tree(&document, &session, "replay");
    recording.stop();
    polled.stop();

    // The tree, ended whole, as root's timer would: through root's socket.
    let reaped = Command::new(HUPWATCH)
        .args([
            "reap",
            "--tree",
            "--yes",
            "--grace",
            "2s",
            "--from",
            &ebpf.socket_url(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&reaped.stdout).to_string()
        + &String::from_utf8_lossy(&reaped.stderr);
    assert!(reaped.status.success(), "reap --tree: {said}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = || {
        [session.wrapper, session.own_session, session.in_session]
            .into_iter()
            .filter(|&pid| running(pid))
            .collect::<Vec<_>>()
    };
    while !alive().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alive().is_empty(), "left alive: {:?}\n{said}", alive());
    ebpf.stop();
}

/// Processes of one agent session that were orphaned before anyone looked (their CLI and
/// wrappers gone, as after a crash) still make one tree: they carry the same session id
/// in their environment. One of another session is a tree of its own. A one-shot look,
/// as after a reboot of hupwatch.
#[test]
fn orphans_of_one_agent_session_found_at_start_are_one_tree() {
    let tag = unique("mark");
    let dir = scratch_dir(&tag);
    let program = named_program(&dir, &tag, "sleep");
    let started = |session: &str, seconds: &str| {
        orphan_script(
            Command::new("sh")
                .env("TERM", "xterm-256color")
                .env("CLAUDE_CODE_SESSION_ID", session),
            &format!("'{}' {seconds}", program.display()),
        )
    };
    let a1 = started("8a718ed2-a", "301");
    let a2 = started("8a718ed2-a", "302");
    let b = started("8a718ed2-b", "303");
    let out = Command::new(HUPWATCH)
        .args(["sessions", "--json", "--match", &tag])
        .output()
        .unwrap();
    for pid in [a1, a2, b] {
        kill(pid, libc::SIGKILL);
    }
    assert!(out.status.success(), "{out:?}");
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = |pid: u32| {
        document["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .map(|p| p["tree"]["root_pid"].clone())
    };
    assert_eq!(root(a1), Some(Value::from(a1)), "{document}");
    assert_eq!(
        root(a2),
        Some(Value::from(a1)),
        "same session id: {document}"
    );
    assert_eq!(root(b), Some(Value::from(b)), "another session: {document}");
}
