//! The listener under abuse while the kernel side is busy: another local user holds 200
//! slow or idle connections, floods requests and guesses passwords, while a fork/exit storm
//! runs; a real Prometheus scraping with the right password must still get every scrape
//! within its 1 s timeout, and the events lost must not be the HTTP load's doing: the same
//! storm is run once without the load, and both figures are printed side by side. Loopback
//! only, bounded in count and time; the load stops by itself. Runs as root.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
// This test uses the server and its queries, not the alert helpers.
#[allow(dead_code)]
#[path = "support/prometheus.rs"]
mod prometheus;
mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use harness::{Hupwatch, metric};
use processes::{NOBODY, PYTHON, as_user};
use prometheus::Prometheus;
use support::{require_root, scratch_dir};

/// The second attacker's uid (Debian's `daemon`).
const DAEMON: u32 = 1;
/// fork+exec+exit of `true`, this many times, as fast as a shell goes.
const STORM: u32 = 3000;
/// How long the attacker keeps at it (it also stops when the storm is over).
const LOAD_SECONDS: u32 = 40;

/// An attacker, as a script run by another user against 127.0.0.1:PORT for at most
/// LOAD_SECONDS: `slow`, 200 connections that send a request head a byte a second
/// (reopened when closed); `flood`, four threads of unauthenticated requests and four
/// guessing passwords.
const ATTACK: &str = r#"
import socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + seconds
counts = {'slow_opened': 0, 'flood': 0, 'guesses': 0, 'refused': 0}
def slow():
    head = b'GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    s, i = None, 0
    while time.time() < end:
        try:
            if s is None:
                s = socket.create_connection(('127.0.0.1', port), timeout=2)
                counts['slow_opened'] += 1
                i = 0
            s.send(head[i % len(head):i % len(head) + 1])
            i += 1
            time.sleep(1)
        except OSError:
            counts['refused'] += 1
            s = None
            time.sleep(0.05)
def flood():
    while time.time() < end:
        try:
            c = socket.create_connection(('127.0.0.1', port), timeout=2)
            c.sendall(b'GET /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
            c.recv(4096)
            c.close()
            counts['flood'] += 1
        except OSError:
            counts['refused'] += 1
def guess():
    n = 0
    while time.time() < end:
        try:
            c = socket.create_connection(('127.0.0.1', port), timeout=5)
            c.sendall(b'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic cHJvbWV0aGV1czp3cm9uZw==\r\n\r\n')
            c.recv(4096)
            c.close()
            counts['guesses'] += 1
        except OSError:
            counts['refused'] += 1
if sys.argv[3] == 'slow':
    threads = [threading.Thread(target=slow) for _ in range(200)]
else:
    threads = [threading.Thread(target=flood) for _ in range(4)]
    threads += [threading.Thread(target=guess) for _ in range(4)]
for t in threads:
    t.daemon = True
    t.start()
print('ready', flush=True)
sys.stdin.read()  # until the test closes it (or ends)
print(counts, flush=True)
"#;

/// The daemon's lost-event total, read as Prometheus does.
fn lost(address: &str) -> u64 {
    let page = curl(address, "/metrics");
    let total: f64 = page
        .lines()
        .filter(|l| l.starts_with("hupwatch_events_lost_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    total as u64
}

fn curl(address: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-u",
            "prometheus:secret",
            &format!("http://{address}{path}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the storm; how long it took.
fn storm() -> Duration {
    let started = Instant::now();
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("i=0; while [ $i -lt {STORM} ]; do /bin/true; i=$((i+1)); done"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

#[test]
fn the_listener_holds_under_abuse_and_loses_no_events_to_it() {
    require_root();
    let dir = scratch_dir("http-load");
    let hash = bcrypt::hash("secret", 10).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let hupwatch = Hupwatch::run(&["--web-config", web.to_str().unwrap()]);
    let address = hupwatch.address();
    let prometheus = Prometheus::start_with(
        &dir,
        std::slice::from_ref(&address),
        None,
        "    basic_auth:\n      username: prometheus\n      password: secret\n",
    );
    prometheus.wait_until("a first scrape", Duration::from_secs(30), |p| {
        p.query("up{job=\"hupwatch\"} == 1").first().map(|_| ())
    });

    let before = lost(&address);
    let quiet = storm();
    let lost_quiet = lost(&address) - before;

    // Two users: one holds slow connections, the other floods and guesses, so each kind
    // of abuse reaches the server within its own user's share.
    let port = address.rsplit(':').next().unwrap().to_string();
    let attack = |uid: u32, mode: &str| {
        let mut attacker = as_user(uid, PYTHON)
            .current_dir("/")
            .args(["-c", ATTACK, &port, &LOAD_SECONDS.to_string(), mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = std::io::BufReader::new(attacker.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut said, &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        (attacker, said)
    };
    let mut attackers = [attack(NOBODY, "slow"), attack(DAEMON, "flood")];
    // The load takes hold before the storm starts.
    std::thread::sleep(Duration::from_secs(3));
    let loaded_from = Instant::now();
    let before = lost(&address);
    let loaded = storm();
    let lost_loaded = lost(&address) - before;
    // Scrapes over the whole loaded stretch, storm included.
    std::thread::sleep(Duration::from_secs(2));
    let window = loaded_from.elapsed().as_secs().max(5);
    let scrapes = prometheus.query(&format!(
        "count_over_time(up{{job=\"hupwatch\"}}[{window}s])"
    ));
    let up = prometheus.query(&format!("min_over_time(up{{job=\"hupwatch\"}}[{window}s])"));
    let slowest = prometheus.query(&format!(
        "max_over_time(scrape_duration_seconds{{job=\"hupwatch\"}}[{window}s])"
    ));
    let mut counts = Vec::new();
    for (attacker, said) in &mut attackers {
        drop(attacker.stdin.take());
        let mut line = String::new();
        std::io::BufRead::read_line(said, &mut line).unwrap();
        let _ = attacker.kill();
        attacker.wait().unwrap();
        counts.push(line.trim().to_string());
    }
    let value = |v: &[serde_json::Value]| -> f64 {
        v.first()
            .and_then(|s| s["value"][1].as_str()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "http_load: {STORM} fork/exec/exit: events lost {lost_quiet} without HTTP load ({quiet:?}), \
         {lost_loaded} with it ({loaded:?}); Prometheus scrapes in {window} s: {} all up: {}, \
         slowest {:.3} s (timeout 1 s); slow connections (nobody): {}; flood and guesses \
         (daemon): {}",
        value(&scrapes),
        value(&up) == 1.0,
        value(&slowest),
        counts[0],
        counts[1]
    );
    assert_eq!(value(&up), 1.0, "a scrape failed under the load");
    assert!(value(&slowest) < 1.0, "a scrape took {} s", value(&slowest));
    assert!(
        value(&scrapes) >= window as f64 / 2.0,
        "too few scrapes: {scrapes:?}"
    );
    // The slow user was kept to its share; the flood and the guesses were answered.
    assert!(!counts[0].contains("'refused': 0,"), "{}", counts[0]);
    assert!(!counts[1].contains("'flood': 0,"), "{}", counts[1]);
    assert!(!counts[1].contains("'guesses': 0,"), "{}", counts[1]);
    assert!(
        lost_loaded <= lost_quiet + lost_quiet / 2 + 10,
        "the HTTP load cost events: {lost_loaded} lost with it, {lost_quiet} without"
    );
    let metrics = curl(&address, "/metrics");
    assert!(metric(&metrics, "hupwatch_events_lost_total{kind=\"exec\"}").is_some());
    hupwatch.stop();
}
