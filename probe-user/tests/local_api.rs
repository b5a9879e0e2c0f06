//! The local sessions API and the reaper that trusts it, against real processes of two
//! users and real impostors: each user sees only their own processes, through the socket
//! and through loopback TCP; a socket or port another user serves cannot make root's reap
//! end anything; the timer's command spares the session keepers Debian packages and a
//! `nohup` job, and still ends a session its closed terminal left behind. Runs as root.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    os::unix::fs::{PermissionsExt, chown},
    path::Path,
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, raised, sessions_json};
use processes::{NOBODY, PYTHON, as_user, named_program, orphan, orphan_script, running};
use serde_json::Value;
use support::{HUPWATCH, event_timeout, free_port, require_root, scratch_dir, unique, which};

/// The pids a sessions document lists.
fn pids(document: &Value) -> Vec<u32> {
    document["processes"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["pid"].as_u64())
                .map(|p| p as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// `hupwatch sessions --json --from FROM` as `uid` (root when None); its document.
fn sessions_from(from: &str, uid: Option<u32>) -> Value {
    let mut command = match uid {
        Some(uid) => as_user(uid, HUPWATCH),
        None => Command::new(HUPWATCH),
    };
    let out = command
        .current_dir("/")
        .args(["sessions", "--json", "--from", from])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sessions --from {from} as {uid:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until root's view through `from` lists every one of `wanted`.
fn wait_listed(from: &str, wanted: &[u32]) {
    let deadline = Instant::now() + event_timeout();
    loop {
        let listed = pids(&sessions_from(from, None));
        if wanted.iter().all(|p| listed.contains(p)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{wanted:?} never listed: {listed:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

struct Killed(Vec<u32>);

impl Drop for Killed {
    fn drop(&mut self) {
        for &pid in &self.0 {
            support::kill(pid, libc::SIGKILL);
        }
    }
}

#[test]
fn each_user_sees_only_their_own_processes_through_the_socket_and_loopback() {
    require_root();
    let dir = scratch_dir("local-api-view");
    let name = unique("lapi");
    let program = named_program(&dir, &name, "sleep");
    // nobody must be able to run it from there.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mine = orphan(&program, "601");
    let theirs = orphan_script(
        &mut as_user(NOBODY, "sh"),
        &format!("'{}' 602", program.display()),
    );
    let _cleanup = Killed(vec![mine, theirs]);
    let socket = dir.join("api.sock").display().to_string();
    let hupwatch = Hupwatch::run(&[
        "--source",
        "proc",
        "--poll-interval",
        "250ms",
        "--match",
        &name,
        "--api-socket",
        &socket,
    ]);
    let unix = hupwatch.socket_url();
    assert_eq!(unix, format!("unix:{socket}"));
    let tcp = hupwatch.api_url();
    wait_listed(&unix, &[mine, theirs]);

    for from in [&unix, &tcp] {
        let root = pids(&sessions_from(from, None));
        assert!(
            root.contains(&mine) && root.contains(&theirs),
            "{from}: {root:?}"
        );
        let nobody = sessions_from(from, Some(NOBODY));
        let seen = pids(&nobody);
        assert!(
            seen.contains(&theirs),
            "{from}: nobody's own process is missing: {seen:?}"
        );
        assert!(
            !seen.contains(&mine),
            "{from}: nobody sees root's process: {nobody}"
        );
        let text = nobody.to_string();
        assert!(
            !text.contains(" 601"),
            "{from}: root's command line leaked: {text}"
        );
        // Whom the OOM killer would pick: root sees the machine's top; nobody only theirs.
        let would_kill = |doc: &Value| -> Vec<u64> {
            doc["memory"]["killer"]["would_kill"]
                .as_array()
                .map(|v| v.iter().filter_map(|c| c["pid"].as_u64()).collect())
                .unwrap_or_default()
        };
        let root_view = sessions_from(from, None);
        assert!(
            !would_kill(&root_view).is_empty(),
            "{from}: {}",
            root_view["memory"]
        );
        for pid in would_kill(&nobody) {
            let owner = std::fs::metadata(format!("/proc/{pid}"))
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap_or(NOBODY);
            assert_eq!(owner, NOBODY, "{from}: nobody is shown {pid}, not theirs");
        }
    }
    hupwatch.stop();
    assert!(
        !Path::new(&socket).exists(),
        "the socket outlived its daemon"
    );
}

/// A daemon that gave up root (`--user nobody`) still sees and serves root's processes,
/// and root's clients still believe its socket (it was bound as root, before the switch);
/// `--api-group` lets that group's members see everything, as root does.
#[test]
fn a_daemon_run_as_its_own_user_serves_root_and_its_api_group_sees_everything() {
    require_root();
    let dir = scratch_dir("local-api-group");
    let name = unique("lgrp");
    let program = named_program(&dir, &name, "sleep");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mine = orphan(&program, "611");
    let _cleanup = Killed(vec![mine]);
    for (group, nobody_sees_root) in [(Some("nogroup"), true), (None, false)] {
        let socket = dir.join("api.sock").display().to_string();
        let mut args = vec![
            "--source",
            "proc",
            "--poll-interval",
            "250ms",
            "--match",
            &name,
            "--api-socket",
            &socket,
            "--user",
            "nobody",
        ];
        if let Some(group) = group {
            args.extend(["--api-group", group]);
        }
        let hupwatch = Hupwatch::run(&args);
        let ready = hupwatch.wait_for_stderr("the ready line", |l| l.contains("ready:"));
        assert!(ready.contains("running as user nobody"), "{ready}");
        let status = std::fs::read_to_string(format!("/proc/{}/status", hupwatch.pid())).unwrap();
        assert!(
            status.lines().any(|l| l.starts_with("Uid:\t65534\t")),
            "{status}"
        );
        let unix = hupwatch.socket_url();
        // Root's client: the socket's server was root when it listened.
        wait_listed(&unix, &[mine]);
        for from in [&unix, &hupwatch.api_url()] {
            let seen = pids(&sessions_from(from, Some(NOBODY)));
            assert_eq!(
                seen.contains(&mine),
                nobody_sees_root,
                "{from} with --api-group {group:?}: nobody (in nogroup) sees {seen:?}"
            );
        }
        hupwatch.stop();
        // nobody cannot unlink root's socket; the next daemon replaces it.
        let _ = std::fs::remove_file(&socket);
    }
}

/// A one-shot look's document about `victim`, as a real hupwatch writes it: what an
/// impostor would serve so that root's reap ends `victim`.
fn bait(victim_name: &str) -> String {
    let document = sessions_json(&["--match", victim_name]);
    assert!(!pids(&document).is_empty(), "{document}");
    document.to_string()
}

/// A server run by nobody that answers every GET with `document`: on the Unix socket
/// `socket` (in a folder nobody owns) or on loopback `port`.
fn impostor(dir: &Path, document: &str, socket: Option<&Path>, port: u16) -> Child {
    let served = dir.join("bait.json");
    std::fs::write(&served, document).unwrap();
    let script = r#"
import http.server, socketserver, sys
body = open(sys.argv[1], 'rb').read()
class Bait(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
    def address_string(self):
        return 'local'
if sys.argv[2] == 'unix':
    class Server(socketserver.UnixStreamServer):
        pass
    server = Server(sys.argv[3], Bait)
else:
    server = http.server.HTTPServer(('127.0.0.1', int(sys.argv[3])), Bait)
print('ready', flush=True)
server.serve_forever()
"#;
    let (kind, at) = match socket {
        Some(path) => ("unix", path.display().to_string()),
        None => ("tcp", port.to_string()),
    };
    let mut child = as_user(NOBODY, PYTHON)
        .current_dir("/")
        .args(["-c", script, served.to_str().unwrap(), kind, &at])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "the impostor did not start");
    child
}

fn reap_as_root(args: &[&str]) -> Output {
    Command::new(HUPWATCH)
        .arg("reap")
        .args(args)
        .env_remove("SUDO_UID")
        .output()
        .unwrap()
}

#[test]
fn another_users_socket_or_port_cannot_make_root_end_anything() {
    require_root();
    let dir = scratch_dir("local-api-impostor");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let name = unique("lbait");
    let victim = orphan(&named_program(&dir, &name, "sleep"), "603");
    let _cleanup = Killed(vec![victim]);
    let document = bait(&name);

    // nobody's own folder, where nobody may put a socket.
    let theirs = dir.join("nobody");
    std::fs::create_dir(&theirs).unwrap();
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = theirs.join("api.sock");
    let mut on_socket = impostor(&dir, &document, Some(&socket), 0);
    let from = format!("unix:{}", socket.display());
    let out = reap_as_root(&["--from", &from, "--all-users", "--yes"]);
    on_socket.kill().unwrap();
    on_socket.wait().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("served by uid 65534"), "{said}");
    assert!(
        running(victim),
        "root's reap ended {victim} on an impostor's word"
    );

    let port = free_port();
    let mut on_port = impostor(&dir, &document, None, port);
    let url = format!("http://127.0.0.1:{port}");
    let out = reap_as_root(&["--from", &url, "--all-users", "--yes"]);
    on_port.kill().unwrap();
    on_port.wait().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("as root, reap --yes acts only on"), "{said}");
    assert!(
        running(victim),
        "root's reap ended {victim} on a squatter's word"
    );
}

/// The reap timer's command with its --from pointed at `socket`, without its --idle (the
/// test cannot wait two hours).
fn timers_command(from: &str) -> Vec<String> {
    let unit = include_str!("../../deploy/hupwatch-reap.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut args: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let at = args.iter().position(|a| a == "--from").unwrap();
    args[at + 1] = from.to_string();
    let idle = args.iter().position(|a| a == "--idle").unwrap();
    args.drain(idle..idle + 2);
    args
}

/// The lowest pid whose command line contains `needle` and that is running (keepers fork
/// away from the shell that started them; the first of a chain is the server).
fn find(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (text.contains(needle) && running(pid)).then_some(pid)
        })
}

#[test]
fn the_timers_command_spares_session_keepers_and_nohup_but_ends_a_left_behind_session() {
    require_root();
    let dir = scratch_dir("local-api-keepers");
    let tag = unique("keep");
    let socket = dir.join("api.sock").display().to_string();
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::run(&["--pid", &me, "--hup-grace", "1s", "--api-socket", &socket]);
    let from = hupwatch.socket_url();
    let d = dir.display();
    // One terminal (script's pty) starts them the way a user would, then closes: the
    // keepers detach, the nohup'd server ignores the hangup, the agent stand-in catches it
    // and stays: the session this project exists for.
    let session = format!(
        "tmux -S {d}/tmux new-session -d 'sleep 700'; \
         screen -dmS {tag} sleep 701; \
         dtach -n {d}/dtach sleep 702; \
         mosh-server new -p 60000:60999 -- sh -c 'sleep 703; : {tag}-mosh' >/dev/null 2>&1; \
         nohup {PYTHON} -c 'import time; time.sleep(704)' {tag}-nohup >/dev/null 2>&1 & \
         {PYTHON} -c 'import signal, time; signal.signal(signal.SIGHUP, lambda *a: None); time.sleep(705)' {tag}-agent & \
         sleep 1"
    );
    let status = Command::new(which("script"))
        .args(["-qec", &session, "/dev/null"])
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let wanted = [
        ("tmux", format!("tmux -S {d}/tmux")),
        ("screen", format!("SCREEN -dmS {tag}")),
        ("dtach", format!("dtach -n {d}/dtach")),
        (
            "mosh-server",
            format!("mosh-server new -p 60000:60999 -- sh -c sleep 703; : {tag}-mosh"),
        ),
        ("nohup", format!("{tag}-nohup")),
        ("agent", format!("{tag}-agent")),
    ];
    let found: Vec<(&str, u32)> = wanted
        .iter()
        .map(|(what, needle)| {
            (
                *what,
                find(needle).unwrap_or_else(|| panic!("no {what} running")),
            )
        })
        .collect();
    let tmux_server = found[0].1;
    let _cleanup = Killed(found.iter().map(|(_, pid)| *pid).collect());
    let agent = found[5].1;
    let nohup = found[4].1;
    hupwatch.wait_for("the agent's terminal_lost", raised("terminal_lost", agent));
    hupwatch.wait_for(
        "the nohup job's terminal_lost",
        raised("terminal_lost", nohup),
    );
    // The keepers' server processes are the ones judged: each outlived the shell that
    // started it (orphaned) and left its terminal (detached).
    let servers: Vec<(&str, u32)> = found[..4].to_vec();
    for (what, pid) in &servers {
        hupwatch.wait_for(&format!("{what} orphaned"), raised("orphaned", *pid));
    }

    let out = Command::new(HUPWATCH)
        .args(timers_command(&from))
        .env_remove("SUDO_UID")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{log}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(agent) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !running(agent),
        "the left-behind session survived: {said}{log}"
    );
    for (what, pid) in servers.iter().chain([("nohup", nohup)].iter()) {
        assert!(running(*pid), "{what} ({pid}) was ended: {said}{log}");
        assert!(
            said.lines()
                .any(|l| l.contains(&format!("left alone {pid} "))),
            "{what} ({pid}) is not said to be left alone: {said}"
        );
    }
    assert!(said.contains("a session keeper"), "{said}");
    assert!(said.contains("SIG_IGN before the hangup"), "{said}");
    hupwatch.stop();
    let _ = Command::new("tmux")
        .args(["-S", &format!("{d}/tmux"), "kill-server"])
        .status();
    let _ = Command::new("screen")
        .args(["-S", &tag, "-X", "quit"])
        .status();
    support::kill(tmux_server, libc::SIGKILL);
}
