//! `hupwatch top` on a real terminal: tmux runs a shell in a 200x50 pane, the test types
//! the command and keys into it and reads the pane as a person would see it. The process
//! shown is an orphaned copy of `sleep` with a name unique to the test, started here.
//! Runs as root: the in-process watcher loads the eBPF programs.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    path::Path,
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use harness::Hupwatch;
use processes::{named_program, orphan, running, stat_fields};
use support::{HUPWATCH, require_root, scaled, scratch_dir, unique};

/// How long a test waits for the screen to show something.
fn patience() -> Duration {
    scaled(Duration::from_secs(10))
}

/// The first look waits for the watcher to load its programs as well.
fn first_patience() -> Duration {
    scaled(Duration::from_secs(20))
}

/// The shell's prompt (a space follows it, which capture-pane trims).
const PROMPT: &str = "top-test$";

/// A tmux server of the test's own with one shell in a 200x50 pane.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(test: &str) -> Self {
        let socket = format!("hupwatch-top-{}-{test}", std::process::id());
        let tmux = Self { socket };
        let shell = format!("env PS1='{PROMPT} ' sh -i");
        let out = tmux.run(&["new-session", "-d", "-x", "200", "-y", "50", &shell]);
        assert!(out.status.success(), "tmux starts: {out:?}");
        tmux.wait_for("the shell prompt", patience(), |s| s.contains(PROMPT));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            // Run under sudo, hupwatch would end only the sudo user's processes; the orphan
            // is root's. TMUX: a test run inside tmux must not talk to that server.
            .env_remove("SUDO_UID")
            .env_remove("TMUX")
            .args(args)
            .output()
            .expect("tmux runs (apt-get install tmux)")
    }

    /// Types `line` into the shell and presses Enter.
    fn type_line(&self, line: &str) {
        assert!(self.run(&["send-keys", "-l", line]).status.success());
        self.keys(&["Enter"]);
    }

    /// Presses keys, in tmux's names (`Enter`, `Escape`, `Down`, `q`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys {keys:?}: {out:?}");
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p"]);
        assert!(out.status.success(), "capture-pane: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `pred` holds on it; fails with the screen after `limit`.
    fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what} within {limit:?}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pid of the program the shell is running in the pane.
    fn foreground_pid(&self, comm: &str) -> u32 {
        let out = self.run(&["display-message", "-p", "#{pane_pid}"]);
        let shell: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("tmux names the pane's pid");
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| {
                stat_fields(pid).is_some_and(|f| f[1] == shell.to_string())
                    && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .is_ok_and(|c| c.trim() == comm)
            })
            .unwrap_or_else(|| panic!("no {comm} is running in the pane"))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A copy of sleep named `name`, started in the background of a shell that exits at once,
/// so it is orphaned; killed when dropped.
struct Orphan {
    pid: u32,
    name: String,
}

impl Orphan {
    fn start(dir: &Path, name: &str) -> Self {
        let program = named_program(dir, name, "sleep");
        let pid = orphan(&program, "600");
        // orphan() returned once the shell exited, which reparented its child.
        let ppid = stat_fields(pid).map(|f| f[1].clone());
        assert!(
            ppid.is_some_and(|p| p != std::process::id().to_string()),
            "{pid} is not an orphan"
        );
        Self {
            pid,
            name: name.to_string(),
        }
    }

    fn running(&self) -> bool {
        running(self.pid)
    }
}

impl Drop for Orphan {
    fn drop(&mut self) {
        // Only while the pid is still this orphan's: a test may have ended it.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid));
        if self.running() && comm.is_ok_and(|c| c.trim() == self.name) {
            support::kill(self.pid, libc::SIGKILL);
        }
    }
}

/// The table's row of `pid`, when it shows one.
fn row_of<'a>(screen: &'a str, pid: u32, name: &str) -> Option<&'a str> {
    let pid = pid.to_string();
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(pid.as_str()) && l.contains(name))
}

/// The screen is the shell's again: the header is gone, and the line discipline is back
/// (a command typed runs, which it would not in raw mode).
fn assert_terminal_given_back(tmux: &Tmux) {
    tmux.wait_for("the shell again, without top's header", patience(), |s| {
        !s.contains("sort:") && s.trim_end().ends_with(PROMPT)
    });
    tmux.type_line("echo back-$((40 + 2))");
    tmux.wait_for("the shell running a command", patience(), |s| {
        s.lines().any(|l| l.trim() == "back-42")
    });
}

