//! The polling section: hupwatch's /proc source beside process-exporter, at 1,000
//! processes and at each larger count measured.
use std::fmt::Write;

use serde_json::Value;

use super::MIB;

/// The section of RESULTS.md.
pub fn markdown(f: &Value, out: &mut String) {
    let p = &f["poll"];
    if p.is_null() {
        return;
    }
    let measured_apart = match (p["commit"].as_str(), p["date"].as_str()) {
        (Some(commit), Some(date)) => format!(
            " (measured apart, with `cargo xtask bench --only poll`, at {commit} on {date})"
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "\n## Polling /proc: hupwatch beside process-exporter{measured_apart}\n"
    );
    if let Some(error) = p["error"].as_str() {
        let _ = writeln!(out, "Not measured: {error}");
        return;
    }
    if p["stand_in"] == true {
        let _ = writeln!(
            out,
            "**Stand-in**: hupwatch ran with `--source {}`, not `--source proc`; these figures try the harness and are not the result.\n",
            p["hupwatch_source"].as_str().unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "{} `sleep 3600` processes, alive throughout; each tool alone on them (one after the other), {} s of warm-up, then {} s measured. \
         Polling once a second means, for hupwatch, its own timer (`--poll-interval 1s`); for process-exporter, \
         which reads /proc only when scraped, a GET of its `/metrics` every second from the bench. hupwatch's `/metrics` is \
         fetched every second too, so both serve the same scrapes and both figures include them. CPU is utime + stime from \
         /proc/PID/stat over the span, divided by the polls (process-exporter: the scrapes; hupwatch: the seconds over its \
         interval); the schedstat column sums every thread's run time in ns as a check on the clock-tick figure. \
         Memory is read from /proc/PID/status at the end. Watched: the sleepers process-exporter counts in its `sleep` group; \
         the processes hupwatch tracks (every process, the sleepers among them).\n",
        p["processes"], p["warmup_seconds"], p["seconds"],
    );
    let _ = writeln!(
        out,
        "- hupwatch: `{}`\n- process-exporter, as Debian ships it (its other flags at their defaults: -children, -threads and -gather-smaps on): `{}`\n\
         - process-exporter without smaps_rollup and per-thread series, which hupwatch has no counterpart of (context, not the goal): `{}`\n\n\
         process-exporter.yml, every process, one group per comm:\n\n```yaml\n{}```\n",
        p["hupwatch_command"].as_str().unwrap_or_default(),
        p["process_exporter_command"].as_str().unwrap_or_default(),
        p["process_exporter_lean_command"]
            .as_str()
            .unwrap_or_default(),
        p["process_exporter_config"].as_str().unwrap_or_default(),
    );
    table(p, out);
    let _ = writeln!(
        out,
        "\nCPU ratio, hupwatch over process-exporter: {:.2} (over process-exporter without smaps or threads: {:.2}). **{}**",
        p["cpu_ratio"].as_f64().unwrap_or(f64::NAN),
        p["cpu_ratio_to_lean"].as_f64().unwrap_or(f64::NAN),
        p["goal"].as_str().unwrap_or_default(),
    );
    for run in p["larger"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "\nThe same at {} processes ({} scrapes measured after the warm-up; process-exporter takes longer than a second per \
             scrape here, so its scrapes follow each other, and hupwatch's polls are the seconds over its interval):\n",
            run["processes"], run["seconds"],
        );
        table(run, out);
        let _ = writeln!(
            out,
            "\nCPU ratio, hupwatch over process-exporter: {:.2} (over process-exporter without smaps or threads: {:.2}).",
            run["cpu_ratio"].as_f64().unwrap_or(f64::NAN),
            run["cpu_ratio_to_lean"].as_f64().unwrap_or(f64::NAN),
        );
    }
}

/// The three tools' rows, from a run's figures.
fn table(p: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "| | ms CPU per poll (±resolution) | % of one CPU | ms CPU per poll, schedstat | `/metrics` ms, median (min to max) | VmRSS (MiB) | VmHWM (MiB) | watched |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for (name, key) in [
        ("hupwatch", "hupwatch"),
        ("process-exporter", "process_exporter"),
        (
            "process-exporter, no smaps or threads",
            "process_exporter_lean",
        ),
    ] {
        if absent(p, key) {
            continue;
        }
        let t = &p[key];
        let n = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        let scrape = match (
            t["scrape_ms"]["median"].as_f64(),
            t["scrape_ms"]["min"].as_f64(),
            t["scrape_ms"]["max"].as_f64(),
        ) {
            (Some(m), Some(lo), Some(hi)) => format!("{m:.1} ({lo:.1} to {hi:.1})"),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {:.2} (±{:.2}) | {:.2} | {:.2} | {scrape} | {:.1} | {:.1} | {:.0} |",
            n("cpu_ms_per_poll"),
            n("cpu_ms_per_poll_resolution"),
            n("cpu_percent_of_one_cpu"),
            n("schedstat_cpu_ms_per_poll"),
            n("vmrss_bytes") / MIB,
            n("vmhwm_bytes") / MIB,
            n("watched"),
        );
    }
}

fn absent(p: &Value, key: &str) -> bool {
    p[key].is_null()
}
