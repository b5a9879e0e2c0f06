//! What reading PSS (/proc/PID/smaps_rollup) costs, for `--pss-interval`: the kernel walks
//! the page tables of every mapping of the process to answer, so a read costs in
//! proportion to what the process maps, far more than a read of /proc/PID/status.
//!
//! Three figures. A round: this process reads the smaps_rollup of 1,000 and then 10,000
//! paused children (forked, not exec'd: small processes sharing its pages, as in the scale
//! section), CPU time of the reading thread per round and per process, median over rounds.
//! Per resident GiB: one child that touched a large anonymous mapping, read repeatedly.
//! In hupwatch: its CPU watching the children (`--pid` this process) with every child read
//! every tick (`--pss-interval` equal to `--rss-interval`, 1 s) against the same with PSS
//! off (`--pss-interval 0s`), per read: what a read costs hupwatch with the parsing, the
//! event and the tracker's update on top.
use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{footprint::kill_and_reap, probe::Probe, stats::Spread};

const FULL: [u64; 2] = [1_000, 10_000];
const QUICK: [u64; 1] = [200];
/// The default `--pss-interval`, which the per-second figures are worked out for.
pub const DEFAULT_INTERVAL_S: f64 = 60.0;

struct Point {
    processes: u64,
    /// CPU ms of this thread per round of reads, over the rounds.
    round_cpu_ms: Spread,
    /// Wall-clock ms per round (a round blocks hupwatch's one thread that long).
    round_wall_ms: Spread,
    /// hupwatch's CPU µs per read, every child read every second against none read.
    hupwatch_us_per_read: f64,
    /// hupwatch's CPU with every child read every second, and with none read, % of a CPU.
    hupwatch_every_tick_percent: f64,
    hupwatch_none_percent: f64,
}

pub struct Pss {
    rounds: usize,
    span: Duration,
    points: Vec<Point>,
    /// The large child: its resident MiB, and CPU µs per read (median).
    large_mib: u64,
    large_us: f64,
    /// A child of this process with nothing added, read the same way, for the per-GiB
    /// figure's base.
    small_us: f64,
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Pss> {
    let scales: &[u64] = if quick { &QUICK } else { &FULL };
    let rounds = if quick { 3 } else { 7 };
    let span = Duration::from_secs(if quick { 3 } else { 10 });
    let mut points = Vec::new();
    for &processes in scales {
        points.push(point(hupwatch, processes, rounds, span)?);
    }
    let large_mib = if quick { 64 } else { 1024 };
    let small_us = per_read_us(0)?;
    let large_us = per_read_us(large_mib)?;
    eprintln!(
        "bench: pss: a child of this process {small_us:.1} µs per read; with {large_mib} MiB resident {large_us:.1} µs"
    );
    Ok(Pss {
        rounds,
        span,
        points,
        large_mib,
        large_us,
        small_us,
    })
}

fn point(hupwatch: &Path, processes: u64, rounds: usize, span: Duration) -> Result<Point> {
    eprintln!("bench: pss: {processes} paused processes");
    let me = std::process::id().to_string();
    // hupwatch first, so the children's forks are what it tracks them by.
    let none = Probe::hupwatch(hupwatch, &args(&me, "0s"))?;
    let children = Children::spawn(processes, 0)?;
    wait_tracked(&none, &me, processes)?;
    let mut cpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..rounds {
        let (c, w) = children.read_all()?;
        cpu.push(c * 1e3);
        wall.push(w * 1e3);
    }
    let none_cpu = cpu_over(&none, span)?;
    none.stop()?;
    let every = Probe::hupwatch(hupwatch, &args(&me, "1s"))?;
    // Already alive: hupwatch finds them in its first look at /proc.
    wait_tracked(&every, &me, processes)?;
    // The first ticks read the backlog at twice the steady pace; then every one each tick.
    thread::sleep(Duration::from_secs(3));
    let every_cpu = cpu_over(&every, span)?;
    every.stop()?;
    drop(children);
    let reads = processes as f64 * span.as_secs_f64();
    let point = Point {
        processes,
        round_cpu_ms: Spread::of(&cpu).context("rounds")?,
        round_wall_ms: Spread::of(&wall).context("rounds")?,
        hupwatch_us_per_read: (every_cpu - none_cpu) * span.as_secs_f64() * 1e6 / reads,
        hupwatch_every_tick_percent: every_cpu * 100.0,
        hupwatch_none_percent: none_cpu * 100.0,
    };
    eprintln!(
        "bench: pss: {processes}: a round {:.1} ms CPU ({:.1} µs a process), {:.1} ms wall; hupwatch {:.1} µs a read ({:.2} % of a CPU reading every one every second, {:.2} % reading none)",
        point.round_cpu_ms.median,
        point.round_cpu_ms.median * 1e3 / processes as f64,
        point.round_wall_ms.median,
        point.hupwatch_us_per_read,
        point.hupwatch_every_tick_percent,
        point.hupwatch_none_percent,
    );
    Ok(point)
}

fn args<'a>(me: &'a str, pss_interval: &'a str) -> Vec<&'a str> {
    vec![
        "--alerts-file",
        "/dev/null",
        "--pid",
        me,
        "--rss-interval",
        "1s",
        "--pss-interval",
        pss_interval,
    ]
}

fn wait_tracked(probe: &Probe, me: &str, processes: u64) -> Result<()> {
    let series = format!("hupwatch_tracked_processes{{group=\"pid:{me}\"}}");
    let deadline = Instant::now() + Duration::from_secs(60 + processes / 200);
    while (probe.metric(&series)? as u64) < processes {
        if Instant::now() > deadline {
            bail!("hupwatch never tracked the {processes} children");
        }
        thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// hupwatch's CPU seconds per second over `span`, from its threads' schedstat.
fn cpu_over(probe: &Probe, span: Duration) -> Result<f64> {
    let before = super::poll::schedstat_seconds(probe.pid())?;
    let started = Instant::now();
    thread::sleep(span);
    Ok((super::poll::schedstat_seconds(probe.pid())? - before) / started.elapsed().as_secs_f64())
}

/// Median CPU µs of one smaps_rollup read of a child that touched `mib` MiB of its own.
fn per_read_us(mib: u64) -> Result<f64> {
    let child = Children::spawn(1, mib)?;
    // Until it has touched it all: its RSS stops growing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while resident_mib(child.0[0])? < mib {
        if Instant::now() > deadline {
            bail!("the child never touched its {mib} MiB");
        }
        thread::sleep(Duration::from_millis(100));
    }
    let mut times = Vec::new();
    for _ in 0..21 {
        times.push(child.read_all()?.0 * 1e6);
    }
    Ok(Spread::of(&times).context("reads")?.median)
}

fn resident_mib(pid: i32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")?;
    Ok(kib >> 10)
}

/// Children that pause until killed (killed and reaped when dropped), each having
/// touched `mib` MiB of anonymous memory of its own first.
struct Children(Vec<i32>);

impl Children {
    fn spawn(count: u64, mib: u64) -> Result<Self> {
        let mut children = Self(Vec::with_capacity(count as usize));
        for _ in 0..count {
            // SAFETY: the child calls only async-signal-safe functions (mmap, pause) and
            // writes to memory it mapped; it never returns.
            match unsafe { libc::fork() } {
                -1 => bail!(
                    "fork failed after {} children: {}",
                    children.0.len(),
                    std::io::Error::last_os_error()
                ),
                0 => unsafe {
                    touch(mib);
                    loop {
                        libc::pause();
                    }
                },
                pid => children.0.push(pid),
            }
        }
        Ok(children)
    }

    /// Reads every child's smaps_rollup once, as hupwatch does (the whole file, then its
    /// Pss line): this thread's CPU seconds and the wall-clock seconds it took.
    fn read_all(&self) -> Result<(f64, f64)> {
        let cpu0 = thread_cpu_seconds();
        let started = Instant::now();
        for &pid in &self.0 {
            let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
            text.lines()
                .find(|l| l.starts_with("Pss:"))
                .with_context(|| format!("no Pss in child {pid}'s smaps_rollup"))?;
        }
        Ok((thread_cpu_seconds() - cpu0, started.elapsed().as_secs_f64()))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        kill_and_reap(&self.0);
    }
}

/// Maps `mib` MiB of anonymous memory and writes a byte to every page of it.
///
/// # Safety
/// Called in a forked child: only mmap and plain stores.
unsafe fn touch(mib: u64) {
    if mib == 0 {
        return;
    }
    let len = (mib << 20) as usize;
    // SAFETY: a fresh private anonymous mapping, written within its length.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if at == libc::MAP_FAILED {
            libc::_exit(1);
        }
        let bytes = at.cast::<u8>();
        for page in (0..len).step_by(4096) {
            bytes.add(page).write_volatile(1);
        }
    }
}

