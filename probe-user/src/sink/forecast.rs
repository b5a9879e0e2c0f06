//! The memory forecast in words, for `hupwatch top`'s header and the desktop
//! notification: "memory full in 2h10m at +1.2 GiB/h", "memory: 9.8 GiB available".
use crate::{
    tracker::MemoryForecast,
    units::{format_duration, format_size},
};

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

/// One line on the machine's memory; None when nothing about it is known.
pub fn headline(m: &MemoryForecast) -> Option<String> {
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

    #[test]
    fn odd_figures_stay_words() {
        assert_eq!(per_hour(-2048.0 / 3600.0), "-2.0 KiB/h");
        assert_eq!(per_hour(f64::NAN), "+0 B/h");
        assert_eq!(duration(f64::INFINITY), format_duration(u64::MAX));
        assert_eq!(duration(-5.0), "0ms");
        assert_eq!(duration(45.0), "45s");
    }
}
