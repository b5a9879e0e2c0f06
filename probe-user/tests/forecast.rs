//! The memory forecast end to end, as root: `hupwatch run` (the real eBPF programs)
//! watches a real Python process that grows when told, and the sessions document's
//! `memory` says when memory runs out while it grows, and nothing once it stops or exits.
//! The machine's own figures are checked against /proc/meminfo.
#![cfg(target_os = "linux")]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    io::{BufRead, BufReader, Lines, Write},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, session_of};
use processes::named_python;
use serde_json::Value;
use support::{HUPWATCH, event_timeout, kill, meminfo, scratch_dir, unique};

const MIB: u64 = 1 << 20;
/// Each line it reads is a number of steps; each step is 4 MiB, touched, 20 a second by
/// the clock (however long an allocation takes); then it says `done` and waits.
const GROWER: &str = "import sys, time
b = []
print('ready', flush=True)
for line in sys.stdin:
    t = time.monotonic()
    for i in range(int(line)):
        b.append(bytearray(4 << 20))
        time.sleep(max(0, t + 0.05 * (i + 1) - time.monotonic()))
    print('done', flush=True)
";
/// The grower's pace, bytes per second.
const PACE: f64 = 80.0 * MIB as f64;
/// Steps of the first stretch of growth: 2.4 GiB over 30 s.
const FIRST_STEPS: u64 = 600;

/// The Python process, told when to grow; killed when dropped.
struct Grower {
    child: Child,
    said: Lines<BufReader<ChildStdout>>,
}