/// This thread's CPU time (user and system), in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

impl Pss {
    pub fn json(&self) -> Value {
        let spread = |s: &Spread| json!({"median": s.median, "min": s.min, "max": s.max});
        json!({
            "rounds": self.rounds,
            "span_seconds": self.span.as_secs_f64(),
            "default_interval_seconds": DEFAULT_INTERVAL_S,
            "points": self.points.iter().map(|p| json!({
                "processes": p.processes,
                "round_cpu_ms": spread(&p.round_cpu_ms),
                "round_wall_ms": spread(&p.round_wall_ms),
                "cpu_us_per_process": p.round_cpu_ms.median * 1e3 / p.processes as f64,
                "hupwatch_cpu_us_per_read": p.hupwatch_us_per_read,
                "hupwatch_every_tick_cpu_percent": p.hupwatch_every_tick_percent,
                "hupwatch_none_cpu_percent": p.hupwatch_none_percent,
                // At the default interval: every process once per interval.
                "default_interval_cpu_percent":
                    p.hupwatch_us_per_read * p.processes as f64 / DEFAULT_INTERVAL_S / 1e4,
            })).collect::<Vec<_>>(),
            "large_child_mib": self.large_mib,
            "large_child_cpu_us_per_read": self.large_us,
            "small_child_cpu_us_per_read": self.small_us,
            "cpu_us_per_resident_gib":
                (self.large_us - self.small_us) * 1024.0 / self.large_mib as f64,
        })
    }
}

/// The figures a run must produce.
pub fn unmeasured(f: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let points = f.pointer("/pss/points").and_then(Value::as_array);
    let wanted = if f["quick"] == true { 1 } else { 2 };
    if points.map_or(0, Vec::len) < wanted {
        missing.push("/pss/points".to_string());
    }
    for (i, _) in points.into_iter().flatten().enumerate() {
        for key in ["cpu_us_per_process", "hupwatch_cpu_us_per_read"] {
            let p = format!("/pss/points/{i}/{key}");
            if !f.pointer(&p).is_some_and(Value::is_number) {
                missing.push(p);
            }
        }
    }
    if !f
        .pointer("/pss/cpu_us_per_resident_gib")
        .is_some_and(Value::is_number)
    {
        missing.push("/pss/cpu_us_per_resident_gib".to_string());
    }
    missing
}
