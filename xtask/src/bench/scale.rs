//! Cost as the work grows: hupwatch (the eBPF source, as deployed) tracking 1,000, 10,000
//! and 50,000 live processes, a fresh hupwatch for each. Per scale: the collector's CPU
//! per event while the processes start (their forks) and while they end (their exits),
//! its CPU per second while they idle, its RSS once all are tracked, and `/metrics` and
//! `/api/sessions`: time (median of several GETs), bytes, and the series a scrape holds.
//! The proc source's CPU per look at 1,000 and 10,000 processes is poll.rs's; the report
//! shows it beside these.
//!
//! The processes are children of this process that pause until killed, forked directly
//! (no exec: they share its pages, and cost the machine about 175 KiB each, mostly page
//! tables and the pages this process writes after each fork), watched
//! with `--pid` this process, so they are told apart from the rest of the machine (the
//! `pid:PID` group of `hupwatch_tracked_processes`) and nothing else the machine runs
//! adds events. They carry [`NAMES`] process names (this process renames itself before
//! forking each share: a fork takes the forker's name), more than the 20 program groups
//! `/metrics` shows, and [`FLAGGED`] of them ignore SIGHUP, so that many hold a verdict,
//! more than the default `--max-session-series` (50): a scrape carries every bounded set
//! of series at its bound, as on a busy machine.
use std::{
    cell::Cell,
    collections::BTreeMap,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{probe::Probe, stats::Spread};

const FULL: [u64; 3] = [1_000, 10_000, 50_000];
const QUICK: [u64; 1] = [1_000];
/// Distinct process names the children carry.
const NAMES: usize = 32;
/// Children that ignore SIGHUP, each a `hangup_ignored` verdict.
const FLAGGED: u64 = 100;
/// The machine memory a paused child may take at most before the run refuses to start
/// (measured: about 150 to 190 KiB, see the report's table).
const MEMORY_PER_CHILD_BOUND: u64 = 256 << 10;

pub struct Scale {
    quick: bool,
    pid_max: u64,
    pid_max_before: u64,
    idle: Duration,
    gets: usize,
    points: Vec<Point>,
}

/// What one phase (the forks, or the exits) cost the collector, from its first fork or
/// kill until the tracker holds all or none of them (read every [`FOLLOW`]).
struct Phase {
    /// How long this process took to fork or kill them all.
    acting_seconds: f64,
    seconds: f64,
    events: f64,
    /// The events by kind, and those lost (the ring buffer full).
    by_kind: BTreeMap<String, f64>,
    lost: f64,
    cpu_seconds: f64,
    /// The tracked children over the phase, integrated (trapezoids between the reads; the
    /// processes tracked before them taken off by the caller): times the idle CPU per
    /// process per second, what holding them cost meanwhile.
    process_seconds: f64,
    /// `/metrics` GETs made to follow the phase.
    gets: u64,
    /// CPU the idle collector would have spent over the phase: the idle rate before the
    /// children, plus each tracked child's idle cost over [`Phase::process_seconds`].
    background_cpu_seconds: f64,
}

/// How often a phase's progress is read from `/metrics`.
pub const FOLLOW: Duration = Duration::from_millis(250);

struct Page {
    ms: Spread,
    bytes: usize,
    /// Sample lines (not comments) in a `/metrics` page.
    series: usize,
    by_family: Vec<(String, usize)>,
}

/// What the children cost the machine.
struct Children {
    /// MemAvailable's fall while they started, less hupwatch's own RSS growth: every
    /// cost, the kernel's included, but it moves with whatever else the machine does.
    available_lost: i64,
    /// Medians over a sample of children: VmRSS (the pages it shares with this process
    /// counted), VmPTE, and Private_Clean + Private_Dirty from smaps_rollup (the pages
    /// each has to itself).
    rss: u64,
    page_tables: u64,
    private: u64,
    sampled: usize,
}

struct Point {
    processes: u64,
    tracked: u64,
    flagged: u64,
    children: Children,
    rss_start: u64,
    rss_tracked: u64,
    vmhwm: u64,
    spawn: Phase,
    exit: Phase,
    /// CPU seconds per second with no children, and with all of them.
    idle_before: f64,
    idle_after: f64,
    idle_seconds: f64,
    lost: f64,
    resyncs: f64,
    dropped: f64,
    metrics: Page,
    sessions: Page,
}

pub fn measure(hupwatch: &Path, quick: bool) -> Result<Scale> {
    let scales: &[u64] = if quick { &QUICK } else { &FULL };
    let largest = *scales.iter().max().expect("scales");
    let running = std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .count() as u64;
    // Twice what is needed: pids are handed out in a cycle, and the bench's own helpers
    // and the machine's other processes take some.
    let needed = ((largest + running + 1000) * 2).next_power_of_two();
    let pid_max = Sysctl::at_least("/proc/sys/kernel/pid_max", needed)?;
    let _threads_max = Sysctl::at_least("/proc/sys/kernel/threads-max", needed)?;
    let idle = Duration::from_secs(if quick { 2 } else { 10 });
    let gets = if quick { 3 } else { 7 };
    let mut points = Vec::new();
    for &processes in scales {
        points.push(point(hupwatch, processes, idle, gets)?);
    }
    Ok(Scale {
        quick,
        pid_max: pid_max.now,
        pid_max_before: pid_max.before,
        idle,
        gets,
        points,
    })
}

fn point(hupwatch: &Path, processes: u64, idle: Duration, gets: usize) -> Result<Point> {
    let me = std::process::id().to_string();
    let available = mem_available()?;
    let want = processes * MEMORY_PER_CHILD_BOUND + (1 << 30);
    if available < want {
        bail!(
            "{processes} paused processes may need {} MiB and the machine has {} MiB available",
            want >> 20,
            available >> 20
        );
    }
    eprintln!("bench: scale: {processes} live tracked processes");
    let probe = Probe::hupwatch(hupwatch, &["--alerts-file", "/dev/null", "--pid", &me])?;
    let tracked_series = format!("hupwatch_tracked_processes{{group=\"pid:{me}\"}}");
    let flagged_series = "hupwatch_processes_with_verdict{verdict=\"hangup_ignored\"}";
    let (before, _) = settled(&probe)?;
    let baseline = super::probe::sample(&before, &tracked_series).unwrap_or(0.0) as u64;
    let rss_start = probe.rss_bytes()?;
    let idle_before = idle_cpu(&probe, idle)?;

    let children = Cell::new(None);
    let mut spawn = follow(
        &probe,
        &tracked_series,
        || {
            children.set(Some(Paused::spawn(processes)?));
            Ok(())
        },
        |page, tracked| {
            let flagged = super::probe::sample(page, flagged_series).unwrap_or(0.0) as u64;
            tracked >= baseline + processes && flagged >= FLAGGED
        },
        processes,
        "start",
    )?;
    let children = children.take().context("the children")?;
    let (page, _) = settled(&probe)?;
    let tracked = (super::probe::sample(&page, &tracked_series).unwrap_or(0.0) as u64)
        .saturating_sub(baseline);
    let flagged = super::probe::sample(&page, flagged_series).unwrap_or(0.0) as u64;
    let rss_tracked = probe.rss_bytes()?;
    let available_lost =
        available as i64 - mem_available()? as i64 - (rss_tracked as i64 - rss_start as i64);
    let (child_rss, page_tables, private, sampled) = children.sample()?;

    let idle_after = idle_cpu(&probe, idle)?;
    let per_process = (idle_after - idle_before) / processes as f64;
    // The reads count the processes tracked before the children too: their cost is in
    // the rate before.
    spawn.process_seconds -= baseline as f64 * spawn.seconds;
    spawn.background_cpu_seconds =
        idle_before * spawn.seconds + per_process * spawn.process_seconds;

    let metrics = fetch(&probe, "/metrics", gets)?;
    let sessions = fetch(&probe, "/api/sessions", gets)?;
    let (_, vmhwm) = super::poll::memory(probe.pid())?;

    settled(&probe)?;
    let children = Cell::new(Some(children));
    let mut exit = follow(
        &probe,
        &tracked_series,
        || {
            drop(children.take());
            Ok(())
        },
        |_, tracked| tracked <= baseline,
        processes,
        "end",
    )?;
    exit.process_seconds -= baseline as f64 * exit.seconds;
    exit.background_cpu_seconds = idle_before * exit.seconds + per_process * exit.process_seconds;
    let (page, _) = settled(&probe)?;
    let lost = family_sum(&page, "hupwatch_events_lost_total");
    let resyncs = family_sum(&page, "hupwatch_resyncs_total");
    let dropped = family_sum(&page, "hupwatch_tracker_dropped_processes");
    probe.stop()?;
    let point = Point {
        processes,
        tracked,
        flagged,
        children: Children {
            available_lost,
            rss: child_rss,
            page_tables,
            private,
            sampled,
        },
        rss_start,
        rss_tracked,
        vmhwm,
        spawn,
        exit,
        idle_before,
        idle_after,
        idle_seconds: idle.as_secs_f64(),
        lost,
        resyncs,
        dropped,
        metrics,
        sessions,
    };
    eprintln!(
        "bench: scale: {processes}: µs CPU per event starting {:.2} ({:.2} before the idle cost is taken off), ending {:.2} ({:.2}); \
         {:.2} % of a CPU idle ({:.2} % with none); RSS {:.1} MiB; /metrics {:.2} ms {} bytes {} series; /api/sessions {:.1} ms {} bytes; \
         children: VmRSS {:.0} KiB, {:.0} KiB private pages and {:.0} KiB page tables each, {:.0} KiB of MemAvailable each",
        point.spawn.us_per_event(true).unwrap_or(f64::NAN),
        point.spawn.us_per_event(false).unwrap_or(f64::NAN),
        point.exit.us_per_event(true).unwrap_or(f64::NAN),
        point.exit.us_per_event(false).unwrap_or(f64::NAN),
        idle_after * 100.0,
        idle_before * 100.0,
        rss_tracked as f64 / MIB,
        point.metrics.ms.median,
        point.metrics.bytes,
        point.metrics.series,
        point.sessions.ms.median,
        point.sessions.bytes,
        child_rss as f64 / 1024.0,
        private as f64 / 1024.0,
        page_tables as f64 / 1024.0,
        available_lost as f64 / 1024.0 / processes as f64,
    );
    if lost > 0.0 || resyncs > 0.0 || dropped > 0.0 {
        eprintln!(
            "bench: scale: {processes}: {lost} events lost, {resyncs} re-syncs, {dropped} processes dropped"
        );
    }
    Ok(point)
}

/// The collector's CPU time: the run time of its threads from schedstat, in ns, as the
/// clock ticks of utime + stime (10 ms) are too coarse for phases that last a tenth of a
/// second at 1,000 processes.
fn cpu(probe: &Probe) -> Result<f64> {
    super::poll::schedstat_seconds(probe.pid())
}

/// The collector's CPU seconds per second over `span`, nothing asked of it.
fn idle_cpu(probe: &Probe, span: Duration) -> Result<f64> {
    let before = cpu(probe)?;
    let started = Instant::now();
    thread::sleep(span);
    Ok((cpu(probe)? - before) / started.elapsed().as_secs_f64())
}

/// Runs `act` (forking or killing the children) and reads `/metrics` every [`FOLLOW`]
/// until `done`; the collector's CPU and event count are read at once when it is.
fn follow(
    probe: &Probe,
    tracked_series: &str,
    act: impl FnOnce() -> Result<()>,
    done: impl Fn(&str, u64) -> bool,
    processes: u64,
    what: &str,
) -> Result<Phase> {
    let (page, _) = probe.get("/metrics")?;
    let events0 = family_sum(&page, "hupwatch_events_total");
    let kinds0 = by_kind(&page, "hupwatch_events_total");
    let lost0 = family_sum(&page, "hupwatch_events_lost_total");
    let mut last = super::probe::sample(&page, tracked_series).unwrap_or(0.0);
    let cpu0 = cpu(probe)?;
    let started = Instant::now();
    act()?;
    let acting_seconds = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60 + processes / 500);
    let mut at = 0.0;
    let mut process_seconds = 0.0;
    let mut gets = 0;
    loop {
        let (page, _) = probe.get("/metrics")?;
        let spent = cpu(probe)?;
        let now = started.elapsed().as_secs_f64();
        gets += 1;
        let tracked = super::probe::sample(&page, tracked_series).unwrap_or(0.0);
        process_seconds += (last + tracked) / 2.0 * (now - at);
        (last, at) = (tracked, now);
        if done(&page, tracked as u64) {
            let mut kinds = by_kind(&page, "hupwatch_events_total");
            for (kind, n) in &mut kinds {
                *n -= kinds0.get(kind).copied().unwrap_or(0.0);
            }
            kinds.retain(|_, n| *n != 0.0);
            return Ok(Phase {
                acting_seconds,
                seconds: now,
                events: family_sum(&page, "hupwatch_events_total") - events0,
                by_kind: kinds,
                lost: family_sum(&page, "hupwatch_events_lost_total") - lost0,
                cpu_seconds: spent - cpu0,
                process_seconds,
                gets,
                background_cpu_seconds: 0.0,
            });
        }
        if Instant::now() > deadline {
            bail!(
                "the children's {what} was not followed through within the time: hupwatch tracks {tracked} (with its baseline)"
            );
        }
        thread::sleep(FOLLOW);
    }
}

