//! The memory forecast in words, for `hupwatch top`'s header and the desktop
//! notification: "memory full in 2h10m at +1.2 GiB/h", "memory: 9.8 GiB available", and
//! when a killer other than the kernel's acts first, "earlyoom acts in ~12 min
//! (MemAvailable ≤ 10% and SwapFree ≤ 10%); it would kill: firefox (oom_score 812)".
use crate::{
    output::escape_unsafe,
    tracker::{
        MemoryForecast,
        killer::{KillerForecast, KillerName},
    },
    units::{format_duration, format_size},
};

/// Processes named after "it would kill:".
const VICTIMS_NAMED: usize = 3;

/// Memory pressure under this share of the last 10 s (percent) is not worth a word: a
/// busy machine stalls for a moment now and then.
const PRESSURE_SAID: f64 = 1.0;

/// A growth rate per hour, signed: `+1.2 GiB/h`.
pub fn per_hour(bytes_per_second: f64) -> String {
    let per_hour = bytes_per_second * 3600.0;
    let sign = if per_hour < 0.0 { "-" } else { "+" };
    // `as` saturates, and makes NaN 0: a figure, never a panic.
    format!("{sign}{}/h", format_size(per_hour.abs() as u64))
}

/// Seconds as `2h10m`.
pub fn duration(seconds: f64) -> String {
    format_duration((seconds.max(0.0) * 1e9) as u64)
}

/// Seconds, roughly: `~45 s`, `~12 min`, `~2h10m`.
pub fn approx(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        format!("~{seconds:.0} s")
    } else if seconds < 3600.0 {
        format!("~{:.0} min", seconds / 60.0)
    } else {
        let minutes = (seconds / 60.0).round() as u64;
        format!("~{}h{:02}m", minutes / 60, minutes % 60)
    }
}

/// The killer that acts first, when it is not the kernel's (whose "memory full" the
/// headline says already).
pub fn early_killer(m: &MemoryForecast) -> Option<&KillerForecast> {
    m.killer.as_ref().filter(|k| k.name != KillerName::Kernel)
}

/// "earlyoom acts in ~12 min (MemAvailable ≤ 10% and SwapFree ≤ 10%)", or without a time
/// "earlyoom acts at MemAvailable ≤ 10% ... (2.0 GiB available)", with what it reads now
/// where its rule is pressure.
pub fn killer(k: &KillerForecast) -> String {
    let mut words = match (k.acts_in_seconds, k.acts_at_available_bytes) {
        (Some(0.0), _) => format!("{} may act now ({})", k.name.said(), k.rule),
        (Some(s), _) => format!("{} acts in {} ({})", k.name.said(), approx(s), k.rule),
        (None, Some(at)) if at > 0 => format!(
            "{} acts at about {} available ({})",
            k.name.said(),
            format_size(at),
            k.rule
        ),
        _ => format!("{} acts at {}", k.name.said(), k.rule),
    };
    if let Some(now) = k.pressure_full_avg10 {
        words.push_str(&format!(", pressure now {now:.0}%"));
    }
    if k.dry_run {
        words.push_str(", --dryrun: kills nothing");
    }
    words
}

/// "it would kill: firefox (oom_score 812), code (oom_score 640)"; for systemd-oomd the
/// units under which it picks; None when nobody is known.
pub fn would_kill(k: &KillerForecast) -> Option<String> {
    if !k.would_kill.is_empty() {
        let named: Vec<String> = k
            .would_kill
            .iter()
            .take(VICTIMS_NAMED)
            .map(|c| format!("{} (oom_score {})", escape_unsafe(&c.comm), c.oom_score))
            .collect();
        return Some(format!("it would kill: {}", named.join(", ")));
    }
    (!k.managed_units.is_empty()).then(|| {
        format!(
            "it would kill a cgroup under {}",
            escape_unsafe(&k.managed_units.join(", "))
        )
    })
}

