//! Prometheus metrics for `GET /metrics`. The names are a documented contract (docs/metrics.md).
//! Counters follow the event stream; gauges are taken from the tracker at each scrape.
//! Every label is bounded: kinds, signals, results, verdicts, programs; per-process series
//! exist only for processes with a verdict, at most `max_session_series` of them.
use prometheus::{
    Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder, core::Collector,
    proto,
};

use crate::{
    event::{Event, EventKind},
    stats::SourceStats,
    tracker::{Alert, AlertStatus, LATENCY_BUCKETS, LatencyCounts, MetricsView, Resync, groups},
    verdict::VerdictKind,
};

pub const DEFAULT_MAX_SESSION_SERIES: usize = 50;
/// Programs with series of their own, the largest by memory; the rest are `other`.
pub const PROGRAM_SERIES: usize = 20;

pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    /// The source's own counters as they stood at its last report, rendered as they are.
    source_stats: SourceStats,
    resyncs: prometheus::IntCounter,
    resync_changes: IntCounterVec,
    probe_attached: IntGaugeVec,
    source: IntGaugeVec,
    unavailable: IntGaugeVec,
    setsid_calls: IntCounterVec,
    signals_generated: IntCounterVec,
    signals_delivered: IntCounterVec,
    verdicts_raised: IntCounterVec,
    with_verdict: IntGaugeVec,
    tracked: IntGaugeVec,
    tracked_rss: IntGaugeVec,
    /// The `group` label values, one per matching flag (`Matcher::group_names`).
    groups: Vec<String>,
    dropped_processes: IntGauge,
    session_rss: IntGaugeVec,
    session_swap: IntGaugeVec,
    session_footprint: IntGaugeVec,
    session_pss: IntGaugeVec,
    session_swap_pss: IntGaugeVec,
    session_growth: prometheus::GaugeVec,
    program_sessions: IntGaugeVec,
    program_memory: IntGaugeVec,
    program_flagged: IntGaugeVec,
    tree_root_sessions: IntGaugeVec,
    tree_root_memory: IntGaugeVec,
    bpf_stats_enabled: IntGauge,
    /// The machine's memory and its forecast.
    memory: super::memory_metrics::MemoryGauges,
    max_session_series: usize,
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("valid metric")
}

