//! hupwatch's /proc polling source (`run --source proc`) beside process-exporter
//! (Debian's `prometheus-process-exporter`) on the same 1,000 live processes, each polling
//! once a second: CPU per poll and resident memory of each, one tool after the other so
//! that they do not compete for the two CPUs. A full run measures the same again at
//! 10,000 processes (`larger` in the JSON), for how the cost grows (report/scale.rs
//! shows it).
//!
//! "Polling once a second" for each: hupwatch reads /proc on its own timer
//! (`--poll-interval 1s`); process-exporter reads all of /proc each time its `/metrics`
//! is scraped (its collector calls `Update(AllProcs())` per scrape and has no timer of
//! its own), so the bench scrapes it once a second. hupwatch's `/metrics` is scraped once
//! a second as well, so both serve the same scrape load and both CPU figures include it.
use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    probe::{KillOnDrop, Probe, sample},
    stats::Spread,
};

/// The processes of the run the goal is judged on.
const PROCESSES: u64 = 1000;
/// More processes, measured in a full run for how the cost grows.
const LARGER: &[u64] = &[10_000];
/// Scrapes measured at [`LARGER`] counts: process-exporter takes seconds per scrape there.
const LARGER_SCRAPES: u64 = 10;
const INTERVAL: Duration = Duration::from_secs(1);
const WARMUP: Duration = Duration::from_secs(3);
/// hupwatch's CPU at most this share of process-exporter's.
pub const GOAL_RATIO: f64 = 0.5;
/// Which hupwatch source to measure: `proc` unless set ([`choose_source`]).
const SOURCE_VAR: &str = "HUPWATCH_BENCH_POLL_SOURCE";

/// What one tool cost over the measured span.
pub struct Cost {
    polls: f64,
    scrapes: u64,
    seconds: f64,
    /// utime + stime from /proc/PID/stat, in clock ticks turned to seconds.
    cpu_seconds: f64,
    clock_tick_seconds: f64,
    /// The sum of every thread's /proc/PID/task/TID/schedstat run time: nanoseconds.
    schedstat_cpu_seconds: f64,
    scrape_ms: Option<Spread>,
    vmrss_bytes: u64,
    vmhwm_bytes: u64,
    watched: f64,
}

pub struct Poll {
    source: String,
    stand_in: bool,
    seconds: u64,
    hupwatch: Cost,
    exporter: Cost,
    exporter_command: String,
    /// process-exporter without the two per-scrape extras hupwatch has no counterpart
    /// of (smaps_rollup and per-thread series): context for the ratio, not the goal.
    lean: Cost,
    lean_command: String,
    hupwatch_command: String,
    /// The same at [`LARGER`] counts (a full run only).
    larger: Vec<Run>,
}

/// The three tools on one count of processes.
struct Run {
    processes: u64,
    seconds: u64,
    hupwatch: Cost,
    exporter: Cost,
    lean: Cost,
}

/// The 1,000 subjects: `sleep 3600` in a process group of their own, all killed (the
/// group) and reaped when dropped, on failure too.
struct Sleepers {
    pgid: i32,
    children: Vec<Child>,
}

