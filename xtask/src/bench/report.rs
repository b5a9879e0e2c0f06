//! bench/RESULTS.md from the figures: the machine, the command, each target beside its
//! measured figure, then the detail.
use std::fmt::Write;

use serde_json::Value;

use super::{poll, scale, workload::Workload};

fn num(figures: &Value, pointer: &str) -> Option<f64> {
    figures.pointer(pointer).and_then(Value::as_f64)
}

fn spread(figures: &Value, pointer: &str, decimals: usize) -> String {
    match (
        num(figures, &format!("{pointer}/median")),
        num(figures, &format!("{pointer}/min")),
        num(figures, &format!("{pointer}/max")),
    ) {
        (Some(median), Some(min), Some(max)) => {
            format!("{median:.decimals$} ({min:.decimals$} to {max:.decimals$})")
        }
        _ => "not measured".into(),
    }
}

/// One target row: what it asks, the figure, and whether the figure meets it.
fn target(
    out: &mut String,
    what: &str,
    figure: Option<f64>,
    shown: String,
    met: impl Fn(f64) -> bool,
) {
    let verdict = match figure {
        Some(f) if met(f) => "met",
        Some(_) => "**missed**",
        None => "not measured",
    };
    let _ = writeln!(out, "| {what} | {shown} | {verdict} |");
}