fn mem_available() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("MemAvailable in /proc/meminfo")?;
    Ok(kib * 1024)
}

/// `/metrics` once the event counts have stopped moving (two equal readings 1.2 s apart:
/// hupwatch reads its loss counters on a 1 s tick), with its time.
fn settled(probe: &Probe) -> Result<(String, Duration)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = probe.get("/metrics")?;
    loop {
        thread::sleep(Duration::from_millis(1200));
        let now = probe.get("/metrics")?;
        if family_sum(&now.0, "hupwatch_events_total")
            == family_sum(&last.0, "hupwatch_events_total")
        {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("hupwatch's event counts kept changing");
        }
        last = now;
    }
}

/// `gets` GETs of `path` after one unmeasured one: time, size, and for a metrics page its
/// series.
fn fetch(probe: &Probe, path: &str, gets: usize) -> Result<Page> {
    probe.get(path)?;
    let mut times = Vec::new();
    let mut body = String::new();
    for _ in 0..gets {
        let (page, took) = probe.get(path)?;
        times.push(took.as_secs_f64() * 1e3);
        body = page;
    }
    if body.is_empty() {
        bail!("GET {path} answered nothing");
    }
    let (series, by_family) = series(&body);
    Ok(Page {
        ms: Spread::of(&times).context("timed GETs")?,
        bytes: body.len(),
        series,
        by_family,
    })
}

