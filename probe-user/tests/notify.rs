//! Desktop notifications end to end: a real session bus (dbus-daemon), a real notification
//! server (dunst, on an Xvfb display), and hupwatch's `Notifier` sending what
//! `NotifyPolicy` decided; what dunst received is read back with `dunstctl history`.
//! The tools come from `cargo xtask setup`; a missing one fails the test, saying so.
#![cfg(target_os = "linux")]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    io::{BufRead, BufReader},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use hupwatch::{
    notify::{HELPER_SUBCOMMAND, Notification, Notifier, NotifyPolicy, Urgency},
    tracker::{Alert, AlertStatus},
    verdict::{Verdict, VerdictKind, reason::Reason},
};
use processes::{NOBODY, PYTHON, named_link};
use serde_json::Value;
use support::{meminfo, require_root, unique, which};

const GIB: u64 = 1 << 30;
/// Set in the environment of this test binary when a test runs it again as a child.
const CHILD_BUS: &str = "HUPWATCH_NOTIFY_TEST_BUS";
const WARNING: &str = "hupwatch: warning: desktop notification not delivered";

/// A process the test started; killed and reaped when dropped.
struct Running {
    child: Child,
    what: &'static str,
}

impl Running {
    fn spawn(mut command: Command, what: &'static str) -> Self {
        // Its own process group, so that nothing it starts outlives the test either.
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        Self { child, what }
    }

    /// The first line it prints on its piped stdout.
    fn first_line(&mut self) -> String {
        let mut line = String::new();
        BufReader::new(self.child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("its stdout");
        assert!(
            !line.is_empty(),
            "{} exited before saying where it listens: {:?}",
            self.what,
            self.child.try_wait()
        );
        line.trim().to_string()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the group this child leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
    }
}

/// A private session bus with a notification server on it, as `uid` (the test's own
/// user, or another one for the helper), in a scratch directory removed on drop.
struct Desktop {
    // Dropped in this order: dunst, then its display and bus.
    dunst: Option<Running>,
    x: Option<Running>,
    _bus: Running,
    address: String,
    display: Option<String>,
    dir: PathBuf,
    uid: u32,
}

impl Desktop {
    /// A bus with dunst on it.
    fn start(name: &str, uid: u32) -> Self {
        let mut desktop = Self::bus_only(name, uid);
        let mut x = Command::new(which("Xvfb"));
        // -displayfd picks a free display and prints its number.
        x.args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "640x480x24",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        let mut x = Running::spawn(x, "Xvfb");
        let display = format!(":{}", x.first_line());

        std::fs::write(desktop.dir.join("dunstrc"), DUNSTRC).unwrap();
        let mut dunst = desktop.command("dunst");
        dunst
            .arg("-config")
            .arg(desktop.dir.join("dunstrc"))
            .env("DISPLAY", &display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        desktop.dunst = Some(Running::spawn(dunst, "dunst"));
        desktop.x = Some(x);
        desktop.display = Some(display);
        // dunst owns org.freedesktop.Notifications once `dunstctl debug` finds it (its
        // is-paused succeeds either way).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = desktop.dunstctl(&["debug"]);
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dunst did not come up on {}: {}",
                desktop.address,
                String::from_utf8_lossy(&out.stderr)
            );
            thread::sleep(Duration::from_millis(100));
        }
        desktop
    }