impl Metrics {
    pub fn new(max_session_series: usize, groups: &[String]) -> Self {
        let metrics = Self {
            registry: Registry::new(),
            events: counter_vec(
                "hupwatch_events_total",
                "Events received from the probes, by kind.",
                &["kind"],
            ),
            source_stats: SourceStats::default(),
            resyncs: prometheus::IntCounter::new(
                "hupwatch_resyncs_total",
                "Times the tracker re-read /proc because events were lost.",
            )
            .expect("valid metric"),
            resync_changes: counter_vec(
                "hupwatch_resync_changes_total",
                "What the re-syncs changed: processes gone (exit lost), added (start lost), verdicts withdrawn (contradicted by /proc).",
                &["change"],
            ),
            probe_attached: gauge_vec(
                "hupwatch_probe_attached",
                "1 when the eBPF program is attached, 0 when it could not be.",
                &["program"],
            ),
            source: gauge_vec(
                "hupwatch_source",
                "1 for the source hupwatch watches with: ebpf, dtrace or proc (polling the process table).",
                &["source"],
            ),
            unavailable: gauge_vec(
                "hupwatch_unavailable",
                "1 for each verdict or figure the source in use cannot give (proc sees no signals: hangup_survived, hangup_exit_latency, sighup_ignored_when_sent).",
                &["what"],
            ),
            setsid_calls: counter_vec(
                "hupwatch_setsid_calls_total",
                "setsid() calls by watched processes, by result.",
                &["result"],
            ),
            signals_generated: counter_vec(
                "hupwatch_signals_generated_total",
                "Signals sent to watched processes, by signal, what the kernel did with it, and who sent it.",
                &["signal", "result", "origin"],
            ),
            signals_delivered: counter_vec(
                "hupwatch_signals_delivered_total",
                "Signals acted on by watched processes, by signal and disposition.",
                &["signal", "disposition"],
            ),
            verdicts_raised: counter_vec(
                "hupwatch_verdicts_raised_total",
                "Verdicts raised, by verdict and whether they were inferred from /proc.",
                &["verdict", "inferred"],
            ),
            with_verdict: gauge_vec(
                "hupwatch_processes_with_verdict",
                "Live processes carrying a verdict, by verdict.",
                &["verdict"],
            ),
            tracked: gauge_vec(
                "hupwatch_tracked_processes",
                "Live sessions the tracker holds, by the matching flag that brought them in.",
                &["group"],
            ),
            tracked_rss: gauge_vec(
                "hupwatch_tracked_rss_bytes",
                "Summed RSS of the live sessions the tracker holds, by the matching flag that brought them in.",
                &["group"],
            ),
            groups: groups.to_vec(),
            dropped_processes: gauge(
                "hupwatch_tracker_dropped_processes",
                "Processes not tracked because the tracker was full.",
            ),
            session_rss: gauge_vec(
                "hupwatch_session_rss_bytes",
                "RSS of a process with a verdict (the largest ones, up to --max-session-series). On macOS the memory Activity Monitor shows is hupwatch_session_footprint_bytes.",
                &["pid", "comm", "verdicts"],
            ),
            session_swap: gauge_vec(
                "hupwatch_session_swap_bytes",
                "Memory in swap of a process with a verdict (the same processes as hupwatch_session_rss_bytes; absent where unknown).",
                &["pid", "comm", "verdicts"],
            ),
            session_footprint: gauge_vec(
                "hupwatch_session_footprint_bytes",
                "macOS only: physical footprint of a process with a verdict, the figure Activity Monitor shows as Memory (compressed and swapped pages included), beside its RSS.",
                &["pid", "comm", "verdicts"],
            ),
            session_pss: gauge_vec(
                "hupwatch_session_pss_bytes",
                "Linux only: proportional set size (smaps_rollup's Pss) of a process with a verdict, its share of the pages it shares with others, read every --pss-interval; no sample until read.",
                &["pid", "comm", "verdicts"],
            ),
            session_swap_pss: gauge_vec(
                "hupwatch_session_swap_pss_bytes",
                "Linux only: its share of what is in swap (smaps_rollup's SwapPss), read with hupwatch_session_pss_bytes.",
                &["pid", "comm", "verdicts"],
            ),
            session_growth: prometheus::GaugeVec::new(
                Opts::new(
                    "hupwatch_session_rss_growth_bytes_per_second",
                    "RSS growth rate (robust slope over --rss-window) of a process with a verdict.",
                ),
                &["pid", "comm", "verdicts"],
            )
            .expect("valid metric"),
            program_sessions: gauge_vec(
                "hupwatch_program_sessions",
                "Live sessions per program (the process name; the 20 largest by memory, the rest summed as other).",
                &["program"],
            ),
            program_memory: gauge_vec(
                "hupwatch_program_memory_bytes",
                "Memory the sessions of a program hold together, of those whose memory is known, by the measure the label names: pss (PSS + SwapPss, Linux, once every session of it has been read), rss (RSS + swap, shared pages counted once per process) or footprint (macOS).",
                &["program", "measure"],
            ),
            program_flagged: gauge_vec(
                "hupwatch_program_flagged",
                "Sessions of a program that have a verdict.",
                &["program"],
            ),
            tree_root_sessions: gauge_vec(
                "hupwatch_tree_root_sessions",
                "Live sessions in session trees, per the program at the tree's root (the command typed at the terminal; the 20 largest by memory, the rest summed as other).",
                &["root_program"],
            ),
            tree_root_memory: gauge_vec(
                "hupwatch_tree_root_memory_bytes",
                "Memory the sessions in the trees of a root program hold together, by the measure the label names (as hupwatch_program_memory_bytes).",
                &["root_program", "measure"],
            ),
            bpf_stats_enabled: gauge(
                "hupwatch_bpf_stats_enabled",
                "1 when kernel.bpf_stats_enabled is on, so the program run-time metrics count.",
            ),
            memory: super::memory_metrics::MemoryGauges::new(),
            max_session_series,
        };
        metrics.register_all();
        metrics.start_at_zero();
        let build = IntGaugeVec::new(
            Opts::new(
                "hupwatch_build_info",
                "Always 1; the labels name the build.",
            ),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics.register(build);
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(self.events.clone()),
            Box::new(self.resyncs.clone()),
            Box::new(self.resync_changes.clone()),
            Box::new(self.probe_attached.clone()),
            Box::new(self.source.clone()),
            Box::new(self.unavailable.clone()),
            Box::new(self.setsid_calls.clone()),
            Box::new(self.signals_generated.clone()),
            Box::new(self.signals_delivered.clone()),
            Box::new(self.verdicts_raised.clone()),
            Box::new(self.with_verdict.clone()),
            Box::new(self.tracked.clone()),
            Box::new(self.tracked_rss.clone()),
            Box::new(self.dropped_processes.clone()),
            Box::new(self.session_rss.clone()),
            Box::new(self.session_swap.clone()),
            Box::new(self.session_footprint.clone()),
            Box::new(self.session_pss.clone()),
            Box::new(self.session_swap_pss.clone()),
            Box::new(self.session_growth.clone()),
            Box::new(self.program_sessions.clone()),
            Box::new(self.program_memory.clone()),
            Box::new(self.program_flagged.clone()),
            Box::new(self.tree_root_sessions.clone()),
            Box::new(self.tree_root_memory.clone()),
            Box::new(self.bpf_stats_enabled.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("unique metric names");
        }
        self.memory.register(&self.registry);
    }

    /// Known label values exist from the start at zero, so a dashboard's rate() and an
    /// alert rule's comparison have a series before the first event.
    fn start_at_zero(&self) {
        for kind in EventKind::NAMES {
            self.events.with_label_values(&[kind]).inc_by(0);
        }
        for change in ["gone", "added", "withdrawn"] {
            self.resync_changes.with_label_values(&[change]).inc_by(0);
        }
        for result in ["ok", "failed"] {
            self.setsid_calls.with_label_values(&[result]).inc_by(0);
        }
        for verdict in VerdictKind::ALL {
            for inferred in ["true", "false"] {
                self.verdicts_raised
                    .with_label_values(&[verdict.name(), inferred])
                    .inc_by(0);
            }
        }
    }

    fn register(&self, collector: impl Collector + 'static) {
        self.registry
            .register(Box::new(collector))
            .expect("unique metric names");
    }

    /// Registers metrics another part of hupwatch keeps (in-kernel program statistics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn set_attached(&self, program: &str, attached: bool) {
        self.probe_attached
            .with_label_values(&[program])
            .set(i64::from(attached));
    }