/// `parts`: bench/ablation/PARTS.md, where the setsid, exec and exit programs' time goes
/// (measured apart, by ablation builds), when it exists.
pub fn markdown(f: &Value, parts: Option<&str>) -> String {
    let mut out = String::new();
    let m = &f["machine"];
    let _ = writeln!(out, "# hupwatch benchmarks\n");
    let _ = writeln!(
        out,
        "Measured by `{}` on {} UTC: Linux {}, {} ({} CPUs), {:.0} GiB RAM, {}, hupwatch {}. \
         Ratios come from one run with the conditions interleaved in {} rounds; figures are \
         median (min to max) over rounds. The JSON beside this file has every figure.\n",
        f["command"].as_str().unwrap_or_default(),
        m["date"].as_str().unwrap_or_default(),
        m["kernel"].as_str().unwrap_or_default(),
        m["cpu"].as_str().unwrap_or_default(),
        m["cpus"],
        m["memory_gib"].as_f64().unwrap_or_default(),
        m["bpftrace"].as_str().unwrap_or_default(),
        m["hupwatch_commit"].as_str().unwrap_or_default(),
        f["overhead"]["rounds"],
    );
    if f["quick"] == true {
        let _ = writeln!(
            out,
            "**Quick run**: workloads a twentieth of the full size, two rounds. A smoke test of the harness; its figures are not the results.\n"
        );
    }

    for section in [
        "overhead",
        "loss",
        "footprint",
        "latency",
        "sampling",
        "poll",
        "scale",
    ] {
        if let Some(error) = f[section]["error"].as_str() {
            let _ = writeln!(out, "**The {section} section failed**: {error}\n");
        }
    }
    let _ = writeln!(
        out,
        "## Targets\n\n| target | measured | |\n| --- | --- | --- |"
    );
    let ns = |cond: &str, tp: &str| num(f, &format!("/overhead/kernel/{cond}/{tp}/ns_per_run"));
    let untracked = ns("hupwatch_narrow", "rss_stat");
    target(
        &mut out,
        "rss_stat, untracked task: ≤ 40 ns per run",
        untracked,
        format!(
            "{} (an empty program: {})",
            fmt_ns(untracked),
            fmt_ns(ns("empty_programs", "rss_stat"))
        ),
        |v| v <= 40.0,
    );
    let tracked = ns("hupwatch_all", "rss_stat");
    target(
        &mut out,
        "rss_stat, tracked task: ≤ 150 ns per run",
        tracked,
        fmt_ns(tracked),
        |v| v <= 150.0,
    );
    for tp in ["sys_enter_setsid", "sys_exit_setsid"] {
        let untracked = ns("hupwatch_narrow", tp);
        let floor = ns("empty_programs", tp);
        target(
            &mut out,
            &format!("{tp}, untracked: ≤ 2x an empty program"),
            untracked.zip(floor).map(|(u, e)| u / e),
            format!(
                "{} (an empty program: {})",
                fmt_ns(untracked),
                fmt_ns(floor)
            ),
            |ratio| ratio <= 2.0,
        );
        let tracked = ns("hupwatch_all", tp);
        let bpftrace = ns("bpftrace", tp);
        target(
            &mut out,
            &format!("{tp}, tracked: under bpftrace's"),
            tracked.zip(bpftrace).map(|(h, b)| h - b),
            format!("{} (bpftrace: {})", fmt_ns(tracked), fmt_ns(bpftrace)),
            |difference| difference < 0.0,
        );
    }
    for workload in Workload::ALL {
        let limit = if workload == Workload::PageFaults {
            3.0
        } else {
            5.0
        };
        let base = format!("/overhead/workloads/{}/slowdown_percent_", workload.name());
        let all = num(f, &format!("{base}hupwatch_all/median"));
        target(
            &mut out,
            &format!(
                "{} slowdown, tracing every process: ≤ {limit}%",
                workload.name()
            ),
            all,
            format!("{} %", spread(f, &format!("{base}hupwatch_all"), 1)),
            |v| v <= limit,
        );
        let bpftrace = num(f, &format!("{base}bpftrace/median"));
        let ratio = all
            .zip(bpftrace)
            .map(|(h, b)| if b > 0.0 { h / b } else { f64::INFINITY });
        target(
            &mut out,
            &format!(
                "{}: hupwatch's slowdown ≤ half of bpftrace's",
                workload.name()
            ),
            ratio,
            match (all, bpftrace) {
                (Some(h), Some(b)) => format!(
                    "{h:.1} % vs {b:.1} % (ratio {:.2})",
                    ratio.unwrap_or(f64::NAN)
                ),
                _ => "not measured".into(),
            },
            |r| r <= 0.5,
        );
    }
    let zero = num(f, "/loss/zero_loss_rate_per_second");
    target(
        &mut out,
        "zero loss at 100,000 signals/s",
        zero,
        zero.map_or("not measured".into(), |z| {
            format!("zero loss up to {z:.0}/s")
        }),
        |z| z >= 100_000.0 * 0.98,
    );
    let cpu = num(f, "/loss/collector/cpu_us_per_event");
    target(
        &mut out,
        "collector CPU ≤ 2 µs per event",
        cpu,
        cpu.map_or("not measured".into(), |c| format!("{c:.2} µs")),
        |c| c <= 2.0,
    );
    let before = num(f, "/loss/collector/rss_bytes_before");
    let after = num(f, "/loss/collector/rss_bytes_after");
    let events = num(f, "/loss/collector/events").unwrap_or(0.0);
    target(
        &mut out,
        "collector RSS ≤ 32 MiB",
        after,
        after.map_or("not measured".into(), |a| {
            format!("{:.1} MiB after {:.2} M events", a / MIB, events / 1e6)
        }),
        |a| a <= 32.0 * MIB,
    );
    let growth = before.zip(after).map(|(b, a)| a - b);
    target(
        &mut out,
        "collector RSS growth ≤ 2 MiB over a million events",
        growth,
        growth.map_or("not measured".into(), |g| {
            format!("{:+.2} MiB over {:.2} M events", g / MIB, events / 1e6)
        }),
        |g| g <= 2.0 * MIB,
    );
    let metrics = num(f, "/footprint/metrics_ms/median");
    target(
        &mut out,
        "/metrics in ≤ 10 ms with 10,000 tracked processes",
        metrics,
        format!(
            "{} ms with {} tracked",
            spread(f, "/footprint/metrics_ms", 1),
            f["footprint"]["tracked_live"]
        ),
        |v| v <= 10.0,
    );
    let setsid = num(f, "/latency/setsid_to_detached_ms/median");
    target(
        &mut out,
        "setsid to verdict ≤ 100 ms",
        setsid,
        format!("{} ms", spread(f, "/latency/setsid_to_detached_ms", 1)),
        |v| v <= 100.0,
    );
    let hupwatch_poll = num(f, "/poll/hupwatch/cpu_ms_per_poll");
    let exporter_poll = num(f, "/poll/process_exporter/cpu_ms_per_poll");
    target(
        &mut out,
        "polling /proc, 1,000 processes once a second: hupwatch's CPU ≤ half of process-exporter's",
        num(f, "/poll/cpu_ratio"),
        match (hupwatch_poll, exporter_poll) {
            (Some(h), Some(e)) => format!(
                "{h:.2} ms vs {e:.2} ms per poll (ratio {:.2}){}",
                h / e,
                if f["poll"]["stand_in"] == true {
                    ", **eBPF stand-in, not --source proc**"
                } else {
                    ""
                }
            ),
            _ => "not measured".into(),
        },
        |r| r <= poll::GOAL_RATIO,
    );

    let floor_faults = num(
        f,
        "/overhead/workloads/page_faults/slowdown_percent_empty_programs/median",
    );
    let _ = writeln!(
        out,
        "\nThe floor: empty programs on the hooks hupwatch uses, so what the kernel charges for running any program there before it does anything (the statistics included when they are on): classic tracepoints through bpftrace for eight, and for rss_stat, signal_generate and signal_deliver, which hupwatch attaches as BTF-typed tracepoints (tp_btf), two-instruction programs the bench loads itself (bpftrace 0.17's rawtracepoint probes do not attach here). An empty program on rss_stat costs {} ns per run; the empty programs slow the page-fault storm by {} %. The bpftrace equivalent stays on classic tracepoints.",
        fmt_ns(ns("empty_programs", "rss_stat")),
        floor_faults.map_or("n/a".into(), |v| format!("{v:.1}")),
    );

    let _ = writeln!(out, "\n## In-kernel cost per program (ns per run)\n");
    let _ = writeln!(
        out,
        "| tracepoint | hupwatch, every process | hupwatch, untracked (`--match` another name) | bpftrace equivalent | empty program (floor) |\n| --- | --- | --- | --- | --- |"
    );
    if let Some(programs) = f
        .pointer("/overhead/kernel/hupwatch_all")
        .and_then(Value::as_object)
    {
        for tp in programs.keys() {
            let _ = writeln!(
                out,
                "| {tp} | {} | {} | {} | {} |",
                fmt_ns(ns("hupwatch_all", tp)),
                fmt_ns(ns("hupwatch_narrow", tp)),
                fmt_ns(ns("bpftrace", tp)),
                fmt_ns(ns("empty_programs", tp)),
            );
        }
    }

    let _ = writeln!(
        out,
        "\n## Where the setsid, exec and exit programs' time goes (ns per run)\n\n{}",
        parts.map_or("Not measured: bench/ablation/PARTS.md is missing (`python3 bench/ablation/parts.py` writes it).\n", str::trim_end)
    );

    let _ = writeln!(out, "\n## Workload slowdown against no probe (%)\n");
    let _ = writeln!(
        out,
        "| workload | time without a probe (s) | hupwatch, every process | hupwatch, untracked | bpftrace | empty programs (floor) |\n| --- | --- | --- | --- | --- | --- |"
    );
    for workload in Workload::ALL {
        let base = format!("/overhead/workloads/{}", workload.name());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            workload.name(),
            spread(f, &format!("{base}/iterations_seconds_no_probe"), 3),
            spread(f, &format!("{base}/slowdown_percent_hupwatch_all"), 1),
            spread(f, &format!("{base}/slowdown_percent_hupwatch_narrow"), 1),
            spread(f, &format!("{base}/slowdown_percent_bpftrace"), 1),
            spread(f, &format!("{base}/slowdown_percent_empty_programs"), 1),
        );
    }

    let _ = writeln!(
        out,
        "\n## Time in the programs while each workload ran (% of its run time)\n\nFrom the statistics pass (one run per workload, kernel.bpf_stats_enabled on): the run time of the condition's programs, on any CPU, over the workload's. It leaves out what the hook costs around the program (for a classic tracepoint, building its record) and effects on caches, so it is a lower bound of the slowdown, but one the round-to-round noise above does not blur.\n"
    );
    let _ = writeln!(
        out,
        "| workload | hupwatch, every process | hupwatch, untracked | bpftrace | empty programs (floor) |\n| --- | --- | --- | --- | --- |"
    );
    for workload in Workload::ALL {
        let share = |condition: &str| {
            num(
                f,
                &format!(
                    "/overhead/workloads/{}/program_time_percent_{condition}",
                    workload.name()
                ),
            )
            .map_or("n/a".into(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            workload.name(),
            share("hupwatch_all"),
            share("hupwatch_narrow"),
            share("bpftrace"),
            share("empty_programs"),
        );
    }

    let _ = writeln!(out, "\n## Loss: SIGWINCH to one watched process\n");
    let _ = writeln!(
        out,
        "| asked (/s) | achieved (/s) | sent | received | lost | received + lost = sent | collector RSS after (MiB) |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for step in f["loss"]["steps"].as_array().into_iter().flatten() {
        let rate = step["rate"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {:.1} |",
            if rate == 0 {
                "unpaced".into()
            } else {
                rate.to_string()
            },
            step["achieved_per_second"].as_f64().unwrap_or(0.0),
            step["sent"],
            step["received"],
            step["lost"],
            if step["counted_exactly"] == true {
                "yes"
            } else {
                "**no**"
            },
            step["collector_rss_bytes_after"].as_f64().unwrap_or(0.0) / MIB,
        );
    }
    let fp = &f["footprint"];
    let _ = writeln!(
        out,
        "\n## Footprint\n\nCollector RSS, tracing every process: {:.1} MiB at start, {:.1} MiB after {} processes came and went. \
         `/metrics` with {} live tracked processes: {} ms for {} bytes.\n",
        fp["rss_bytes_start"].as_f64().unwrap_or(0.0) / MIB,
        fp["rss_bytes_after_churn"].as_f64().unwrap_or(0.0) / MIB,
        fp["processes"],
        fp["tracked_live"],
        spread(f, "/footprint/metrics_ms", 2),
        fp["metrics_bytes"],
    );
    let _ = writeln!(
        out,
        "## Detection latency ({} repeats)\n\n- starting `setsid sleep` on a terminal (script(1)) to the `detached` alert line: {} ms\n- SIGHUP to a handler, to the `hangup_survived` line, beyond the {} s grace period: {} ms",
        f["latency"]["repeats"],
        spread(f, "/latency/setsid_to_detached_ms", 1),
        f["latency"]["grace_seconds"],
        spread(f, "/latency/sighup_to_hangup_survived_beyond_grace_ms", 1),
    );
    let s = &f["sampling"];
    let per = |key: &str| s[key].as_f64().unwrap_or(f64::NAN);
    let measured_apart = match (s["commit"].as_str(), s["date"].as_str()) {
        (Some(commit), Some(date)) => {
            format!(
                " (measured apart, with `cargo xtask bench --only sampling`, at {commit} on {date})"
            )
        }
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "\n## Memory sampling{measured_apart}\n\nhupwatch's CPU per watched process per sample, {} paused processes sampled every {} ms for {} s: \
         {:.2} µs from the kernel's map (rss_stat attached), {:.2} µs from /proc/PID/status where rss_stat \
         cannot attach (as on a kernel that refuses it). At the default 1 s interval, 1,000 processes cost \
         {:.2} % and {:.2} % of one CPU.",
        s["processes"],
        s["interval_ms"],
        s["seconds"],
        per("kernel_map_cpu_us_per_process_sample"),
        per("proc_cpu_us_per_process_sample"),
        per("kernel_map_cpu_us_per_process_sample") * 1000.0 / 1e4,
        per("proc_cpu_us_per_process_sample") * 1000.0 / 1e4,
    );
    poll::markdown(f, &mut out);
    scale::markdown(f, &mut out);
    out
}

const MIB: f64 = 1024.0 * 1024.0;

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}
