//! End to end, as root, against a real Prometheus server: it scrapes running `hupwatch run`
//! instances (with the real eBPF programs) while real scenarios play out. Every query of
//! every dashboard panel must return data, the shipped alert rules meant to fire for the
//! scenario must be firing in Prometheus's own API (and the one that must not, must not),
//! and 2,000 short-lived flagged processes must keep the per-session series under the cap.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, metric, raised, session_of, tracefs_without};
use processes::{named_program, named_python, orphan, wait_for_sighup_handler};
use prometheus::Prometheus;
use pty::Pty;
use serde_json::Value;
use support::{free_port, kill, scratch_dir, unique};

const DASHBOARD: &str = include_str!("../../dashboards/hupwatch.json");
const RULES: &str = include_str!("../../dashboards/alerts.yml");

/// The rules as shipped minus their `for:` holds (5 min to 1 h, which the promtool unit
/// tests in dashboards/alerts.test.yml cover), so that they can fire within a test.
fn rules_without_holds() -> String {
    RULES
        .lines()
        .filter(|l| !l.trim_start().starts_with("for:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Turns `kernel.bpf_stats_enabled` on for the in-kernel cost panel, and back as it was.
struct BpfStats(String);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn enable() -> Self {
        let was = std::fs::read_to_string(BPF_STATS).expect("kernel.bpf_stats_enabled exists");
        std::fs::write(BPF_STATS, "1").expect("root can enable bpf stats");
        Self(was)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, self.0.trim());
    }
}

/// Every query of every panel, as Grafana would send it for all machines.
fn panel_queries() -> Vec<(String, String)> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "5m");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

