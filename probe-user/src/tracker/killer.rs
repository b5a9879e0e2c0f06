//! Which OOM killer acts first, by what rule, at what level of available memory, and
//! when at the pace the sessions grow: the killers the source found (host::OomKillers)
//! held against the machine's memory. Pure.
//!
//! Levels are in the terms of `available_bytes` (Linux: MemAvailable + SwapFree):
//! - earlyoom acts once MemAvailable ≤ its memory minimum AND SwapFree ≤ its swap minimum
//!   (see host/linux_earlyoom.rs), so never before available ≤ the two added up:
//!   MemTotal × m% + SwapTotal × s% (each the lower of the percentage and the `-M`/`-S`
//!   size when both are given);
//! - systemd-oomd's swap rule acts once swap used exceeds SwapUsedLimit and, since
//!   systemd 248 (oomd-manager.c checks both), memory available is under the same
//!   100% − SwapUsedLimit of MemTotal: at the earliest when available falls to
//!   (MemTotal + SwapTotal) × (100% − limit). Without swap the rule never fires (free
//!   swap is never below a share of nothing). Its pressure rule depends on how tasks
//!   stall, not on a level: reported as the current PSI beside the limit, not forecast;
//! - the kernel's own acts when memory and swap are gone: available 0.
//!
//! Each level is where the rule can first hold. The kernel fills RAM before it swaps, so
//! MemAvailable reaches its floor first and the level is about where the killer acts; if
//! the kernel keeps more MemAvailable than the minimum while swap drains, the killer acts
//! somewhat later than said (lower), never earlier.
use serde::{Deserialize, Serialize};

use crate::{
    host::{Candidate, MachineMemory},
    units::format_size,
};

/// The killers, as the `killer` label of the metrics names them: no other value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KillerName {
    #[serde(rename = "earlyoom")]
    Earlyoom,
    #[serde(rename = "systemd-oomd")]
    SystemdOomd,
    /// The kernel's own OOM killer (Linux).
    #[serde(rename = "kernel")]
    Kernel,
    /// macOS's memorystatus (jetsam), by memory pressure.
    #[serde(rename = "macos-memorystatus")]
    MacosMemorystatus,
}

impl KillerName {
    pub const ALL: [KillerName; 4] = [
        Self::Earlyoom,
        Self::SystemdOomd,
        Self::Kernel,
        Self::MacosMemorystatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Earlyoom => "earlyoom",
            Self::SystemdOomd => "systemd-oomd",
            Self::Kernel => "kernel",
            Self::MacosMemorystatus => "macos-memorystatus",
        }
    }

    /// How the header and the notification call it.
    pub fn said(self) -> &'static str {
        match self {
            Self::Kernel => "the kernel's OOM killer",
            Self::MacosMemorystatus => "macOS's memorystatus",
            other => other.name(),
        }
    }
}

/// The killer expected to act first, and what it would do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillerForecast {
    pub name: KillerName,
    /// The killer's process, where it is one (earlyoom).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Its rule in words: `MemAvailable ≤ 10% and SwapFree ≤ 10%`.
    pub rule: String,
    /// The `available_bytes` at which its rule can first hold; null where its rule is not
    /// a level (systemd-oomd's pressure rule alone, macOS) or memory is not known.
    pub acts_at_available_bytes: Option<u64>,
    /// Seconds until available falls to that level at the sessions' growth; 0 when it is
    /// there already; null when nothing grows or there is no level.
    pub acts_in_seconds: Option<f64>,
    /// Whom it would likely end first: the highest oom_score first (the kernel's order,
    /// which earlyoom follows too); empty for systemd-oomd, which ends a cgroup under
    /// `managed_units`.
    pub would_kill: Vec<Candidate>,
    /// systemd-oomd: the units it watches (swap rule first, then pressure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_units: Vec<String>,
    /// systemd-oomd's pressure rule: the lowest limit of its units (percent of `full
    /// avg10`) and the machine's `full avg10` now (a unit's own cgroup may differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_limit_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_full_avg10: Option<f64>,
    /// macOS: `kern.memorystatus_vm_pressure_level` now (1 normal, 2 warn, 4 critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure_level: Option<u32>,
    /// earlyoom runs with `--dryrun`: it would say whom, and kill no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The killers in force, first to act first (the highest level; one whose rule is no