    /// A bus with no notification server.
    fn bus_only(name: &str, uid: u32) -> Self {
        let dir = support::scratch_dir(&format!("notify-{name}"));
        let chown = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::chown(chown.as_ptr(), uid, uid) }, 0);
        let config = dir.join("bus.conf");
        std::fs::write(&config, bus_config(&dir.join("bus"))).unwrap();
        let mut bus = Command::new(which("dbus-daemon"));
        bus.arg("--nofork")
            .arg("--print-address")
            .arg(format!("--config-file={}", config.display()))
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Only complaints about raising its fd limit, which a test's bus never needs.
            .stderr(Stdio::null());
        as_uid(&mut bus, uid);
        let mut bus = Running::spawn(bus, "dbus-daemon");
        let address = bus.first_line();
        Self {
            dunst: None,
            x: None,
            _bus: bus,
            address,
            display: None,
            dir,
            uid,
        }
    }

    /// `program` as the desktop's user, with its bus and home.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(which(program));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", &self.dir)
            .current_dir("/");
        if let Some(display) = &self.display {
            command.env("DISPLAY", display);
        }
        as_uid(&mut command, self.uid);
        command
    }

    fn dunstctl(&self, args: &[&str]) -> std::process::Output {
        self.command("dunstctl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("dunstctl runs")
    }

    /// (summary, body, urgency) of every notification dunst has received (all from
    /// hupwatch): those shown
    /// are closed first, which moves them into the history.
    fn received(&self) -> Vec<(String, String, String)> {
        let closed = self.dunstctl(&["close-all"]);
        assert!(closed.status.success(), "dunstctl close-all: {closed:?}");
        let out = self.dunstctl(&["history"]);
        assert!(out.status.success(), "dunstctl history: {out:?}");
        let history: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "dunstctl history is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let mut found = Vec::new();
        collect_notifications(&history, &mut found);
        found
    }

    /// Waits until dunst has received a notification with `summary`; all it received.
    fn wait_for(&self, summary: &str) -> Vec<(String, String, String)> {
        let deadline = Instant::now() + support::event_timeout();
        loop {
            let received = self.received();
            if received.iter().any(|(s, _, _)| s == summary) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "dunst never received {summary:?}; it has {received:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        self.dunst.take();
        self.x.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the command as `uid` (and the group of that number) unless it is the test's own.
fn as_uid(command: &mut Command, uid: u32) {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != uid {
        command.uid(uid).gid(uid);
    }
}

/// A session bus like Debian's session.conf, minus service activation (an installed
/// dunst's service file would start a dunst without a display) and with its own socket.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// Timeouts long enough that nothing expires into the history before the test closes
/// it, and a different one per urgency: dunst 1.9's history leaves the urgency out but
/// keeps the timeout (in microseconds), which tells it. A history long enough for every
/// test.
const DUNSTRC: &str = "[global]\n    history_length = 50\n    markup = full\n\
[urgency_low]\n    timeout = 1000\n[urgency_normal]\n    timeout = 2000\n\
[urgency_critical]\n    timeout = 3000\n";

/// The urgency a notification's timeout in the history tells (see [`DUNSTRC`]).
fn urgency_of(timeout_us: Option<i64>) -> String {
    match timeout_us {
        Some(1_000_000_000) => "low",
        Some(2_000_000_000) => "normal",
        Some(3_000_000_000) => "critical",
        _ => "unknown",
    }
    .to_string()
}

/// The notifications in `dunstctl history`'s JSON (busctl's: every value is
/// `{"type": ..., "data": ...}`): each object with a summary.
fn collect_notifications(value: &Value, found: &mut Vec<(String, String, String)>) {
    match value {
        Value::Object(map) => {
            let data = |key: &str| {
                map.get(key)
                    .and_then(|v| v.get("data"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            if let Some(summary) = data("summary") {
                assert_eq!(data("appname").as_deref(), Some("hupwatch"), "{value}");
                let timeout = map
                    .get("timeout")
                    .and_then(|v| v.get("data"))
                    .and_then(Value::as_i64);
                found.push((
                    summary,
                    data("body").unwrap_or_default(),
                    urgency_of(timeout),
                ));
                return;
            }
            map.values().for_each(|v| collect_notifications(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_notifications(v, found)),
        _ => {}
    }
}

/// What the tracker raises for an orphaned session of `bytes`.
fn orphan_alert(pid: u32, comm: &str, bytes: u64) -> Alert {
    Alert {
        status: AlertStatus::Raised,
        verdict: Verdict {
            kind: VerdictKind::Orphaned,
            time_ns: 1_780_000_000_000_000_000,
            reason: Reason::ParentExited {
                comm: "zsh".into(),
                pid: 4000,
            },
            evidence: Vec::new(),
            inferred: false,
            growth: None,
        },
        pid,
        comm: comm.into(),
        cmdline: Some(format!("{comm} --resume")),
        started_ns: 123_456_789,
        age_seconds: 3600.0,
        rss_bytes: Some(bytes),
        swap_bytes: None,
        footprint_bytes: None,
        terminal_program: Some("vscode".into()),
        cwd: Some("/home/dev/web".into()),
    }
}

#[tokio::test]
async fn a_large_orphan_reaches_the_desktop_once() {
    let desktop = Desktop::start("deliver", own_uid());
    let mut policy = NotifyPolicy::new(GIB, 64 * GIB);
    let alert = orphan_alert(31337, "claude", 2 * GIB);

    let mut notifier = Notifier::start_on(&desktop.address).await.unwrap();
    let mut made = Vec::new();
    // The tracker raises each verdict once, but the policy is the guard: twice is once.
    for _ in 0..2 {
        if let Some(n) = policy.on_alert(&alert) {
            notifier.notify(&n);
            made.push(n);
        }
    }
    assert_eq!(made.len(), 1, "the same alert twice is one notification");
    let n = &made[0];
    assert_eq!(n.summary, "Orphaned claude (31337) holds 2.0 GiB");
    assert_eq!(
        n.body,
        "its parent zsh (4000) exited and it was reparented.\npid 31337, 2.0 GiB memory.\nhupwatch sessions; hupwatch reap --verdict orphaned"
    );
    let stats = notifier.close().await;
    assert_eq!((stats.failed, stats.dropped), (0, 0));

    let received = desktop.wait_for(&n.summary);
    let ours: Vec<_> = received
        .iter()
        .filter(|(s, _, _)| *s == n.summary)
        .collect();
    assert_eq!(ours.len(), 1, "one notification arrived: {received:?}");
    assert_eq!(ours[0].1, n.body);
    assert_eq!(ours[0].2, "normal");
}

#[tokio::test]
async fn markup_in_a_name_arrives_as_text() {
    let desktop = Desktop::start("markup", own_uid());
    let n = Notification {
        summary: "Orphaned a<b>&c (7) holds 2.0 GiB".into(),
        body: "pid 7 <b>not bold</b> & more".into(),
        urgency: Urgency::Critical,
    };
    let mut notifier = Notifier::start_on(&desktop.address).await.unwrap();
    notifier.notify(&n);
    assert_eq!(notifier.close().await.failed, 0);
    let received = desktop.wait_for(&n.summary);
    let (_, body, urgency) = received.iter().find(|(s, _, _)| *s == n.summary).unwrap();
    // dunst keeps the body as sent: escaped for its markup, so shown as the text it was.
    assert_eq!(body, "pid 7 &lt;b&gt;not bold&lt;/b&gt; &amp; more");
    assert_eq!(urgency, "critical");
}

/// Runs this test binary again as a child delivering three notifications to `address`,
/// and returns what it printed on stderr.
fn child_delivering_to(address: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_delivers_three",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_BUS, address)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the child failed: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Only does something as the child of the tests below (CHILD_BUS set): delivers three
/// notifications to that bus, all of which fail.
#[tokio::test]
async fn child_delivers_three() {
    let Ok(address) = std::env::var(CHILD_BUS) else {
        return;
    };
    let mut notifier = Notifier::start_on(&address).await.unwrap();
    for i in 0..3 {
        notifier.notify(&Notification {
            summary: format!("undeliverable {i}"),
            body: "nobody hears this".into(),
            urgency: Urgency::Normal,
        });
    }
    let stats = notifier.close().await;
    assert_eq!((stats.failed, stats.dropped), (3, 0));
}

#[test]
fn a_bad_bus_address_warns_once() {
    let stderr = child_delivering_to("unix:path=/nonexistent/hupwatch-notify-test/bus");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("cannot connect to the session bus"),
        "{stderr}"
    );
    assert!(
        warnings[0].ends_with("going on without it (later failures are not reported)"),
        "{stderr}"
    );
    let garbage = child_delivering_to("no-such-transport:x=1");
    assert_eq!(
        garbage.lines().filter(|l| l.starts_with(WARNING)).count(),
        1,
        "{garbage}"
    );
}

#[test]
fn a_bus_without_a_notification_server_warns_once() {
    let desktop = Desktop::bus_only("noserver", own_uid());
    let stderr = child_delivering_to(&desktop.address);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with(WARNING)).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("no notification server runs on the session bus"),
        "{stderr}"
    );
}

/// As root (hupwatch as a service), another user's bus refuses a connection from root,
/// so the notification goes through a helper started as that user: here this test binary
/// serving `helper_main` (hupwatch's own `__notify-helper` does the same).
#[tokio::test]
async fn root_reaches_another_users_desktop_through_the_helper() {
    require_root();
    let desktop = Desktop::start("helper", NOBODY);
    let n = Notification {
        summary: "Orphaned claude (4242) holds 3.0 GiB".into(),
        body: "delivered by the helper".into(),
        urgency: Urgency::Normal,
    };

    // Root in-process: refused by the bus, one failure.
    let mut direct = Notifier::start_on(&desktop.address).await.unwrap();
    direct.notify(&n);
    assert_eq!(direct.close().await.failed, 1);

    // The helper gets the bus as a second test-name filter, which names no test.
    let exe = std::env::current_exe().unwrap();
    let args = [
        "--exact",
        "child_serves_as_helper",
        "--nocapture",
        "--test-threads=1",
        &desktop.address,
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let mut notifier = Notifier::start_helper(&exe, &args, NOBODY, NOBODY)
        .await
        .unwrap();
    notifier.notify(&n);
    let stats = notifier.close().await;
    assert_eq!((stats.failed, stats.dropped), (0, 0));
    let received = desktop.wait_for(&n.summary);
    assert_eq!(
        received.iter().filter(|(s, _, _)| *s == n.summary).count(),
        1,
        "{received:?}"
    );
    assert_eq!(HELPER_SUBCOMMAND, "__notify-helper");
}

/// Only does something when started as the helper above (a bus address among its
/// arguments): serves notifications on stdin until it closes.
#[tokio::test]
async fn child_serves_as_helper() {
    let Some(bus) = std::env::args().find(|a| a.starts_with("unix:")) else {
        return;
    };
    // libtest printed "test child_serves_as_helper ... " without a line end: end it, so
    // that the first answer is a line of its own.
    println!();
    hupwatch::notify::helper_main(&bus).await.unwrap();
}

fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

/// Debian's python3 under a unique name in a directory of its own: (dir, name, path).
fn named_python(test: &str, prefix: &str) -> (PathBuf, String, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hupwatch-notify-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = unique(prefix);
    let _ = std::fs::remove_file(dir.join(&name));
    let python = named_link(&dir, &name, PYTHON);
    (dir, name, python)
}

/// Runs `python` so that it holds 128 MiB before it ends its parent: an orphan that large
/// from the moment it is one.
fn orphan_holding_128_mib(python: &Path) {
    let code = "import os, time\nb = bytearray(128 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nos.kill(os.getppid(), 9)\ntime.sleep(60)\n";
    let script = format!("'{}' -c '{code}' & wait", python.display());
    let _ = Command::new("sh").args(["-c", &script]).status();
}

/// End to end: `hupwatch run --notify` as root, the desktop's bus in its environment (as
/// under sudo from a desktop terminal), and a real orphan holding 128 MiB.
#[test]
fn run_with_notify_tells_the_desktop_of_a_large_orphan() {
    require_root();
    let desktop = Desktop::start("run", own_uid());
    let (dir, name, python) = named_python("run", "nfy");
    let hupwatch = harness::Hupwatch::run_with_env(
        &["--match", &name, "--notify", "--notify-min-memory", "64MiB"],
        &[("DBUS_SESSION_BUS_ADDRESS", desktop.address.as_str())],
    );
    orphan_holding_128_mib(&python);
    let alert = hupwatch.wait_for("an orphaned alert", |a| {
        a["status"] == "raised" && a["alert"] == "orphaned" && a["comm"] == name.as_str()
    });
    let pid = alert["pid"].as_u64().unwrap();
    let summary = format!("Orphaned {name} ({pid}) holds");
    let deadline = Instant::now() + support::event_timeout();
    let (_, body, _) = loop {
        let received = desktop.received();
        if let Some(n) = received
            .into_iter()
            .find(|(s, _, _)| s.starts_with(&summary))
        {
            break n;
        }
        assert!(Instant::now() < deadline, "no {summary:?} on the desktop");
        thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("reparented"), "the reason: {body}");
    assert!(body.contains("hupwatch reap --verdict orphaned"), "{body}");
    support::kill(pid as u32, libc::SIGKILL);
    hupwatch.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hupwatch top --notify` watches in-process as `run` does, and tells the desktop too.
#[test]
fn top_with_notify_tells_the_desktop_of_a_large_orphan() {
    require_root();
    let desktop = Desktop::start("top", own_uid());
    let (dir, name, python) = named_python("top", "nft");
    let socket = format!("hw-notify-top-{}", std::process::id());
    let top = format!(
        "{} top --match {name} --notify --notify-min-memory 64MiB",
        env!("CARGO_BIN_EXE_hupwatch")
    );
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap()
    };
    let bus = format!("DBUS_SESSION_BUS_ADDRESS={}", desktop.address);
    let started = tmux(&[
        "new-session",
        "-d",
        "-x",
        "200",
        "-y",
        "40",
        "-e",
        &bus,
        "-e",
        "TERM=xterm",
        &top,
    ]);
    assert!(started.status.success(), "tmux: {started:?}");
    let deadline = Instant::now() + support::event_timeout();
    while !String::from_utf8_lossy(&tmux(&["capture-pane", "-p"]).stdout).contains("source:") {
        assert!(Instant::now() < deadline, "top never drew its header");
        thread::sleep(Duration::from_millis(100));
    }
    orphan_holding_128_mib(&python);
    let summary = format!("Orphaned {name} (");
    let received = loop {
        let received = desktop.received();
        if received.iter().any(|(s, _, _)| s.starts_with(&summary)) {
            break received;
        }
        assert!(
            Instant::now() < deadline,
            "no {summary:?} on the desktop: {received:?}"
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        received
            .iter()
            .filter(|(s, _, _)| s.starts_with(&summary))
            .count(),
        1,
        "{received:?}"
    );
    tmux(&["send-keys", "q"]);
    tmux(&["kill-server"]);
    let _ = Command::new("pkill").args(["-KILL", "-x", &name]).status();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hupwatch run --notify` warns once when a session grows fast enough to fill memory
/// within `--notify-exhaustion`, naming it. The line is set from this machine's memory:
/// four times what the grower would take to fill it, so it falls under at once however
/// large the machine.
#[test]
fn run_with_notify_warns_once_before_memory_runs_out() {
    use std::io::Write;
    require_root();
    let desktop = Desktop::start("exhaustion", own_uid());
    let (dir, name, python) = named_python("exhaustion", "nfx");
    // 4 MiB every 50 ms by the clock for 10 s once told, then it says so and waits.
    const PACE: f64 = 80.0 * 1048576.0;
    let grow = "import sys, time\nb=[]\nprint('ready', flush=True)\nsys.stdin.readline()\nt=time.monotonic()\nfor i in range(200):\n    b.append(bytearray(4<<20))\n    time.sleep(max(0, t + 0.05 * (i + 1) - time.monotonic()))\nprint('done', flush=True)\ntime.sleep(60)\n";
    let mut child = Command::new(&python)
        .args(["-c", grow])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(said.next().unwrap().unwrap(), "ready");
    // MemAvailable + SwapFree.
    let (_, available) = meminfo();
    let line = format!("{}s", (4.0 * available as f64 / PACE).ceil());
    // A window short enough that a fit counts after a second of growth.
    let hupwatch = harness::Hupwatch::run_with_env(
        &[
            "--match",
            &name,
            "--notify",
            "--notify-exhaustion",
            &line,
            "--rss-window",
            "8s",
            "--rss-interval",
            "250ms",
        ],
        &[("DBUS_SESSION_BUS_ADDRESS", desktop.address.as_str())],
    );
    let stdin = child.stdin.as_mut().unwrap();
    stdin.write_all(b"go\n").unwrap();
    stdin.flush().unwrap();

    let deadline = Instant::now() + support::event_timeout();
    let warned = |received: &[(String, String, String)]| -> Vec<(String, String, String)> {
        received
            .iter()
            .filter(|(s, _, _)| s.starts_with("Memory full in "))
            .cloned()
            .collect()
    };
    let (summary, body, urgency) = loop {
        if let Some(n) = warned(&desktop.received()).pop() {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no memory warning on the desktop (--notify-exhaustion {line}): {:?}",
            desktop.received()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(summary.contains(" at +"), "{summary}");
    assert!(
        body.contains(&format!("Largest: {name} (")),
        "names it: {body}"
    );
    assert!(body.ends_with("hupwatch sessions"), "{body}");
    assert_eq!(urgency, "critical");
    // It goes on growing, the forecast falling further: still the one warning.
    assert_eq!(said.next().unwrap().unwrap(), "done");
    thread::sleep(Duration::from_secs(1));
    assert_eq!(
        warned(&desktop.received()).len(),
        1,
        "{:?}",
        desktop.received()
    );
    let _ = child.kill();
    let _ = child.wait();
    hupwatch.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
