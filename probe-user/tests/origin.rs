//! Where each session came from, end to end, as root: processes started on a pseudo-terminal
//! with the environment VSCode's integrated terminal gives its shells, in a real tmux
//! session (TMUX set by tmux itself), and with `TERM` but no terminal, each in a directory of
//! its own. `hupwatch run` (eBPF, and `--source proc`) and `hupwatch sessions` must name
//! the program hosting each one's terminal and its directory, count a process started
//! later with `TERM` as a session as one running at start is, and add the sessions up per
//! program; `hupwatch sessions` as nobody reads its own processes' origins and not root's;
//! `hupwatch reap` selects by terminal program, directory and idle time.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, session_of, sessions_as_nobody, sessions_json};
use processes::{NOBODY, as_user, named_program, orphan_script, wait_for_exec};
use pty::Pty;
use serde_json::Value;
use support::{HUPWATCH, event_timeout, kill, scratch_dir, unique};

/// The environment VSCode's integrated terminal gives the shells it starts, and nothing
/// of the test runner's (which may itself run in tmux or VSCode).
fn vscode_env(command: &mut Command) -> &mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", "/root")
        .env("TERM", "xterm-256color")
        .env("COLORTERM", "truecolor")
        .env("TERM_PROGRAM", "vscode")
        .env("TERM_PROGRAM_VERSION", "1.96.2")
        .env(
            "VSCODE_GIT_IPC_HANDLE",
            "/run/user/0/vscode-git-5f2a9c.sock",
        )
        .env("VSCODE_INJECTION", "1")
}

/// An environment with nothing that tells where it was started.
fn bare_env(command: &mut Command) -> &mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
}