/// level before the kernel's, which acts last). Empty when nobody looked (`killers` None).
pub fn killers(machine: &MachineMemory, growth_bytes_per_second: f64) -> Vec<KillerForecast> {
    let Some(found) = &machine.killers else {
        return Vec::new();
    };
    let ram = machine.ram_bytes;
    // Linux's total is RAM plus swap; on macOS they are equal and swap is not counted.
    let swap = machine
        .total_bytes
        .zip(ram)
        .map(|(total, ram)| total.saturating_sub(ram));
    let mut out = Vec::new();
    if let Some(e) = &found.earlyoom {
        let (memory, swap_min) = earlyoom_minimums(e, ram, swap);
        let mut rule = format!("MemAvailable ≤ {}", memory.1);
        match swap {
            Some(0) => rule.push_str("; no swap"),
            _ => rule.push_str(&format!(" and SwapFree ≤ {}", swap_min.1)),
        }
        out.push(KillerForecast {
            pid: Some(e.pid),
            dry_run: e.dry_run,
            acts_at_available_bytes: memory.0.zip(swap_min.0).map(|(m, s)| m.saturating_add(s)),
            would_kill: found.by_oom_score.clone(),
            ..named(KillerName::Earlyoom, rule)
        });
    }
    if let Some(o) = &found.systemd_oomd {
        let mut rules = Vec::new();
        let mut at = None;
        let free = 100.0 - o.swap_used_limit_percent;
        if !o.swap_units.is_empty() {
            rules.push(format!(
                "swap used > {} and MemAvailable < {}",
                percent(o.swap_used_limit_percent),
                percent(free)
            ));
            at = match (ram, swap) {
                (_, Some(0)) => None,
                (Some(ram), Some(swap)) => Some(share(ram.saturating_add(swap), free)),
                _ => None,
            };
        }
        let limit = o
            .pressure_units
            .iter()
            .map(|u| u.limit_percent.unwrap_or(o.memory_pressure_limit_percent))
            .reduce(f64::min);
        if let Some(limit) = limit {
            rules.push(format!(
                "memory pressure (full avg10) > {} for {}s in {}",
                percent(limit),
                o.memory_pressure_duration_seconds,
                o.pressure_units
                    .iter()
                    .map(|u| u.unit.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !rules.is_empty() {
            let mut units = o.swap_units.clone();
            units.extend(o.pressure_units.iter().map(|u| u.unit.clone()));
            units.dedup();
            out.push(KillerForecast {
                acts_at_available_bytes: at,
                managed_units: units,
                pressure_limit_percent: limit,
                pressure_full_avg10: limit.and(machine.pressure_full_avg10),
                ..named(KillerName::SystemdOomd, rules.join("; or "))
            });
        }
    }
    if let Some(level) = found.macos_pressure_level {
        out.push(KillerForecast {
            pressure_level: Some(level),
            ..named(
                KillerName::MacosMemorystatus,
                format!(
                    "memory pressure critical (level 4); now {} ({level})",
                    match level {
                        1 => "normal",
                        2 => "warn",
                        4 => "critical",
                        _ => "unknown",
                    }
                ),
            )
        });
    } else {
        out.push(KillerForecast {
            acts_at_available_bytes: Some(0),
            would_kill: found.by_oom_score.clone(),
            ..named(KillerName::Kernel, "memory and swap exhausted".into())
        });
    }
    for k in &mut out {
        k.acts_in_seconds = acts_in(k.acts_at_available_bytes, machine, growth_bytes_per_second);
    }
    // Highest level first; the kernel (level 0) last; a tie keeps the order above.
    out.sort_by_key(|k| {
        (
            k.name == KillerName::Kernel,
            std::cmp::Reverse(k.acts_at_available_bytes.unwrap_or(0)),
        )
    });
    out
}

/// earlyoom's memory and swap minimums: (bytes when the totals are known, in words).
fn earlyoom_minimums(
    e: &crate::host::Earlyoom,
    ram: Option<u64>,
    swap: Option<u64>,
) -> ((Option<u64>, String), (Option<u64>, String)) {
    let one = |pct: f64, kib: Option<u64>, total: Option<u64>| {
        let by_percent = total.map(|t| share(t, pct));
        match kib.map(|k| k.saturating_mul(1024)) {
            // Both given: the lower (earlyoom converts the size to a share of the total).
            Some(size) if by_percent.is_none_or(|p| size < p) => {
                (total.map(|t| size.min(t)), format_size(size))
            }
            _ => (by_percent, percent(pct)),
        }
    };
    (
        one(e.memory_percent, e.memory_kib, ram),
        one(e.swap_percent, e.swap_kib, swap),
    )
}

fn named(name: KillerName, rule: String) -> KillerForecast {
    KillerForecast {
        name,
        pid: None,
        rule,
        acts_at_available_bytes: None,
        acts_in_seconds: None,
        would_kill: Vec::new(),
        managed_units: Vec::new(),
        pressure_limit_percent: None,
        pressure_full_avg10: None,
        pressure_level: None,
        dry_run: false,
    }
}

/// Seconds until available falls to `level` at `growth`; 0 when it is there already.
fn acts_in(level: Option<u64>, machine: &MachineMemory, growth: f64) -> Option<f64> {
    let (level, available) = (level?, machine.available_bytes?);
    if growth <= 0.0 || !growth.is_finite() {
        return None;
    }
    Some(available.saturating_sub(level) as f64 / growth)
}

/// `pct` percent of `total`, in bytes.
fn share(total: u64, pct: f64) -> u64 {
    (total as f64 * pct / 100.0).round() as u64
}

/// `10%`, `4.5%`.
fn percent(p: f64) -> String {
    let text = format!("{p:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Earlyoom, ManagedUnit, OomKillers, SystemdOomd};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn machine(ram: u64, swap: u64, available: u64, found: OomKillers) -> MachineMemory {
        MachineMemory {
            ram_bytes: Some(ram),
            total_bytes: Some(ram + swap),
            available_bytes: Some(available),
            pressure_full_avg10: Some(2.5),
            killers: Some(found),
            ..MachineMemory::default()
        }
    }

    fn earlyoom(m: f64, mk: Option<u64>, s: f64, sk: Option<u64>) -> OomKillers {
        OomKillers {
            earlyoom: Some(Earlyoom {
                pid: 7,
                memory_percent: m,
                memory_kib: mk,
                swap_percent: s,
                swap_kib: sk,
                dry_run: false,
            }),
            by_oom_score: vec![Candidate {
                pid: 42,
                comm: "firefox".into(),
                oom_score: 812,
            }],
            ..OomKillers::default()
        }
    }

    fn oomd(swap_units: &[&str], pressure: &[(&str, Option<f64>)]) -> OomKillers {
        OomKillers {
            systemd_oomd: Some(SystemdOomd {
                swap_used_limit_percent: 90.0,
                memory_pressure_limit_percent: 60.0,
                memory_pressure_duration_seconds: 20.0,
                swap_units: swap_units.iter().map(|u| u.to_string()).collect(),
                pressure_units: pressure
                    .iter()
                    .map(|(u, l)| ManagedUnit {
                        unit: u.to_string(),
                        limit_percent: *l,
                    })
                    .collect(),
            }),
            ..OomKillers::default()
        }
    }

    #[test]
    fn earlyoom_acts_before_the_kernel() {
        // 16 GiB of RAM, 4 GiB of swap, 6 GiB available, growing 4 MiB/s.
        let m = machine(16 * GIB, 4 * GIB, 6 * GIB, earlyoom(10.0, None, 10.0, None));
        let k = killers(&m, 4.0 * MIB as f64);
        assert_eq!(
            k.iter().map(|k| k.name).collect::<Vec<_>>(),
            [KillerName::Earlyoom, KillerName::Kernel]
        );
        let e = &k[0];
        assert_eq!(e.rule, "MemAvailable ≤ 10% and SwapFree ≤ 10%");
        // 1.6 GiB + 0.4 GiB = 2 GiB; (6 - 2) GiB at 4 MiB/s = 1024 s.
        let level = (16 * GIB as u128 / 10 + 4 * GIB as u128 / 10) as u64;
        assert!(e.acts_at_available_bytes.unwrap().abs_diff(level) <= 1);
        assert!((e.acts_in_seconds.unwrap() - 1024.0).abs() < 0.01, "{e:?}");
        assert_eq!(e.would_kill[0].comm, "firefox");
        assert_eq!(k[1].acts_at_available_bytes, Some(0));
        assert_eq!(k[1].acts_in_seconds, Some(6.0 * 1024.0 / 4.0));
        // Nothing grows: no time, the level stays.
        let still = killers(&m, 0.0);
        assert_eq!(still[0].acts_in_seconds, None);
        assert!(still[0].acts_at_available_bytes.is_some());
        // Under its level already: now.
        let low = machine(16 * GIB, 4 * GIB, GIB, earlyoom(10.0, None, 10.0, None));
        assert_eq!(killers(&low, 1.0)[0].acts_in_seconds, Some(0.0));
    }

    #[test]
    fn earlyoom_sizes_take_the_lower() {
        // -m 10 -M 409600 (400 MiB) on 16 GiB: 400 MiB is lower than 1.6 GiB.
        let m = machine(
            16 * GIB,
            0,
            6 * GIB,
            earlyoom(10.0, Some(409_600), 10.0, None),
        );
        let e = &killers(&m, 0.0)[0];
        assert_eq!(e.rule, "MemAvailable ≤ 400.0 MiB; no swap");
        assert_eq!(e.acts_at_available_bytes, Some(400 * MIB));
        // -m 1 -M 409600: 1% (164 MiB) is lower.
        let m = machine(
            16 * GIB,
            0,
            6 * GIB,
            earlyoom(1.0, Some(409_600), 10.0, None),
        );
        let e = &killers(&m, 0.0)[0];
        assert_eq!(e.rule, "MemAvailable ≤ 1%; no swap");
        // 1% of 16 GiB, rounded to a byte.
        assert_eq!(e.acts_at_available_bytes, Some(171_798_692));
        // Totals unknown: no level, the rule still.
        let mut unknown = m.clone();
        unknown.ram_bytes = None;
        let e = &killers(&unknown, 1.0)[0];
        assert_eq!((e.acts_at_available_bytes, e.acts_in_seconds), (None, None));
    }

    #[test]
    fn systemd_oomd_swap_and_pressure() {
        // Debian's defaults: -.slice by swap, user@.service by pressure at 50%.
        let found = oomd(&["-.slice"], &[("user@.service", Some(50.0))]);
        let m = machine(16 * GIB, 4 * GIB, 6 * GIB, found.clone());
        let k = killers(&m, 2.0 * MIB as f64);
        let o = &k[0];
        assert_eq!(o.name, KillerName::SystemdOomd);
        assert_eq!(
            o.rule,
            "swap used > 90% and MemAvailable < 10%; or memory pressure (full avg10) > 50% for 20s in user@.service"
        );
        assert_eq!(o.acts_at_available_bytes, Some(2 * GIB));
        assert!((o.acts_in_seconds.unwrap() - 2048.0).abs() < 0.01);
        assert_eq!(o.managed_units, ["-.slice", "user@.service"]);
        assert_eq!(
            (o.pressure_limit_percent, o.pressure_full_avg10),
            (Some(50.0), Some(2.5))
        );
        assert!(o.would_kill.is_empty());
        // Without swap the swap rule never fires: pressure only, no level, no time; still
        // ahead of the kernel.
        let m = machine(16 * GIB, 0, 6 * GIB, found);
        let k = killers(&m, 2.0 * MIB as f64);
        assert_eq!(k[0].name, KillerName::SystemdOomd);
        assert_eq!(
            (k[0].acts_at_available_bytes, k[0].acts_in_seconds),
            (None, None)
        );
        assert_eq!(k[1].name, KillerName::Kernel);
        // Running but managing nothing: not in force.
        let idle = machine(16 * GIB, 4 * GIB, 6 * GIB, oomd(&[], &[]));
        assert_eq!(killers(&idle, 1.0)[0].name, KillerName::Kernel);
    }

    #[test]
    fn the_higher_level_acts_first() {
        let mut found = earlyoom(1.0, None, 1.0, None);
        found.systemd_oomd = oomd(&["-.slice"], &[]).systemd_oomd;
        let m = machine(16 * GIB, 4 * GIB, 6 * GIB, found);
        let names: Vec<_> = killers(&m, 1.0).iter().map(|k| k.name).collect();
        assert_eq!(
            names,
            [
                KillerName::SystemdOomd,
                KillerName::Earlyoom,
                KillerName::Kernel
            ]
        );
    }

    #[test]
    fn macos_and_nobody_looked() {
        let mac = MachineMemory {
            killers: Some(OomKillers {
                macos_pressure_level: Some(2),
                ..OomKillers::default()
            }),
            ..MachineMemory::default()
        };
        let k = killers(&mac, 1.0);
        assert_eq!(k.len(), 1);
        assert_eq!(k[0].name, KillerName::MacosMemorystatus);
        assert_eq!(
            k[0].rule,
            "memory pressure critical (level 4); now warn (2)"
        );
        assert_eq!(
            (k[0].acts_at_available_bytes, k[0].acts_in_seconds),
            (None, None)
        );
        assert!(killers(&MachineMemory::default(), 1.0).is_empty());
    }

    #[test]
    fn names_match_serde() {
        for name in KillerName::ALL {
            assert_eq!(serde_json::to_value(name).unwrap(), name.name());
        }
    }
}
