//! Several machines on this one, for tests/fleet.rs: each "machine" is a network namespace
//! joined to the root namespace by a veth pair (10.201.N.1 on the root side, 10.201.N.2 in
//! the machine) and a pid namespace with its own /proc, whose pid 1 is a small reaper; the
//! test's PKI (the openssl CLI), curl, the servers a fleet runs (Prometheus, its agent,
//! Alertmanager) as plain child processes, and a webhook that collects what Alertmanager
//! sends. Everything here is stopped and removed when dropped, failed test or not, and
//! [`remove_leftovers`] clears what a run that could not clean up (killed) left behind.
use std::{
    collections::HashMap,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{HUPWATCH, free_port, kill, which};

/// Network namespaces are `hwfleet-PID-N`, veth ends `hwfPIDrN` (root side) and
/// `hwfPIDmN` (machine side), PID being the test process's: a later run recognises the
/// leftovers of one that is gone, and leaves a run still going alone.
const NETNS_PREFIX: &str = "hwfleet-";
const LINK_PREFIX: &str = "hwf";
/// The scratch directory of a run (support::scratch_dir("fleet")): the servers a run
/// started name it on their command lines.
fn scratch_of(pid: u32) -> String {
    format!(
        "{}/hupwatch-it-{pid}-fleet/",
        std::env::temp_dir().display()
    )
}

/// Runs `command`, failing the test with its stderr when it fails; its stdout.
pub fn run(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) -> String {
    run(Command::new(which("ip")).args(args))
}

/// `ip ARGS`, for cleaning up: a failure (already gone) is not one.
fn ip_quietly(args: &[&str]) {
    let _ = Command::new(which("ip"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `command`'s output, killing it and failing the test if it runs for longer than
/// `timeout` (a command expected to refuse and exit that runs on instead).
pub fn output_within(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{command:?} still ran after {timeout:?}; it said:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every process's parent, from /proc/PID/stat.
fn parents() -> HashMap<u32, u32> {
    let mut parents = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// The one child of `pid`, waiting up to 10 s for it to appear.
fn only_child(pid: u32, what: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let children: Vec<u32> = parents()
            .into_iter()
            .filter(|(_, ppid)| *ppid == pid)
            .map(|(child, _)| child)
            .collect();
        if let [child] = children[..] {
            return child;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: pid {pid} has children {children:?}, not one"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn pid_namespace(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The pid PID of an earlier run named in `name` after `prefix`, digits up to the first
/// character that is not one.
fn run_pid(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes what earlier runs of this test left when they could not clean up (killed
/// before their guards ran): the processes in their namespaces and the servers started
/// from their scratch directories (killed), their namespaces and veth pairs. A run whose
/// process still lives is left alone.
pub fn remove_leftovers() {
    let me = std::process::id();
    let gone = |pid: u32| pid != me && !alive(pid);
    for line in ip(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if run_pid(name, NETNS_PREFIX).is_some_and(gone) {
            for pid in ip(&["netns", "pids", name]).split_whitespace() {
                kill(pid.parse().unwrap(), libc::SIGKILL);
            }
            ip_quietly(&["netns", "del", name]);
        }
    }
    for line in ip(&["-o", "link", "show"]).lines() {
        // "7: hwf123r1@if6: <...": the name ends at '@' or ':'.
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or_default();
        if run_pid(name, LINK_PREFIX).is_some_and(gone) {
            ip_quietly(&["link", "del", name]);
        }
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let base = format!("{}/hupwatch-it-", std::env::temp_dir().display());
        let earlier = cmdline
            .split(['\0', '='])
            .filter_map(|arg| run_pid(arg, &base))
            .find(|run| gone(*run) && cmdline.contains(&scratch_of(*run)));
        if earlier.is_some() {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// A network namespace and the veth pair that joins it to the root namespace, removed
/// (with whatever still runs in it, which this test started) when dropped.
pub struct Netns {
    pub name: String,
    root_link: String,
    /// The root namespace's end: where the machine reaches "central".
    pub host: String,
    /// The machine's own address.
    pub machine: String,
}

impl Netns {
    /// Machine `n` (1 to 254): 10.201.N.0/30, the root side .1, the machine .2.
    pub fn create(n: u8) -> Self {
        let me = std::process::id();
        let subnet = format!("10.201.{n}.0/30");
        // Routes inside the subnet, or addresses in it: someone else's. (A wider route,
        // 10.0.0.0/8 to a VPN, is shadowed by the test's /30 while it runs, and no traffic
        // goes to it: the test talks only to its own addresses.)
        let routes = ip(&["-o", "route", "show", "to", "root", &subnet]);
        let addresses = ip(&["-o", "addr", "show", "to", &subnet]);
        assert!(
            routes.trim().is_empty() && addresses.trim().is_empty(),
            "{subnet}, which the fleet test gives machine {n}, is in use on this host \
             (another run of the test, or a real network):\n{routes}{addresses}"
        );
        let netns = Self {
            name: format!("{NETNS_PREFIX}{me}-{n}"),
            root_link: format!("{LINK_PREFIX}{me}r{n}"),
            host: format!("10.201.{n}.1"),
            machine: format!("10.201.{n}.2"),
        };
        let inner = format!("{LINK_PREFIX}{me}m{n}");
        ip(&["netns", "add", &netns.name]);
        ip(&[
            "link",
            "add",
            &netns.root_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "netns",
            &netns.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", netns.host),
            "dev",
            &netns.root_link,
        ]);
        ip(&["link", "set", &netns.root_link, "up"]);
        let n = netns.name.as_str();
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{}/30", netns.machine),
            "dev",
            &inner,
        ]);
        ip(&["-n", n, "link", "set", &inner, "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        netns
    }

    /// `command` to run in this namespace (`ip netns exec`, which execs it: the child's pid
    /// is the command's).
    pub fn exec(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(which("ip"));
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = Command::new(which("ip"))
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
            kill(pid, libc::SIGKILL);
        }
        ip_quietly(&["link", "del", &self.root_link]);
        ip_quietly(&["netns", "del", &self.name]);
    }
}

/// A server the test runs (Prometheus, its agent, Alertmanager), its output in `log`;
/// killed and reaped when dropped.
pub struct Daemon {
    child: Mutex<Child>,
    pub name: String,
    pub log: PathBuf,
}

impl Daemon {
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Self {
        let out = File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start ({command:?}): {e}"));
        Self {
            child: Mutex::new(child),
            name: name.to_string(),
            log,
        }
    }

    /// Fails the test, with the end of the log, when the server has exited.
    pub fn assert_running(&self) {
        if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, tail(&self.log, 30));
        }
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        kill(self.child.lock().unwrap().id(), signal);
    }

    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- {} ({}):\n{}",
            self.name,
            self.log.display(),
            tail(&self.log, lines)
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `check` every 200 ms until it gives a value; fails after `timeout`, saying what
/// was awaited and what `report` says about the fleet then.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    report: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {timeout:?} for {what}\n{}",
            report()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// One machine: a network namespace, a pid namespace with its own /proc (`unshare --pid
/// --fork --mount-proc`) whose pid 1 reaps what is orphaned in it, hupwatch (entered with
/// nsenter) and the sessions the test starts there.
pub struct Machine {
    pub n: u8,
    pub dir: PathBuf,
    /// `unshare`, our child: killing it kills the pid namespace's init (--kill-child), and
    /// with it every process in the namespace.
    unshare: Child,
    /// The namespace's pid 1, in the root namespace's numbering.
    init: u32,
    pid_ns: PathBuf,
    hupwatch: Option<NsHupwatch>,
    // Last: removed once what runs in it is gone.
    pub netns: Netns,
}

struct NsHupwatch {
    /// `nsenter`, our child, which waits for hupwatch and exits as it did.
    nsenter: Child,
    /// hupwatch itself, in the root namespace's numbering.
    pid: u32,
    stderr: PathBuf,
    stdout: PathBuf,
}

/// The machine's pid 1: waits for whatever the namespace hands it, so orphans that exit
/// are reaped and gone from its /proc.
const REAPER: &str = "import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.1)
";

impl Machine {
    /// Machine `n`: its namespaces, its pid 1 (`python`, the real interpreter), files in
    /// `dir`.
    pub fn boot(n: u8, dir: &Path, python: &Path) -> Self {
        let dir = dir.join(format!("machine-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let netns = Netns::create(n);
        let mut command = netns.exec(which("unshare"));
        command
            .args(["--pid", "--fork", "--mount-proc", "--kill-child", "--"])
            .arg(python)
            .args(["-c", REAPER])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("init.log")).unwrap());
        let unshare = command.spawn().expect("unshare starts");
        let init = only_child(unshare.id(), "the machine's pid 1");
        let pid_ns = pid_namespace(init).expect("the machine's pid 1 is alive");
        assert_ne!(
            Some(&pid_ns),
            pid_namespace(std::process::id()).as_ref(),
            "unshare --pid made no new pid namespace"
        );
        Self {
            n,
            dir,
            unshare,
            init,
            pid_ns,
            hupwatch: None,
            netns,
        }
    }

    /// A command run inside the machine: its network, pid and mount namespaces (so its
    /// /proc), in a session of its own without a terminal.
    pub fn enter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(which("nsenter"));
        command
            .arg(format!("--target={}", self.init))
            .args(["--net", "--pid", "--mount", "--"])
            .arg(program);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
        command
    }

    /// Starts `hupwatch ARGS` in the machine, without a terminal (so SIGHUP reloads);
    /// [`Machine::wait_ready`] waits for its ready line.
    pub fn start_hupwatch(&mut self, args: &[&str]) {
        assert!(self.hupwatch.is_none(), "one hupwatch per machine");
        let stderr = self.dir.join("hupwatch.stderr");
        let stdout = self.dir.join("alerts.jsonl");
        let nsenter = self
            .enter(HUPWATCH)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .expect("nsenter starts");
        let pid = only_child(nsenter.id(), "hupwatch under nsenter");
        self.hupwatch = Some(NsHupwatch {
            nsenter,
            pid,
            stderr,
            stdout,
        });
    }

    /// Waits (up to 30 s) for hupwatch's ready line.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let h = self.hupwatch.as_mut().expect("hupwatch started");
            let said = std::fs::read_to_string(&h.stderr).unwrap_or_default();
            if said.lines().any(|l| l.starts_with("hupwatch: ready:")) {
                return;
            }
            if let Ok(Some(status)) = h.nsenter.try_wait() {
                panic!(
                    "hupwatch on machine {} exited ({status}) before it was ready; it said:\n{said}",
                    self.n
                );
            }
            assert!(
                Instant::now() < deadline,
                "hupwatch on machine {} was not ready after 30 s; it said:\n{said}",
                self.n
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// hupwatch's pid in the root namespace, for signals.
    pub fn hupwatch_pid(&self) -> u32 {
        self.hupwatch.as_ref().expect("hupwatch started").pid
    }

    /// Stops hupwatch with SIGTERM; how it exited.
    pub fn stop_hupwatch(&mut self) -> ExitStatus {
        let mut h = self.hupwatch.take().expect("hupwatch started");
        kill(h.pid, libc::SIGTERM);
        h.nsenter.wait().unwrap()
    }

    /// What hupwatch printed on stderr, and its last alert lines.
    pub fn report(&self) -> String {
        match &self.hupwatch {
            Some(h) => format!(
                "--- hupwatch on machine {} (pid {}), stderr:\n{}\nlast alerts:\n{}",
                self.n,
                h.pid,
                tail(&h.stderr, 15),
                tail(&h.stdout, 8)
            ),
            None => format!("--- machine {}: hupwatch stopped", self.n),
        }
    }

    /// Starts `program -c CODE` as a session that outlives its parent, the way `setsid sh
    /// -c 'agent &'` does: a shell leading a new session starts it in the background and
    /// exits, so the machine's pid 1 adopts it. Its pid inside the machine.
    pub fn start_orphan(&self, program: &Path, code: &str) -> u32 {
        assert!(!code.contains('\''), "the code is quoted with '");
        let script = format!(
            "'{}' -c '{code}' >/dev/null 2>&1 & echo $!",
            program.display()
        );
        let out = run(self.enter(which("setsid")).args(["sh", "-c", &script]));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("the shell printed {out:?}, not a pid"))
    }

    /// The processes in this machine called `name`, in the root namespace's numbering.
    pub fn pids_named(&self, name: &str) -> Vec<u32> {
        let mut pids: Vec<u32> = parents()
            .into_keys()
            .filter(|pid| pid_namespace(*pid).as_ref() == Some(&self.pid_ns))
            .filter(|pid| comm(*pid) == name)
            .collect();
        pids.sort();
        pids
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if let Some(h) = &self.hupwatch {
            kill(h.pid, libc::SIGKILL);
        }
        // The namespace's init gone, the kernel kills everything else in it. unshare reaps
        // it and exits (were unshare killed first, init would be left to this machine's
        // pid 1, a zombie where that one does not reap).
        kill(self.init, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.unshare.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        if let Some(h) = &mut self.hupwatch {
            let _ = h.nsenter.wait();
        }
    }
}

/// The test's certificate authorities and certificates, made with the openssl CLI (EC
/// P-256 keys, valid for two days, every extension stated: no system openssl.cnf).
pub struct Pki {
    config: PathBuf,
    serial: std::cell::Cell<u32>,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("req.cnf");
        std::fs::write(&config, "[req]\ndistinguished_name = dn\n[dn]\n").unwrap();
        Self {
            config,
            serial: std::cell::Cell::new(1),
        }
    }

    fn req(&self, out: &Path, subject: &str, extra: &[&str]) {
        let serial = self.serial.get();
        self.serial.set(serial + 1);
        run(Command::new(which("openssl"))
            .args(["req", "-x509", "-config"])
            .arg(&self.config)
            .args([
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-set_serial",
                &serial.to_string(),
                "-subj",
                &format!("/CN={subject}"),
            ])
            .arg("-keyout")
            .arg(out.with_extension("key"))
            .arg("-out")
            .arg(out.with_extension("crt"))
            .args(extra));
    }

    /// A self-signed CA: `out`.crt and `out`.key.
    pub fn ca(&self, out: &Path, name: &str) -> PathBuf {
        self.req(
            out,
            name,
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        out.with_extension("crt")
    }

    fn leaf(&self, out: &Path, name: &str, ca: &Path, usage: &str, san: Option<String>) {
        let ca_key = ca.with_extension("key");
        let mut extra = vec![
            "-CA".to_string(),
            ca.display().to_string(),
            "-CAkey".to_string(),
            ca_key.display().to_string(),
            "-addext".to_string(),
            "basicConstraints=critical,CA:FALSE".to_string(),
            "-addext".to_string(),
            "keyUsage=critical,digitalSignature".to_string(),
            "-addext".to_string(),
            format!("extendedKeyUsage={usage}"),
        ];
        if let Some(san) = san {
            extra.extend(["-addext".to_string(), format!("subjectAltName={san}")]);
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.req(out, name, &extra);
    }

    /// A server certificate for the IP addresses `ips`, signed by `ca` (its .crt path).
    pub fn server(&self, out: &Path, ca: &Path, ips: &[&str]) {
        let san: Vec<String> = ips.iter().map(|ip| format!("IP:{ip}")).collect();
        self.leaf(out, ips[0], ca, "serverAuth", Some(san.join(",")));
    }

    /// A client certificate for `name`, signed by `ca`.
    pub fn client(&self, out: &Path, ca: &Path, name: &str) {
        self.leaf(out, name, ca, "clientAuth", None);
    }
}

/// What curl got: its exit status (0, or why it failed: 35 handshake, 56 receive, 52
/// empty reply...), the response's status and headers if one came, and curl's error line.
#[derive(Debug)]
pub struct Curl {
    pub exit: i32,
    pub status: Option<u16>,
    pub head: String,
    pub body: String,
    pub stderr: String,
}

impl Curl {
    /// The value of header `name` (any case), if the response has it.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }
}

/// `curl -sS -i --max-time 5 ARGS`.
pub fn curl(args: &[&str]) -> Curl {
    let out = Command::new(which("curl"))
        .args(["-sS", "-i", "--max-time", "5"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = match stdout.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/") => (head.to_string(), body.to_string()),
        _ => (String::new(), stdout),
    };
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: head.split(' ').nth(1).and_then(|s| s.parse().ok()),
        head,
        body,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

/// `GET path` on a plain-HTTP server (Alertmanager on the loopback): status and body.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// One POST Alertmanager made to the webhook.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    /// The notification (Alertmanager's webhook JSON), or Null with `error` set.
    pub body: Value,
    pub error: Option<String>,
}

type Inbox = Arc<(Mutex<Vec<Received>>, Condvar)>;

/// A webhook receiver on a free loopback port: every POST's JSON body, in arrival order.
/// Answers 200 and closes the connection after each request.
pub struct Webhook {
    pub address: SocketAddr,
    inbox: Inbox,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let inbox: Inbox = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (inbox, stop) = (Arc::clone(&inbox), Arc::clone(&stop));
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let received = receive(stream);
                    let (lock, cvar) = &*inbox;
                    lock.lock().unwrap().push(received);
                    cvar.notify_all();
                }
            })
        };
        Self {
            address,
            inbox,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inbox.0.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one HTTP/1.1 request with a Content-Length body and answers 200.
fn receive(stream: TcpStream) -> Received {
    let at = Instant::now();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    let mut length = None;
    let failed = |path: String, error: String| Received {
        at,
        path,
        body: Value::Null,
        error: Some(error),
    };
    if reader.read_line(&mut request_line).is_err() {
        return failed(String::new(), "no request line".into());
    }
    let mut words = request_line.split_whitespace();
    let (method, path) = (
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or_default().to_string(),
    );
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return failed(path, "the head ended early".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':')
            && key.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    let read = reader.read_exact(&mut body);
    let mut stream = reader.into_inner();
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if method != "POST" || length.is_none() || read.is_err() {
        return failed(
            path,
            format!("{method} with Content-Length {length:?}, body read: {read:?}"),
        );
    }
    match serde_json::from_slice(&body) {
        Ok(body) => Received {
            at,
            path,
            body,
            error: None,
        },
        Err(e) => failed(
            path,
            format!("not JSON ({e}): {}", String::from_utf8_lossy(&body)),
        ),
    }
}

/// A Prometheus server behind TLS and basic auth (its own web config), asked through
/// curl.
pub struct Central {
    pub daemon: Daemon,
    /// `https://ADDRESS:PORT`.
    pub url: String,
    ca: PathBuf,
    /// `user:password` for its API.
    credentials: String,
}

impl Central {
    pub fn new(daemon: Daemon, url: String, ca: &Path, credentials: String) -> Self {
        Self {
            daemon,
            url,
            ca: ca.to_path_buf(),
            credentials,
        }
    }

    /// GET `path` with the query parameters `params` (URL-encoded by curl).
    pub fn get(&self, path: &str, params: &[(&str, &str)]) -> Curl {
        let ca = self.ca.display().to_string();
        let url = format!("{}{path}", self.url);
        let mut args = vec!["--cacert", &ca, "-u", &self.credentials, "-G", &url];
        let encoded: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for param in &encoded {
            args.extend(["--data-urlencode", param]);
        }
        curl(&args)
    }

    /// Whether /-/ready says 200.
    pub fn ready(&self) -> bool {
        self.get("/-/ready", &[]).status == Some(200)
    }

    /// The `data` of an API answer; fails the test unless it is a success.
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let answer = self.get(path, params);
        let value: Value = serde_json::from_str(&answer.body).unwrap_or_else(|e| {
            panic!(
                "{path} {params:?}: not JSON ({e}): {answer:?}\n{}",
                self.daemon.log_tail(20)
            )
        });
        assert!(
            answer.status == Some(200) && value["status"] == "success",
            "{path} {params:?}: {answer:?}"
        );
        value["data"].clone()
    }

    /// An instant query's series: (labels, value).
    pub fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let data = self.api("/api/v1/query", &[("query", expr)]);
        data["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: {data}"))
            .iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap_or("NaN");
                (series["metric"].clone(), value.parse().unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// Every scrape target's instance and health (up, down, unknown), sorted.
    pub fn targets(&self) -> Vec<(String, String)> {
        let mut targets: Vec<(String, String)> = self.api("/api/v1/targets", &[])["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|t| {
                (
                    t["labels"]["instance"].as_str().unwrap_or("").to_string(),
                    t["health"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        targets.sort();
        targets
    }
}

/// Alertmanager on a loopback port, with clustering off.
pub struct Alertmanager {
    pub daemon: Daemon,
    pub address: String,
}

impl Alertmanager {
    /// Starts `prometheus-alertmanager` with `config` (a file), its data in `dir`.
    pub fn start(config: &Path, dir: &Path) -> Self {
        let address = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(which("prometheus-alertmanager"));
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={address}"))
            // No gossip port on every interface: a single Alertmanager.
            .arg("--cluster.listen-address=");
        let daemon = Daemon::spawn("Alertmanager", command, dir.join("alertmanager.log"));
        Self { daemon, address }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// The alerts it holds, silenced and inhibited ones included (API v2).
    pub fn alerts(&self) -> Vec<Value> {
        let path = "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true";
        let (status, body) = http_get(&self.address, path).unwrap_or_else(|| {
            panic!("Alertmanager does not answer\n{}", self.daemon.log_tail(20))
        });
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// `amtool silence add MATCHERS`: the new silence's id.
    pub fn silence(&self, matchers: &[&str]) -> String {
        let id = run(Command::new(which("amtool"))
            .arg("silence")
            .arg("add")
            .arg(format!("--alertmanager.url={}", self.url()))
            .args(["--comment=the fleet test's silence", "--duration=1h"])
            .args(matchers));
        let id = id.trim().to_string();
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "amtool printed {id:?}, not a silence id"
        );
        id
    }
}