impl Grower {
    fn start(program: &std::path::Path) -> Self {
        let mut child = Command::new(program)
            .args(["-c", GROWER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let said = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut grower = Self { child, said };
        grower.expect("ready");
        grower
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn grow(&mut self, steps: u64) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{steps}").unwrap();
        stdin.flush().unwrap();
    }

    /// Blocks until it says `word`.
    fn expect(&mut self, word: &str) {
        let line = self
            .said
            .next()
            .expect("the grower said something")
            .unwrap();
        assert_eq!(line.trim(), word);
    }
}

impl Drop for Grower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `memory` of `hupwatch run`'s sessions document, and the document.
fn memory(hupwatch: &Hupwatch) -> (Value, Value) {
    let view: Value = serde_json::from_str(&hupwatch.http_get("/api/sessions")).unwrap();
    (view["memory"].clone(), view)
}

/// Polls the sessions document until `check` finds what it waits for. Only a failing test
/// waits the whole bound: three times the usual, as the grower takes 30 s to grow.
fn wait_for<T>(hupwatch: &Hupwatch, what: &str, check: impl Fn(&Value, &Value) -> Option<T>) -> T {
    let deadline = Instant::now() + 3 * event_timeout();
    loop {
        let (memory, view) = memory(hupwatch);
        if let Some(found) = check(&memory, &view) {
            return found;
        }
        assert!(Instant::now() < deadline, "no {what}; memory: {memory}");
        thread::sleep(Duration::from_millis(100));
    }
}

fn rss_of(view: &Value, pid: u32) -> Option<u64> {
    session_of(view, pid)?["rss_bytes"].as_u64()
}

/// The forecast agrees with the figures it is made of.
fn assert_consistent(memory: &Value) {
    let exhausted = memory["exhausted_in_seconds"].as_f64().unwrap();
    let available = memory["available_bytes"].as_f64().unwrap();
    let growth = memory["growth_bytes_per_second"].as_f64().unwrap();
    assert!(exhausted.is_finite() && exhausted > 0.0, "{memory}");
    assert!(
        (exhausted - available / growth).abs() <= 1e-6 * exhausted,
        "{memory}"
    );
    // A starved CPU allocates slower than the clock asks, never faster.
    assert!(growth > 0.0 && growth < 1.5 * PACE, "{memory}");
}

#[test]
fn the_forecast_follows_a_growing_session_and_goes_when_it_stops_or_exits() {
    let dir = scratch_dir("forecast");
    let name = unique("fcg");
    let mut grower = Grower::start(&named_python(&dir, &name));
    let pid = grower.pid();
    // Started before hupwatch, so its start-up is not in the series; a window short
    // enough that a fit counts after a second of growth (an eighth of it).
    let hupwatch = Hupwatch::run(&[
        "--match",
        &name,
        "--rss-window",
        "8s",
        "--rss-interval",
        "250ms",
    ]);

    // Idle: the machine's figures, and no forecast. Swap may be turned on or off while
    // they are read (by another test, by the machine), so /proc/meminfo is read on both
    // sides of the document.
    let (total_before, _) = meminfo();
    let idle = wait_for(&hupwatch, "a first reading of the machine", |m, view| {
        (m["available_bytes"].is_u64() && session_of(view, pid).is_some()).then(|| m.clone())
    });
    let (total, available) = meminfo();
    let said_total = idle["total_bytes"].as_u64().unwrap();
    assert!(
        said_total == total || said_total == total_before,
        "{idle} against MemTotal + SwapTotal = {total_before}, then {total}"
    );
    let said = idle["available_bytes"].as_u64().unwrap();
    assert!(said <= said_total, "{idle}");
    // Both are read at different moments of a busy machine: close, not equal.
    assert!(
        said.abs_diff(available) < total / 10,
        "{idle} against MemAvailable + SwapFree = {available}"
    );
    assert_eq!(idle["exhausted_in_seconds"], Value::Null, "{idle}");
    assert_eq!(
        idle["growth_bytes_per_second"].as_f64(),
        Some(0.0),
        "{idle}"
    );
    // The same through `hupwatch sessions --from`, and a one-shot look reads the machine
    // too (but has no growth to judge).
    assert!(hupwatch.sessions_json()["memory"]["total_bytes"].is_u64());
    let one_shot = Command::new(HUPWATCH)
        .args(["sessions", "--json", "--match", &name])
        .output()
        .unwrap();
    assert!(one_shot.status.success(), "{one_shot:?}");
    let one_shot: Value = serde_json::from_slice(&one_shot.stdout).unwrap();
    assert!(one_shot["memory"]["total_bytes"].is_u64(), "{one_shot}");
    assert!(one_shot["memory"]["available_bytes"].is_u64(), "{one_shot}");
    assert_eq!(one_shot["memory"]["exhausted_in_seconds"], Value::Null);

    // Growing: a forecast, which falls as memory fills.
    grower.grow(FIRST_STEPS);
    let (first, from) = wait_for(&hupwatch, "a forecast while it grows", |m, view| {
        m["exhausted_in_seconds"]
            .is_f64()
            .then(|| (m.clone(), rss_of(view, pid).unwrap()))
    });
    assert_consistent(&first);
    // Halfway from there to where it stops growing.
    let end = FIRST_STEPS * 4 * MIB;
    let halfway = from + end.saturating_sub(from) / 2;
    let later = wait_for(&hupwatch, "the grower halfway", |m, view| {
        (rss_of(view, pid)? >= halfway).then(|| m.clone())
    });
    assert_consistent(&later);
    let seconds = |m: &Value| m["exhausted_in_seconds"].as_f64().unwrap();
    assert!(
        seconds(&later) < seconds(&first),
        "the forecast did not fall while memory filled: from {first} to {later}"
    );

    // Stopped, alive and idle: no forecast, however it fitted before.
    grower.expect("done");
    let stopped = wait_for(&hupwatch, "the forecast gone once it stopped", |m, _| {
        m["exhausted_in_seconds"].is_null().then(|| m.clone())
    });
    assert_eq!(stopped["growth_bytes_per_second"].as_f64(), Some(0.0));
    assert!(stopped["available_bytes"].is_u64(), "{stopped}");
    assert!(
        session_of(&memory(&hupwatch).1, pid).is_some(),
        "still alive"
    );

    // Growing again, then killed: the forecast goes with it.
    grower.grow(200);
    let again = wait_for(&hupwatch, "a forecast when it grows again", |m, _| {
        m["exhausted_in_seconds"].is_f64().then(|| m.clone())
    });
    assert_consistent(&again);
    kill(pid, libc::SIGKILL);
    wait_for(
        &hupwatch,
        "the forecast gone with the process",
        |m, view| {
            (m["exhausted_in_seconds"].is_null() && session_of(view, pid).is_none()).then_some(())
        },
    );
    drop(grower);
    hupwatch.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
