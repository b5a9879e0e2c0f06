//! bench/RESULTS.md from the figures: the machine, the command, each target beside its
//! measured figure, then the detail. One function per table (or paragraph), called in the
//! order they stand in the file; the sections' own files write them.
mod collector;
mod growth;
// Seen from bench/: poll.rs's test renders this section from its own figures.
pub(super) mod poll;
mod programs;
mod pss;
mod scale;
mod targets;

use std::fmt::Write;

use serde_json::Value;

/// `parts`: bench/ablation/PARTS.md, where the setsid, exec and exit programs' time goes
/// (measured apart, by ablation builds), when it exists.
pub fn markdown(f: &Value, parts: Option<&str>) -> String {
    let mut out = String::new();
    header(f, &mut out);
    failed_sections(f, &mut out);
    targets::table(f, &mut out);
    programs::floor(f, &mut out);
    programs::per_program(f, &mut out);
    programs::parts(parts, &mut out);
    programs::slowdown(f, &mut out);
    programs::program_time(f, &mut out);
    collector::loss(f, &mut out);
    collector::footprint(f, &mut out);
    collector::latency(f, &mut out);
    collector::sampling(f, &mut out);
    poll::markdown(f, &mut out);
    scale::markdown(f, &mut out);
    pss::markdown(f, &mut out);
    out
}

/// The title, the machine and the command, and whether this was a quick run.
fn header(f: &Value, out: &mut String) {
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
}

/// A line for each section that failed, with its error.
fn failed_sections(f: &Value, out: &mut String) {
    for section in [
        "overhead",
        "loss",
        "footprint",
        "latency",
        "sampling",
        "poll",
        "scale",
        "pss",
    ] {
        if let Some(error) = f[section]["error"].as_str() {
            let _ = writeln!(out, "**The {section} section failed**: {error}\n");
        }
    }
}

fn num(figures: &Value, pointer: &str) -> Option<f64> {
    figures.pointer(pointer).and_then(Value::as_f64)
}

/// One program's ns per run under a condition of the overhead section.
fn ns(f: &Value, cond: &str, tp: &str) -> Option<f64> {
    num(f, &format!("/overhead/kernel/{cond}/{tp}/ns_per_run"))
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

const MIB: f64 = 1024.0 * 1024.0;

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0}"))
}

/// 50000 as 50,000.
fn group_digits(n: u64) -> String {
    let text = n.to_string();
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i > 0 && (text.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