fn has_a_number(result: &[Value]) -> bool {
    result.iter().any(|series| {
        series["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    })
}

/// The processes a scenario started, killed however the test ends.
#[derive(Default)]
struct Reaper {
    children: Vec<Child>,
    pids: Vec<u32>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.pids {
            kill(*pid, libc::SIGKILL);
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn prometheus_answers_every_panel_and_fires_the_intended_alerts() {
    let _stats = BpfStats::enable();
    let dir = scratch_dir("prometheus");
    let mut reaper = Reaper::default();
    let names = [
        "pds", "pnh", "phs", "pws", "pgr", "psp", "pzm", "pso", "pfc",
    ]
    .map(unique);
    let [
        detached,
        nohup,
        handler,
        shell,
        grower,
        spinner,
        zombies,
        stopped,
        steady,
    ] = &names;
    // rss_growth needs growth over a quarter of the window: 3 s of the grower's 4 s.
    let mut watch = vec!["--hup-grace", "2s", "--rss-window", "12s"];
    // A busy loop shares two cores with the grower and the other test's 2,000 processes:
    // 30 % of a CPU is what it surely gets; the sleepers stay near 0.
    watch.extend(["--cpu-window", "3s", "--cpu-spin", "30%"]);
    watch.extend(["--rss-interval", "250ms"]);
    for name in &names {
        watch.extend(["--match", name.as_str()]);
    }
    // The machine that behaves as it should, watching the scenario's programs.
    let healthy = Hupwatch::run(&watch);

    // A machine in trouble: a kernel without rss_stat and a ring buffer too small for a
    // signal storm.
    let storm_name = unique("pst");
    let storm_program = named_program(&dir, &storm_name, "sleep");
    let tracefs = dir.join("tracefs");
    tracefs_without(&tracefs, "kmem/rss_stat");
    let troubled = Hupwatch::run_with_env(
        &["--match", &storm_name, "--ring-buffer-size", "4KiB"],
        &[("HUPWATCH_TRACEFS", tracefs.to_str().unwrap())],
    );
    // A machine whose hupwatch is not running.
    let gone = format!("127.0.0.1:{}", free_port());

    let targets = [healthy.address(), troubled.address(), gone.clone()];
    let prometheus_dir = dir.join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let prometheus = Prometheus::start(&prometheus_dir, &targets, Some(&rules_without_holds()));
    // Scraped at least once before anything happens, so increases have a starting point.
    prometheus.wait_until("every target scraped", Duration::from_secs(30), |p| {
        let health = p.target_health();
        let up = |t: &str| health.iter().any(|(i, h)| i == t && h == "up");
        let down = health.iter().any(|(i, h)| *i == gone && h == "down");
        (up(&targets[0]) && up(&targets[1]) && down).then_some(())
    });
    thread::sleep(Duration::from_secs(2));

    // `setsid X` typed at a shell on a terminal: detached.
    let links: Vec<PathBuf> = [detached, nohup, handler, shell]
        .iter()
        .zip(["sleep", "sleep", "sh", "sh"])
        .map(|(name, program)| named_program(&dir, name, program))
        .collect();
    let detach_pty = Pty::open();
    let typed = format!("setsid {} 1000; true", links[0].display());
    reaper
        .children
        .push(detach_pty.spawn(Command::new("sh").args(["-c", &typed])));
    let alert = healthy.wait_for("a detached alert", |a| {
        a["status"] == "raised" && a["alert"] == "detached"
    });
    reaper.pids.push(alert["pid"].as_u64().unwrap() as u32);

    // nohup on a terminal that hangs up: hangup_ignored, then terminal_lost.
    let nohup_pty = Pty::open();
    let child = nohup_pty.spawn(
        Command::new("nohup")
            .arg(&links[1])
            .arg("1000")
            .current_dir(&dir),
    );
    let nohup_pid = child.id();
    reaper.children.push(child);
    healthy.wait_for("hangup_ignored", raised("hangup_ignored", nohup_pid));
    nohup_pty.hang_up();

    // A SIGHUP handler that does nothing: hangup_survived.
    let child = Command::new(&links[2])
        .args(["-c", "trap 'echo hup' HUP; while :; do sleep 1; done"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let handler_pid = child.id();
    reaper.children.push(child);
    wait_for_sighup_handler(handler_pid);
    kill(handler_pid, libc::SIGHUP);

    // A shell that ends with its terminal: a hangup-to-exit latency.
    let shell_pty = Pty::open();
    let mut child = shell_pty.spawn(Command::new(&links[3]).args(["-c", "read line"]));
    thread::sleep(Duration::from_millis(300));
    shell_pty.hang_up();
    child.wait().unwrap();

    // `nohup agent &` typed on a terminal that then closes: an orphan that ignores the
    // hangup and grows to 2.5 GiB. orphaned, rss_growth, and memory held by orphans. The
    // shell waits a moment, as a person would: without job control the job shares its
    // process group, and the session leader's exit would hang it up before nohup ran.
    let python = named_python(&dir, grower);
    let grow = "import time\nb=[]\nfor _ in range(40):\n    b.append(bytearray(64<<20))\n    time.sleep(0.1)\ntime.sleep(1000)\n";
    let pid_file = dir.join("grower.pid");
    let typed = format!(
        "nohup '{}' -c '{grow}' >/dev/null 2>&1 & echo $! > '{}'; sleep 0.5",
        python.display(),
        pid_file.display()
    );
    let grower_pty = Pty::open();
    let mut child = grower_pty.spawn(Command::new("sh").args(["-c", &typed]));
    child.wait().unwrap();
    drop(grower_pty);
    let grower_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    reaper.pids.push(grower_pid);

    // An orphan that spins: cpu_spin. A parent that does not reap 60 children: zombies. An
    // orphan that is stopped: stopped.
    let spinner_pid = orphan(&named_python(&dir, spinner), "-c 'while True: pass'");
    reaper.pids.push(spinner_pid);
    let unreaping = "import os, time
for _ in range(60):
    if os.fork() == 0:
        os._exit(0)
time.sleep(1000)
";
    let zombies_pid = orphan(&named_python(&dir, zombies), &format!("-c '{unreaping}'"));
    reaper.pids.push(zombies_pid);
    let stopped_pid = orphan(&named_program(&dir, stopped, "sleep"), "1000");
    reaper.pids.push(stopped_pid);
    healthy.wait_for("the stopped one orphaned", raised("orphaned", stopped_pid));
    kill(stopped_pid, libc::SIGSTOP);

    healthy.wait_for("terminal_lost", raised("terminal_lost", nohup_pid));
    healthy.wait_for("cpu_spin", raised("cpu_spin", spinner_pid));
    healthy.wait_for("zombies", raised("zombies", zombies_pid));
    healthy.wait_for("stopped", raised("stopped", stopped_pid));
    healthy.wait_for("hangup_survived", raised("hangup_survived", handler_pid));
    healthy.wait_for("orphaned", raised("orphaned", grower_pid));
    healthy.wait_for("rss_growth", raised("rss_growth", grower_pid));

    // The storm: signals to a watched process until the small ring buffer overflows.
    let storm = Command::new(&storm_program).arg("1000").spawn().unwrap();
    let storm_pid = storm.id();
    reaper.children.push(storm);
    let tracked = format!("hupwatch_tracked_processes{{group=\"{storm_name}\"}}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&troubled.http_get("/metrics"), &tracked) != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the storm target was never tracked"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let lost = |m: &str| -> f64 {
        m.lines()
            .filter(|l| l.starts_with("hupwatch_events_lost_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    while lost(&troubled.http_get("/metrics")) == 0.0 {
        assert!(
            Instant::now() < deadline,
            "200k signals a round never overflowed 4 KiB"
        );
        for _ in 0..200_000 {
            kill(storm_pid, libc::SIGWINCH);
        }
        // Losses reach /metrics with the once-a-second check.
        thread::sleep(Duration::from_millis(1200));
    }

    // A session that grows steadily to the end (the first grower stopped long ago): the
    // memory forecast, and its alert. 2 MiB every 100 ms by the clock, 3 GiB at most.
    let pace = "import time\nb=[]\nt=time.monotonic()\nfor i in range(1536):\n    b.append(bytearray(2<<20))\n    time.sleep(max(0, t + 0.1 * (i + 1) - time.monotonic()))\ntime.sleep(1000)\n";
    let child = Command::new(named_python(&dir, steady))
        .args(["-c", pace])
        .spawn()
        .unwrap();
    reaper.children.push(child);

    let mut expected = [
        "HupwatchDown",
        "HupwatchEventsLost",
        "HupwatchHangupIgnored",
        "HupwatchMemoryExhaustionSoon",
        "HupwatchOrphansHoldingMemory",
        "HupwatchProgramNotAttached",
        "HupwatchSessionGrowing",
        "HupwatchSessionOutlivedTerminal",
        "HupwatchSessionSpinning",
        "HupwatchStoppedOrphans",
        "HupwatchZombiesPilingUp",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    let firing = prometheus.wait_until(
        "the intended alerts to fire",
        Duration::from_secs(60),
        |p| {
            let firing = p.firing();
            expected
                .iter()
                .all(|e| firing.contains(e))
                .then_some(firing)
        },
    );
    // HupwatchMissing (no target at all) is the one that must stay quiet.
    assert_eq!(firing, expected);
    let alerts = prometheus.alerts();
    let instance_of = |name: &str| -> Vec<String> {
        alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
            .map(|a| a["labels"]["instance"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(instance_of("HupwatchDown"), [gone]);
    assert_eq!(
        instance_of("HupwatchProgramNotAttached"),
        [targets[1].clone()]
    );
    assert!(instance_of("HupwatchEventsLost").contains(&targets[1]));
    assert_eq!(
        instance_of("HupwatchOrphansHoldingMemory"),
        [targets[0].clone()]
    );
    // The troubled machine watches a sleeper: nothing grows there.
    assert_eq!(
        instance_of("HupwatchMemoryExhaustionSoon"),
        [targets[0].clone()]
    );

    // Per match group: the grower counts under its own flag, with its memory.
    let group = |metric: &str| -> f64 {
        let expr = format!("{metric}{{instance=\"{}\",group=\"{grower}\"}}", targets[0]);
        let result = prometheus.query(&expr);
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(group("hupwatch_tracked_processes"), 1.0);
    // Its 2.5 GiB, as the next scrapes see it. A fresh-clone CI run once read less here
    // (cause not found; two runs after it passed): say what hupwatch itself held then.
    let deadline = Instant::now() + Duration::from_secs(20);
    while group("hupwatch_tracked_rss_bytes") < 2e9 {
        assert!(
            Instant::now() < deadline,
            "the grower's memory stayed under 2e9 bytes in hupwatch_tracked_rss_bytes ({}); \
             hupwatch holds it as {}; /proc/{grower_pid}/status says {:?}",
            group("hupwatch_tracked_rss_bytes"),
            session_of(&healthy.sessions_json(), grower_pid).unwrap_or_default(),
            std::fs::read_to_string(format!("/proc/{grower_pid}/status"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("Vm") || l.starts_with("State"))
                .collect::<Vec<_>>(),
        );
        thread::sleep(Duration::from_millis(500));
    }

    // Every panel's every query returns data, for the whole fleet.
    let empty: Vec<String> = panel_queries()
        .into_iter()
        .filter(|(_, expr)| !has_a_number(&prometheus.query(expr)))
        .map(|(title, expr)| format!("{title}: {expr}"))
        .collect();
    assert!(
        empty.is_empty(),
        "panels with no data:\n{}",
        empty.join("\n")
    );
}

#[test]
fn two_thousand_short_lived_flagged_processes_stay_under_the_series_cap() {
    const CAP: usize = 20;
    let dir = scratch_dir("cardinality");
    let name = unique("crd");
    let sleeper = named_program(&dir, &name, "sleep");
    let cap = CAP.to_string();
    let hupwatch = Hupwatch::run(&["--match", &name, "--max-session-series", &cap]);
    let prometheus = Prometheus::start(&dir, &[hupwatch.address()], None);
    prometheus.wait_until("hupwatch scraped", Duration::from_secs(30), |p| {
        p.target_health()
            .iter()
            .any(|(_, h)| h == "up")
            .then_some(())
    });

    // 20 rounds of 100 `setsid crd 0.3` from a shell on a terminal: each is detached (a
    // verdict after 80 ms) and gone 300 ms later.
    let pty = Pty::open();
    let script = format!(
        "i=0; while [ $i -lt 20 ]; do j=0; while [ $j -lt 100 ]; do setsid '{}' 0.3 & j=$((j+1)); done; wait; i=$((i+1)); done",
        sleeper.display()
    );
    let mut churn = pty.spawn(Command::new("sh").args(["-c", &script]));
    let series = |metrics: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("hupwatch_session_rss_bytes{"))
            .count()
    };
    let mut most = 0;
    while churn.try_wait().unwrap().is_none() {
        let now = series(&hupwatch.http_get("/metrics"));
        assert!(now <= CAP, "{now} per-session series with a cap of {CAP}");
        most = most.max(now);
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(most, CAP, "100 flagged at a time fill the cap");

    let raised = "hupwatch_verdicts_raised_total{inferred=\"false\",verdict=\"detached\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = hupwatch.http_get("/metrics");
        let flagged = metric(&metrics, raised).unwrap();
        if flagged >= 2000.0 && series(&metrics) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{flagged} of 2000 flagged, {} series left after they all exited",
            series(&metrics)
        );
        thread::sleep(Duration::from_millis(200));
    }

    // What Prometheus stored: never more than the cap, and nothing left once they are gone.
    let most_stored =
        prometheus.wait_until("the stale series to go", Duration::from_secs(20), |p| {
            p.query("count(hupwatch_session_rss_bytes)")
                .is_empty()
                .then(|| p.query("max_over_time(count(hupwatch_session_rss_bytes)[5m:1s])"))
        });
    let most_stored: f64 = most_stored[0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1.0..=CAP as f64).contains(&most_stored),
        "Prometheus held {most_stored} per-session series at once"
    );
}
