//! Workload slowdown and in-kernel cost: the workloads run with no probe, with hupwatch
//! tracing every process, with hupwatch matching one name (the workloads untracked), with
//! the bpftrace equivalent, and with empty programs on hupwatch's hooks (the floor: classic
//! tracepoints through bpftrace, and the three tp_btf ones loaded by this process), in
//! rounds that interleave the five so drift hits all.
//! The kernel's program statistics cost time in every program run, so the slowdown
//! rounds run without them, as a deployment does, and one more pass per probe, with them
//! on, gives the ns per run.
use std::{collections::HashMap, path::Path, time::Duration};

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    bpfstats, empty_btf::EmptyBtfPrograms, probe::Probe, stats::Spread, workload::Workload,
};

const BPFTRACE_SCRIPT: &str = include_str!("bpftrace.bt");
const EMPTY_SCRIPT: &str = include_str!("empty.bt");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    None,
    HupwatchAll,
    HupwatchNarrow,
    Bpftrace,
    EmptyPrograms,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Self::None,
        Self::HupwatchAll,
        Self::HupwatchNarrow,
        Self::Bpftrace,
        Self::EmptyPrograms,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "no_probe",
            Self::HupwatchAll => "hupwatch_all",
            Self::HupwatchNarrow => "hupwatch_narrow",
            Self::Bpftrace => "bpftrace",
            Self::EmptyPrograms => "empty_programs",
        }
    }

    fn start(self, hupwatch: &Path) -> Result<Running> {
        let probe = match self {
            Self::None => None,
            Self::HupwatchAll => Some(Probe::hupwatch(hupwatch, &["--alerts-file", "/dev/null"])?),
            // A name nothing here has: every workload is untracked, so this is the cost
            // of the filter alone.
            Self::HupwatchNarrow => Some(Probe::hupwatch(
                hupwatch,
                &["--alerts-file", "/dev/null", "--match", "hupbench-none"],
            )?),
            Self::Bpftrace => Some(Probe::bpftrace(BPFTRACE_SCRIPT)?),
            Self::EmptyPrograms => Some(Probe::bpftrace(EMPTY_SCRIPT)?),
        };
        let empty_btf = match self {
            Self::EmptyPrograms => Some(EmptyBtfPrograms::attach()?),
            _ => None,
        };
        Ok(Running { probe, empty_btf })
    }
}

/// A condition while it runs: its probe, and for the floor the empty tp_btf programs this
/// process holds.
struct Running {
    probe: Option<Probe>,
    empty_btf: Option<EmptyBtfPrograms>,
}

impl Running {
    /// The processes whose programs are the condition's.
    fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.probe.iter().map(Probe::pid).collect();
        if self.empty_btf.is_some() {
            pids.push(std::process::id());
        }
        pids
    }

    fn stop(self) -> Result<()> {
        drop(self.empty_btf);
        match self.probe {
            Some(probe) => probe.stop(),
            None => Ok(()),
        }
    }
}

pub struct Overhead {
    /// Seconds per round, by condition and workload.
    times: HashMap<(Condition, Workload), Vec<f64>>,
    /// Kernel time and runs per tracepoint, summed over rounds, by condition.
    kernel: HashMap<Condition, HashMap<String, (u64, u64)>>,
    /// Time the condition's programs ran while a workload did, as a share of the
    /// workload's run time (percent), from the statistics pass.
    program_share: HashMap<(Condition, Workload), f64>,
    rounds: usize,
}

