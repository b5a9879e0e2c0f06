//! When the machine's memory is worth a desktop notification (`--notify`): its forecast
//! (when the OOM killer in force acts, else when memory runs out) falls under
//! `--notify-exhaustion`, or tasks already stall waiting for memory (PSI).
//! Once, then not again until memory has recovered and stayed so: a forecast that wavers
//! around the line, or growth that pauses between bursts, must not warn at every turn.
//! Pure; the policy (policy.rs) passes what it decides through its rate limit.
use super::message::{Notification, Urgency};
use crate::{
    sink::{forecast, groups},
    tracker::{MemoryForecast, SessionGroup},
};

const NS_PER_SECOND: u64 = 1_000_000_000;
/// `--notify-exhaustion`'s default.
pub const DEFAULT_EXHAUSTION_NS: u64 = 2 * 3600 * NS_PER_SECOND;
/// PSI `some avg10` (percent) over which memory already stalls the machine: some task
/// waited for memory in more than a tenth of the last 10 s. Reclaim and refaults cost
/// that much well before anything is killed (systemd-oomd acts at 60% of `full`, over
/// 30 s), and a healthy machine stays near 0.
pub const PRESSURE_PERCENT: f64 = 10.0;
/// Recovered means a forecast at least this many times `--notify-exhaustion` away (or
/// nothing growing) and pressure under half of [`PRESSURE_PERCENT`]...
pub const RECOVERED_FACTOR: f64 = 2.0;
/// ...held this long.
pub const RECOVERY_NS: u64 = 10 * 60 * NS_PER_SECOND;
/// Programs named in the notification, largest memory first.
const PROGRAMS_NAMED: usize = 3;

/// What is wrong with memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trouble {
    /// The killer in force acts (or, where none acts earlier, memory runs out) in this
    /// many seconds at the pace the sessions grow.
    Exhaustion { seconds: f64 },
    /// Tasks stalled waiting for it this share (percent) of the last 10 s.
    Pressure { percent: f64 },
}

/// The hysteresis: warned or not, and since when memory has looked recovered.
#[derive(Debug)]
pub struct MemoryWatch {
    exhaustion_seconds: f64,
    warned: bool,
    calm_since: Option<u64>,
}

impl MemoryWatch {
    pub fn new(exhaustion_ns: u64) -> Self {
        Self {
            exhaustion_seconds: exhaustion_ns as f64 / NS_PER_SECOND as f64,
            warned: false,
            calm_since: None,
        }
    }

    /// The trouble to notify, if memory is in trouble and has not been warned of since it
    /// last recovered.
    pub fn check(&mut self, now_ns: u64, m: &MemoryForecast) -> Option<Trouble> {
        if self.warned {
            let calm = m
                .acts_in_seconds()
                .is_none_or(|s| s >= RECOVERED_FACTOR * self.exhaustion_seconds)
                && m.pressure_some_avg10
                    .is_none_or(|p| p < PRESSURE_PERCENT / 2.0);
            if !calm {
                self.calm_since = None;
                return None;
            }
            let since = *self.calm_since.get_or_insert(now_ns);
            if now_ns.saturating_sub(since) >= RECOVERY_NS {
                self.warned = false;
                self.calm_since = None;
            }
            return None;
        }
        let trouble = match (m.acts_in_seconds(), m.pressure_some_avg10) {
            (Some(seconds), _) if seconds < self.exhaustion_seconds => {
                Trouble::Exhaustion { seconds }
            }
            (_, Some(percent)) if percent > PRESSURE_PERCENT => Trouble::Pressure { percent },
            _ => return None,
        };
        self.warned = true;
        Some(trouble)
    }
}

