//! The collector in user space: loss under a signal storm, its footprint, how soon it
//! tells, and what sampling memory costs it.
use std::fmt::Write;

use serde_json::Value;

use super::{MIB, spread};

/// Each rate of the loss section: what was sent, received and lost.
pub fn loss(f: &Value, out: &mut String) {
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
}

/// The collector's RSS before and after churn, and `/metrics` with the processes live.
pub fn footprint(f: &Value, out: &mut String) {
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
}

/// From the event to its alert line.
pub fn latency(f: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "## Detection latency ({} repeats)\n\n- starting `setsid sleep` on a terminal (script(1)) to the `detached` alert line: {} ms\n- SIGHUP to a handler, to the `hangup_survived` line, beyond the {} s grace period: {} ms",
        f["latency"]["repeats"],
        spread(f, "/latency/setsid_to_detached_ms", 1),
        f["latency"]["grace_seconds"],
        spread(f, "/latency/sighup_to_hangup_survived_beyond_grace_ms", 1),
    );
}

/// The CPU of one memory sample, from the kernel's map and from /proc.
pub fn sampling(f: &Value, out: &mut String) {
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
}
