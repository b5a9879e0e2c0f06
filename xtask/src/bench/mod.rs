//! `cargo xtask bench [--quick]` (root): what hupwatch costs, measured against no probe
//! and against the same tracing in bpftrace, and its /proc polling source against
//! process-exporter (poll.rs), and how its costs grow from 1,000 to 50,000 tracked
//! processes (scale.rs), and what reading PSS costs at 1,000 and 10,000 (pss.rs). Writes
//! `bench/RESULTS.md` and
//! `bench/results.json`; `--quick` writes them under `target/bench-quick/` and checks
//! only that every figure was measured, never how good it is.
//!
//! `--only SECTION` measures one section at full size into bench/; with
//! `HUPWATCH_BENCH_QUICK=1` in the environment it measures it at the quick size instead and
//! writes under `target/bench-quick/`, leaving bench/ as it was (a trial of one section).
mod bpfstats;
mod empty_btf;
mod footprint;
mod latency;
mod loss;
mod overhead;
mod poll;
pub mod probe;
mod pss;
mod report;
mod sampling;
mod scale;
pub mod stats;
pub mod workload;

use std::{path::Path, process::Command};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{setup, sh};

pub fn bench(root: &Path, quick: bool, binary: Option<std::path::PathBuf>) -> Result<()> {
    if !sh::is_root() {
        bail!(
            "the benchmarks load eBPF programs and read their statistics: run as root (sudo -E cargo xtask bench)"
        );
    }
    setup::setup()?;
    let hupwatch = match binary {
        Some(path) if path.is_file() => path,
        Some(path) => bail!("--hupwatch {}: no such file", path.display()),
        None => crate::run::build_hupwatch(root)?,
    };
    let xtask = std::env::current_exe().context("the xtask binary, to run workloads")?;
    // Off unless a pass asks for them: they slow every program run.
    let _stats = bpfstats::StatsSwitch::set(false)?;

    // Nine, not the five asked for: on the 2-CPU VM single rounds swing by ±15 %, enough
    // for empty programs to "cost" more than hupwatch in a five-round median.
    let rounds = if quick { 2 } else { 9 };
    // A section that fails is recorded with its error and the others still run: a long
    // run should not lose every figure to one.
    let overhead = section(overhead::measure(&xtask, &hupwatch, rounds, quick).map(|o| o.json()));
    let loss = section(loss::measure(&hupwatch, quick).map(|l| l.json()));
    let footprint = section(footprint::measure(&hupwatch, quick).map(|f| f.json()));
    let latency = section(latency::measure(&hupwatch, quick).map(|l| l.json()));
    let sampling = section(sampling::measure(&hupwatch, quick).map(|s| s.json()));
    let poll = section(poll::measure(&hupwatch, quick).map(|p| p.json()));
    let scale = section(scale::measure(&hupwatch, quick).map(|s| s.json()));
    let pss = section(pss::measure(&hupwatch, quick).map(|p| p.json()));

    let command = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let figures = json!({
        "machine": machine(),
        "command": command,
        "quick": quick,
        "overhead": overhead,
        "loss": loss,
        "footprint": footprint,
        "latency": latency,
        "sampling": sampling,
        "poll": poll,
        "scale": scale,
        "pss": pss,
    });
    let missing = unmeasured(&figures);
    let out_dir = write_results(root, quick, &figures)?;
    eprintln!("bench: wrote {}", out_dir.join("RESULTS.md").display());
    if !missing.is_empty() {
        bail!("figures not measured: {}", missing.join(", "));
    }
    Ok(())
}

/// Measures one section again at full size and puts it into bench/results.json and
/// RESULTS.md in place of the figures it had, keeping the others: for a section that
/// changed without rerunning the half hour of the rest. The section records its own
/// commit and date.
pub fn bench_only(root: &Path, name: &str) -> Result<()> {
    if !sh::is_root() {
        bail!("the benchmarks load eBPF programs: run as root (sudo -E cargo xtask bench)");
    }
    setup::setup()?;
    let hupwatch = crate::run::build_hupwatch(root)?;
    let quick = std::env::var_os("HUPWATCH_BENCH_QUICK").is_some_and(|v| v == "1");
    let mut measured = match name {
        "sampling" => sampling::measure(&hupwatch, quick)?.json(),
        "poll" => poll::measure(&hupwatch, quick)?.json(),
        "scale" => scale::measure(&hupwatch, quick)?.json(),
        "pss" => pss::measure(&hupwatch, quick)?.json(),
        other => {
            bail!(
                "no bench section {other:?} can run alone; the ones that can: sampling, poll, scale, pss"
            )
        }
    };
    let machine = machine();
    measured["commit"] = machine["hupwatch_commit"].clone();
    measured["date"] = machine["date"].clone();
    let path = root.join("bench/results.json");
    let mut figures: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    figures[name] = measured;
    let out_dir = write_results(root, quick, &figures)?;
    eprintln!(
        "bench: {name} measured again into {}",
        out_dir.join("RESULTS.md").display()
    );
    Ok(())
}