/// One line on the machine's memory; None when nothing about it is known.
pub fn headline(m: &MemoryForecast) -> Option<String> {
    if let Some(k) = early_killer(m) {
        let growth = per_hour(m.growth_bytes_per_second);
        // Without a time of its own (nothing grows, or a rule that is no level, as
        // systemd-oomd's pressure and macOS's), memory's own figure comes first.
        let mut words = match (k.acts_in_seconds, m.exhausted_in_seconds, m.available_bytes) {
            (Some(_), _, _) => format!("{} at {growth}", killer(k)),
            (None, Some(s), _) => {
                format!("memory full in {} at {growth}; {}", duration(s), killer(k))
            }
            (None, None, Some(a)) => format!("memory: {} available; {}", format_size(a), killer(k)),
            (None, None, None) => killer(k),
        };
        if let Some(victims) = would_kill(k) {
            words.push_str(&format!("; {victims}"));
        }
        if let Some(stalled) = stalled(m) {
            words.push_str(&format!(", {stalled}"));
        }
        return Some(words);
    }
    let mut words = match (m.exhausted_in_seconds, m.available_bytes) {
        (Some(seconds), _) => format!(
            "memory full in {} at {}",
            duration(seconds),
            per_hour(m.growth_bytes_per_second)
        ),
        (None, _) if m.growth_bytes_per_second > 0.0 => {
            format!("memory grows {}", per_hour(m.growth_bytes_per_second))
        }
        (None, Some(available)) => format!("memory: {} available", format_size(available)),
        (None, None) => return None,
    };
    if let Some(stalled) = stalled(m) {
        words.push_str(&format!(", {stalled}"));
    }
    Some(words)
}

/// "tasks stalled on memory 23% of the last 10 s", when that is worth saying.
pub fn stalled(m: &MemoryForecast) -> Option<String> {
    let percent = m.pressure_some_avg10.filter(|p| *p >= PRESSURE_SAID)?;
    Some(format!(
        "tasks stalled on memory {percent:.0}% of the last 10 s"
    ))
}