fn dir_in(root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // Canonical, as the OS reports a working directory.
    std::fs::canonicalize(dir).unwrap()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Waits, with the tests' patience, until `find` gets something out of a fresh look.
fn wait_until<T>(
    what: &str,
    mut look: impl FnMut() -> Value,
    find: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + event_timeout();
    loop {
        let seen = look();
        if let Some(found) = find(&seen) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never showed; the last look:\n{seen:#}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn api_sessions(hupwatch: &Hupwatch) -> Value {
    serde_json::from_str(&hupwatch.http_get("/api/sessions")).expect("the API answers JSON")
}

fn origin(process: &Value) -> (Value, Value) {
    (process["terminal_program"].clone(), process["cwd"].clone())
}

/// Every group's figures are its members' added up, and every session is in one group:
/// its memory by the measure it names (PSS + SwapPss once every member has a PSS reading,
/// else RSS + swap; the footprint on macOS), and its RSS total whatever the measure.
fn assert_groups_add_up(view: &Value) {
    let processes = view["processes"].as_array().unwrap();
    let groups = view["groups"].as_array().unwrap();
    assert_eq!(view["group_by"], "name");
    let program = |comm: &str| match comm.split_once(':') {
        Some((name, _)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => comm.to_string(),
    };
    // (sessions, by RSS or the footprint, by PSS, flagged) per program.
    let mut expected: HashMap<String, (u64, u64, u64, u64)> = HashMap::new();
    for p in processes {
        let memory = p["footprint_bytes"]
            .as_u64()
            .or_else(|| Some(p["rss_bytes"].as_u64()? + p["swap_bytes"].as_u64().unwrap_or(0)));
        let pss = p["pss_bytes"]
            .as_u64()
            .map(|pss| pss + p["swap_pss_bytes"].as_u64().unwrap_or(0));
        let entry = expected
            .entry(program(p["comm"].as_str().unwrap()))
            .or_default();
        entry.0 += 1;
        entry.1 += memory.unwrap_or(0);
        if memory.is_some() {
            entry.2 += pss.unwrap_or(0);
        }
        entry.3 += u64::from(!p["verdicts"].as_array().unwrap().is_empty());
    }
    assert_eq!(groups.len(), expected.len(), "one group per program");
    let mut last_memory = u64::MAX;
    for g in groups {
        let name = g["name"].as_str().unwrap();
        let (sessions, by_rss, by_pss, flagged) = expected[name];
        let memory = match g["memory_measure"].as_str().unwrap() {
            "pss" => by_pss,
            "rss" | "footprint" => by_rss,
            other => panic!("a measure {other:?}: {g}"),
        };
        if g["memory_measure"] != "footprint" {
            assert_eq!(g["rss_memory_bytes"].as_u64(), Some(by_rss), "group {name}");
        }
        assert_eq!(
            (
                g["sessions"].as_u64().unwrap(),
                g["memory_bytes"].as_u64().unwrap(),
                g["flagged"].as_u64().unwrap()
            ),
            (sessions, memory, flagged),
            "group {name}"
        );
        let from: u64 = g["terminal_programs"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert!(from <= sessions, "{g}");
        let memory = g["memory_bytes"].as_u64().unwrap();
        assert!(memory <= last_memory, "largest first: {g}");
        last_memory = memory;
    }
}

/// The processes of one scenario, ended however the test ends.
#[derive(Default)]
struct Subjects {
    children: Vec<Child>,
    pids: Vec<u32>,
    tmux_sockets: Vec<String>,
}

impl Drop for Subjects {
    fn drop(&mut self) {
        for socket in &self.tmux_sockets {
            let _ = Command::new("tmux")
                .args(["-L", socket, "kill-server"])
                .output();
        }
        for &pid in &self.pids {
            kill(pid, libc::SIGKILL);
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A shell with no terminal and nothing in its environment that says where it was
/// started: not a session. It starts `program` with `TERM` in its environment (as a
/// terminal's child would have it) when told to, and says the pid.
struct Launcher {
    child: Child,
    stdin: ChildStdin,
}

impl Launcher {
    fn start(program: &Path, dir: &Path) -> Self {
        let script = format!(
            "read go; TERM=xterm-256color '{}' 1000 </dev/null >/dev/null 2>&1 & echo $!; wait",
            program.display()
        );
        let mut command = Command::new("sh");
        bare_env(&mut command)
            .args(["-c", &script])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // No controlling terminal, whatever the test runner has.
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::setsid();
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        Self { child, stdin }
    }

    /// Starts the program now; its pid.
    fn go(&mut self) -> u32 {
        writeln!(self.stdin, "go").unwrap();
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse().expect("the launcher says the pid")
    }
}

/// A tmux server started from VSCode's terminal (its environment), with a window running
/// `program` in `dir`; the pids of the server and of the program.
fn tmux_window(subjects: &mut Subjects, program: &Path, dir: &Path) -> (u32, u32) {
    let socket = unique("hw-origin-");
    subjects.tmux_sockets.push(socket.clone());
    let tmux = |args: &[&str]| -> Output {
        Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let pty = Pty::open();
    let window = format!("exec '{}' 1000", program.display());
    let mut client = Command::new("tmux");
    vscode_env(&mut client).args([
        "-L",
        &socket,
        "-f",
        "/dev/null",
        "new-session",
        "-d",
        "-c",
        text(dir),
        &window,
    ]);
    let status = pty.spawn(&mut client).wait().unwrap();
    assert!(status.success(), "tmux new-session -d failed");
    let pid_of = |format: &str| -> u32 {
        let out = tmux(&["display-message", "-p", format]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let server = pid_of("#{pid}");
    let pane = pid_of("#{pane_pid}");
    wait_for_exec(pane, program.file_name().unwrap().to_str().unwrap());
    (server, pane)
}

/// One scenario under `hupwatch run` with `source` and no matching flag (every process
/// watched, sessions by lineage): a VSCode terminal's process, a tmux pane's, and one
/// started after hupwatch with `TERM` and no terminal by a parent that is no session.
fn origins_under(source: &str) {
    let dir = scratch_dir(&format!("origin-{source}"));
    let [vscode_dir, tmux_dir, term_dir] = ["web", "api", "batch"].map(|d| dir_in(&dir, d));
    let names = ["ovs", "otm", "otr"].map(|p| unique(&format!("{p}{}", &source[..1])));
    let [vscode_program, tmux_program, term_program] =
        [0, 1, 2].map(|i| named_program(&dir, &names[i], "sleep"));
    let mut subjects = Subjects::default();

    // Running before hupwatch: no terminal, no TERM: not a session.
    let mut launcher = Launcher::start(&term_program, &term_dir);
    subjects.pids.push(launcher.child.id());
    let hupwatch = Hupwatch::run(&["--source", source, "--poll-interval", "200ms"]);

    let pty = Pty::open();
    let mut command = Command::new(&vscode_program);
    vscode_env(&mut command)
        .arg("1000")
        .current_dir(&vscode_dir);
    let in_vscode = pty.spawn(&mut command);
    let vscode_pid = in_vscode.id();
    subjects.children.push(in_vscode);
    let (server, pane) = tmux_window(&mut subjects, &tmux_program, &tmux_dir);
    let with_term = launcher.go();
    subjects.pids.push(with_term);

    let pids = [vscode_pid, pane, with_term, server];
    let view = wait_until(
        "the four sessions with their origins",
        || api_sessions(&hupwatch),
        |view| {
            let all = pids
                .iter()
                .all(|&pid| session_of(view, pid).is_some_and(|p| !p["cwd"].is_null()));
            all.then(|| view.clone())
        },
    );
    let of = |pid| session_of(&view, pid).unwrap();
    assert_eq!(
        origin(&of(vscode_pid)),
        (Value::from("vscode"), Value::from(text(&vscode_dir)))
    );
    assert_eq!(
        origin(&of(pane)),
        (Value::from("tmux"), Value::from(text(&tmux_dir))),
        "tmux's own word in its pane, not the VSCode its server came from"
    );
    assert_eq!(
        of(server)["terminal_program"],
        "vscode",
        "the server was started in VSCode's terminal"
    );
    assert_eq!(of(with_term)["cwd"], text(&term_dir));
    assert_eq!(of(with_term)["tty"], Value::Null);
    assert!(
        session_of(&view, launcher.child.id()).is_none(),
        "the launcher is no session, so its child is one by its own environment"
    );
    assert_groups_add_up(&view);
    let group = |name: &str| -> Value {
        view["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no group {name}: {view:#}"))
    };
    assert_eq!(
        group(&names[0])["terminal_programs"],
        serde_json::json!({"vscode": 1})
    );
    assert_eq!(
        group(&names[1])["terminal_programs"],
        serde_json::json!({"tmux": 1})
    );
    assert!(
        view["memory"]["ram_bytes"]
            .as_u64()
            .is_some_and(|total| total > 0)
    );

    // The same through `hupwatch sessions --from`, and from a one-shot look, which counts
    // the process with TERM as a session too.
    let from = hupwatch.sessions_json();
    assert_eq!(origin(&session_of(&from, pane).unwrap()), origin(&of(pane)));
    let once = sessions_json(&[]);
    for pid in [vscode_pid, pane, with_term] {
        let seen =
            session_of(&once, pid).unwrap_or_else(|| panic!("{pid} not in the one-shot look"));
        assert_eq!(origin(&seen), origin(&of(pid)), "{pid}");
    }
    assert!(session_of(&once, launcher.child.id()).is_none());
    assert_groups_add_up(&once);
    hupwatch.stop();
}

#[test]
fn run_names_each_sessions_terminal_program_and_directory() {
    origins_under("ebpf");
}

#[test]
fn the_proc_source_names_them_too() {
    origins_under("proc");
}

#[test]
fn sessions_groups_by_program_directory_or_terminal_program() {
    let dir = scratch_dir("origin-groups");
    let [web, api] = ["web", "api"].map(|d| dir_in(&dir, d));
    let name = unique("ogr");
    let program = named_program(&dir, &name, "sleep");
    let mut subjects = Subjects::default();
    // Held open until the end: closing one hangs its terminal up.
    let mut ptys = Vec::new();
    for (cwd, terminal) in [(&web, "vscode"), (&web, "iTerm.app"), (&api, "vscode")] {
        let pty = Pty::open();
        let mut command = Command::new(&program);
        vscode_env(&mut command)
            .env("TERM_PROGRAM", terminal)
            .arg("1000")
            .current_dir(cwd);
        subjects.children.push(pty.spawn(&mut command));
        ptys.push(pty);
    }
    for child in &subjects.children {
        wait_for_exec(child.id(), &name);
    }
    let by_name = sessions_json(&["--match", &name]);
    assert_eq!(by_name["groups"][0]["name"], name.as_str());
    assert_eq!(by_name["groups"][0]["sessions"], 3);
    assert_eq!(
        by_name["groups"][0]["terminal_programs"],
        serde_json::json!({"vscode": 2, "iTerm.app": 1})
    );
    assert_groups_add_up(&by_name);
    let by_cwd = sessions_json(&["--match", &name, "--group-by", "cwd"]);
    assert_eq!(by_cwd["group_by"], "cwd");
    let sessions_in = |view: &Value, group: &str| -> Value {
        view["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == group)
            .map_or(Value::Null, |g| g["sessions"].clone())
    };
    assert_eq!(sessions_in(&by_cwd, text(&web)), 2);
    assert_eq!(sessions_in(&by_cwd, text(&api)), 1);
    let by_terminal = sessions_json(&["--match", &name, "--group-by", "terminal_program"]);
    assert_eq!(sessions_in(&by_terminal, "vscode"), 2);
    assert_eq!(sessions_in(&by_terminal, "iTerm.app"), 1);

    // The table: where each came from, and the totals at the end.
    let out = Command::new(HUPWATCH)
        .args(["sessions", "--match", &name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("FROM") && header.contains("IDLE"),
        "{table}"
    );
    // Directories are cut from the left to their last whole components.
    assert!(table.lines().any(|l| l.contains("vscode …/api")), "{table}");
    let totals = table
        .lines()
        .skip_while(|l| *l != "by program:")
        .nth(1)
        .unwrap_or_else(|| panic!("no totals in\n{table}"));
    assert!(
        totals.starts_with(&name)
            && totals.contains("3 sessions")
            && totals.contains("% of RAM")
            && totals.ends_with("vscode 2, iTerm.app 1"),
        "{totals}"
    );
    let bad = Command::new(HUPWATCH)
        .args(["sessions", "--group-by", "user"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("name, cwd, terminal_program"));
}

#[test]
fn sessions_as_nobody_reads_its_own_processes_origins_and_not_roots() {
    let dir = scratch_dir("origin-nobody");
    let [own_dir, root_dir] = ["own", "root"].map(|d| dir_in(&dir, d));
    let [own_name, root_name] = ["ono", "onr"].map(unique);
    let mut subjects = Subjects::default();
    let mut own = as_user(NOBODY, named_program(&dir, &own_name, "sleep"));
    vscode_env(&mut own).arg("1000").current_dir(&own_dir);
    let pty = Pty::open();
    subjects.children.push(pty.spawn(&mut own));
    // Root's, orphaned: its ancestors are init alone.
    let root_program = named_program(&dir, &root_name, "sleep");
    let mut launch = Command::new("sh");
    vscode_env(&mut launch).current_dir(&root_dir);
    let root_pid = orphan_script(&mut launch, &format!("'{}' 1000", root_program.display()));
    subjects.pids.push(root_pid);
    wait_for_exec(subjects.children[0].id(), &own_name);
    wait_for_exec(root_pid, &root_name);

    let view = sessions_as_nobody(&["--match", &own_name, "--match", &root_name]);
    let own = session_of(&view, subjects.children[0].id()).unwrap_or_else(|| panic!("{view:#}"));
    assert_eq!(
        origin(&own),
        (Value::from("vscode"), Value::from(text(&own_dir)))
    );
    let theirs = session_of(&view, root_pid).unwrap_or_else(|| panic!("{view:#}"));
    assert_eq!(
        theirs["cwd"],
        Value::Null,
        "root's directory is not nobody's to read"
    );
    let parent = std::fs::read_to_string(format!("/proc/{root_pid}/stat")).unwrap();
    let ppid: u32 = parent
        .rsplit_once(") ")
        .unwrap()
        .1
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    if ppid == 1 {
        assert_eq!(
            theirs["terminal_program"],
            Value::Null,
            "environment unreadable, no ancestors"
        );
    } else {
        assert_ne!(
            theirs["terminal_program"], "vscode",
            "its environment is not nobody's to read"
        );
    }
    assert_groups_add_up(&view);
}

/// Starts `program` in the background of a shell that exits at once (an orphan), in `dir`
/// with `terminal` as TERM_PROGRAM (None: TERM only); its pid.
fn orphan(program: &Path, dir: &Path, terminal: Option<&str>) -> u32 {
    let mut command = Command::new("sh");
    vscode_env(&mut command);
    match terminal {
        Some(terminal) => command.env("TERM_PROGRAM", terminal),
        None => command.env_remove("TERM_PROGRAM"),
    };
    command
        .env_remove("VSCODE_GIT_IPC_HANDLE")
        .env_remove("VSCODE_INJECTION")
        .current_dir(dir);
    let pid = orphan_script(&mut command, &format!("'{}' 600", program.display()));
    wait_for_exec(pid, program.file_name().unwrap().to_str().unwrap());
    pid
}

/// The pids a `hupwatch reap` dry run lists, of those in `among`.
fn listed(out: &Output, among: &[u32]) -> Vec<u32> {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut pids: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .filter(|pid| among.contains(pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// `hupwatch reap ARGS` in `dir`, as root itself (not the user who ran sudo), whose
/// processes these are.
fn reap(args: &[&str], dir: &Path) -> Output {
    Command::new(HUPWATCH)
        .arg("reap")
        .args(args)
        .current_dir(dir)
        .env_remove("SUDO_UID")
        .output()
        .unwrap()
}

#[test]
fn reap_selects_by_terminal_program_and_directory() {
    let dir = scratch_dir("origin-reap");
    let [web, web_src, web2, api] = ["web", "web/src", "web2", "api"].map(|d| dir_in(&dir, d));
    let name = unique("orp");
    let program = named_program(&dir, &name, "sleep");
    let mut subjects = Subjects::default();
    let a = orphan(&program, &web, Some("vscode"));
    let b = orphan(&program, &web_src, Some("vscode"));
    let c = orphan(&program, &web2, Some("iTerm.app"));
    let d = orphan(&program, &api, None);
    subjects.pids.extend([a, b, c, d]);
    let all = [a, b, c, d];
    let sorted = |mut pids: Vec<u32>| {
        pids.sort_unstable();
        pids
    };

    let everything = reap(&["--match", &name], &dir);
    assert_eq!(
        listed(&everything, &all),
        sorted(all.to_vec()),
        "each is an orphan"
    );
    let vscode = reap(&["--match", &name, "--terminal-program", "vscode"], &dir);
    assert_eq!(listed(&vscode, &all), sorted(vec![a, b]));
    let iterm = reap(&["--match", &name, "--terminal-program", "iTerm.app"], &dir);
    assert_eq!(listed(&iterm, &all), [c]);
    let under_web = reap(&["--match", &name, "--cwd", text(&web)], &dir);
    assert_eq!(
        listed(&under_web, &all),
        sorted(vec![a, b]),
        "web2 is not below web"
    );
    let relative = reap(&["--match", &name, "--cwd", "web/src"], &dir);
    assert_eq!(listed(&relative, &all), [b], "relative to where reap runs");
    let both = reap(
        &[
            "--match",
            &name,
            "--cwd",
            text(&dir),
            "--terminal-program",
            "vscode",
        ],
        &dir,
    );
    assert_eq!(listed(&both, &all), sorted(vec![a, b]));
    let none = reap(&["--match", &name, "--terminal-program", "kitty"], &dir);
    assert!(
        String::from_utf8_lossy(&none.stdout).starts_with("nothing to end"),
        "{none:?}"
    );
    thread::sleep(Duration::from_millis(200));
    for pid in all {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "a dry run ended {pid}"
        );
    }
}

#[test]
fn reap_selects_sessions_idle_long_enough_from_a_running_hupwatch() {
    let dir = scratch_dir("origin-idle");
    let [idle_name, busy_name] = ["oid", "obz"].map(unique);
    let sleeper = named_program(&dir, &idle_name, "sleep");
    let busy = named_program(&dir, &busy_name, "sh");
    let mut subjects = Subjects::default();
    // CPU read every 200 ms.
    let hupwatch = Hupwatch::run(&[
        "--match",
        &idle_name,
        "--match",
        &busy_name,
        "--rss-interval",
        "100ms",
        "--cpu-window",
        "1s",
    ]);
    let idle_pid = orphan(&sleeper, &dir, Some("vscode"));
    subjects.pids.push(idle_pid);
    let busy_pid = processes::orphan(&busy, "-c 'while :; do :; done'");
    subjects.pids.push(busy_pid);

    wait_until(
        "the sleeper idle a second and the loop busy",
        || api_sessions(&hupwatch),
        |view| {
            let (idle, busy) = (session_of(view, idle_pid)?, session_of(view, busy_pid)?);
            let orphaned = |p: &Value| p["verdicts"].as_array().is_some_and(|v| !v.is_empty());
            let idle_for = idle["idle_seconds"].as_f64()?;
            let busy_for = busy["idle_seconds"].as_f64()?;
            (orphaned(&idle) && orphaned(&busy) && idle_for >= 1.5 && busy_for == 0.0).then_some(())
        },
    );
    let url = hupwatch.api_url();
    let out = reap(&["--from", &url, "--idle", "1s"], &dir);
    assert_eq!(
        listed(&out, &[idle_pid, busy_pid]),
        [idle_pid],
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    kill(busy_pid, libc::SIGKILL);
    hupwatch.stop();
}

#[test]
fn reap_idle_without_a_running_hupwatch_says_what_to_add() {
    let out = Command::new(HUPWATCH)
        .args(["reap", "--idle", "1h"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--from"), "{stderr}");
}
