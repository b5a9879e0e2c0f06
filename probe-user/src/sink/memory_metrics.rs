//! The machine's memory on `/metrics`: what is left, how fast the watched sessions eat it
//! and when it runs out. Set from the tracker's forecast at each scrape; a figure that is
//! not known (nothing grows, nothing read) has no sample, never a 0 that would read as
//! "out of memory now". The OOM killer's figures carry a `killer` label from a fixed set
//! (`KillerName::ALL`).
use prometheus::{Gauge, GaugeVec, Opts, Registry};

use crate::tracker::MemoryForecast;

pub struct MemoryGauges {
    total: GaugeVec,
    available: GaugeVec,
    growth: Gauge,
    exhaustion: GaugeVec,
    flagged: GaugeVec,
    flagged_trees: GaugeVec,
    killer_acts_in: GaugeVec,
    killer_acts_at: GaugeVec,
    killer_rank: GaugeVec,
}

/// A gauge labelled by the killer.
fn by_killer(name: &str, help: &str) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), &["killer"]).expect("valid metric")
}

/// A gauge with no labels that can also have no sample.
fn optional(name: &str, help: &str) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), &[]).expect("valid metric")
}

impl MemoryGauges {
    pub fn new() -> Self {
        Self {
            total: optional(
                "hupwatch_memory_total_bytes",
                "The machine's memory: RAM plus swap on Linux (MemTotal + SwapTotal), RAM on macOS.",
            ),
            available: optional(
                "hupwatch_memory_available_bytes",
                "Memory that can still be allocated: MemAvailable + SwapFree on Linux; free, inactive and purgeable pages on macOS.",
            ),
            growth: Gauge::new(
                "hupwatch_memory_growth_bytes_per_second",
                "How fast the watched sessions that grow steadily grow together (their rss_growth fits that rise, fit well and have not gone quiet); 0 when none does.",
            )
            .expect("valid metric"),
            exhaustion: optional(
                "hupwatch_memory_exhaustion_seconds",
                "Seconds until memory runs out at that pace (available / growth); absent when nothing grows.",
            ),
            flagged: GaugeVec::new(
                Opts::new(
                    "hupwatch_flagged_memory_bytes",
                    "What ending the sessions with a verdict would free: the memory they hold together, by the measure the label names: pss (PSS + SwapPss, Linux, once every one has been read), rss (RSS + swap) or footprint (macOS).",
                ),
                &["measure"],
            )
            .expect("valid metric"),
            flagged_trees: GaugeVec::new(
                Opts::new(
                    "hupwatch_flagged_trees_memory_bytes",
                    "What ending the session trees with any flagged member would free: every member of those trees added up, by the measure the label names (pss, rss or footprint).",
                ),
                &["measure"],
            )
            .expect("valid metric"),
            killer_acts_in: by_killer(
                "hupwatch_memory_killer_acts_in_seconds",
                "Seconds until the OOM killer that acts first (earlyoom, systemd-oomd, kernel) acts at the pace the sessions grow: until available memory falls to the level its rule names; absent when nothing grows or its rule is no level (systemd-oomd's pressure rule alone, macOS).",
            ),
            killer_acts_at: by_killer(
                "hupwatch_memory_killer_acts_at_bytes",
                "The available memory (as hupwatch_memory_available_bytes counts it) at which the OOM killer that acts first can act: earlyoom MemTotal x m% + SwapTotal x s%, systemd-oomd's swap rule (MemTotal + SwapTotal) x (100% - SwapUsedLimit), the kernel 0; absent where its rule is no level.",
            ),
            killer_rank: by_killer(
                "hupwatch_memory_killer_rank",
                "The OOM killers in force, in the order they would act: 1 acts first.",
            ),
        }
    }

    pub fn register(&self, registry: &Registry) {
        for gauge in [
            &self.total,
            &self.available,
            &self.exhaustion,
            &self.flagged,
            &self.flagged_trees,
            &self.killer_acts_in,
            &self.killer_acts_at,
            &self.killer_rank,
        ] {
            registry
                .register(Box::new(gauge.clone()))
                .expect("unique metric names");
        }
        registry
            .register(Box::new(self.growth.clone()))
            .expect("unique metric names");
    }

    pub fn set(&self, m: &MemoryForecast) {
        let set = |gauge: &GaugeVec, value: Option<f64>| {
            gauge.reset();
            if let Some(value) = value {
                gauge.with_label_values::<&str>(&[]).set(value);
            }
        };
        set(&self.total, m.total_bytes.map(|b| b as f64));
        set(&self.available, m.available_bytes.map(|b| b as f64));
        set(&self.exhaustion, m.exhausted_in_seconds);
        // One series, its label the measure in use.
        self.flagged.reset();
        self.flagged
            .with_label_values(&[m.flagged_memory_measure.name()])
            .set(m.flagged_memory_bytes as f64);
        self.flagged_trees.reset();
        self.flagged_trees
            .with_label_values(&[m.flagged_trees_memory_measure.name()])
            .set(m.flagged_trees_memory_bytes as f64);
        self.growth.set(m.growth_bytes_per_second);
        for gauge in [
            &self.killer_acts_in,
            &self.killer_acts_at,
            &self.killer_rank,
        ] {
            gauge.reset();
        }
        if let Some(k) = &m.killer {
            let label = [k.name.name()];
            if let Some(seconds) = k.acts_in_seconds {
                self.killer_acts_in.with_label_values(&label).set(seconds);
            }
            if let Some(at) = k.acts_at_available_bytes {
                self.killer_acts_at.with_label_values(&label).set(at as f64);
            }
        }
        let order = m
            .killer
            .iter()
            .map(|k| k.name)
            .chain(m.other_killers.iter().copied());
        for (rank, name) in order.enumerate() {
            self.killer_rank
                .with_label_values(&[name.name()])
                .set(rank as f64 + 1.0);
        }
    }
}

