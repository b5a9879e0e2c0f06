//! The overhead section: what the eBPF programs cost in the kernel, where the time of
//! three of them goes, and how much they slow each workload.
use std::fmt::Write;

use serde_json::Value;

use super::{fmt_ns, ns, num, spread};
use crate::bench::workload::Workload;

/// The floor under the targets: what an empty program costs on the same hooks.
pub fn floor(f: &Value, out: &mut String) {
    let floor_faults = num(
        f,
        "/overhead/workloads/page_faults/slowdown_percent_empty_programs/median",
    );
    let _ = writeln!(
        out,
        "\nThe floor: empty programs on the hooks hupwatch uses, so what the kernel charges for running any program there before it does anything (the statistics included when they are on): classic tracepoints through bpftrace for eight, and for rss_stat, signal_generate and signal_deliver, which hupwatch attaches as BTF-typed tracepoints (tp_btf), two-instruction programs the bench loads itself (bpftrace 0.17's rawtracepoint probes do not attach here). An empty program on rss_stat costs {} ns per run; the empty programs slow the page-fault storm by {} %. The bpftrace equivalent stays on classic tracepoints.",
        fmt_ns(ns(f, "empty_programs", "rss_stat")),
        floor_faults.map_or("n/a".into(), |v| format!("{v:.1}")),
    );
}

/// Each program's ns per run under each condition.
pub fn per_program(f: &Value, out: &mut String) {
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
                fmt_ns(ns(f, "hupwatch_all", tp)),
                fmt_ns(ns(f, "hupwatch_narrow", tp)),
                fmt_ns(ns(f, "bpftrace", tp)),
                fmt_ns(ns(f, "empty_programs", tp)),
            );
        }
    }
}

/// bench/ablation/PARTS.md as it is, or why it is not there.
pub fn parts(parts: Option<&str>, out: &mut String) {
    let _ = writeln!(
        out,
        "\n## Where the setsid, exec and exit programs' time goes (ns per run)\n\n{}",
        parts.map_or("Not measured: bench/ablation/PARTS.md is missing (`python3 bench/ablation/parts.py` writes it).\n", str::trim_end)
    );
}

/// Each workload's slowdown under each condition.
pub fn slowdown(f: &Value, out: &mut String) {
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
}

/// The programs' run time over each workload's, from the statistics pass.
pub fn program_time(f: &Value, out: &mut String) {
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
}