#[test]
fn in_process_top_shows_sorts_filters_details_ends_and_quits() {
    require_root();
    let dir = scratch_dir("top-in-process");
    let name = unique("topin");
    let orphan = Orphan::start(&dir, &name);
    let tmux = Tmux::start("in-process");
    tmux.type_line(&format!("{HUPWATCH} top --match {name}"));

    let screen = tmux.wait_for("the orphan's row with its verdict", first_patience(), |s| {
        row_of(s, orphan.pid, &name).is_some_and(|r| r.contains("orphaned"))
    });
    assert!(screen.contains("sort: memory"), "{screen}");
    assert!(screen.contains("in-process, unix:/"), "{screen}");
    assert!(
        screen.contains("source: ebpf"),
        "as root it traces: {screen}"
    );
    assert!(
        screen.contains("shown 1 of 1"),
        "--match shows only it: {screen}"
    );
    // The orphan sleeps: nothing grows, so the header says what is left.
    assert!(
        screen.contains("memory: ") && screen.contains(" available"),
        "the machine's memory in the header: {screen}"
    );

    for (key, sort) in [("g", "growth"), ("c", "cpu"), ("a", "age"), ("m", "memory")] {
        tmux.keys(&[key]);
        tmux.wait_for(&format!("the sort indicator at {sort}"), patience(), |s| {
            s.contains(&format!("sort: {sort}"))
        });
    }

    tmux.keys(&["/"]);
    tmux.keys(&["-l", "nomatch"]);
    tmux.wait_for("the filter hiding the orphan", patience(), |s| {
        s.contains("nothing matches the filter") && row_of(s, orphan.pid, &name).is_none()
    });
    tmux.keys(&["Escape"]);
    tmux.wait_for(
        "the orphan back once the filter is cleared",
        patience(),
        |s| row_of(s, orphan.pid, &name).is_some(),
    );
    tmux.keys(&["/"]);
    tmux.keys(&["-l", "orphan"]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(
        "the filter by verdict keeping the orphan",
        patience(),
        |s| s.contains("filter: orphan") && row_of(s, orphan.pid, &name).is_some(),
    );

    tmux.keys(&["Enter"]);
    let detail = tmux.wait_for("the detail view with the reason", patience(), |s| {
        s.contains("reason: ") && s.contains("reparented")
    });
    assert!(detail.contains("verdicts and timeline"), "{detail}");
    assert!(
        detail.contains(&format!("{} {name}", orphan.pid)),
        "{detail}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("the table again", patience(), |s| {
        s.contains("LAST MINUTE") && !s.contains("verdicts and timeline")
    });

    tmux.keys(&["k"]);
    tmux.wait_for("the question", patience(), |s| {
        s.contains(&format!("end {} {name}? y/n", orphan.pid))
    });
    tmux.keys(&["y"]);
    let deadline = Instant::now() + patience();
    while orphan.running() {
        assert!(
            Instant::now() < deadline,
            "k then y did not end {}:\n{}",
            orphan.pid,
            tmux.screen()
        );
        thread::sleep(Duration::from_millis(20));
    }
    tmux.wait_for("the outcome in the status line", patience(), |s| {
        s.contains(&format!(
            "ended {} {name}: signal SIGTERM, exited",
            orphan.pid
        ))
    });

    tmux.keys(&["q"]);
    assert_terminal_given_back(&tmux);
    let after = tmux.screen();
    assert!(
        after.contains("\"action\":\"exited\""),
        "the end's log lines are printed when top ends: {after}"
    );
}

#[test]
fn top_from_a_running_hupwatch_run_shows_its_sessions_and_sigterm_gives_the_terminal_back() {
    require_root();
    let dir = scratch_dir("top-from");
    let name = unique("topfr");
    let orphan = Orphan::start(&dir, &name);
    let run = Hupwatch::run(&["--match", &name]);
    let url = run.api_url();
    let tmux = Tmux::start("from");
    tmux.type_line(&format!("{HUPWATCH} top --from {url}"));

    let screen = tmux.wait_for("the orphan's row from the daemon", patience(), |s| {
        row_of(s, orphan.pid, &name).is_some_and(|r| r.contains("orphaned"))
    });
    assert!(screen.contains(&format!("({url})")), "{screen}");
    assert!(screen.contains("source: ebpf"), "{screen}");

    tmux.keys(&["Enter"]);
    tmux.wait_for("the detail view with the reason", patience(), |s| {
        s.contains("reason: ") && s.contains("reparented")
    });
    tmux.keys(&["Escape"]);
    // Waited for: an Escape followed at once by a key reads as Alt and that key.
    tmux.wait_for("the table again", patience(), |s| {
        s.contains("LAST MINUTE") && !s.contains("verdicts and timeline")
    });
    tmux.keys(&["k"]);
    tmux.wait_for("the question", patience(), |s| s.contains("? y/n"));
    tmux.keys(&["n"]);
    tmux.wait_for("the answer", patience(), |s| {
        s.contains(&format!("not ended: {} {name}", orphan.pid))
    });
    assert!(orphan.running(), "n ended it");

    // A narrower terminal: top redraws to fit it.
    let out = tmux.run(&["resize-window", "-x", "120", "-y", "30"]);
    assert!(out.status.success(), "resize-window: {out:?}");
    // tmux itself cuts the old screen to size; the footer on the new last line (the 30th,
    // was the 50th) is top's redraw.
    tmux.wait_for("the table redrawn to 120x30", patience(), |s| {
        s.lines()
            .nth(29)
            .is_some_and(|l| l.starts_with("not ended:"))
            && s.contains("sort: memory")
            && row_of(s, orphan.pid, &name).is_some()
    });

    let top = tmux.foreground_pid("hupwatch");
    support::kill(top, libc::SIGTERM);
    assert_terminal_given_back(&tmux);
    assert!(orphan.running());
    run.stop();
}

#[test]
fn a_top_whose_terminal_hangs_up_leaves_with_it() {
    require_root();
    let name = unique("tophup");
    let tmux = Tmux::start("hangup");
    tmux.type_line(&format!("{HUPWATCH} top --match {name}"));
    tmux.wait_for("top's header", first_patience(), |s| {
        s.contains("sort: memory")
    });
    let top = tmux.foreground_pid("hupwatch");
    // The terminal goes away: top must not outlive it (it once spun in a key-reading
    // thread it waited for).
    let _ = tmux.run(&["kill-server"]);
    let deadline = std::time::Instant::now() + patience();
    while stat_fields(top).is_some_and(|f| f[0] != "Z") {
        assert!(
            std::time::Instant::now() < deadline,
            "top {top} is still running after its terminal hung up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
