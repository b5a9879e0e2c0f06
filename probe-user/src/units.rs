//! Human units on the command line: sizes like `256MiB` and durations like `10s` or `30m`,
//! and the one timestamp form hupwatch writes.
use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC with milliseconds, the form log tools and people both read.
pub fn rfc3339(epoch_ns: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(epoch_ns);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Parses `512`, `4KiB`, `256MiB`, `1GiB`, `2GB` (decimal), `1.5GiB` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text)
        .ok_or_else(|| format!("{text:?} is not a size; write it like 256MiB, 1GiB or 4096"))?;
    let multiplier: u64 = match unit {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!(
            "size {text:?} is too large (the most is 16EiB); write it like 256MiB or 1GiB"
        ));
    }
    Ok(bytes.round() as u64)
}

/// Parses `500ms`, `10s`, `30m`, `2h`, `1d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = number_and_unit(text).ok_or_else(|| {
        format!("{text:?} is not a duration; write it like 500ms, 10s, 30m or 2h")
    })?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?}; use ms, s, m, h or d"
            ));
        }
    };
    // A number of digits and dots is never negative or NaN: only too large fails.
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("duration {text:?} is too long; write it like 500ms, 10s, 30m or 2h"))
}

/// Bytes the way people read them: `512 B`, `12.0 KiB`, `256.0 MiB`, `1.3 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in nanoseconds as `250ms`, `10s`, `4m30s`, `2h5m` or `3d4h`.
pub fn format_duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => compound(s / 60, "m", s % 60, "s"),
        3600..86_400 => compound(s / 3600, "h", s % 3600 / 60, "m"),
        _ => compound(s / 86_400, "d", s % 86_400 / 3600, "h"),
    }
}

fn compound(major: u64, major_unit: &str, minor: u64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// `"1.5GiB"` -> `(1.5, "GiB")`; `None` when it does not start with a number.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert!(parse_size("lots").unwrap_err().contains("like 256MiB"));
        assert!(
            parse_size("12parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("").is_err());
        // Negative, huge, not a number: refused, each with an example of what to write.
        for bad in [
            "-1",
            "99999999999999999999GiB",
            "1e9",
            "nan",
            "inf",
            "1.2.3MiB",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("256MiB") || err.contains("use B, KiB"),
                "{err}"
            );
        }
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(256 << 20), "256.0 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_duration(250_000_000), "250ms");
        assert_eq!(format_duration(10_000_000_000), "10s");
        assert_eq!(format_duration(270_000_000_000), "4m30s");
        assert_eq!(format_duration(1_800_000_000_000), "30m");
        assert_eq!(format_duration(7_500_000_000_000), "2h5m");
        assert_eq!(format_duration(86_400_000_000_000), "1d");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").unwrap_err().contains("like 500ms"));
        assert!(
            parse_duration("5 fortnights")
                .unwrap_err()
                .contains("unknown duration unit")
        );
        for bad in ["-5s", "99999999999999999999h", "", "1..5s", "NaN"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("like 500ms") || err.contains("use ms, s"),
                "{err}"
            );
        }
    }
}
