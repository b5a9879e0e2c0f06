//! How long until the machine's memory runs out at the pace the watched sessions grow: the
//! latest machine reading the source handed on, divided by the growth their fits show;
//! and before that, when the OOM killer in force acts (killer.rs). Pure: the reading
//! comes in through [`super::Tracker::set_machine_memory`].
use serde::{Deserialize, Serialize};

use super::{
    MemoryMeasure, Process, Total, Tracker,
    killer::{self, KillerForecast, KillerName},
    rules::is_session,
    trees,
};
use crate::host::MachineMemory;

/// The `memory` object of the sessions document.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryForecast {
    /// See [`MachineMemory::ram_bytes`]; null until read.
    #[serde(default)]
    pub ram_bytes: Option<u64>,
    /// See [`MachineMemory::total_bytes`]; null until read.
    pub total_bytes: Option<u64>,
    /// See [`MachineMemory::available_bytes`]; null until read.
    pub available_bytes: Option<u64>,
    /// The watched sessions' growth together, from the fits `rss_growth` judges (only those
    /// `Growth::forecast_rate` counts: rising, well fitted, not gone quiet); 0 when none
    /// grows.
    pub growth_bytes_per_second: f64,
    /// `available_bytes` / `growth_bytes_per_second`: when memory runs out if they go on
    /// as they do. Null when nothing grows or what is available is unknown.
    pub exhausted_in_seconds: Option<f64>,
    /// See [`MachineMemory::pressure_some_avg10`].
    pub pressure_some_avg10: Option<f64>,
    /// What ending the flagged sessions (those with a verdict) would free: what they hold
    /// together, by `flagged_memory_measure` (PSS once every one of them has a reading,
    /// so memory they share is counted once; see measure.rs). 0 where none is flagged.
    #[serde(default)]
    pub flagged_memory_bytes: u64,
    #[serde(default)]
    pub flagged_memory_measure: MemoryMeasure,
    /// What ending the flagged session trees would free: every member of each tree with
    /// any flagged member, added up by `flagged_trees_memory_measure` (as trees' totals
    /// are). 0 where no tree has a flagged member.
    #[serde(default)]
    pub flagged_trees_memory_bytes: u64,
    #[serde(default)]
    pub flagged_trees_memory_measure: MemoryMeasure,
    /// The OOM killer expected to act first, its rule, level, time and likely victims;
    /// null until the source has looked for killers (a recording, an older daemon).
    #[serde(default)]
    pub killer: Option<KillerForecast>,
    /// The other killers in force, in the order they would act (the kernel's last).
    #[serde(default)]
    pub other_killers: Vec<KillerName>,
}

impl MemoryForecast {
    pub fn new(machine: MachineMemory, growth_bytes_per_second: f64) -> Self {
        let growth = growth_bytes_per_second.max(0.0);
        let mut killers = killer::killers(&machine, growth).into_iter();
        Self {
            killer: killers.next(),
            other_killers: killers.map(|k| k.name).collect(),
            ram_bytes: machine.ram_bytes,
            total_bytes: machine.total_bytes,
            available_bytes: machine.available_bytes,
            growth_bytes_per_second: growth,
            exhausted_in_seconds: machine
                .available_bytes
                .filter(|_| growth > 0.0)
                .map(|available| available as f64 / growth),
            pressure_some_avg10: machine.pressure_some_avg10,
            flagged_memory_bytes: 0,
            flagged_memory_measure: MemoryMeasure::Rss,
            flagged_trees_memory_bytes: 0,
            flagged_trees_memory_measure: MemoryMeasure::Rss,
        }
    }

    /// Seconds until memory runs short enough for something to be killed: when the killer
    /// in force acts, where that is known, else when memory is exhausted (null when
    /// neither is: nothing grows, or nothing was read).
    pub fn acts_in_seconds(&self) -> Option<f64> {
        self.killer
            .as_ref()
            .and_then(|k| k.acts_in_seconds)
            .or(self.exhausted_in_seconds)
    }