    /// The source in use, and what it cannot give.
    pub fn set_source(&self, source: &str, unavailable: &[&str]) {
        self.source.with_label_values(&[source]).set(1);
        for what in unavailable {
            self.unavailable.with_label_values(&[what]).set(1);
        }
    }

    /// Events the source lost so far, all kinds.
    pub fn events_lost(&self) -> u64 {
        self.source_stats.lost.iter().map(|(_, n)| n).sum()
    }

    /// The source's counters as they stand (losses by kind, eBPF program statistics),
    /// shown at the next scrape as they are: the source keeps the totals, not hupwatch.
    pub fn set_source_stats(&mut self, stats: SourceStats) {
        self.bpf_stats_enabled
            .set(i64::from(stats.bpf_stats_enabled));
        self.source_stats = stats;
    }

    pub fn observe_event(&self, event: &Event) {
        self.events.with_label_values(&[event.kind.name()]).inc();
        match &event.kind {
            EventKind::Setsid { ok, .. } => {
                let result = if *ok { "ok" } else { "failed" };
                self.setsid_calls.with_label_values(&[result]).inc();
            }
            EventKind::Signal {
                signal_name,
                result,
                origin,
                ..
            } => {
                self.signals_generated
                    .with_label_values(&[signal_name, result.as_str(), origin.as_str()])
                    .inc();
            }
            EventKind::SignalDeliver {
                signal_name,
                disposition,
                ..
            } => {
                self.signals_delivered
                    .with_label_values(&[signal_name, disposition.as_str()])
                    .inc();
            }
            _ => {}
        }
    }

    pub fn observe_resync(&self, done: &Resync) {
        self.resyncs.inc();
        for (change, n) in [
            ("gone", done.gone),
            ("added", done.added),
            ("withdrawn", done.withdrawn),
        ] {
            self.resync_changes
                .with_label_values(&[change])
                .inc_by(n as u64);
        }
    }