impl Default for MemoryGauges {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::MachineMemory;

    fn scrape(m: &MemoryForecast) -> String {
        let registry = Registry::new();
        let gauges = MemoryGauges::new();
        gauges.register(&registry);
        gauges.set(m);
        let mut out = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut out,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn a_forecast_is_five_samples() {
        let machine = MachineMemory {
            ram_bytes: None,
            total_bytes: Some(16 << 30),
            available_bytes: Some(8 << 30),
            pressure_some_avg10: Some(3.0),
            ..crate::host::MachineMemory::default()
        };
        let text = scrape(&MemoryForecast::new(machine, 4.0 * 1048576.0));
        assert_eq!(
            samples(&text),
            [
                "hupwatch_flagged_memory_bytes{measure=\"rss\"} 0",
                "hupwatch_flagged_trees_memory_bytes{measure=\"rss\"} 0",
                "hupwatch_memory_available_bytes 8589934592",
                "hupwatch_memory_exhaustion_seconds 2048",
                "hupwatch_memory_growth_bytes_per_second 4194304",
                "hupwatch_memory_total_bytes 17179869184",
            ]
        );
    }

    #[test]
    fn nothing_growing_has_no_exhaustion_sample() {
        let machine = MachineMemory {
            ram_bytes: None,
            total_bytes: Some(16 << 30),
            available_bytes: Some(8 << 30),
            pressure_some_avg10: None,
            ..crate::host::MachineMemory::default()
        };
        let text = scrape(&MemoryForecast::new(machine, 0.0));
        assert!(
            !text.contains("hupwatch_memory_exhaustion_seconds "),
            "{text}"
        );
        assert!(
            text.contains("hupwatch_memory_growth_bytes_per_second 0"),
            "{text}"
        );
        let unread = scrape(&MemoryForecast::default());
        assert_eq!(
            samples(&unread),
            [
                "hupwatch_flagged_memory_bytes{measure=\"rss\"} 0",
                "hupwatch_flagged_trees_memory_bytes{measure=\"rss\"} 0",
                "hupwatch_memory_growth_bytes_per_second 0"
            ]
        );
    }

    #[test]
    fn the_killer_that_acts_first_by_name() {
        let machine = MachineMemory {
            ram_bytes: Some(16 << 30),
            total_bytes: Some(20 << 30),
            available_bytes: Some(4 << 30),
            killers: Some(crate::host::OomKillers {
                earlyoom: Some(crate::host::Earlyoom {
                    pid: 7,
                    memory_percent: 10.0,
                    memory_kib: None,
                    swap_percent: 10.0,
                    swap_kib: None,
                    dry_run: false,
                }),
                ..Default::default()
            }),
            ..MachineMemory::default()
        };
        let text = scrape(&MemoryForecast::new(machine.clone(), 2.0 * 1048576.0));
        let killer: Vec<&str> = samples(&text)
            .into_iter()
            .filter(|l| l.contains("killer"))
            .collect();
        // (4 GiB - 2 GiB) at 2 MiB/s = 1024 s.
        assert_eq!(
            killer,
            [
                "hupwatch_memory_killer_acts_at_bytes{killer=\"earlyoom\"} 2147483648",
                "hupwatch_memory_killer_acts_in_seconds{killer=\"earlyoom\"} 1024",
                "hupwatch_memory_killer_rank{killer=\"earlyoom\"} 1",
                "hupwatch_memory_killer_rank{killer=\"kernel\"} 2",
            ]
        );
        let still = scrape(&MemoryForecast::new(machine, 0.0));
        assert!(
            !still.contains("hupwatch_memory_killer_acts_in_seconds{"),
            "{still}"
        );
    }

    #[test]
    fn a_sample_goes_when_its_figure_does() {
        let registry = Registry::new();
        let gauges = MemoryGauges::new();
        gauges.register(&registry);
        let machine = MachineMemory {
            ram_bytes: None,
            total_bytes: Some(1 << 30),
            available_bytes: Some(1 << 29),
            pressure_some_avg10: None,
            ..crate::host::MachineMemory::default()
        };
        gauges.set(&MemoryForecast::new(machine.clone(), 1.0));
        gauges.set(&MemoryForecast::new(machine, 0.0));
        let families = registry.gather();
        let exhaustion = families
            .iter()
            .find(|f| f.name() == "hupwatch_memory_exhaustion_seconds");
        assert!(exhaustion.is_none_or(|f| f.get_metric().is_empty()));
    }
}
