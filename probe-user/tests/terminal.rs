//! As root: what a person sees on a real terminal (tmux), and quiet where it should be.
//! `hupwatch run` in a tmux pane prints one readable line per alert (JSON with --json);
//! colour only without NO_COLOR; `--ignore tmux` keeps a tmux server from raising
//! anything while `hupwatch sessions` still lists it, marked ignored.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use harness::Hupwatch;
use processes::{named_program, orphan};
use pty::Pty;
use support::{HUPWATCH, kill, scratch_dir, unique};

/// A tmux server of its own, on a 220x50 window, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// `name` tells this test's servers apart; tests run in parallel in one process.
    fn start(name: &str, command: &str, env: &[(&str, &str)]) -> Self {
        let tmux = Self {
            socket: unique(&format!("hw-{name}-")),
        };
        let mut new = Command::new("tmux");
        new.args(["-L", &tmux.socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "220", "-y", "50"])
            .arg(command)
            .env("TERM", "xterm-256color");
        for (key, value) in env {
            new.env(key, value);
        }
        assert!(new.status().unwrap().success(), "tmux new-session failed");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap()
    }

    /// What the pane shows; with `escapes`, its colours as escape sequences too.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-J"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.run(&args).stdout).into_owned()
    }

    /// Waits up to 15 s for the pane to show a line for which `pred` holds; that line.
    fn wait_for_line(&self, what: &str, escapes: bool, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen(escapes);
            if let Some(line) = screen.lines().find(|l| pred(l)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} on the screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// `hupwatch run` in a tmux pane, watching a sleeper with a unique name that is orphaned
/// once it runs; the pane and the sleeper's pid.
fn orphan_on_screen(test: &str, flags: &str, env: &[(&str, &str)]) -> (Tmux, u32) {
    let dir = scratch_dir(test);
    let name = unique(&format!("t{}", &test[..3]));
    let sleeper = named_program(&dir, &name, "sleep");
    let command = format!(
        "{HUPWATCH} run --listen 127.0.0.1:0 --match {name} {flags} 2>{}; sleep 60",
        dir.join("stderr").display()
    );
    let tmux = Tmux::start(test, &command, env);
    let stderr = dir.join("stderr");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&stderr).is_ok_and(|s| s.contains("hupwatch: ready")) {
        assert!(Instant::now() < deadline, "hupwatch never got ready");
        thread::sleep(Duration::from_millis(50));
    }
    let pid = orphan(&sleeper, "1000");
    (tmux, pid)
}

#[test]
fn on_a_terminal_each_alert_is_one_readable_line() {
    support::require_root();
    let (tmux, pid) = orphan_on_screen("lines", "", &[("NO_COLOR", "")]);
    let line = tmux.wait_for_line("an orphaned line", false, |l| {
        l.contains("orphaned") && l.contains(&pid.to_string())
    });
    assert!(!line.contains('{'), "not JSON: {line}");
    for part in ["raised", "orphaned", "up ", "its parent", " ["] {
        assert!(line.contains(part), "{part:?} missing: {line}");
    }
    assert!(
        line.contains("KiB") || line.contains("MiB"),
        "its memory: {line}"
    );
    let coloured = tmux.wait_for_line("the line in colour", true, |l| l.contains("orphaned"));
    assert!(
        coloured.contains('\x1b'),
        "colour on a terminal: {coloured:?}"
    );
    kill(pid, libc::SIGKILL);
    tmux.wait_for_line("its resolution", false, |l| {
        l.contains("resolved") && l.contains(&pid.to_string())
    });
}

#[test]
fn no_color_and_json_are_honoured_on_a_terminal() {
    support::require_root();
    let (tmux, pid) = orphan_on_screen("nocolor", "", &[("NO_COLOR", "1")]);
    let line = tmux.wait_for_line("an orphaned line", true, |l| l.contains("orphaned"));
    assert!(!line.contains('\x1b'), "NO_COLOR: {line:?}");
    kill(pid, libc::SIGKILL);
    drop(tmux);

    let (tmux, pid) = orphan_on_screen("json", "--json", &[]);
    let line = tmux.wait_for_line("a JSON alert", false, |l| l.contains("\"orphaned\""));
    let alert: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(alert["pid"], pid);
    kill(pid, libc::SIGKILL);
}

#[test]
fn an_ignored_tmux_server_raises_nothing_and_is_listed_as_ignored() {
    let me = std::process::id().to_string();
    let hupwatch = Hupwatch::run(&["--pid", &me, "--hup-grace", "1s", "--ignore", "tmux"]);
    let socket = unique("hw-ign-");
    let pty = Pty::open();
    let status = pty
        .spawn(
            Command::new("tmux")
                .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
                .arg("sleep 1000")
                .env("TERM", "xterm"),
        )
        .wait()
        .unwrap();
    assert!(status.success());
    let server: u32 = String::from_utf8_lossy(
        &Command::new("tmux")
            .args(["-L", &socket, "display-message", "-p", "#{pid}"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    // Without --ignore it is detached within 80 ms (verdicts.rs); give it 3 s.
    thread::sleep(Duration::from_secs(3));
    let raised: Vec<_> = hupwatch
        .events_of(server)
        .into_iter()
        .filter(|a| a["status"] == "raised")
        .collect();
    assert!(
        raised.is_empty(),
        "the ignored tmux server raised {raised:?}"
    );
    let sessions = Command::new(HUPWATCH)
        .args(["sessions", "--from", &hupwatch.address()])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&sessions.stdout);
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with(&server.to_string()))
        .unwrap_or_else(|| panic!("the tmux server is listed: {table}"));
    assert!(row.contains("(ignored)"), "{row}");
    Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .status()
        .unwrap();
    drop(pty);
    hupwatch.stop();
}