/// "Memory full in 1h12m at +4.2 GiB/h", with what is left and the programs holding the
/// most (`programs` is largest first, as the tracker groups them).
pub fn notification(
    trouble: Trouble,
    m: &MemoryForecast,
    programs: &[SessionGroup],
) -> Notification {
    let mut body = Vec::new();
    let summary = match trouble {
        Trouble::Exhaustion { seconds } => {
            let left = forecast::available(m).unwrap_or_default();
            body.push(format!(
                "{left}; the watched sessions grow {} together.",
                forecast::per_hour(m.growth_bytes_per_second)
            ));
            // A killer with a time of its own is what the time is of; one without (a
            // pressure rule) is named beside when memory runs out.
            let killer = forecast::early_killer(m);
            match killer.filter(|k| k.acts_in_seconds.is_some()) {
                Some(k) => {
                    body.push(format!("It acts when {}.", k.rule));
                    // A program's name, as it spells itself: `earlyoom`, `systemd-oomd`.
                    format!(
                        "{} acts in {} at {}",
                        k.name.said(),
                        forecast::approx(seconds),
                        forecast::per_hour(m.growth_bytes_per_second)
                    )
                }
                None => {
                    if let Some(k) = killer {
                        body.push(format!("{}.", forecast::killer(k)));
                    }
                    format!(
                        "Memory full in {} at {}",
                        forecast::duration(seconds),
                        forecast::per_hour(m.growth_bytes_per_second)
                    )
                }
            }
        }
        Trouble::Pressure { percent } => {
            if let Some(line) = forecast::headline(&MemoryForecast {
                pressure_some_avg10: None,
                ..m.clone()
            }) {
                body.push(format!("{}.", capitalized(&line)));
            }
            format!("Memory pressure: tasks stalled {percent:.0}% of the last 10 s")
        }
    };
    if let Some(victims) = m.killer.as_ref().and_then(forecast::would_kill) {
        body.push(format!("{}.", capitalized(&victims)));
    }
    if m.flagged_trees_memory_bytes > 0 {
        body.push(format!(
            "Ending the flagged session trees would free {}.",
            groups::sized(m.flagged_trees_memory_bytes, m.flagged_trees_memory_measure)
        ));
    }
    let largest: Vec<String> = programs
        .iter()
        .filter(|p| p.memory_bytes > 0)
        .take(PROGRAMS_NAMED)
        .map(|p| {
            let count = if p.sessions > 1 {
                format!("{} ", p.sessions)
            } else {
                String::new()
            };
            format!(
                "{count}{} ({})",
                p.name,
                groups::sized(p.memory_bytes, p.memory_measure)
            )
        })
        .collect();
    if !largest.is_empty() {
        body.push(format!("Largest: {}.", largest.join(", ")));
    }
    body.push("hupwatch sessions".into());
    Notification {
        summary,
        body: body.join("\n"),
        urgency: Urgency::Critical,
    }
}