    pub fn observe_alert(&self, alert: &Alert) {
        if alert.status == AlertStatus::Raised {
            let inferred = if alert.verdict.inferred {
                "true"
            } else {
                "false"
            };
            self.verdicts_raised
                .with_label_values(&[alert.verdict.kind.name(), inferred])
                .inc();
        }
    }

    /// Refreshes the gauges from the tracker and renders the text exposition format.
    pub fn render(&mut self, view: &MetricsView) -> Vec<u8> {
        self.set_session_gauges(view);
        self.memory.set(&view.memory);
        let mut families = self.registry.gather();
        families.push(hangup_latency(&view.hangup_latency));
        families.extend(source_counters(&self.source_stats));
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding into memory cannot fail");
        out
    }

    /// The most per-process series a scrape shows (`--max-session-series`).
    pub fn max_session_series(&self) -> usize {
        self.max_session_series
    }

    fn set_session_gauges(&self, view: &MetricsView) {
        // Every group has a series, at zero when it has no process; `other` only while
        // something is in it.
        self.tracked.reset();
        self.tracked_rss.reset();
        for group in &self.groups {
            self.tracked.with_label_values(&[group]).set(0);
            self.tracked_rss.with_label_values(&[group]).set(0);
        }
        for total in &view.groups {
            self.tracked
                .with_label_values(&[&total.group])
                .set(total.processes as i64);
            self.tracked_rss
                .with_label_values(&[&total.group])
                .set(total.rss_bytes as i64);
        }
        self.dropped_processes.set(view.dropped_processes as i64);
        for kind in VerdictKind::ALL {
            let n = view
                .with_verdict
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(0, |(_, n)| *n);
            self.with_verdict
                .with_label_values(&[kind.name()])
                .set(n as i64);
        }
        self.set_program_gauges(view);
        // Rebuilt at every scrape, so series of processes that are gone disappear.
        self.session_rss.reset();
        self.session_swap.reset();
        self.session_footprint.reset();
        self.session_pss.reset();
        self.session_swap_pss.reset();
        self.session_growth.reset();
        // `flagged` is sorted by RSS, largest first.
        for p in view.flagged.iter().take(self.max_session_series) {
            let verdicts: Vec<&str> = p.verdicts.iter().map(|v| v.kind.name()).collect();
            let labels = [p.pid.to_string(), p.comm.clone(), verdicts.join(",")];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            // Unknown is no sample, never a 0.
            if let Some(rss) = p.rss_bytes {
                self.session_rss.with_label_values(&labels).set(rss as i64);
            }
            if let Some(footprint) = p.footprint_bytes {
                self.session_footprint
                    .with_label_values(&labels)
                    .set(footprint as i64);
            }
            if let Some(swap) = p.swap_bytes {
                self.session_swap
                    .with_label_values(&labels)
                    .set(swap as i64);
            }
            if let Some(pss) = p.pss_bytes {
                self.session_pss.with_label_values(&labels).set(pss as i64);
            }
            if let Some(swap_pss) = p.swap_pss_bytes {
                self.session_swap_pss
                    .with_label_values(&labels)
                    .set(swap_pss as i64);
            }
            if let Some(growth) = &p.growth {
                self.session_growth
                    .with_label_values(&labels)
                    .set(growth.slope_bytes_per_second);
            }
        }
    }
}

impl Metrics {
    /// Per program, bounded: a program that is gone, or fell out of the largest, loses its
    /// series at this scrape.
    fn set_program_gauges(&self, view: &MetricsView) {
        self.program_sessions.reset();
        self.program_memory.reset();
        self.program_flagged.reset();
        for g in groups::bounded(view.programs.clone(), PROGRAM_SERIES) {
            let label = [g.name.as_str()];
            self.program_sessions
                .with_label_values(&label)
                .set(g.sessions as i64);
            self.program_memory
                .with_label_values(&[g.name.as_str(), g.memory_measure.name()])
                .set(i64::try_from(g.memory_bytes).unwrap_or(i64::MAX));
            self.program_flagged
                .with_label_values(&label)
                .set(g.flagged as i64);
        }
        self.tree_root_sessions.reset();
        self.tree_root_memory.reset();
        for g in groups::bounded(view.tree_roots.clone(), PROGRAM_SERIES) {
            self.tree_root_sessions
                .with_label_values(&[g.name.as_str()])
                .set(g.sessions as i64);
            self.tree_root_memory
                .with_label_values(&[g.name.as_str(), g.memory_measure.name()])
                .set(i64::try_from(g.memory_bytes).unwrap_or(i64::MAX));
        }
    }
}

