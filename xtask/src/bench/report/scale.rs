//! The section on cost as the work grows: the collector at 1,000, 10,000 and 50,000
//! tracked processes, from the scale section, and the proc source's CPU per look from the
//! polling section's.
use std::fmt::Write;

use serde_json::Value;

use super::{MIB, group_digits, growth::growth};
use crate::bench::scale::FOLLOW;

/// The section of RESULTS.md.
pub fn markdown(f: &Value, out: &mut String) {
    let s = &f["scale"];
    if s.is_null() {
        return;
    }
    let measured_apart = match (s["commit"].as_str(), s["date"].as_str()) {
        (Some(commit), Some(date)) => format!(
            " (measured apart, with `cargo xtask bench --only scale`, at {commit} on {date})"
        ),
        _ => String::new(),
    };
    let _ = writeln!(out, "\n## Cost as the work grows{measured_apart}\n");
    if let Some(error) = s["error"].as_str() {
        let _ = writeln!(out, "Not measured: {error}");
        return;
    }
    if s["quick"] == true {
        let _ = writeln!(
            out,
            "**Quick run**: 1,000 processes only, short; a smoke test, not the result.\n"
        );
    }
    let points: Vec<&Value> = s["points"].as_array().into_iter().flatten().collect();
    method(s, out);
    per_event(&points, out);
    idle(&points, out);
    rss(&points, out);
    for (title, key) in [("`/metrics`", "metrics"), ("`/api/sessions`", "sessions")] {
        page(&points, title, key, out);
    }
    fleet(&points, out);
    children(&points, out);
    proc_source(f, out);
}

/// A point's processes.
fn n(p: &Value) -> f64 {
    p["processes"].as_f64().unwrap_or(f64::NAN)
}

/// A point's figure at `ptr`.
fn at(p: &Value, ptr: &str) -> f64 {
    p.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// The figure at `ptr` against the processes, at each point.
fn figure(points: &[&Value], ptr: &str) -> Vec<(f64, f64)> {
    points.iter().map(|p| (n(p), at(p, ptr))).collect()
}

/// How it was measured.
fn method(s: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "hupwatch with the eBPF source and its defaults, a fresh one per scale, watching the bench's own paused children \
         (`--pid`: forked, not exec'd, so they share its pages; {} process names, more than the 20 program groups `/metrics` shows; \
         {} of them ignoring SIGHUP, so each holds a `hangup_ignored` verdict, more than the default `--max-session-series` of 50). \
         kernel.pid_max was {} for the run ({} before). CPU is the run time of hupwatch's threads from /proc/PID/task/*/schedstat \
         (utime + stime count 10 ms ticks, too coarse for a phase of a tenth of a second). Idle: over {} s with nothing \
         fetched, before the children and with them all alive; per process, the difference over the processes. Per event: \
         while the children start, over the events hupwatch counts (their forks and the SIGHUP dispositions), from the first \
         fork until all are tracked and the flagged ones hold their verdict; while they end, over their exits, from the first \
         SIGKILL until none is tracked; both read from `/metrics` every {} ms, whose GETs are in the figure, and the idle \
         collector's CPU over the phase taken off (its rate without children over the phase's time, plus each child's idle \
         cost over the time it was tracked, from the reads); the raw figure is beside it. RSS is VmRSS once all are tracked. \
         `/metrics` and `/api/sessions`: median (min to max) of {} GETs after one unmeasured, the body's bytes; series are \
         the sample lines of `/metrics`.\n",
        s["names"],
        s["flagged_asked"],
        s["pid_max"],
        s["pid_max_before"],
        s["idle_seconds"],
        FOLLOW.as_millis(),
        s["gets"],
    );
}

/// The collector's CPU per event while the processes start and while they end.
fn per_event(points: &[&Value], out: &mut String) {
    let _ = writeln!(
        out,
        "Collector CPU per event:\n\n| processes | starting: events in s | µs per event (raw) | ending: events in s | µs per event (raw) | events lost | re-syncs |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {:.0} in {:.1} | {:.2} ({:.2}) | {:.0} in {:.1} | {:.2} ({:.2}) | {:.0} | {:.0} |",
            group_digits(n(p) as u64),
            at(p, "/collector/start/events"),
            at(p, "/collector/start/seconds"),
            at(p, "/collector/start/cpu_us_per_event"),
            at(p, "/collector/start/cpu_us_per_event_with_idle"),
            at(p, "/collector/end/events"),
            at(p, "/collector/end/seconds"),
            at(p, "/collector/end/cpu_us_per_event"),
            at(p, "/collector/end/cpu_us_per_event_with_idle"),
            at(p, "/collector/start/events_lost") + at(p, "/collector/end/events_lost"),
            at(p, "/collector/resyncs"),
        );
    }
    events(points, out);
    let _ = writeln!(
        out,
        "\n{} {}\n",
        growth(
            "CPU per starting event",
            &figure(points, "/collector/start/cpu_us_per_event"),
            true
        ),
        growth(
            "CPU per ending event",
            &figure(points, "/collector/end/cpu_us_per_event"),
            true
        ),
    );
}