    /// Takes what the members of the flagged trees hold together.
    pub fn set_flagged_trees(&mut self, members: Total) {
        self.flagged_trees_memory_bytes = members.bytes();
        self.flagged_trees_memory_measure = members.measure();
    }

    /// Takes what the flagged sessions hold together.
    pub fn set_flagged(&mut self, flagged: Total) {
        self.flagged_memory_bytes = flagged.bytes();
        self.flagged_memory_measure = flagged.measure();
    }
}

/// The forecast as of `now_ns`, over every session (ignored ones too: a program meant to
/// outlive its terminal still fills memory if it grows).
pub(super) fn forecast(t: &Tracker, now_ns: u64) -> MemoryForecast {
    let window = t.config.rss_window_ns;
    let growth: f64 = t
        .processes
        .values()
        .filter(|p| is_session(t, p))
        .filter_map(|p| {
            let since_rise = now_ns.saturating_sub(p.last_rise_ns()?);
            p.growth()?.forecast_rate(window, since_rise)
        })
        .sum();
    let mut forecast = MemoryForecast::new(t.machine.clone(), growth);
    let sessions = || t.processes.values().filter(|p| is_session(t, p));
    let flagged = sessions().filter(|p| !p.verdicts.is_empty());
    forecast.set_flagged(flagged.map(Process::held).collect());
    forecast.set_flagged_trees(trees::flagged_trees_total(
        sessions().map(|p| (p.tree.as_ref(), !p.verdicts.is_empty(), p.held())),
    ));
    forecast
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::{Event, EventKind},
        tracker::TrackerConfig,
    };

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const SECOND: u64 = 1_000_000_000;
    const T0: u64 = 1_780_000_000 * SECOND;

    fn machine(available: Option<u64>) -> MachineMemory {
        MachineMemory {
            ram_bytes: None,
            total_bytes: Some(16 * GIB),
            available_bytes: available,
            pressure_some_avg10: Some(0.5),
            ..MachineMemory::default()
        }
    }

    #[test]
    fn available_over_growth_is_when_memory_runs_out() {
        let f = MemoryForecast::new(machine(Some(8 * GIB)), 4.0 * MIB as f64);
        assert_eq!(f.exhausted_in_seconds, Some(2048.0));
        assert_eq!(f.total_bytes, Some(16 * GIB));
        assert_eq!(f.pressure_some_avg10, Some(0.5));
        let none = MemoryForecast::new(machine(Some(8 * GIB)), 0.0);
        assert_eq!(
            (none.growth_bytes_per_second, none.exhausted_in_seconds),
            (0.0, None)
        );
        let unknown = MemoryForecast::new(machine(None), 4.0 * MIB as f64);
        assert_eq!(unknown.exhausted_in_seconds, None);
        assert_eq!(unknown.growth_bytes_per_second, 4.0 * MIB as f64);
    }

    #[test]
    fn serializes_nulls_for_what_is_not_known() {
        let json = serde_json::to_value(MemoryForecast::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ram_bytes": null, "total_bytes": null, "available_bytes": null,
                "growth_bytes_per_second": 0.0, "exhausted_in_seconds": null,
                "pressure_some_avg10": null, "flagged_memory_bytes": 0,
                "flagged_memory_measure": "rss", "flagged_trees_memory_bytes": 0,
                "flagged_trees_memory_measure": "rss", "killer": null, "other_killers": []
            })
        );
    }

    fn rss(pid: u32, time_ns: u64, bytes: u64) -> Event {
        Event {
            kind: EventKind::Rss {
                rss_bytes: bytes,
                peak_rss_bytes: bytes,
                swap_bytes: None,
                cpu_ns: None,
                footprint_bytes: None,
            },
            time_ns,
            pid,
            comm: format!("p{pid}"),
        }
    }

    fn exec(pid: u32, time_ns: u64) -> Event {
        serde_json::from_value(serde_json::json!({
            "event": "exec", "ppid": 1, "filename": "/bin/x", "sid": pid, "tty": null,
            "time_ns": time_ns, "pid": pid, "comm": format!("p{pid}")
        }))
        .unwrap()
    }

    /// Two sessions growing 4 and 2 MiB/s and one holding still, sampled every 250 ms for
    /// 8 s; then only the first goes on.
    #[test]
    fn sums_the_sessions_that_grow_until_they_stop() {
        let mut t = Tracker::new(TrackerConfig {
            rss_window_ns: 30 * SECOND,
            ..TrackerConfig::default()
        });
        for pid in [10, 20, 30] {
            t.apply(&exec(pid, T0));
        }
        t.set_machine_memory(machine(Some(6 * GIB)));
        let tick = SECOND / 4;
        for i in 0..=32u64 {
            let now = T0 + i * tick;
            t.apply(&rss(10, now, 100 * MIB + i * MIB));
            t.apply(&rss(20, now, 100 * MIB + i * MIB / 2));
            // Only its first reading is reported: it never moves by a step.
            if i == 0 {
                t.apply(&rss(30, now, 500 * MIB));
            }
        }
        let end = T0 + 32 * tick;
        let f = t.memory(end);
        assert!(
            (f.growth_bytes_per_second - 6.0 * MIB as f64).abs() < 1.0,
            "{f:?}"
        );
        let exhausted = f.exhausted_in_seconds.unwrap();
        assert!((exhausted - 1024.0).abs() < 1e-6, "{f:?}");
        assert_eq!(t.view(end).memory, f, "the sessions document carries it");
        assert_eq!(t.metrics_view(end, 0).memory, f, "and so do the metrics");

        // The second stops (no samples come: its memory holds within a step); the first
        // goes on for another 10 s.
        for i in 33..=72u64 {
            t.apply(&rss(10, T0 + i * tick, 100 * MIB + i * MIB));
        }
        let later = T0 + 72 * tick;
        let f = t.memory(later);
        assert!(
            (f.growth_bytes_per_second - 4.0 * MIB as f64).abs() < 1.0,
            "{f:?}"
        );
        // Both quiet: nothing grows, whatever their last fits said.
        let f = t.memory(later + 6 * SECOND);
        assert_eq!(
            (f.growth_bytes_per_second, f.exhausted_in_seconds),
            (0.0, None)
        );
        assert_eq!(f.available_bytes, Some(6 * GIB));
    }

    /// A yesterday's orphan of 300 MiB RSS, as a start-up look finds it: flagged at once.
    fn orphan(pid: u32) -> Event {
        serde_json::from_value(serde_json::json!({
            "event": "existing", "ppid": 1, "sid": pid, "tty": null, "started_ns": T0,
            "cmdline": "node server.js", "hangup": "default", "rss_bytes": 300 * MIB,
            "swap_bytes": 0, "cpu_ns": 0, "from_terminal": true, "reparented": true,
            "session_leader_alive": false, "time_ns": T0, "pid": pid, "comm": "node"
        }))
        .unwrap()
    }

    fn pss(pid: u32, mib: u64) -> Event {
        Event {
            kind: EventKind::Pss {
                pss_bytes: mib * MIB,
                swap_pss_bytes: Some(0),
            },
            time_ns: T0 + SECOND,
            pid,
            comm: "node".into(),
        }
    }

    /// Three node processes sharing most of their 300 MiB: ending them frees what PSS
    /// says, once every one has a reading; until then the totals say RSS, and say so.
    #[test]
    fn totals_take_pss_once_every_member_is_read() {
        let mut t = Tracker::new(TrackerConfig::default());
        for pid in [10, 20, 30] {
            t.apply(&orphan(pid));
        }
        t.apply(&pss(10, 110));
        t.apply(&pss(20, 110));
        let now = T0 + 2 * SECOND;
        t.advance(now);
        assert!(t.view(now).processes.iter().all(|p| !p.verdicts.is_empty()));
        let m = t.memory(now);
        assert_eq!(
            (m.flagged_memory_bytes, m.flagged_memory_measure),
            (900 * MIB, MemoryMeasure::Rss),
            "one not read yet: RSS throughout"
        );
        t.apply(&pss(30, 110));
        let m = t.memory(now);
        assert_eq!(
            (m.flagged_memory_bytes, m.flagged_memory_measure),
            (330 * MIB, MemoryMeasure::Pss)
        );
        let view = t.view(now);
        let node = &view.groups[0];
        assert_eq!(
            (
                node.memory_bytes,
                node.memory_measure,
                node.rss_memory_bytes
            ),
            (330 * MIB, MemoryMeasure::Pss, Some(900 * MIB))
        );
        let p = &view.processes[0];
        assert_eq!((p.pss_bytes, p.swap_pss_bytes), (Some(110 * MIB), Some(0)));
        assert!(
            p.timeline.iter().all(|e| e.kind.name() != "pss"),
            "a reading for totals is not part of its story"
        );
        // A user who sees only one of them gets totals of that one.
        let mut mine = view.clone();
        mine.keep_only(|p| p.pid == 10);
        assert_eq!(mine.memory.flagged_memory_bytes, 110 * MIB);
    }

    /// Two trees and a flagged process in none: ending the trees with a flagged member
    /// frees all of their members, flagged or not, and nothing of the others.
    #[test]
    fn ending_the_flagged_trees_frees_every_member_of_them() {
        use crate::{
            tracker::{ProcessView, SessionsView, TreeRef},
            verdict::VerdictKind,
        };
        let member = |pid: u32, root: u32, mib: u64, flagged: bool| {
            let mut p = ProcessView::example(pid, mib * MIB, VerdictKind::Orphaned);
            p.tree = (root > 0).then(|| TreeRef {
                root_pid: root,
                root_started_ns: 5,
                root_comm: "claude".into(),
            });
            if !flagged {
                p.verdicts.clear();
            }
            p
        };
        let mut view = SessionsView::with_sessions(vec![
            member(10, 10, 100, false),
            member(11, 10, 200, true),
            member(20, 20, 50, false),
            member(30, 0, 400, true),
        ]);
        view.keep_only(|_| true);
        let m = &view.memory;
        assert_eq!(
            (m.flagged_trees_memory_bytes, m.flagged_trees_memory_measure),
            (300 * MIB, MemoryMeasure::Rss)
        );
        assert_eq!(m.flagged_memory_bytes, 600 * MIB);
        // Without its flagged member, the first tree is nobody's to end.
        view.keep_only(|p| p.pid != 11);
        assert_eq!(view.memory.flagged_trees_memory_bytes, 0);
    }

    #[test]
    fn an_exited_grower_no_longer_counts() {
        let mut t = Tracker::new(TrackerConfig {
            rss_window_ns: 8 * SECOND,
            ..TrackerConfig::default()
        });
        t.apply(&exec(10, T0));
        t.set_machine_memory(machine(Some(GIB)));
        for i in 0..=16u64 {
            t.apply(&rss(10, T0 + i * SECOND / 4, i * 4 * MIB));
        }
        let now = T0 + 4 * SECOND;
        assert!(t.memory(now).exhausted_in_seconds.is_some());
        let exit = serde_json::json!({
            "event": "exit", "ppid": 1, "exit_code": 0, "exit_signal": null,
            "core_dumped": false, "time_ns": now, "pid": 10, "comm": "p10"
        });
        t.apply(&serde_json::from_value(exit).unwrap());
        assert_eq!(t.memory(now).exhausted_in_seconds, None);
    }
}