pub fn measure(xtask: &Path, hupwatch: &Path, rounds: usize, quick: bool) -> Result<Overhead> {
    let mut result = Overhead {
        times: HashMap::new(),
        kernel: HashMap::new(),
        program_share: HashMap::new(),
        rounds,
    };
    for round in 0..rounds {
        // Rotating the order keeps any one condition from always running first or last.
        for i in 0..Condition::ALL.len() {
            let condition = Condition::ALL[(i + round) % Condition::ALL.len()];
            eprintln!(
                "bench: overhead round {}/{rounds}: {}",
                round + 1,
                condition.name()
            );
            let running = condition.start(hupwatch)?;
            for workload in Workload::ALL {
                let took = workload.measure(xtask, quick)?;
                result
                    .times
                    .entry((condition, workload))
                    .or_default()
                    .push(took.as_secs_f64());
            }
            running.stop()?;
            // Let the probe's teardown finish before the next condition.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let _stats = bpfstats::StatsSwitch::set(true)?;
    for condition in &Condition::ALL[1..] {
        eprintln!("bench: kernel cost per run: {}", condition.name());
        let running = condition.start(hupwatch)?;
        let pids = running.pids();
        // The programs' own time is a figure the noise of whole-workload timings on this
        // VM (single rounds swing by tens of percent) does not blur: a lower bound of the
        // slowdown, as it leaves out what the hook costs around the program.
        // One reading between workloads: each is the one before's end and the next's start.
        let mut before = bpfstats::by_tracepoint(&pids)?;
        for workload in Workload::ALL {
            let took = workload.measure(xtask, quick)?;
            let after = bpfstats::by_tracepoint(&pids)?;
            let spent: u64 = after
                .iter()
                .map(|(tp, (time, _))| time.saturating_sub(before.get(tp).map_or(0, |b| b.0)))
                .sum();
            result.program_share.insert(
                (*condition, workload),
                spent as f64 / took.as_nanos().max(1) as f64 * 100.0,
            );
            before = after;
        }
        // The last reading holds the whole pass.
        result.kernel.insert(*condition, before);
        running.stop()?;
    }
    Ok(result)
}

impl Overhead {
    /// Per-round slowdown against no probe in the same round, in percent.
    pub fn slowdown(&self, condition: Condition, workload: Workload) -> Option<Spread> {
        let base = self.times.get(&(Condition::None, workload))?;
        let with = self.times.get(&(condition, workload))?;
        let ratios: Vec<f64> = base
            .iter()
            .zip(with)
            .map(|(b, w)| (w / b - 1.0) * 100.0)
            .collect();
        Spread::of(&ratios)
    }

    /// ns per run of the program on `tracepoint` under `condition`.
    pub fn ns_per_run(&self, condition: Condition, tracepoint: &str) -> Option<f64> {
        let (time, runs) = self.kernel.get(&condition)?.get(tracepoint)?;
        (*runs > 0).then(|| *time as f64 / *runs as f64)
    }

    pub fn json(&self) -> Value {
        let mut workloads = serde_json::Map::new();
        for workload in Workload::ALL {
            let mut entry = serde_json::Map::new();
            let base = Spread::of(&self.times[&(Condition::None, workload)]);
            entry.insert(
                "iterations_seconds_no_probe".into(),
                base.map_or(Value::Null, Spread::json),
            );
            for condition in &Condition::ALL[1..] {
                entry.insert(
                    format!("slowdown_percent_{}", condition.name()),
                    self.slowdown(*condition, workload)
                        .map_or(Value::Null, Spread::json),
                );
                entry.insert(
                    format!("program_time_percent_{}", condition.name()),
                    json!(self.program_share.get(&(*condition, workload))),
                );
            }
            workloads.insert(workload.name().into(), Value::Object(entry));
        }
        let mut kernel = serde_json::Map::new();
        for condition in &Condition::ALL[1..] {
            let mut per = serde_json::Map::new();
            if let Some(stats) = self.kernel.get(condition) {
                let mut names: Vec<&String> = stats.keys().collect();
                names.sort();
                for name in names {
                    let (time, runs) = stats[name];
                    per.insert(
                        name.clone(),
                        json!({"run_time_ns": time, "runs": runs,
                               "ns_per_run": self.ns_per_run(*condition, name)}),
                    );
                }
            }
            kernel.insert(condition.name().into(), Value::Object(per));
        }
        json!({"rounds": self.rounds, "workloads": workloads, "kernel": kernel})
    }
}