/// The source's loss and program counters; a family without a series is left out.
fn source_counters(stats: &SourceStats) -> Vec<proto::MetricFamily> {
    let lost = stats.lost.iter().map(|&(kind, n)| (kind, n as f64));
    let seconds = stats
        .programs
        .iter()
        .map(|&(p, time, _)| (p, time.as_secs_f64()));
    let runs = stats.programs.iter().map(|&(p, _, runs)| (p, runs as f64));
    [
        counter_family(
            "hupwatch_events_lost_total",
            "Events the source could not pass on (the eBPF ring buffer was full, dtrace dropped them), by kind.",
            "kind",
            lost,
        ),
        counter_family(
            "hupwatch_bpf_program_run_seconds_total",
            "Time spent in each eBPF program, while kernel.bpf_stats_enabled is 1.",
            "program",
            seconds,
        ),
        counter_family(
            "hupwatch_bpf_program_runs_total",
            "Runs of each eBPF program, while kernel.bpf_stats_enabled is 1.",
            "program",
            runs,
        ),
    ]
    .into_iter()
    .filter(|family| !family.get_metric().is_empty())
    .collect()
}

fn counter_family<'a>(
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, f64)>,
) -> proto::MetricFamily {
    let metrics = values
        .map(|(value, n)| {
            let mut pair = proto::LabelPair::default();
            pair.set_name(label.into());
            pair.set_value(value.into());
            let mut counter = proto::Counter::default();
            counter.set_value(n);
            let mut metric = proto::Metric::default();
            metric.set_label(vec![pair]);
            metric.set_counter(counter);
            metric
        })
        .collect();
    let mut family = proto::MetricFamily::default();
    family.set_name(name.into());
    family.set_help(help.into());
    family.set_field_type(proto::MetricType::COUNTER);
    family.set_metric(metrics);
    family
}