/// The events of the largest point by kind, and any lost at each.
fn events(points: &[&Value], out: &mut String) {
    if let Some(p) = points.last() {
        let kinds = |phase: &str| {
            p["collector"][phase]["events_by_kind"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k} {}", v.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "\nThe events at {} processes: starting, {}; ending, {}.",
            group_digits(n(p) as u64),
            kinds("start"),
            kinds("end"),
        );
    }
    for p in points {
        for (phase, words) in [("start", "started"), ("end", "ended")] {
            let lost = at(p, &format!("/collector/{phase}/events_lost"));
            if lost > 0.0 {
                let _ = writeln!(
                    out,
                    "\nAt {} processes, {lost:.0} events were lost while they {words} (the ring buffer was full); hupwatch re-read /proc {} times.",
                    group_digits(n(p) as u64),
                    at(p, "/collector/resyncs"),
                );
            }
        }
    }
}

/// The collector's CPU with the processes alive and idle.
fn idle(points: &[&Value], out: &mut String) {
    let _ = writeln!(
        out,
        "Collector CPU with the processes alive and idle:\n\n| processes | % of one CPU | without them | µs per process per second |\n| --- | --- | --- | --- |"
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} |",
            group_digits(n(p) as u64),
            at(p, "/collector/idle/cpu_percent_of_one_cpu"),
            at(p, "/collector/idle/cpu_percent_of_one_cpu_without_children"),
            at(p, "/collector/idle/cpu_us_per_process_second"),
        );
    }
    let _ = writeln!(
        out,
        "\n{}\n",
        growth(
            "Idle CPU",
            &figure(points, "/collector/idle/cpu_percent_of_one_cpu"),
            false
        )
    );
}

/// The collector's RSS.
fn rss(points: &[&Value], out: &mut String) {
    let _ = writeln!(
        out,
        "Collector RSS:\n\n| processes | at start (MiB) | all tracked (MiB) | VmHWM (MiB) | KiB per tracked process |\n| --- | --- | --- | --- | --- |"
    );
    for p in points {
        let start = at(p, "/collector/rss_bytes_start");
        let tracked = at(p, "/collector/rss_bytes_tracked");
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            group_digits(n(p) as u64),
            start / MIB,
            tracked / MIB,
            at(p, "/collector/vmhwm_bytes") / MIB,
            (tracked - start) / 1024.0 / n(p),
        );
    }
    let _ = writeln!(
        out,
        "\n{}\n",
        growth(
            "RSS",
            &figure(points, "/collector/rss_bytes_tracked")
                .into_iter()
                .map(|(n, v)| (n, v / MIB))
                .collect::<Vec<_>>(),
            false
        )
    );
}

/// `/metrics` or `/api/sessions`: time, size, and for `/metrics` its series.
fn page(points: &[&Value], title: &str, key: &str, out: &mut String) {
    let metrics = key == "metrics";
    let _ = writeln!(
        out,
        "{title}:\n\n| processes | ms, median (min to max) | bytes | bytes per process |{}\n| --- | --- | --- | --- |{}",
        if metrics { " series |" } else { "" },
        if metrics { " --- |" } else { "" },
    );
    for p in points {
        let _ = writeln!(
            out,
            "| {} | {:.2} ({:.2} to {:.2}) | {:.0} | {:.1} |{}",
            group_digits(n(p) as u64),
            at(p, &format!("/{key}/ms/median")),
            at(p, &format!("/{key}/ms/min")),
            at(p, &format!("/{key}/ms/max")),
            at(p, &format!("/{key}/bytes")),
            at(p, &format!("/{key}/bytes")) / n(p),
            if metrics {
                format!(" {:.0} |", at(p, "/metrics/series"))
            } else {
                String::new()
            },
        );
    }
    let _ = write!(
        out,
        "\n{} {}",
        growth(
            &format!("{title} time (ms)"),
            &figure(points, &format!("/{key}/ms/median")),
            false
        ),
        growth(
            &format!("{title} size (bytes)"),
            &figure(points, &format!("/{key}/bytes")),
            false
        ),
    );
    if metrics {
        let _ = write!(
            out,
            " {}",
            growth("Its series", &figure(points, "/metrics/series"), false)
        );
        let _ = write!(
            out,
            " Why the time bends, measured apart: [docs/costs.md](../docs/costs.md), \"Cost as the work grows\"."
        );
    }
    let _ = writeln!(out, "\n");
}

