//! The targets table: each target beside its measured figure and whether it is met.
use std::fmt::Write;

use serde_json::Value;

use super::{MIB, fmt_ns, ns, num, spread};
use crate::bench::{poll, workload::Workload};

/// The table, its rows in the order of the sections they come from.
pub fn table(f: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "## Targets\n\n| target | measured | |\n| --- | --- | --- |"
    );
    program_rows(f, out);
    workload_rows(f, out);
    collector_rows(f, out);
    response_rows(f, out);
    pss_rows(f, out);
}

/// What PSS costs hupwatch at its default interval, at the largest scale measured.
fn pss_rows(f: &Value, out: &mut String) {
    let largest = f
        .pointer("/pss/points")
        .and_then(Value::as_array)
        .and_then(|points| points.last());
    let percent = largest.and_then(|p| p["default_interval_cpu_percent"].as_f64());
    target(
        out,
        "PSS (smaps_rollup) at the default --pss-interval, 10,000 processes: ≤ 1 % of one CPU",
        percent,
        match (largest, percent) {
            (Some(p), Some(percent)) => format!(
                "{percent:.2} % at {} ({:.1} µs a read)",
                super::group_digits(p["processes"].as_u64().unwrap_or(0)),
                p["hupwatch_cpu_us_per_read"].as_f64().unwrap_or(f64::NAN)
            ),
            _ => "not measured".into(),
        },
        |p| p <= 1.0,
    );
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

/// The programs' in-kernel cost: rss_stat, and setsid's two against the floor and
/// bpftrace.
fn program_rows(f: &Value, out: &mut String) {
    let untracked = ns(f, "hupwatch_narrow", "rss_stat");
    target(
        out,
        "rss_stat, untracked task: ≤ 40 ns per run",
        untracked,
        format!(
            "{} (an empty program: {})",
            fmt_ns(untracked),
            fmt_ns(ns(f, "empty_programs", "rss_stat"))
        ),
        |v| v <= 40.0,
    );
    let tracked = ns(f, "hupwatch_all", "rss_stat");
    target(
        out,
        "rss_stat, tracked task: ≤ 150 ns per run",
        tracked,
        fmt_ns(tracked),
        |v| v <= 150.0,
    );
    for tp in ["sys_enter_setsid", "sys_exit_setsid"] {
        let untracked = ns(f, "hupwatch_narrow", tp);
        let floor = ns(f, "empty_programs", tp);
        target(
            out,
            &format!("{tp}, untracked: ≤ 2x an empty program"),
            untracked.zip(floor).map(|(u, e)| u / e),
            format!(
                "{} (an empty program: {})",
                fmt_ns(untracked),
                fmt_ns(floor)
            ),
            |ratio| ratio <= 2.0,
        );
        let tracked = ns(f, "hupwatch_all", tp);
        let bpftrace = ns(f, "bpftrace", tp);
        target(
            out,
            &format!("{tp}, tracked: under bpftrace's"),
            tracked.zip(bpftrace).map(|(h, b)| h - b),
            format!("{} (bpftrace: {})", fmt_ns(tracked), fmt_ns(bpftrace)),
            |difference| difference < 0.0,
        );
    }
}

/// Each workload's slowdown, alone and against bpftrace's.
fn workload_rows(f: &Value, out: &mut String) {
    for workload in Workload::ALL {
        let limit = if workload == Workload::PageFaults {
            3.0
        } else {
            5.0
        };
        let base = format!("/overhead/workloads/{}/slowdown_percent_", workload.name());
        let all = num(f, &format!("{base}hupwatch_all/median"));
        target(
            out,
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
            out,
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
}

/// The loss section's: the rate without loss, the collector's CPU and RSS.
fn collector_rows(f: &Value, out: &mut String) {
    let zero = num(f, "/loss/zero_loss_rate_per_second");
    target(
        out,
        "zero loss at 100,000 signals/s",
        zero,
        zero.map_or("not measured".into(), |z| {
            format!("zero loss up to {z:.0}/s")
        }),
        |z| z >= 100_000.0 * 0.98,
    );
    let cpu = num(f, "/loss/collector/cpu_us_per_event");
    target(
        out,
        "collector CPU ≤ 2 µs per event",
        cpu,
        cpu.map_or("not measured".into(), |c| format!("{c:.2} µs")),
        |c| c <= 2.0,
    );
    let before = num(f, "/loss/collector/rss_bytes_before");
    let after = num(f, "/loss/collector/rss_bytes_after");
    let events = num(f, "/loss/collector/events").unwrap_or(0.0);
    target(
        out,
        "collector RSS ≤ 32 MiB",
        after,
        after.map_or("not measured".into(), |a| {
            format!("{:.1} MiB after {:.2} M events", a / MIB, events / 1e6)
        }),
        |a| a <= 32.0 * MIB,
    );
    let growth = before.zip(after).map(|(b, a)| a - b);
    target(
        out,
        "collector RSS growth ≤ 2 MiB over a million events",
        growth,
        growth.map_or("not measured".into(), |g| {
            format!("{:+.2} MiB over {:.2} M events", g / MIB, events / 1e6)
        }),
        |g| g <= 2.0 * MIB,
    );
}

/// How long an answer takes (`/metrics`, a verdict), and polling's CPU beside
/// process-exporter's.
fn response_rows(f: &Value, out: &mut String) {
    let metrics = num(f, "/footprint/metrics_ms/median");
    target(
        out,
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
        out,
        "setsid to verdict ≤ 100 ms",
        setsid,
        format!("{} ms", spread(f, "/latency/setsid_to_detached_ms", 1)),
        |v| v <= 100.0,
    );
    let hupwatch_poll = num(f, "/poll/hupwatch/cpu_ms_per_poll");
    let exporter_poll = num(f, "/poll/process_exporter/cpu_ms_per_poll");
    target(
        out,
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
}