impl Sleepers {
    fn spawn(count: u64) -> Result<Self> {
        let mut sleepers = Self {
            pgid: 0,
            children: Vec::with_capacity(count as usize),
        };
        for _ in 0..count {
            let child = Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // The first leads a new group, the others join it.
                .process_group(sleepers.pgid)
                .spawn()
                .context("starting `sleep 3600`")?;
            if sleepers.pgid == 0 {
                sleepers.pgid = child.id() as i32;
            }
            sleepers.children.push(child);
        }
        Ok(sleepers)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        if self.pgid > 0 {
            // SAFETY: a process group of our own children only.
            unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const LEAN: &[&str] = &["-gather-smaps=false", "-threads=false"];

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Poll> {
    let span = Duration::from_secs(if quick { 5 } else { 30 });
    let (source, stand_in) = choose_source();
    eprintln!("bench: poll: {PROCESSES} sleeping processes, hupwatch source {source}");
    let sleepers = Sleepers::spawn(PROCESSES)?;

    let (exporter, exporter_command) = process_exporter(span, &[], PROCESSES)?;
    let (lean, lean_command) = process_exporter(span, LEAN, PROCESSES)?;
    let (own, hupwatch_command) = hupwatch_cost(hupwatch, &source, span, PROCESSES)?;
    drop(sleepers);

    let mut larger = Vec::new();
    for &processes in if quick { &[][..] } else { LARGER } {
        let span = Duration::from_secs(LARGER_SCRAPES);
        eprintln!("bench: poll: {processes} sleeping processes");
        let sleepers = Sleepers::spawn(processes)?;
        let run = Run {
            processes,
            seconds: span.as_secs(),
            exporter: process_exporter(span, &[], processes)?.0,
            lean: process_exporter(span, LEAN, processes)?.0,
            hupwatch: hupwatch_cost(hupwatch, &source, span, processes)?.0,
        };
        drop(sleepers);
        eprintln!(
            "bench: poll: {processes} processes: hupwatch {:.2} ms CPU per poll, process-exporter {:.2} ms (ratio {:.2})",
            run.hupwatch.ms_per_poll(),
            run.exporter.ms_per_poll(),
            run.hupwatch.ms_per_poll() / run.exporter.ms_per_poll(),
        );
        larger.push(run);
    }

    let poll = Poll {
        source,
        stand_in,
        seconds: span.as_secs(),
        hupwatch: own,
        exporter,
        exporter_command,
        lean,
        lean_command,
        hupwatch_command,
        larger,
    };
    let (h, e) = (poll.hupwatch.ms_per_poll(), poll.exporter.ms_per_poll());
    eprintln!(
        "bench: poll: hupwatch {h:.2} ms CPU per poll ({:.2} % of a CPU, VmRSS {:.1} MiB), \
         process-exporter {e:.2} ms ({:.2} %, VmRSS {:.1} MiB): ratio {:.2}; \
         process-exporter without smaps and threads {:.2} ms (ratio {:.2})",
        poll.hupwatch.cpu_percent(),
        poll.hupwatch.vmrss_bytes as f64 / MIB,
        poll.exporter.cpu_percent(),
        poll.exporter.vmrss_bytes as f64 / MIB,
        poll.ratio(),
        poll.lean.ms_per_poll(),
        h / poll.lean.ms_per_poll(),
    );
    eprintln!("bench: poll: {}", poll.goal_line());
    Ok(poll)
}

/// `proc`, unless [`SOURCE_VAR`] names another source to stand in for it (the report then
/// says so): `ebpf` to compare, or to try the harness on a hupwatch without `proc`.
fn choose_source() -> (String, bool) {
    match std::env::var(SOURCE_VAR) {
        Ok(source) if source != "proc" => (source, true),
        _ => ("proc".into(), false),
    }
}

/// The process-exporter configuration: every process, each group named by its comm. '.*'
/// rather than '.+': kernel threads have an empty command line and hupwatch watches them
/// too.
const EXPORTER_CONFIG: &str = "process_names:\n  - name: \"{{.Comm}}\"\n    cmdline:\n    - '.*'\n";

/// process-exporter with [`EXPORTER_CONFIG`] and `flags`, scraped once a second.
fn process_exporter(span: Duration, flags: &[&str], processes: u64) -> Result<(Cost, String)> {
    let binary = ["prometheus-process-exporter", "process-exporter"]
        .into_iter()
        .find_map(crate::sh::which)
        .context("process-exporter is not installed (cargo xtask setup installs Debian's prometheus-process-exporter)")?;
    let dir = std::env::temp_dir().join(format!("hupwatch-bench-poll-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _cleanup = RemoveDir(dir.clone());
    let config = dir.join("process-exporter.yml");
    std::fs::write(&config, EXPORTER_CONFIG)?;
    let address = format!("127.0.0.1:{}", free_port()?);
    let log = dir.join("stderr.log");
    let mut command = Command::new(&binary);
    command
        .arg("-config.path")
        .arg(&config)
        .args(["-web.listen-address", &address])
        .args(flags);
    let shown = format!(
        "{} -config.path process-exporter.yml -web.listen-address 127.0.0.1:PORT{}",
        binary.display(),
        flags.iter().map(|f| format!(" {f}")).collect::<String>(),
    );
    let child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let pid = child.0.id();
    let series = "namedprocess_namegroup_num_procs{groupname=\"sleep\"}";
    let watched = wait_watched(&address, series, &log, processes)?;
    eprintln!(
        "bench: poll: process-exporter{} sees {watched} sleep processes",
        flags.iter().map(|f| format!(" {f}")).collect::<String>()
    );
    let cost = measure_cost(pid, &address, span, None, series)?;
    drop(child);
    Ok((cost, shown))
}

fn hupwatch_cost(
    hupwatch: &Path,
    source: &str,
    span: Duration,
    processes: u64,
) -> Result<(Cost, String)> {
    let interval = format!("{}s", INTERVAL.as_secs());
    let mut args = vec!["--alerts-file", "/dev/null"];
    if source == "proc" {
        args.extend(["--source", "proc", "--poll-interval", &interval]);
    } else {
        // The eBPF source: its RSS sampling is what runs on a timer.
        args.extend(["--source", source, "--rss-interval", &interval]);
    }
    let shown = format!("hupwatch run --listen 127.0.0.1:0 {}", args.join(" "));
    let probe = Probe::hupwatch(hupwatch, &args)?;
    let address = probe.address.clone().context("hupwatch's HTTP address")?;
    let series = "hupwatch_tracked_processes{group=\"all\"}";
    let watched = wait_watched(&address, series, Path::new(""), processes)?;
    eprintln!("bench: poll: hupwatch tracks {watched} processes");
    let cost = measure_cost(probe.pid(), &address, span, Some(INTERVAL), series)?;
    probe.stop()?;
    Ok((cost, shown))
}

/// Scrapes `address` until `series` counts the `processes` sleepers (or 60 s pass).
fn wait_watched(address: &str, series: &str, log: &Path, processes: u64) -> Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last = match http_get(address, "/metrics") {
            Ok(body) => {
                let seen = sample(&body, series).unwrap_or(0.0);
                if seen >= processes as f64 {
                    return Ok(seen);
                }
                format!("{series} = {seen}")
            }
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "{address} never counted the {processes} sleepers ({last}){}",
                if log.is_empty() {
                    String::new()
                } else {
                    format!("; its log: {}", log.trim())
                }
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// Scrapes `/metrics` once a second: a warm-up, then the span, its CPU read right after a
/// scrape at each end. With `own_interval` the tool polls on its own timer and the polls
/// are the span over that interval; without, each scrape is a poll.
fn measure_cost(
    pid: u32,
    address: &str,
    span: Duration,
    own_interval: Option<Duration>,
    series: &str,
) -> Result<Cost> {
    let warmup_scrapes = WARMUP.as_secs();
    let measured_scrapes = span.as_secs();
    let start = Instant::now();
    let mut begin = None;
    let mut took = Vec::new();
    let mut watched = 0.0;
    for k in 0..=warmup_scrapes + measured_scrapes {
        if let Some(wait) = (start + INTERVAL * k as u32).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let asked = Instant::now();
        let body = http_get(address, "/metrics")?;
        if k > warmup_scrapes {
            took.push(asked.elapsed().as_secs_f64() * 1e3);
            watched = sample(&body, series).unwrap_or(0.0);
        }
        if k == warmup_scrapes {
            begin = Some((Instant::now(), cpu_seconds(pid)?, schedstat_seconds(pid)?));
        }
    }
    let end = (Instant::now(), cpu_seconds(pid)?, schedstat_seconds(pid)?);
    let (t0, cpu0, sched0) = begin.context("the span's start")?;
    let seconds = (end.0 - t0).as_secs_f64();
    let (vmrss_bytes, vmhwm_bytes) = memory(pid)?;
    Ok(Cost {
        polls: match own_interval {
            Some(interval) => seconds / interval.as_secs_f64(),
            None => measured_scrapes as f64,
        },
        scrapes: measured_scrapes,
        seconds,
        cpu_seconds: end.1 - cpu0,
        clock_tick_seconds: 1.0 / clock_ticks(),
        schedstat_cpu_seconds: end.2 - sched0,
        scrape_ms: Spread::of(&took),
        vmrss_bytes,
        vmhwm_bytes,
        watched,
    })
}

/// One HTTP/1.0 GET: the body.
fn http_get(address: &str, path: &str) -> Result<String> {
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("connecting to {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response")?;
    let status = head.split_whitespace().nth(1);
    if !head.starts_with("HTTP/1.") || status != Some("200") {
        bail!(
            "GET http://{address}{path}: {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_string())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// utime + stime of the whole process, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc/PID/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks())
}

/// The run time of every live thread, from /proc/PID/task/*/schedstat (nanoseconds): a
/// finer check of the ticks above, blind to threads that end within the span.
pub(super) fn schedstat_seconds(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(&path) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(ns as f64 / 1e9)
}

/// VmRSS and VmHWM, in bytes.
pub(super) fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{name} in /proc/{pid}/status"))?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Cost {
    fn ms_per_poll(&self) -> f64 {
        self.cpu_seconds * 1e3 / self.polls
    }

    fn cpu_percent(&self) -> f64 {
        self.cpu_seconds * 100.0 / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "polls": self.polls,
            "scrapes": self.scrapes,
            "seconds": self.seconds,
            "watched": self.watched,
            "cpu_seconds": self.cpu_seconds,
            "cpu_ms_per_poll": self.ms_per_poll(),
            "cpu_ms_per_poll_resolution": self.clock_tick_seconds * 1e3 / self.polls,
            "cpu_percent_of_one_cpu": self.cpu_percent(),
            "schedstat_cpu_ms_per_poll": self.schedstat_cpu_seconds * 1e3 / self.polls,
            "scrape_ms": self.scrape_ms.map(Spread::json),
            "vmrss_bytes": self.vmrss_bytes,
            "vmhwm_bytes": self.vmhwm_bytes,
        })
    }
}

impl Poll {
    fn ratio(&self) -> f64 {
        self.hupwatch.ms_per_poll() / self.exporter.ms_per_poll()
    }

    fn goal_met(&self) -> bool {
        self.ratio() <= GOAL_RATIO
    }

    fn goal_line(&self) -> String {
        format!(
            "goal {}: hupwatch's CPU per poll is {:.2} of process-exporter's (goal: at most {GOAL_RATIO}){}",
            if self.goal_met() { "met" } else { "not met" },
            self.ratio(),
            if self.stand_in {
                format!(
                    "; hupwatch ran with --source {} standing in for --source proc, so this is not the result",
                    self.source
                )
            } else {
                String::new()
            }
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "processes": PROCESSES,
            "interval_ms": INTERVAL.as_millis() as u64,
            "warmup_seconds": WARMUP.as_secs(),
            "seconds": self.seconds,
            "hupwatch_source": self.source,
            "stand_in": self.stand_in,
            "hupwatch_command": self.hupwatch_command,
            "process_exporter_command": self.exporter_command,
            "hupwatch": self.hupwatch.json(),
            "process_exporter": self.exporter.json(),
            "process_exporter_lean_command": self.lean_command,
            "process_exporter_lean": self.lean.json(),
            "process_exporter_config": EXPORTER_CONFIG,
            "cpu_ratio_to_lean": self.hupwatch.ms_per_poll() / self.lean.ms_per_poll(),
            "cpu_ratio": self.ratio(),
            "goal_ratio": GOAL_RATIO,
            "goal_met": self.goal_met(),
            "goal": self.goal_line(),
            "larger": self.larger.iter().map(Run::json).collect::<Vec<_>>(),
        })
    }
}

impl Run {
    fn json(&self) -> Value {
        json!({
            "processes": self.processes,
            "seconds": self.seconds,
            "hupwatch": self.hupwatch.json(),
            "process_exporter": self.exporter.json(),
            "process_exporter_lean": self.lean.json(),
            "cpu_ratio": self.hupwatch.ms_per_poll() / self.exporter.ms_per_poll(),
            "cpu_ratio_to_lean": self.hupwatch.ms_per_poll() / self.lean.ms_per_poll(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report;

    fn cost(cpu_seconds: f64) -> Cost {
        Cost {
            polls: 30.0,
            scrapes: 30,
            seconds: 30.0,
            cpu_seconds,
            clock_tick_seconds: 0.01,
            schedstat_cpu_seconds: cpu_seconds,
            scrape_ms: Spread::of(&[1.0, 2.0]),
            vmrss_bytes: 10 << 20,
            vmhwm_bytes: 12 << 20,
            watched: 1000.0,
        }
    }

    #[test]
    fn the_section_states_the_goal_and_every_tool() {
        let poll = Poll {
            source: "proc".into(),
            stand_in: false,
            seconds: 30,
            hupwatch: cost(0.9),
            exporter: cost(9.0),
            exporter_command: "process-exporter".into(),
            lean: cost(6.0),
            lean_command: "process-exporter -threads=false".into(),
            hupwatch_command: "hupwatch run --source proc".into(),
            larger: vec![Run {
                processes: 10_000,
                seconds: 10,
                hupwatch: cost(9.0),
                exporter: cost(90.0),
                lean: cost(60.0),
            }],
        };
        assert!(poll.goal_met());
        let mut out = String::new();
        report::poll::markdown(&json!({"poll": poll.json()}), &mut out);
        assert!(out.contains("| hupwatch | 30.00 (±0.33) | 3.00 |"), "{out}");
        assert!(out.contains("| process-exporter | 300.00"), "{out}");
        assert!(out.contains("no smaps or threads | 200.00"), "{out}");
        assert!(
            out.contains("**goal met: hupwatch's CPU per poll is 0.10"),
            "{out}"
        );
        assert!(!out.contains("Stand-in"), "{out}");
        assert!(out.contains("The same at 10000 processes"), "{out}");
        assert!(out.contains("| hupwatch | 300.00 (±0.33) |"), "{out}");
    }
}