fn capitalized(words: &str) -> String {
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::host::MachineMemory;

    const GIB: u64 = 1 << 30;
    const MINUTE: u64 = 60 * NS_PER_SECOND;
    const T0: u64 = 1_780_000_000 * NS_PER_SECOND;

    /// A machine with `available` left, growing so that it is full in `minutes`.
    pub(in crate::notify) fn full_in(minutes: f64, pressure: Option<f64>) -> MemoryForecast {
        let available = 8 * GIB;
        let growth = if minutes.is_finite() {
            available as f64 / (minutes * 60.0)
        } else {
            0.0
        };
        MemoryForecast::new(
            MachineMemory {
                ram_bytes: None,
                total_bytes: Some(16 * GIB),
                available_bytes: Some(available),
                pressure_some_avg10: pressure,
                ..crate::host::MachineMemory::default()
            },
            growth,
        )
    }

    fn watch() -> MemoryWatch {
        MemoryWatch::new(DEFAULT_EXHAUSTION_NS)
    }

    #[test]
    fn warns_once_when_the_forecast_falls_under_the_line() {
        let mut w = watch();
        assert_eq!(w.check(T0, &full_in(180.0, None)), None, "3 h is not soon");
        assert_eq!(w.check(T0, &full_in(f64::INFINITY, Some(0.0))), None);
        let Some(Trouble::Exhaustion { seconds }) = w.check(T0, &full_in(90.0, None)) else {
            panic!("1h30m is under 2 h");
        };
        assert!((seconds - 5400.0).abs() < 1e-6);
        // Worse and worse, minute after minute: still the one warning.
        for i in 1..=30 {
            assert_eq!(
                w.check(T0 + i * MINUTE, &full_in(90.0 - i as f64, Some(30.0))),
                None
            );
        }
    }

    #[test]
    fn warns_again_only_after_recovering_for_a_while() {
        let mut w = watch();
        assert!(w.check(T0, &full_in(60.0, None)).is_some());
        // Growth pauses (nothing grows) for less than the recovery time, then resumes.
        assert_eq!(w.check(T0 + MINUTE, &full_in(f64::INFINITY, None)), None);
        assert_eq!(
            w.check(T0 + 9 * MINUTE, &full_in(f64::INFINITY, None)),
            None
        );
        assert_eq!(w.check(T0 + 10 * MINUTE, &full_in(60.0, None)), None);
        // Between the line and twice the line is not recovered either.
        assert_eq!(w.check(T0 + 11 * MINUTE, &full_in(200.0, None)), None);
        assert_eq!(w.check(T0 + 30 * MINUTE, &full_in(200.0, None)), None);
        // Calm (4 h away) for ten minutes: the next trouble is news.
        assert_eq!(w.check(T0 + 31 * MINUTE, &full_in(240.0, None)), None);
        assert_eq!(w.check(T0 + 41 * MINUTE, &full_in(240.0, None)), None);
        assert!(w.check(T0 + 42 * MINUTE, &full_in(60.0, None)).is_some());
    }

    #[test]
    fn pressure_alone_warns_and_must_ease_to_recover() {
        let mut w = watch();
        assert_eq!(
            w.check(T0, &full_in(f64::INFINITY, Some(10.0))),
            None,
            "10% is the line"
        );
        assert_eq!(
            w.check(T0, &full_in(f64::INFINITY, Some(25.0))),
            Some(Trouble::Pressure { percent: 25.0 })
        );
        // 6% is under the line but not under half of it: not recovered.
        assert_eq!(
            w.check(T0 + MINUTE, &full_in(f64::INFINITY, Some(6.0))),
            None
        );
        assert_eq!(
            w.check(T0 + 20 * MINUTE, &full_in(f64::INFINITY, Some(6.0))),
            None
        );
        assert_eq!(
            w.check(T0 + 21 * MINUTE, &full_in(f64::INFINITY, Some(25.0))),
            None
        );
        assert_eq!(
            w.check(T0 + 22 * MINUTE, &full_in(f64::INFINITY, Some(1.0))),
            None
        );
        assert_eq!(
            w.check(T0 + 32 * MINUTE, &full_in(f64::INFINITY, Some(1.0))),
            None
        );
        assert!(
            w.check(T0 + 33 * MINUTE, &full_in(f64::INFINITY, Some(40.0)))
                .is_some()
        );
    }

    #[test]
    fn a_short_line_waits_for_a_closer_forecast() {
        let mut w = MemoryWatch::new(10 * MINUTE);
        assert_eq!(w.check(T0, &full_in(60.0, None)), None);
        assert!(w.check(T0, &full_in(9.0, None)).is_some());
    }

    pub(in crate::notify) fn program(name: &str, sessions: u64, memory_bytes: u64) -> SessionGroup {
        SessionGroup {
            name: name.into(),
            sessions,
            memory_bytes,
            memory_measure: Default::default(),
            rss_memory_bytes: Some(memory_bytes),
            flagged: 0,
            oldest_started_ns: None,
            terminal_programs: Default::default(),
        }
    }

    #[test]
    fn names_the_largest_programs_and_where_to_look() {
        let programs = [
            program("claude", 23, 19 * GIB + GIB / 2),
            program("node", 1, GIB + GIB / 10),
            program("python3", 2, 800 << 20),
            program("vim", 1, 10 << 20),
            program("sleep", 1, 0),
        ];
        let m = full_in(72.0, None);
        let n = notification(Trouble::Exhaustion { seconds: 4320.0 }, &m, &programs);
        assert_eq!(n.summary, "Memory full in 1h12m at +6.7 GiB/h");
        assert_eq!(
            n.body,
            "8.0 GiB of 16.0 GiB available; the watched sessions grow +6.7 GiB/h together.\n\
             Largest: 23 claude (19.5 GiB RSS), node (1.1 GiB RSS), 2 python3 (800.0 MiB RSS).\n\
             hupwatch sessions"
        );
        assert_eq!(n.urgency, Urgency::Critical);
    }

    #[test]
    fn names_the_killer_that_acts_first() {
        let mut m = full_in(72.0, None);
        m.killer = Some(crate::tracker::killer::KillerForecast {
            name: crate::tracker::killer::KillerName::Earlyoom,
            pid: Some(7),
            rule: "MemAvailable ≤ 10% and SwapFree ≤ 10%".into(),
            acts_at_available_bytes: Some(2 * GIB),
            acts_in_seconds: Some(720.0),
            would_kill: vec![crate::host::Candidate {
                pid: 9,
                comm: "firefox".into(),
                oom_score: 812,
            }],
            managed_units: Vec::new(),
            pressure_limit_percent: None,
            pressure_full_avg10: None,
            pressure_level: None,
            dry_run: false,
        });
        m.flagged_trees_memory_bytes = 3 * GIB;
        let mut w = watch();
        // Memory runs out in 72 min, but earlyoom acts in 12: that is what is said.
        let Some(Trouble::Exhaustion { seconds }) = w.check(T0, &m) else {
            panic!("earlyoom acts within the line");
        };
        assert_eq!(seconds, 720.0);
        let n = notification(Trouble::Exhaustion { seconds }, &m, &[]);
        assert_eq!(n.summary, "earlyoom acts in ~12 min at +6.7 GiB/h");
        assert_eq!(
            n.body,
            "8.0 GiB of 16.0 GiB available; the watched sessions grow +6.7 GiB/h together.\n\
             It acts when MemAvailable ≤ 10% and SwapFree ≤ 10%.\n\
             It would kill: firefox (oom_score 812).\n\
             Ending the flagged session trees would free 3.0 GiB RSS.\n\
             hupwatch sessions"
        );
    }

    #[test]
    fn says_how_much_memory_stalls() {
        let m = full_in(f64::INFINITY, Some(23.4));
        let n = notification(Trouble::Pressure { percent: 23.4 }, &m, &[]);
        assert_eq!(
            n.summary,
            "Memory pressure: tasks stalled 23% of the last 10 s"
        );
        assert_eq!(n.body, "Memory: 8.0 GiB available.\nhupwatch sessions");
    }
}
