//! The dashboard and alert rules in dashboards/ ask only for metrics hupwatch exports, and
//! the dashboard is importable as is (its datasource is a variable). The rules themselves are
//! unit-tested by promtool in `cargo xtask test`.
use std::collections::BTreeSet;

use hupwatch::{sink::metrics::Metrics, tracker::SessionsView};
use regex::Regex;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../dashboards/hupwatch.json");
const RULES: &str = include_str!("../../dashboards/alerts.yml");

/// Every series name a running hupwatch exposes, with a flagged, growing session present
/// (and so a memory forecast, with an OOM killer in force).
fn exported() -> BTreeSet<String> {
    let view: SessionsView = serde_json::from_value(serde_json::json!({
        "time_ns": 0, "hangup_exits": [], "hangup_exit_total": 0, "dropped_processes": 0,
        "memory": {"total_bytes": 17179869184u64, "available_bytes": 8589934592u64,
                   "growth_bytes_per_second": 1.0, "exhausted_in_seconds": 8589934592.0,
                   "pressure_some_avg10": 0.0,
                   "killer": {"name": "earlyoom", "rule": "MemAvailable ≤ 10% and SwapFree ≤ 10%",
                              "acts_at_available_bytes": 1717986918u64,
                              "acts_in_seconds": 6871947674.0, "would_kill": []},
                   "other_killers": ["kernel"]},
        "processes": [{
            "pid": 7, "ppid": 1, "comm": "node", "cmdline": null, "started_ns": 0,
            "age_seconds": 1.0, "state": "orphaned", "tty": null, "sid": null,
            "came_from_tty": null, "hangup": "default", "rss_bytes": 1, "peak_rss_bytes": 1,
            "cpu_seconds": null, "inferred": false, "timeline": [],
            "growth": {"slope_bytes_per_second": 1.0, "fitted_growth_bytes": 1.0,
                       "r_squared": 1.0, "rise_bytes": 1, "span_seconds": 1.0, "samples": 3,
                       "from_bytes": 0, "to_bytes": 1, "cpu_seconds": null, "idle": null},
            "verdicts": [{"alert": "orphaned", "time_ns": 0, "reason": "", "evidence": [],
                          "inferred": false}]
        }]
    }))
    .unwrap();
    let mut metrics = Metrics::new(50, &["all".to_string()]);
    // Signal series exist once a signal has been seen, as on any live machine.
    for line in [
        r#"{"event":"signal","signal":1,"signal_name":"SIGHUP","origin":"kernel","code":128,"result":"delivered","group":true,"sender_pid":0,"sender_comm":"x","time_ns":0,"pid":7,"comm":"node"}"#,
        r#"{"event":"signal_deliver","signal":1,"signal_name":"SIGHUP","disposition":"handler","code":128,"time_ns":0,"pid":7,"comm":"node"}"#,
    ] {
        metrics.observe_event(&serde_json::from_str(line).unwrap());
    }
    metrics.set_attached("rss_stat", true);
    metrics.set_source_stats(hupwatch::stats::SourceStats {
        lost: vec![("exec", 0)],
        bpf_stats_enabled: true,
        programs: vec![("rss_stat", std::time::Duration::ZERO, 0)],
    });
    metrics.set_source("ebpf", &[]);
    let text = String::from_utf8(metrics.render(&view.metrics(50))).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        names.insert(name.to_string());
    }
    names
}

fn used_names(text: &str) -> BTreeSet<String> {
    Regex::new(r"hupwatch_[a-z_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

fn exprs(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_hupwatch_exports() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let exported = exported();
    let queries = exprs(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    for query in &queries {
        let names = used_names(query);
        // Prometheus's own `up` for the hupwatch job is the one other series used.
        let scrape_health = query.starts_with("up{job=\"hupwatch\"");
        assert!(
            !names.is_empty() || scrape_health,
            "a query with no hupwatch metric: {query}"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {query}) is not exported"
            );
        }
    }
}

#[test]
fn the_alert_rules_use_only_metrics_hupwatch_exports() {
    let exported = exported();
    // Rule and alert names (HupwatchDown) are CamelCase; metric names are snake_case.
    for name in used_names(RULES) {
        assert!(
            exported.contains(&name),
            "{name} in alerts.yml is not exported"
        );
    }
}

#[test]
fn the_dashboard_imports_anywhere() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "the Prometheus datasource is a variable"
    );
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let ids: BTreeSet<u64> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        dashboard["panels"].as_array().unwrap().len(),
        "unique ids"
    );
}