/// Sample lines in a Prometheus text page, in all and per metric family (histogram and
/// summary lines under their family's name), most first.
fn series(page: &str) -> (usize, Vec<(String, usize)>) {
    let mut by_family = std::collections::BTreeMap::<String, usize>::new();
    let mut total = 0;
    for line in page.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        total += 1;
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        *by_family.entry(family.to_string()).or_default() += 1;
    }
    let mut by_family: Vec<(String, usize)> = by_family.into_iter().collect();
    by_family.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    (total, by_family)
}

/// The samples of `family` by their `kind` label.
fn by_kind(page: &str, family: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?.strip_prefix("{kind=\"")?;
            let (kind, rest) = rest.split_once("\"}")?;
            Some((kind.to_string(), rest.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// The sum of every sample of `family` (any labels).
fn family_sum(page: &str, family: &str) -> f64 {
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.rsplit_once('}')?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// Children of this process that pause until killed, [`NAMES`] names among them and
/// [`FLAGGED`] ignoring SIGHUP; killed and reaped when dropped, on failure too.
struct Paused(Vec<i32>);

impl Paused {
    fn spawn(count: u64) -> Result<Self> {
        // Put back on every way out, so this process keeps its own name.
        let _own = Name::current()?;
        // Wrapped at once: children forked before a failure are killed with it.
        let mut children = Self(Vec::with_capacity(count as usize));
        for n in 0..NAMES as u64 {
            Name::set(&format!("hupscale-{n:02}"))?;
            // An even share per name; the first take what does not divide.
            let share = count / NAMES as u64 + u64::from(n < count % NAMES as u64);
            for _ in 0..share {
                let ignore = (children.0.len() as u64) < FLAGGED;
                // SAFETY: the child calls only async-signal-safe functions (signal, pause)
                // and never returns.
                match unsafe { libc::fork() } {
                    -1 => bail!(
                        "fork failed after {} children: {}",
                        children.0.len(),
                        std::io::Error::last_os_error()
                    ),
                    0 => unsafe {
                        if ignore {
                            libc::signal(libc::SIGHUP, libc::SIG_IGN);
                        }
                        loop {
                            libc::pause();
                        }
                    },
                    pid => children.0.push(pid),
                }
            }
        }
        Ok(children)
    }

    /// Medians of VmRSS, VmPTE and the private pages over up to 50 children spread over
    /// them, in bytes, and how many were read.
    fn sample(&self) -> Result<(u64, u64, u64, usize)> {
        let step = (self.0.len() / 50).max(1);
        let mut rss = Vec::new();
        let mut tables = Vec::new();
        let mut private = Vec::new();
        for &pid in self.0.iter().step_by(step) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
            let kib = |text: &str, name: &str| -> Result<f64> {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                    .with_context(|| format!("{name} of child {pid}"))
            };
            rss.push(kib(&status, "VmRSS:")? * 1024.0);
            tables.push(kib(&status, "VmPTE:")? * 1024.0);
            private
                .push((kib(&rollup, "Private_Clean:")? + kib(&rollup, "Private_Dirty:")?) * 1024.0);
        }
        let median = |v: &[f64]| Spread::of(v).map_or(0, |s| s.median as u64);
        Ok((median(&rss), median(&tables), median(&private), rss.len()))
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        super::footprint::kill_and_reap(&self.0);
    }
}

/// This thread's name (the process name, on the main thread), which a fork hands on; put
/// back when dropped.
struct Name([u8; 16]);

impl Name {
    fn current() -> Result<Self> {
        let mut name = [0u8; 16];
        read_name(&mut name)?;
        Ok(Self(name))
    }

    fn set(name: &str) -> Result<()> {
        let mut bytes = [0u8; 16];
        let len = name.len().min(15);
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        set_name(&bytes)
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = set_name(&self.0);
    }
}

#[cfg(target_os = "linux")]
fn read_name(name: &mut [u8; 16]) -> Result<()> {
    // SAFETY: PR_GET_NAME writes at most 16 bytes, NUL included.
    if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } != 0 {
        bail!("prctl(PR_GET_NAME): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_name(bytes: &[u8; 16]) -> Result<()> {
    let name = std::ffi::CStr::from_bytes_until_nul(bytes).context("a process name")?;
    // SAFETY: a NUL-terminated string that outlives the call.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) } != 0 {
        bail!("prctl(PR_SET_NAME): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The bench runs on Linux only; these keep xtask building for macOS, where CI checks it.
#[cfg(not(target_os = "linux"))]
fn read_name(_name: &mut [u8; 16]) -> Result<()> {
    bail!("a process name is read with prctl, on Linux only")
}

#[cfg(not(target_os = "linux"))]
fn set_name(_bytes: &[u8; 16]) -> Result<()> {
    bail!("a process name is set with prctl, on Linux only")
}

/// A sysctl raised for the run and put back when dropped.
struct Sysctl {
    path: &'static str,
    before: u64,
    now: u64,
}

impl Sysctl {
    fn at_least(path: &'static str, value: u64) -> Result<Self> {
        let read = || -> Result<u64> {
            std::fs::read_to_string(path)?
                .trim()
                .parse()
                .with_context(|| format!("reading {path}"))
        };
        let before = read()?;
        if before < value {
            eprintln!("bench: scale: {path} {before} -> {value} for the run");
            std::fs::write(path, value.to_string())
                .with_context(|| format!("raising {path} to {value}"))?;
        }
        Ok(Self {
            path,
            before,
            now: read()?,
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if self.now != self.before
            && let Err(err) = std::fs::write(self.path, self.before.to_string())
        {
            eprintln!(
                "bench: scale: could not put {} back to {}: {err}",
                self.path, self.before
            );
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

impl Phase {
    /// CPU per event, with the idle collector's CPU over the phase taken off (`net`) or
    /// not.
    fn us_per_event(&self, net: bool) -> Option<f64> {
        let cpu = if net {
            self.cpu_seconds - self.background_cpu_seconds
        } else {
            self.cpu_seconds
        };
        (self.events > 0.0).then(|| cpu * 1e6 / self.events)
    }

    fn json(&self) -> Value {
        json!({
            "acting_seconds": self.acting_seconds,
            "seconds": self.seconds,
            "events": self.events,
            "events_by_kind": self.by_kind,
            "events_lost": self.lost,
            "cpu_seconds": self.cpu_seconds,
            "tracked_process_seconds": self.process_seconds,
            "metrics_gets": self.gets,
            "idle_cpu_seconds_over_the_phase": self.background_cpu_seconds,
            "cpu_us_per_event": self.us_per_event(true),
            "cpu_us_per_event_with_idle": self.us_per_event(false),
        })
    }
}

impl Page {
    fn json(&self) -> Value {
        let families: serde_json::Map<String, Value> = self
            .by_family
            .iter()
            .map(|(name, n)| (name.clone(), json!(n)))
            .collect();
        json!({
            "ms": self.ms.json(),
            "bytes": self.bytes,
            "series": self.series,
            "series_by_family": families,
        })
    }
}

impl Children {
    fn json(&self, processes: u64) -> Value {
        json!({
            "mem_available_lost_bytes": self.available_lost,
            "sampled": self.sampled,
            "per_process": {
                "mem_available_lost_bytes": self.available_lost as f64 / processes as f64,
                "vmrss_bytes": self.rss,
                "vmpte_bytes": self.page_tables,
                "private_bytes": self.private,
            },
        })
    }
}

impl Point {
    fn json(&self) -> Value {
        let n = self.processes as f64;
        json!({
            "processes": self.processes,
            "tracked": self.tracked,
            "flagged": self.flagged,
            "children": self.children.json(self.processes),
            "collector": {
                "rss_bytes_start": self.rss_start,
                "rss_bytes_tracked": self.rss_tracked,
                "vmhwm_bytes": self.vmhwm,
                "start": self.spawn.json(),
                "end": self.exit.json(),
                "idle": {
                    "seconds": self.idle_seconds,
                    "cpu_percent_of_one_cpu_without_children": self.idle_before * 100.0,
                    "cpu_percent_of_one_cpu": self.idle_after * 100.0,
                    "cpu_us_per_process_second": (self.idle_after - self.idle_before) * 1e6 / n,
                },
                "events_lost": self.lost,
                "resyncs": self.resyncs,
                "dropped_processes": self.dropped,
            },
            "metrics": self.metrics.json(),
            "sessions": self.sessions.json(),
        })
    }
}

impl Scale {
    pub fn json(&self) -> Value {
        json!({
            "quick": self.quick,
            "source": "ebpf",
            "matching": "--pid (the bench's own process: its paused children)",
            "names": NAMES,
            "flagged_asked": FLAGGED,
            "pid_max": self.pid_max,
            "pid_max_before": self.pid_max_before,
            "idle_seconds": self.idle.as_secs_f64(),
            "gets": self.gets,
            "points": self.points.iter().map(Point::json).collect::<Vec<_>>(),
        })
    }
}

/// The figures a run must give at each scale it measured (`/scale/points/K/...`).
pub const PER_POINT: &[&str] = &[
    "collector/start/cpu_us_per_event",
    "collector/end/cpu_us_per_event",
    "collector/idle/cpu_percent_of_one_cpu",
    "collector/rss_bytes_tracked",
    "metrics/ms/median",
    "metrics/bytes",
    "metrics/series",
    "sessions/ms/median",
    "sessions/bytes",
    "children/per_process/vmrss_bytes",
    "children/per_process/vmpte_bytes",
    "children/per_process/private_bytes",
];

/// Pointers to figures missing from the scale section: every scale of the run (only
/// 1,000 in a quick run) and each of [`PER_POINT`] at each.
pub fn unmeasured(figures: &Value) -> Vec<String> {
    let quick = figures["quick"] == true;
    let scales: &[u64] = if quick { &QUICK } else { &FULL };
    let points = figures
        .pointer("/scale/points")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut missing = Vec::new();
    for &n in scales {
        let Some((k, point)) = points
            .iter()
            .enumerate()
            .find(|(_, p)| p["processes"].as_u64() == Some(n))
        else {
            missing.push(format!("/scale at {n} processes"));
            continue;
        };
        for figure in PER_POINT {
            if !point
                .pointer(&format!("/{figure}"))
                .is_some_and(Value::is_number)
            {
                missing.push(format!("/scale/points/{k}/{figure}"));
            }
        }
        if point["tracked"].as_u64() < Some(n) {
            missing.push(format!("/scale/points/{k}/tracked (all {n})"));
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_lines_are_counted_per_family() {
        let page = "# HELP a x\n# TYPE a counter\na{k=\"1\"} 1\na{k=\"2\"} 2\nb 3\n\
                    h_bucket{le=\"1\"} 0\nh_sum 0\nh_count 0\n";
        let (total, by_family) = series(page);
        assert_eq!(total, 6);
        assert_eq!(by_family[0], ("h".to_string(), 3));
        assert_eq!(by_family[1], ("a".to_string(), 2));
        assert_eq!(family_sum(page, "a"), 3.0);
        assert_eq!(family_sum(page, "b"), 3.0);
        assert_eq!(family_sum(page, "h"), 0.0);
        let kinds = by_kind("e{kind=\"fork\"} 3\ne{kind=\"exit\"} 2\nee 1\n", "e");
        assert_eq!(kinds.get("fork"), Some(&3.0));
        assert_eq!(kinds.len(), 2);
    }

    #[test]
    fn a_quick_run_needs_only_its_one_scale() {
        let point = json!({
            "processes": 1000, "tracked": 1000,
            "children": {"per_process": {"vmrss_bytes": 1, "vmpte_bytes": 1, "private_bytes": 1}},
            "collector": {"start": {"cpu_us_per_event": 1.0}, "end": {"cpu_us_per_event": 1.0},
                          "idle": {"cpu_percent_of_one_cpu": 0.1}, "rss_bytes_tracked": 1},
            "metrics": {"ms": {"median": 1.0}, "bytes": 1, "series": 1},
            "sessions": {"ms": {"median": 1.0}, "bytes": 1},
        });
        let quick = json!({"quick": true, "scale": {"points": [point]}});
        assert!(unmeasured(&quick).is_empty(), "{:?}", unmeasured(&quick));
        let full = json!({"quick": false, "scale": {"points": [point]}});
        assert_eq!(
            unmeasured(&full),
            ["/scale at 10000 processes", "/scale at 50000 processes"]
        );
    }
}