/// The hangup-to-exit histogram as the tracker's counts stand: every exit is in them from
/// when it happened, however many came since the last scrape.
fn hangup_latency(counts: &LatencyCounts) -> proto::MetricFamily {
    let buckets = LATENCY_BUCKETS
        .iter()
        .zip(counts.at_most)
        .map(|(&bound, n)| {
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(bound);
            bucket.set_cumulative_count(n);
            bucket
        })
        .collect();
    let mut histogram = proto::Histogram::default();
    histogram.set_sample_count(counts.count);
    histogram.set_sample_sum(counts.sum_seconds);
    histogram.set_bucket(buckets);
    let mut metric = proto::Metric::default();
    metric.set_histogram(histogram);
    let mut family = proto::MetricFamily::default();
    family.set_name("hupwatch_hangup_exit_latency_seconds".into());
    family.set_help(
        "Time from a process's first hangup (SIGHUP or its terminal going away) to its exit."
            .into(),
    );
    family.set_field_type(proto::MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Origin, SignalResult},
        tracker::{HangupExit, ProcessView, SessionsView},
    };

    fn flagged(pid: u32, rss: u64) -> ProcessView {
        ProcessView {
            group: "agent".into(),
            ..ProcessView::example(pid, rss, VerdictKind::Orphaned)
        }
    }

    fn groups() -> Vec<String> {
        vec!["agent".into(), "cmdline".into()]
    }

    fn view(processes: Vec<ProcessView>, exits: Vec<f64>, total: u64) -> SessionsView {
        SessionsView {
            hangup_exits: exits
                .into_iter()
                .map(|latency_seconds| HangupExit {
                    pid: 1,
                    comm: "sh".into(),
                    hangup_ns: 0,
                    exit_ns: 0,
                    latency_seconds,
                    exit_code: None,
                    exit_signal: Some(1),
                })
                .collect(),
            hangup_exit_total: total,
            ..SessionsView::with_sessions(processes)
        }
    }

    fn text(metrics: &mut Metrics, view: &SessionsView) -> String {
        String::from_utf8(metrics.render(&view.metrics(usize::MAX))).unwrap()
    }

    fn series(text: &str, name: &str) -> usize {
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .count()
    }

    #[test]
    fn tracked_processes_and_their_rss_are_counted_per_group() {
        let mut metrics = Metrics::new(50, &groups());
        let mut stray = flagged(3, 5);
        stray.group = "other".into();
        let text_now = text(
            &mut metrics,
            &view(vec![flagged(1, 100), flagged(2, 20), stray], vec![], 0),
        );
        for line in [
            "hupwatch_tracked_processes{group=\"agent\"} 2",
            "hupwatch_tracked_processes{group=\"cmdline\"} 0",
            "hupwatch_tracked_processes{group=\"other\"} 1",
            "hupwatch_tracked_rss_bytes{group=\"agent\"} 120",
            "hupwatch_tracked_rss_bytes{group=\"other\"} 5",
        ] {
            assert!(text_now.contains(line), "{line} missing in\n{text_now}");
        }
        // Groups from the command line stay at zero; `other` goes when it empties.
        let text_later = text(&mut metrics, &view(vec![], vec![], 0));
        assert!(text_later.contains("hupwatch_tracked_processes{group=\"agent\"} 0"));
        assert_eq!(series(&text_later, "hupwatch_tracked_processes"), 2);
    }

    #[test]
    fn per_process_series_are_capped_largest_first_and_vanish_with_their_process() {
        let mut metrics = Metrics::new(3, &groups());
        let many: Vec<ProcessView> = (0..10)
            .map(|i| flagged(100 + i, (10 - i as u64) << 20))
            .collect();
        let out = text(&mut metrics, &view(many, vec![], 0));
        assert_eq!(series(&out, "hupwatch_session_rss_bytes"), 3);
        assert!(out.contains("pid=\"100\""), "the largest is kept");
        assert!(!out.contains("pid=\"109\""));
        assert!(out.contains("hupwatch_processes_with_verdict{verdict=\"orphaned\"} 10"));
        let out = text(&mut metrics, &view(vec![flagged(200, 1)], vec![], 0));
        assert_eq!(series(&out, "hupwatch_session_rss_bytes"), 1);
        assert!(!out.contains("pid=\"100\""), "gone with its process");
    }

    #[test]
    fn programs_are_summed_bounded_and_vanish_with_their_sessions() {
        let mut metrics = Metrics::new(50, &groups());
        let mut processes: Vec<ProcessView> = (0..25u32)
            .map(|i| ProcessView {
                comm: format!("prog{i:02}"),
                verdicts: Vec::new(),
                ..flagged(100 + i, u64::from(100 - i) << 20)
            })
            .collect();
        // Two sessions of the largest, one of them flagged and in swap.
        processes.push(ProcessView {
            comm: "prog00".into(),
            swap_bytes: Some(1 << 20),
            ..flagged(200, 10 << 20)
        });
        let out = text(&mut metrics, &view(processes, vec![], 0));
        for line in [
            "hupwatch_program_sessions{program=\"prog00\"} 2",
            "hupwatch_program_memory_bytes{measure=\"rss\",program=\"prog00\"} 116391936",
            "hupwatch_program_flagged{program=\"prog00\"} 1",
            "hupwatch_program_flagged{program=\"prog01\"} 0",
            // prog20..prog24, the five smallest: 80 + 79 + 78 + 77 + 76 MiB.
            "hupwatch_program_sessions{program=\"other\"} 5",
            "hupwatch_program_memory_bytes{measure=\"rss\",program=\"other\"} 408944640",
        ] {
            assert!(out.contains(line), "{line} missing in\n{out}");
        }
        assert_eq!(
            series(&out, "hupwatch_program_sessions"),
            PROGRAM_SERIES + 1
        );
        assert!(!out.contains("program=\"prog20\""));
        let out = text(&mut metrics, &view(vec![flagged(1, 5)], vec![], 0));
        assert_eq!(series(&out, "hupwatch_program_sessions"), 1, "{out}");
        assert!(out.contains("hupwatch_program_sessions{program=\"p1\"} 1"));
    }

    #[test]
    fn program_memory_says_its_measure_and_sessions_have_pss_series() {
        let mut metrics = Metrics::new(50, &groups());
        // Three node processes sharing most of 300 MiB: RSS says 900 MiB, PSS 330 MiB.
        let node = |pid: u32, pss: Option<u64>| ProcessView {
            comm: "node".into(),
            pss_bytes: pss.map(|mib| mib << 20),
            swap_pss_bytes: pss.map(|_| 0),
            ..flagged(pid, 300 << 20)
        };
        let all = vec![node(1, Some(110)), node(2, Some(110)), node(3, Some(110))];
        let out = text(&mut metrics, &view(all, vec![], 0));
        let pss = 330u64 << 20;
        for line in [
            format!("hupwatch_program_memory_bytes{{measure=\"pss\",program=\"node\"}} {pss}"),
            format!(
                "hupwatch_session_pss_bytes{{comm=\"node\",pid=\"1\",verdicts=\"orphaned\"}} {}",
                110u64 << 20
            ),
            "hupwatch_session_swap_pss_bytes{comm=\"node\",pid=\"1\",verdicts=\"orphaned\"} 0"
                .to_string(),
        ] {
            assert!(out.contains(&line), "{line} missing in\n{out}");
        }
        // One not read yet: the whole program counts by RSS, and says so.
        let some = vec![node(1, Some(110)), node(2, Some(110)), node(3, None)];
        let out = text(&mut metrics, &view(some, vec![], 0));
        let rss = 900u64 << 20;
        let line =
            format!("hupwatch_program_memory_bytes{{measure=\"rss\",program=\"node\"}} {rss}");
        assert!(out.contains(&line), "{line} missing in\n{out}");
        assert_eq!(series(&out, "hupwatch_program_memory_bytes"), 1);
        assert_eq!(
            series(&out, "hupwatch_session_pss_bytes"),
            2,
            "unknown has no sample"
        );
    }

    #[test]
    fn events_are_counted_by_bounded_labels() {
        let mut metrics = Metrics::new(50, &groups());
        let signal = Event {
            kind: EventKind::Signal {
                signal: 1,
                signal_name: "SIGHUP".into(),
                origin: Origin::Kernel,
                code: 128,
                result: SignalResult::Ignored,
                group: true,
                sender_pid: 0,
                sender_comm: "x".into(),
            },
            time_ns: 0,
            pid: 7,
            comm: "evil\"name".into(),
        };
        metrics.observe_event(&signal);
        metrics.observe_event(&signal);
        let out = text(&mut metrics, &view(vec![], vec![], 0));
        assert!(
            out.contains("hupwatch_events_total{kind=\"signal\"} 2"),
            "{out}"
        );
        assert!(out.contains(
            "hupwatch_signals_generated_total{origin=\"kernel\",result=\"ignored\",signal=\"SIGHUP\"} 2"
        ));
        assert!(
            !out.contains("evil"),
            "no per-process label outside the capped series"
        );
        assert!(out.contains("hupwatch_build_info{version="));
    }

    #[test]
    fn each_hangup_exit_is_observed_once() {
        let mut metrics = Metrics::new(50, &groups());
        text(&mut metrics, &view(vec![], vec![0.2], 1));
        let out = text(&mut metrics, &view(vec![], vec![0.2, 3.0], 2));
        assert!(
            out.contains("hupwatch_hangup_exit_latency_seconds_count 2"),
            "{out}"
        );
        assert!(out.contains("hupwatch_hangup_exit_latency_seconds_bucket{le=\"0.25\"} 1"));
    }

    #[test]
    fn losses_follow_the_kernel_totals() {
        let mut metrics = Metrics::new(50, &groups());
        let lost = |lost| SourceStats {
            lost,
            ..SourceStats::default()
        };
        metrics.set_source_stats(lost(vec![("exec", 0), ("signal", 5)]));
        metrics.set_source_stats(lost(vec![("exec", 0), ("signal", 12)]));
        let out = text(&mut metrics, &view(vec![], vec![], 0));
        assert!(
            out.contains("hupwatch_events_lost_total{kind=\"signal\"} 12"),
            "{out}"
        );
        assert!(out.contains("hupwatch_events_lost_total{kind=\"exec\"} 0"));
    }

    #[test]
    fn program_statistics_only_go_up() {
        let mut metrics = Metrics::new(50, &groups());
        let ms = std::time::Duration::from_millis;
        let programs = |programs| SourceStats {
            bpf_stats_enabled: true,
            programs,
            ..SourceStats::default()
        };
        metrics.set_source_stats(programs(vec![("rss_stat", ms(5), 100)]));
        metrics.set_source_stats(programs(vec![("rss_stat", ms(8), 160)]));
        let out = text(&mut metrics, &view(vec![], vec![], 0));
        assert!(
            out.contains("hupwatch_bpf_program_runs_total{program=\"rss_stat\"} 160"),
            "{out}"
        );
        assert!(out.contains("hupwatch_bpf_program_run_seconds_total{program=\"rss_stat\"} 0.008"));
        assert!(out.contains("hupwatch_bpf_stats_enabled 1"));
    }

    /// A metric name, its label pairs and its value.
    type Sample<'a> = (&'a str, Vec<(&'a str, String)>, f64);

    /// One sample line of the text exposition format: name, label pairs (values unescaped)
    /// and value; None when the line does not follow the format. A label value may hold
    /// any UTF-8 except that `\\`, `"` and a newline must be escaped as `\\\\`, `\\"` and
    /// `\\n`, and no other escape exists.
    fn sample(line: &str) -> Option<Sample<'_>> {
        let name_end = line.find(['{', ' '])?;
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            rest = body;
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let eq = rest.find("=\"")?;
                let label = &rest[..eq];
                let mut value = String::new();
                let mut chars = rest[eq + 2..].char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') => break eq + 2 + i + 1,
                        (_, '\\') => match chars.next()?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            _ => return None,
                        },
                        (_, '\n') => return None,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((label, value));
                rest = &rest[end..];
                rest = rest.strip_prefix(',').unwrap_or(rest);
            }
        }
        let value = rest.strip_prefix(' ')?.parse().ok()?;
        Some((name, labels, value))
    }

    #[test]
    fn hostile_names_are_escaped_in_labels_and_the_scrape_stays_parseable() {
        let lossy = crate::host::linux::join_cmdline(b"bad\xff\xfeutf8");
        let names = [
            "new\nline} 1\nhupwatch_forged 1".to_string(),
            "say\"hi\"".into(),
            "back\\slash\\n".into(),
            "\u{1b}[31mred\u{1b}[0m".into(),
            "rlo\u{202e}\r\t\u{0}".into(),
            lossy,
            "x".repeat(4096),
        ];
        let mut metrics = Metrics::new(50, &groups());
        let processes: Vec<ProcessView> = names
            .iter()
            .enumerate()
            .map(|(i, name)| ProcessView {
                comm: name.clone(),
                ..flagged(100 + i as u32, 1000 - i as u64)
            })
            .collect();
        let out = text(&mut metrics, &view(processes, vec![], 0));
        let mut seen = Vec::new();
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let (name, labels, _) =
                sample(line).unwrap_or_else(|| panic!("not one sample: {line:?}"));
            assert!(name.starts_with("hupwatch_"), "{line:?}");
            if name == "hupwatch_session_rss_bytes" {
                let comm = labels.iter().find(|(l, _)| *l == "comm").unwrap();
                seen.push(comm.1.clone());
            }
        }
        // Prometheus sorts series by their labels.
        seen.sort();
        let mut expected = names.to_vec();
        expected.sort();
        assert!(
            seen == expected,
            "each name reads back as it was, one series each"
        );
        assert!(
            out.contains(r#"comm="new\nline} 1\nhupwatch_forged 1""#),
            "{out}"
        );
        assert!(out.contains(r#"comm="say\"hi\"""#));
        assert!(out.contains(r#"comm="back\\slash\\n""#));
        assert!(!out.contains("\nhupwatch_forged"));
    }

    #[test]
    fn every_family_has_help() {
        let mut metrics = Metrics::new(50, &groups());
        let out = text(&mut metrics, &view(vec![flagged(1, 1)], vec![0.1], 1));
        let families: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert!(families.len() >= 10, "{families:?}");
        for family in families {
            assert!(family.starts_with("hupwatch_"), "{family}");
            assert!(
                out.contains(&format!("# HELP {family} ")),
                "{family} has no HELP"
            );
        }
    }
}
