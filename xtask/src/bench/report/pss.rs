//! The section on reading PSS (smaps_rollup), from the pss section: per round and per
//! process at 1,000 and 10,000 processes, per resident GiB, and what hupwatch pays per
//! read and at its default `--pss-interval`.
use std::fmt::Write;

use serde_json::Value;

use super::group_digits;

/// The section of RESULTS.md.
pub fn markdown(f: &Value, out: &mut String) {
    let s = &f["pss"];
    if s.is_null() {
        return;
    }
    let measured_apart = match (s["commit"].as_str(), s["date"].as_str()) {
        (Some(commit), Some(date)) => {
            format!(" (measured apart, with `cargo xtask bench --only pss`, at {commit} on {date})")
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "\n## Reading PSS (smaps_rollup){measured_apart}\n");
    if let Some(error) = s["error"].as_str() {
        let _ = writeln!(out, "Not measured: {error}");
        return;
    }
    let interval = s["default_interval_seconds"].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        out,
        "Group totals, the forecast's flagged memory and the program metrics add up PSS + SwapPss, \
         read from /proc/PID/smaps_rollup every `--pss-interval` ({interval:.0} s by default); the kernel walks \
         the page tables of every mapping to answer. A round: this process reads the smaps_rollup of its \
         paused children (forked, not exec'd, as in the scale section: small processes), CPU time of the \
         reading thread, median (min to max) of {} rounds; wall-clock time is how long such a round would \
         hold hupwatch's one thread (hupwatch spreads a round over the RSS ticks of an interval). In \
         hupwatch: its CPU over {} s watching the children (`--pid`) with every child read every 1 s tick, \
         less its CPU with PSS off (`--pss-interval 0s`), per read; at the default interval, each child \
         read once per {interval:.0} s.\n",
        s["rounds"], s["span_seconds"],
    );
    let _ = writeln!(
        out,
        "| processes | a round: ms CPU | µs CPU per process | a round: ms wall | hupwatch: µs CPU per read | hupwatch, every child every second: % of one CPU (PSS off) | hupwatch at the default {interval:.0} s: % of one CPU |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    for p in s["points"].as_array().into_iter().flatten() {
        let num = |key: &str| p[key].as_f64().unwrap_or(f64::NAN);
        let spread = |key: &str| {
            let x = &p[key];
            format!(
                "{:.1} ({:.1} to {:.1})",
                x["median"].as_f64().unwrap_or(f64::NAN),
                x["min"].as_f64().unwrap_or(f64::NAN),
                x["max"].as_f64().unwrap_or(f64::NAN)
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {:.1} | {:.2} ({:.2}) | {:.3} |",
            group_digits(p["processes"].as_u64().unwrap_or(0)),
            spread("round_cpu_ms"),
            num("cpu_us_per_process"),
            spread("round_wall_ms"),
            num("hupwatch_cpu_us_per_read"),
            num("hupwatch_every_tick_cpu_percent"),
            num("hupwatch_none_cpu_percent"),
            num("default_interval_cpu_percent"),
        );
    }
    let _ = writeln!(
        out,
        "\nA read grows with what the process has resident: a child of this process {:.0} µs, one with \
         {} MiB of its own touched {:.0} µs, so about {:.1} ms per resident GiB on top (a 1 GiB agent read \
         once per {interval:.0} s costs about {:.3} % of one CPU). A process whose RSS moves by a quarter \
         since its last read is read again at the next tick, so a grower costs a read per quarter it grows.",
        s["small_child_cpu_us_per_read"]
            .as_f64()
            .unwrap_or(f64::NAN),
        s["large_child_mib"],
        s["large_child_cpu_us_per_read"]
            .as_f64()
            .unwrap_or(f64::NAN),
        s["cpu_us_per_resident_gib"].as_f64().unwrap_or(f64::NAN) / 1e3,
        (s["small_child_cpu_us_per_read"]
            .as_f64()
            .unwrap_or(f64::NAN)
            + s["cpu_us_per_resident_gib"].as_f64().unwrap_or(f64::NAN))
            / interval
            / 1e4,
    );
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// bench/RESULTS.md holds the section as this code renders it from bench/results.json.
    #[test]
    fn results_md_is_what_results_json_renders() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let json = std::fs::read_to_string(root.join("bench/results.json")).unwrap();
        let figures: Value = serde_json::from_str(&json).unwrap();
        if figures["pss"].is_null() {
            return;
        }
        let mut section = String::new();
        super::markdown(&figures, &mut section);
        let md = std::fs::read_to_string(root.join("bench/RESULTS.md")).unwrap();
        assert!(md.contains(&section), "bench/RESULTS.md lacks:\n{section}");
    }
}