/// The children's own memory.
fn children(points: &[&Value], out: &mut String) {
    let _ = writeln!(
        out,
        "The children's memory, for scale: medians over up to 50 of them of VmRSS (mostly pages shared with the bench, \
         which forked them), of the pages each has to itself (Private_Clean + Private_Dirty, smaps_rollup) and of its page \
         tables (VmPTE); the last column is what those two come to over all of them. The kernel's own share (a 16 KiB stack \
         and the task's structures each) comes on top; MemAvailable's fall is in the JSON, but it moves with whatever else \
         the machine does.\n\n\
         | processes | VmRSS (KiB) | private pages (KiB) | page tables (KiB) | private and page tables, all (MiB) |\n| --- | --- | --- | --- | --- |"
    );
    for p in points {
        let kib = |ptr: &str| at(p, &format!("/children/per_process/{ptr}")) / 1024.0;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            group_digits(n(p) as u64),
            kib("vmrss_bytes"),
            kib("private_bytes"),
            kib("vmpte_bytes"),
            (kib("private_bytes") + kib("vmpte_bytes")) * n(p) / 1024.0,
        );
    }
}

/// What the scrape at 10,000 processes (or the largest measured) means for a fleet.
fn fleet(points: &[&Value], out: &mut String) {
    let Some(p) = points
        .iter()
        .find(|p| p["processes"].as_u64() == Some(10_000))
        .or(points.last())
    else {
        return;
    };
    let (Some(series), Some(bytes)) = (
        p.pointer("/metrics/series").and_then(Value::as_f64),
        p.pointer("/metrics/bytes").and_then(Value::as_f64),
    ) else {
        return;
    };
    let mut families: Vec<(&String, u64)> = p["metrics"]["series_by_family"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
        .collect();
    families.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let families = families
        .iter()
        .take(6)
        .map(|(k, v)| format!("`{k}` {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "A machine on one Prometheus, from the scrape at {} processes with the defaults ({} series, {:.0} bytes a scrape; \
         the most series: {families}), at a 15 s scrape interval:\n\n\
         | machines | active series | samples per second | MB per second scraped (uncompressed) |\n| --- | --- | --- | --- |",
        group_digits(p["processes"].as_u64().unwrap_or(0)),
        series,
        bytes,
    );
    for machines in [100.0, 1_000.0, 10_000.0] {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} |",
            group_digits(machines as u64),
            group_digits((series * machines) as u64),
            series * machines / 15.0,
            bytes * machines / 15.0 / 1e6,
        );
    }
    let _ = writeln!(out);
}

/// The proc source's CPU per look beside process-exporter's at each count poll.rs
/// measured.
fn proc_source(f: &Value, out: &mut String) {
    let p = &f["poll"];
    let mut runs: Vec<&Value> = Vec::new();
    if p["hupwatch"].is_object() {
        runs.push(p);
    }
    runs.extend(p["larger"].as_array().into_iter().flatten());
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nThe proc source's CPU per look (`--source proc`, once a second) beside process-exporter's per scrape, from the polling section:\n\n\
         | processes | hupwatch ms | µs per process | process-exporter ms | µs per process | ratio |\n| --- | --- | --- | --- | --- | --- |"
    );
    let mut hupwatch = Vec::new();
    let mut exporter = Vec::new();
    for run in &runs {
        let n = run["processes"].as_f64().unwrap_or(f64::NAN);
        let h = run
            .pointer("/hupwatch/cpu_ms_per_poll")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        let e = run
            .pointer("/process_exporter/cpu_ms_per_poll")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        hupwatch.push((n, h * 1e3 / n));
        exporter.push((n, e * 1e3 / n));
        let _ = writeln!(
            out,
            "| {} | {h:.2} | {:.2} | {e:.2} | {:.2} | {:.2} |",
            group_digits(n as u64),
            h * 1e3 / n,
            e * 1e3 / n,
            h / e,
        );
    }
    if runs.len() < 2 {
        let _ = writeln!(
            out,
            "\nOnly {} processes measured: `cargo xtask bench --only poll` adds 10,000.",
            group_digits(runs[0]["processes"].as_u64().unwrap_or(0))
        );
        return;
    }
    let _ = writeln!(
        out,
        "\n{} {}",
        growth("hupwatch's CPU per look per process (µs)", &hupwatch, true),
        growth(
            "process-exporter's CPU per scrape per process (µs)",
            &exporter,
            true
        ),
    );
}