/// "9.8 GiB of 16.0 GiB available", or as much of it as is known.
pub fn available(m: &MemoryForecast) -> Option<String> {
    let available = format_size(m.available_bytes?);
    Some(match m.total_bytes {
        Some(total) => format!("{available} of {} available", format_size(total)),
        None => format!("{available} available"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn forecast(available: Option<u64>, growth: f64, pressure: Option<f64>) -> MemoryForecast {
        MemoryForecast::new(
            crate::host::MachineMemory {
                ram_bytes: None,
                total_bytes: Some(16 * GIB),
                available_bytes: available,
                pressure_some_avg10: pressure,
                ..crate::host::MachineMemory::default()
            },
            growth,
        )
    }

    #[test]
    fn says_when_memory_runs_out_and_at_what_pace() {
        // 1.2 GiB an hour, with 2.6 GiB left: 2h10m.
        let growth = 1.2 * GIB as f64 / 3600.0;
        let m = forecast(Some((growth * 7800.5) as u64), growth, Some(0.2));
        assert_eq!(
            headline(&m).as_deref(),
            Some("memory full in 2h10m at +1.2 GiB/h")
        );
        assert_eq!(
            available(&m).as_deref(),
            Some("2.6 GiB of 16.0 GiB available")
        );
    }

    #[test]
    fn says_what_is_available_when_nothing_grows() {
        let m = forecast(Some(9 * GIB + (800 << 20)), 0.0, None);
        assert_eq!(headline(&m).as_deref(), Some("memory: 9.8 GiB available"));
        assert_eq!(
            headline(&forecast(None, 1024.0, None)).as_deref(),
            Some("memory grows +3.5 MiB/h")
        );
        assert_eq!(headline(&MemoryForecast::default()), None);
        assert_eq!(available(&MemoryForecast::default()), None);
    }

    #[test]
    fn names_pressure_once_it_is_felt() {
        let m = forecast(Some(GIB), 0.0, Some(23.4));
        assert_eq!(
            headline(&m).as_deref(),
            Some("memory: 1.0 GiB available, tasks stalled on memory 23% of the last 10 s")
        );
        assert_eq!(stalled(&forecast(Some(GIB), 0.0, Some(0.9))), None);
    }

    fn with_earlyoom(available: u64, growth: f64) -> MemoryForecast {
        let found = crate::host::OomKillers {
            earlyoom: Some(crate::host::Earlyoom {
                pid: 7,
                memory_percent: 10.0,
                memory_kib: None,
                swap_percent: 10.0,
                swap_kib: None,
                dry_run: false,
            }),
            by_oom_score: ["firefox", "code", "node", "bash"]
                .iter()
                .zip([812, 640, 300, 10])
                .enumerate()
                .map(|(i, (comm, score))| crate::host::Candidate {
                    pid: 100 + i as u32,
                    comm: comm.to_string(),
                    oom_score: score,
                })
                .collect(),
            ..Default::default()
        };
        MemoryForecast::new(
            crate::host::MachineMemory {
                ram_bytes: Some(16 * GIB),
                total_bytes: Some(20 * GIB),
                available_bytes: Some(available),
                killers: Some(found),
                ..crate::host::MachineMemory::default()
            },
            growth,
        )
    }

    #[test]
    fn names_the_killer_that_acts_first_and_whom_it_would_kill() {
        // 2 GiB is earlyoom's level; 2 GiB above it at 2.8 MiB/s: about 12 minutes.
        let growth = 2.0 * GIB as f64 / 730.0;
        let m = with_earlyoom(4 * GIB, growth);
        assert_eq!(
            headline(&m).as_deref(),
            Some(
                "earlyoom acts in ~12 min (MemAvailable ≤ 10% and SwapFree ≤ 10%) at +9.9 GiB/h; \
                 it would kill: firefox (oom_score 812), code (oom_score 640), node (oom_score 300)"
            )
        );
        let still = with_earlyoom(4 * GIB, 0.0);
        assert_eq!(
            headline(&still).as_deref(),
            Some(
                "memory: 4.0 GiB available; earlyoom acts at about 2.0 GiB available \
                 (MemAvailable ≤ 10% and SwapFree ≤ 10%); it would kill: firefox (oom_score 812), \
                 code (oom_score 640), node (oom_score 300)"
            )
        );
        assert_eq!(approx(45.2), "~45 s");
        // systemd-oomd by pressure only: no time of its own, so memory's is said beside it.
        let mut oomd = with_earlyoom(4 * GIB, growth);
        oomd.killer = Some(KillerForecast {
            name: KillerName::SystemdOomd,
            pid: None,
            rule: "memory pressure (full avg10) > 50% for 20s in user@.service".into(),
            acts_at_available_bytes: None,
            acts_in_seconds: None,
            would_kill: Vec::new(),
            managed_units: vec!["user@.service".into()],
            pressure_limit_percent: Some(50.0),
            pressure_full_avg10: Some(3.2),
            pressure_level: None,
            dry_run: false,
        });
        // macOS: no level, no time; what is available is said beside its pressure.
        let mac = MemoryForecast::new(
            crate::host::MachineMemory {
                ram_bytes: Some(16 * GIB),
                total_bytes: Some(16 * GIB),
                available_bytes: Some(9 * GIB),
                killers: Some(crate::host::OomKillers {
                    macos_pressure_level: Some(1),
                    ..Default::default()
                }),
                ..crate::host::MachineMemory::default()
            },
            0.0,
        );
        assert_eq!(
            headline(&mac).as_deref(),
            Some(
                "memory: 9.0 GiB available; macOS's memorystatus acts at memory pressure \
                 critical (level 4); now normal (1)"
            )
        );
        oomd.exhausted_in_seconds = Some(1460.0);
        assert_eq!(
            headline(&oomd).as_deref(),
            Some(
                "memory full in 24m20s at +9.9 GiB/h; systemd-oomd acts at memory pressure \
                 (full avg10) > 50% for 20s in user@.service, pressure now 3%; it would kill a \
                 cgroup under user@.service"
            )
        );
        assert_eq!(approx(7800.0), "~2h10m");
    }

    #[test]
    fn odd_figures_stay_words() {
        assert_eq!(per_hour(-2048.0 / 3600.0), "-2.0 KiB/h");
        assert_eq!(per_hour(f64::NAN), "+0 B/h");
        assert_eq!(duration(f64::INFINITY), format_duration(u64::MAX));
        assert_eq!(duration(-5.0), "0ms");
        assert_eq!(duration(45.0), "45s");
    }
}