/// Writes results.json and RESULTS.md: into bench/, or target/bench-quick/ for a quick
/// run, which proves the harness and must not replace the published figures.
fn write_results(root: &Path, quick: bool, figures: &Value) -> Result<std::path::PathBuf> {
    let out_dir = if quick {
        root.join("target/bench-quick")
    } else {
        root.join("bench")
    };
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(figures)?,
    )?;
    let parts = std::fs::read_to_string(root.join("bench/ablation/PARTS.md")).ok();
    std::fs::write(
        out_dir.join("RESULTS.md"),
        report::markdown(figures, parts.as_deref()),
    )?;
    Ok(out_dir)
}

/// The figures every run must produce; a null or absent one means part of the harness
/// did not work.
const REQUIRED: &[&str] = &[
    "/overhead/kernel/hupwatch_all/rss_stat/ns_per_run",
    "/overhead/kernel/hupwatch_narrow/rss_stat/ns_per_run",
    "/overhead/kernel/bpftrace/rss_stat/ns_per_run",
    "/overhead/kernel/empty_programs/rss_stat/ns_per_run",
    "/overhead/kernel/empty_programs/signal_deliver/ns_per_run",
    "/overhead/kernel/empty_programs/task_newtask/ns_per_run",
    "/overhead/workloads/page_faults/program_time_percent_hupwatch_all",
    "/overhead/workloads/setsid/program_time_percent_hupwatch_narrow",
    "/overhead/kernel/hupwatch_all/signal_generate/ns_per_run",
    "/overhead/kernel/hupwatch_all/task_newtask/ns_per_run",
    "/overhead/kernel/hupwatch_all/sched_process_exec/ns_per_run",
    "/overhead/kernel/hupwatch_all/sys_exit_setsid/ns_per_run",
    "/loss/zero_loss_rate_per_second",
    "/loss/collector/cpu_us_per_event",
    "/loss/collector/rss_bytes_before",
    "/loss/collector/rss_bytes_after",
    "/footprint/rss_bytes_after_churn",
    "/footprint/metrics_ms/median",
    "/latency/setsid_to_detached_ms/median",
    "/latency/sighup_to_hangup_survived_beyond_grace_ms/median",
    "/sampling/kernel_map_cpu_us_per_process_sample",
    "/sampling/proc_cpu_us_per_process_sample",
    "/poll/hupwatch/cpu_ms_per_poll",
    "/poll/hupwatch/vmrss_bytes",
    "/poll/process_exporter/cpu_ms_per_poll",
    "/poll/process_exporter/vmrss_bytes",
];

fn section(result: Result<Value>) -> Value {
    result.unwrap_or_else(|err| {
        eprintln!("bench: a section failed: {err:#}");
        json!({"error": format!("{err:#}")})
    })
}

fn unmeasured(figures: &Value) -> Vec<String> {
    let mut missing: Vec<String> = REQUIRED
        .iter()
        .filter(|p| !figures.pointer(p).is_some_and(Value::is_number))
        .map(|p| p.to_string())
        .collect();
    for workload in workload::Workload::ALL {
        for condition in [
            "hupwatch_all",
            "hupwatch_narrow",
            "bpftrace",
            "empty_programs",
        ] {
            let p = format!(
                "/overhead/workloads/{}/slowdown_percent_{condition}/median",
                workload.name()
            );
            if !figures.pointer(&p).is_some_and(Value::is_number) {
                missing.push(p);
            }
        }
    }
    missing.extend(scale::unmeasured(figures));
    missing.extend(pss::unmeasured(figures));
    // A full run also measures polling at 10,000 processes.
    if figures["quick"] != true {
        for p in [
            "/poll/larger/0/hupwatch/cpu_ms_per_poll",
            "/poll/larger/0/process_exporter/cpu_ms_per_poll",
        ] {
            if !figures.pointer(p).is_some_and(Value::is_number) {
                missing.push(p.to_string());
            }
        }
    }
    if let Some(steps) = figures.pointer("/loss/steps").and_then(Value::as_array) {
        for step in steps {
            if step["counted_exactly"] != true {
                missing.push(format!("exact loss count at rate {}", step["rate"]));
            }
        }
    }
    missing
}

fn machine() -> Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let output = |cmd: &str, args: &[&str]| {
        sh::probe(Command::new(cmd).args(args))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    json!({
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": mem_kib as f64 / (1024.0 * 1024.0),
        "date": output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "bpftrace": output("bpftrace", &["--version"]),
        "hupwatch_commit": output("git", &["rev-parse", "--short", "HEAD"]),
    })
}
