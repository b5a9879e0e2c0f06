//! Memory series (RSS + swap on Linux, the physical footprint on macOS) and the robust fit
//! that tells sustained growth from a spike or a start-up ramp.
//!
//! The slope is Theil–Sen's (the median of the slopes between every pair of samples):
//! a spike or a single step moves a minority of the pairs, so unlike least squares it does
//! not tilt the line. A verdict also needs the memory to still be up at the end
//! ([`Growth::rise_bytes`]), so a line fitted through a rise that was given back does not
//! count either.
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Enough points for a robust fit (128 samples make 8,128 pairs) while bounding memory
/// per tracked process.
pub const MAX_SAMPLES: usize = 128;

const NS_PER_SECOND: f64 = 1e9;

/// Below this share of one CPU over the span a process counts as idle.
const IDLE_CPU_SHARE: f64 = 0.01;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    t_ns: u64,
    rss_bytes: u64,
    cpu_ns: Option<u64>,
}

/// One process's RSS over a sliding window, oldest first.
#[derive(Clone, Debug, Default)]
pub struct RssSeries {
    samples: VecDeque<Sample>,
}

impl RssSeries {
    /// Adds a sample and drops those older than `window_ns` before `t_ns`. A sample at the
    /// same time as the last replaces it; one older than the last is stale and ignored.
    /// Past [`MAX_SAMPLES`] the older half is thinned, so the window keeps its span and
    /// shape with fewer points where they matter least.
    pub fn push(&mut self, t_ns: u64, rss_bytes: u64, cpu_ns: Option<u64>, window_ns: u64) {
        let sample = Sample {
            t_ns,
            rss_bytes,
            cpu_ns,
        };
        match self.samples.back() {
            Some(last) if t_ns < last.t_ns => return,
            Some(last) if t_ns == last.t_ns => {
                self.samples.pop_back();
            }
            _ => {}
        }
        self.samples.push_back(sample);
        self.expire(t_ns.saturating_sub(window_ns));
        if self.samples.len() > MAX_SAMPLES {
            self.thin_older_half();
        }
    }

    pub fn last_rss(&self) -> Option<u64> {
        self.samples.back().map(|s| s.rss_bytes)
    }

    pub fn last_time_ns(&self) -> Option<u64> {
        self.samples.back().map(|s| s.t_ns)
    }

    /// When the memory last rose: the latest sample above the one before it. A reading
    /// that only brought a busy process's CPU time repeats the memory and is no rise.
    pub fn last_rise_ns(&self) -> Option<u64> {
        let mut later = self.samples.iter().rev();
        let mut newer = later.next()?;
        for older in later {
            if newer.rss_bytes > older.rss_bytes {
                return Some(newer.t_ns);
            }
            newer = older;
        }
        None
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The fit over the samples held (all within the window ending at the last one);
    /// `None` with fewer than 3.
    pub fn growth(&self) -> Option<Growth> {
        if self.samples.len() < 3 {
            return None;
        }
        let first = *self.samples.front()?;
        let last = *self.samples.back()?;
        let points = self.points(first);
        let slope = theil_sen_slope(&points);
        let span_seconds = points.last()?.0;
        let cpu_seconds = cpu_between(&first, &last);
        let smallest = self.samples.iter().map(|s| s.rss_bytes).min()?;
        let middle_ns = first.t_ns + (last.t_ns - first.t_ns) / 2;
        let late_smallest = self
            .samples
            .iter()
            .filter(|s| s.t_ns >= middle_ns)
            .map(|s| s.rss_bytes)
            .min()?;
        Some(Growth {
            slope_bytes_per_second: slope,
            fitted_growth_bytes: slope * span_seconds,
            r_squared: r_squared(&points, slope),
            rise_bytes: last.rss_bytes.saturating_sub(smallest),
            late_rise_bytes: last.rss_bytes.saturating_sub(late_smallest),
            span_seconds,
            samples: points.len(),
            from_bytes: first.rss_bytes,
            to_bytes: last.rss_bytes,
            cpu_seconds,
            idle: cpu_seconds.map(|cpu| cpu < IDLE_CPU_SHARE * span_seconds),
        })
    }

    fn expire(&mut self, oldest_kept_ns: u64) {
        while self
            .samples
            .front()
            .is_some_and(|s| s.t_ns < oldest_kept_ns)
        {
            self.samples.pop_front();
        }
    }

    /// Drops every other sample of the older half, keeping the oldest so the span stays.
    fn thin_older_half(&mut self) {
        let older = self.samples.len() / 2;
        let mut index = 0;
        self.samples.retain(|_| {
            let keep = index >= older || index % 2 == 0;
            index += 1;
            keep
        });
    }

    /// (seconds, bytes) relative to the first sample: small numbers keep f64 exact where
    /// epoch nanoseconds (~1.7e18) would lose the low bits.
    fn points(&self, first: Sample) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .map(|s| {
                let t = (s.t_ns - first.t_ns) as f64 / NS_PER_SECOND;
                let y = (i128::from(s.rss_bytes) - i128::from(first.rss_bytes)) as f64;
                (t, y)
            })
            .collect()
    }
}

/// What the fit says about one window of RSS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Growth {
    /// Theil–Sen slope: the median of the slopes between every pair of samples.
    pub slope_bytes_per_second: f64,
    /// The slope over the span of the samples.
    pub fitted_growth_bytes: f64,
    /// How well the Theil–Sen line explains the samples, 0 to 1 (1 for a flat series).
    pub r_squared: f64,
    /// The last sample above the smallest one, 0 when the last is the smallest.
    pub rise_bytes: u64,
    /// The last sample above the smallest of the span's second half: what it still grew
    /// lately.
    #[serde(default)]
    pub late_rise_bytes: u64,
    pub span_seconds: f64,
    pub samples: usize,
    pub from_bytes: u64,
    pub to_bytes: u64,
    /// CPU time used between the first and last sample; `None` if either is unknown.
    pub cpu_seconds: Option<f64>,
    /// Used less than 1% of one CPU over the span.
    pub idle: Option<bool>,
}

impl Growth {
    /// The verdict's rule: a steady rise, not a spike. The fitted line must climb more
    /// than `threshold_bytes`, which a spike cannot make it do, and the memory must still
    /// be that far above its low point, which a rise given back is not.
    pub fn exceeds(&self, threshold_bytes: u64) -> bool {
        self.fitted_growth_bytes > threshold_bytes as f64 && self.rise_bytes > threshold_bytes
    }

    /// `rss_growth`'s rule: [`Growth::exceeds`], over evidence that covers at least a
    /// quarter of the window, and still growing in the second half of it (by a quarter of
    /// the threshold). A process that allocates while it starts and then holds still has
    /// neither: its samples end with the ramp, or the later ones are flat.
    pub fn sustained(&self, threshold_bytes: u64, window_ns: u64) -> bool {
        self.exceeds(threshold_bytes)
            && self.span_seconds * NS_PER_SECOND >= window_ns as f64 / 4.0
            && self.late_rise_bytes >= threshold_bytes / 4
    }
}

/// The least r² a fit needs to count in the memory forecast: the line must explain the
/// samples, not average a sawtooth or a spike into a trend.
pub const FORECAST_MIN_R_SQUARED: f64 = 0.8;
/// A fit stops counting in the forecast once its process's memory has not risen for this
/// many of its usual sample spacings...
pub const FORECAST_QUIET_SPACINGS: f64 = 4.0;
/// ...and at least this long, so that a late tick does not take it out and back in.
pub const FORECAST_QUIET_FLOOR_NS: u64 = 5_000_000_000;

impl Growth {
    /// What this fit adds to the machine's memory forecast, in bytes per second; None when
    /// it adds nothing. The same fit as `rss_growth`'s, with a lower bar (a forecast must
    /// see growth well before it passes --rss-growth) but the same wish for a trend:
    /// - the slope is positive, and the line explains the samples (r² at least
    ///   [`FORECAST_MIN_R_SQUARED`]);
    /// - the samples span an eighth of the window, so a start-up's first readings are not
    ///   taken for a trend;
    /// - it still rose in the second half of its span;
    /// - it has not gone quiet: its memory rose within [`FORECAST_QUIET_SPACINGS`] of its
    ///   mean sample spacing (at least [`FORECAST_QUIET_FLOOR_NS`]) before now
    ///   (`since_rise_ns`). The sampler reports nothing while memory holds within
    ///   --rss-step, so a process that stopped growing keeps its last fit, growing, until
    ///   new samples flatten it; silence where a grower at this pace would have brought
    ///   several is what says it stopped.
    pub fn forecast_rate(&self, window_ns: u64, since_rise_ns: u64) -> Option<f64> {
        let trend = self.slope_bytes_per_second > 0.0
            && self.r_squared >= FORECAST_MIN_R_SQUARED
            && self.span_seconds * NS_PER_SECOND >= window_ns as f64 / 8.0
            && self.late_rise_bytes > 0;
        let spacing_ns =
            self.span_seconds * NS_PER_SECOND / self.samples.saturating_sub(1).max(1) as f64;
        let quiet_ns = (FORECAST_QUIET_SPACINGS * spacing_ns).max(FORECAST_QUIET_FLOOR_NS as f64);
        (trend && (since_rise_ns as f64) <= quiet_ns).then_some(self.slope_bytes_per_second)
    }
}

fn cpu_between(first: &Sample, last: &Sample) -> Option<f64> {
    let used = last.cpu_ns?.checked_sub(first.cpu_ns?)?;
    Some(used as f64 / NS_PER_SECOND)
}

/// Pairs at the same time carry no slope and are skipped; `points` has strictly
/// increasing times, so none are.
fn theil_sen_slope(points: &[(f64, f64)]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * (points.len() - 1) / 2);
    for (i, &(x1, y1)) in points.iter().enumerate() {
        for &(x2, y2) in &points[i + 1..] {
            if x2 != x1 {
                slopes.push((y2 - y1) / (x2 - x1));
            }
        }
    }
    median(&mut slopes).unwrap_or(0.0)
}

/// 1 − SS_res/SS_tot of the line with the given slope and the median intercept.
fn r_squared(points: &[(f64, f64)], slope: f64) -> f64 {
    let mut offsets: Vec<f64> = points.iter().map(|&(x, y)| y - slope * x).collect();
    let intercept = median(&mut offsets).unwrap_or(0.0);
    let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let ss_tot: f64 = points.iter().map(|&(_, y)| (y - mean).powi(2)).sum();
    if ss_tot == 0.0 {
        return 1.0;
    }
    let ss_res: f64 = points
        .iter()
        .map(|&(x, y)| (y - (intercept + slope * x)).powi(2))
        .sum();
    (1.0 - ss_res / ss_tot).clamp(0.0, 1.0)
}

/// The median, averaging the two middle values of an even count; reorders `values`.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let odd = values.len() % 2 == 1;
    let mid = values.len() / 2;
    let (lower, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if odd {
        return Some(upper);
    }
    let below = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((below + upper) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const SECOND: u64 = 1_000_000_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    /// Epoch-scale times, where f64 nanoseconds would lose precision.
    const T0: u64 = 1_700_000_000 * SECOND;

    /// One sample every `step_ns` from T0, RSS from `rss(i)`, CPU unknown.
    fn series(n: u64, step_ns: u64, window_ns: u64, rss: impl Fn(u64) -> u64) -> RssSeries {
        let mut s = RssSeries::default();
        for i in 0..n {
            s.push(T0 + i * step_ns, rss(i), None, window_ns);
        }
        s
    }

    /// Deterministic noise in [-1, 1): tests must not depend on a seed that changes.
    fn noise(i: u64) -> f64 {
        let x = i
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= tolerance * expected.abs()
    }

    #[test]
    fn fewer_than_three_samples_have_no_fit() {
        let mut s = RssSeries::default();
        assert_eq!(s.growth(), None);
        assert_eq!(s.last_rss(), None);
        s.push(T0, MIB, None, HOUR);
        s.push(T0 + SECOND, 2 * MIB, None, HOUR);
        assert_eq!(s.growth(), None);
        assert_eq!(s.last_rss(), Some(2 * MIB));
        s.push(T0 + 2 * SECOND, 3 * MIB, None, HOUR);
        assert!(s.growth().is_some());
    }

    #[test]
    fn steady_linear_growth_is_growth() {
        // 1 MiB every 10 s for 10 minutes: 60 MiB.
        let s = series(61, 10 * SECOND, HOUR, |i| 200 * MIB + i * MIB);
        let g = s.growth().unwrap();
        let per_second = MIB as f64 / 10.0;
        assert!(close(g.slope_bytes_per_second, per_second, 0.01), "{g:?}");
        assert!(
            close(g.fitted_growth_bytes, (60 * MIB) as f64, 0.01),
            "{g:?}"
        );
        assert!(g.r_squared > 0.9999, "{g:?}");
        assert_eq!(g.rise_bytes, 60 * MIB);
        assert_eq!((g.from_bytes, g.to_bytes), (200 * MIB, 260 * MIB));
        assert_eq!(g.samples, 61);
        assert!(close(g.span_seconds, 600.0, 1e-12));
        assert!(g.exceeds(50 * MIB));
        assert!(!g.exceeds(60 * MIB), "more than the threshold, not equal");
    }

    #[test]
    fn noisy_steady_growth_is_growth() {
        // 100 MiB over 20 minutes with ±8 MiB of jitter on every sample.
        let s = series(121, 10 * SECOND, HOUR, |i| {
            let y = 300.0 * MIB as f64 + i as f64 * (100 * MIB / 120) as f64;
            (y + noise(i) * 8.0 * MIB as f64) as u64
        });
        let g = s.growth().unwrap();
        let per_second = (100 * MIB / 120) as f64 / 10.0;
        assert!(close(g.slope_bytes_per_second, per_second, 0.05), "{g:?}");
        assert!(g.r_squared > 0.9, "{g:?}");
        assert!(g.exceeds(64 * MIB), "{g:?}");
    }

    #[test]
    fn a_spike_in_the_middle_is_not_growth() {
        for width in [1, 2] {
            let s = series(30, 10 * SECOND, HOUR, |i| {
                if (15..15 + width).contains(&i) {
                    900 * MIB
                } else {
                    100 * MIB
                }
            });
            let g = s.growth().unwrap();
            assert_eq!(g.slope_bytes_per_second, 0.0, "{g:?}");
            assert_eq!(g.rise_bytes, 0);
            assert!(!g.exceeds(MIB), "{g:?}");
        }
    }

    #[test]
    fn a_spike_near_the_end_that_came_back_is_not_growth() {
        let s = series(30, 10 * SECOND, HOUR, |i| match i {
            27 | 28 => 900 * MIB,
            _ => 100 * MIB,
        });
        let g = s.growth().unwrap();
        assert!(!g.exceeds(MIB), "{g:?}");
    }

    #[test]
    fn a_spike_at_the_last_sample_is_not_growth() {
        for width in [1, 2] {
            let s = series(30, 10 * SECOND, HOUR, |i| {
                if i >= 30 - width {
                    900 * MIB
                } else {
                    100 * MIB
                }
            });
            let g = s.growth().unwrap();
            assert_eq!(g.rise_bytes, 800 * MIB, "the memory is up now");
            assert_eq!(g.slope_bytes_per_second, 0.0, "{g:?}");
            assert!(!g.exceeds(MIB), "{g:?}");
        }
    }

    #[test]
    fn an_old_step_that_stayed_flat_is_not_growth() {
        // Up by 500 MiB in the first minute of a 10-minute window, flat since.
        let s = series(61, 10 * SECOND, HOUR, |i| {
            if i < 6 { 100 * MIB } else { 600 * MIB }
        });
        let g = s.growth().unwrap();
        assert_eq!(g.rise_bytes, 500 * MIB);
        assert_eq!(g.slope_bytes_per_second, 0.0, "{g:?}");
        assert!(!g.exceeds(MIB), "{g:?}");
    }

    #[test]
    fn decreasing_memory_is_not_growth() {
        let s = series(60, 10 * SECOND, HOUR, |i| 900 * MIB - i * MIB);
        let g = s.growth().unwrap();
        assert!(g.slope_bytes_per_second < 0.0);
        assert!(g.fitted_growth_bytes < 0.0);
        assert_eq!(g.rise_bytes, 0);
        assert!(!g.exceeds(0));
    }

    #[test]
    fn growth_given_back_is_not_growth() {
        // Climbs for most of the window, then frees it all in the last samples.
        let s = series(40, 10 * SECOND, HOUR, |i| {
            if i < 36 {
                100 * MIB + i * 10 * MIB
            } else {
                100 * MIB
            }
        });
        let g = s.growth().unwrap();
        assert!(g.fitted_growth_bytes > (200 * MIB) as f64, "{g:?}");
        assert!(!g.exceeds(MIB), "{g:?}");
    }

    #[test]
    fn a_flat_series_fits_perfectly() {
        let g = series(10, SECOND, HOUR, |_| 42 * MIB).growth().unwrap();
        assert_eq!(g.slope_bytes_per_second, 0.0);
        assert_eq!(g.r_squared, 1.0);
        assert_eq!(g.fitted_growth_bytes, 0.0);
    }

    #[test]
    fn r_squared_stays_in_range_for_noise() {
        let g = series(50, SECOND, HOUR, |i| {
            ((noise(i) + 1.0) * 100.0 * MIB as f64) as u64
        })
        .growth()
        .unwrap();
        assert!((0.0..=1.0).contains(&g.r_squared), "{g:?}");
        assert!(g.r_squared < 0.5, "{g:?}");
    }

    #[test]
    fn idle_when_cpu_is_under_one_percent() {
        let mut s = RssSeries::default();
        // 100 s of samples; 0.5 s of CPU is 0.5%.
        for i in 0..11 {
            s.push(T0 + i * 10 * SECOND, MIB, Some(i * 50_000_000), HOUR);
        }
        let g = s.growth().unwrap();
        assert!(close(g.cpu_seconds.unwrap(), 0.5, 1e-9), "{g:?}");
        assert_eq!(g.idle, Some(true));

        let mut busy = RssSeries::default();
        for i in 0..11 {
            busy.push(T0 + i * 10 * SECOND, MIB, Some(i * 200_000_000), HOUR);
        }
        let g = busy.growth().unwrap();
        assert!(close(g.cpu_seconds.unwrap(), 2.0, 1e-9), "{g:?}");
        assert_eq!(g.idle, Some(false));
    }

    #[test]
    fn idle_unknown_without_cpu_at_both_ends() {
        let mut s = RssSeries::default();
        s.push(T0, MIB, None, HOUR);
        s.push(T0 + SECOND, MIB, Some(5), HOUR);
        s.push(T0 + 2 * SECOND, MIB, Some(10), HOUR);
        let g = s.growth().unwrap();
        assert_eq!((g.cpu_seconds, g.idle), (None, None));

        let mut s = RssSeries::default();
        s.push(T0, MIB, Some(5), HOUR);
        s.push(T0 + SECOND, MIB, Some(5), HOUR);
        s.push(T0 + 2 * SECOND, MIB, None, HOUR);
        let g = s.growth().unwrap();
        assert_eq!((g.cpu_seconds, g.idle), (None, None));
    }

    #[test]
    fn cpu_going_backwards_is_unknown() {
        let mut s = RssSeries::default();
        s.push(T0, MIB, Some(SECOND), HOUR);
        s.push(T0 + SECOND, MIB, Some(SECOND), HOUR);
        s.push(T0 + 2 * SECOND, MIB, Some(0), HOUR);
        assert_eq!(s.growth().unwrap().cpu_seconds, None);
    }

    #[test]
    fn old_samples_leave_the_window() {
        // Growth long ago, flat for the last 10 minutes.
        let mut s = RssSeries::default();
        for i in 0..60 {
            s.push(
                T0 + i * 10 * SECOND,
                100 * MIB + i * 10 * MIB,
                None,
                10 * MINUTE,
            );
        }
        let top = s.last_rss().unwrap();
        let end = T0 + 59 * 10 * SECOND;
        for i in 1..=60 {
            s.push(end + i * 10 * SECOND, top, None, 10 * MINUTE);
        }
        let g = s.growth().unwrap();
        assert_eq!(
            g.samples, 61,
            "10 minutes of 10 s samples, both ends included"
        );
        assert!(close(g.span_seconds, 600.0, 1e-12));
        assert_eq!((g.from_bytes, g.to_bytes, g.rise_bytes), (top, top, 0));
        assert!(!g.exceeds(0));
    }

    #[test]
    fn a_gap_longer_than_the_window_starts_over() {
        let mut s = series(10, SECOND, MINUTE, |i| i * MIB);
        s.push(T0 + HOUR, 5 * MIB, None, MINUTE);
        assert_eq!(s.len(), 1);
        assert_eq!(s.growth(), None);
    }

    #[test]
    fn same_time_replaces_and_older_is_ignored() {
        let mut s = series(3, SECOND, HOUR, |_| MIB);
        s.push(T0 + 2 * SECOND, 7 * MIB, None, HOUR);
        assert_eq!((s.len(), s.last_rss()), (3, Some(7 * MIB)));
        s.push(T0, 9 * MIB, None, HOUR);
        assert_eq!((s.len(), s.last_rss()), (3, Some(7 * MIB)));
        assert_eq!(s.last_time_ns(), Some(T0 + 2 * SECOND));
    }

    #[test]
    fn memory_stays_bounded_and_the_shape_survives() {
        // 100k samples at 100 ms, all inside a day-long window: steady 1 KiB per sample.
        let n = 100_000;
        let s = series(n, SECOND / 10, 24 * HOUR, |i| 100 * MIB + i * 1024);
        assert!(s.len() <= MAX_SAMPLES, "{} samples", s.len());
        assert!(s.len() >= MAX_SAMPLES / 2, "{} samples", s.len());
        let g = s.growth().unwrap();
        assert_eq!(g.from_bytes, 100 * MIB, "the oldest sample is kept");
        assert_eq!(g.to_bytes, 100 * MIB + (n - 1) * 1024);
        assert!(close(g.span_seconds, (n - 1) as f64 / 10.0, 1e-9), "{g:?}");
        assert!(close(g.slope_bytes_per_second, 10_240.0, 0.01), "{g:?}");
        assert!(g.r_squared > 0.9999, "{g:?}");
    }

    #[test]
    fn thinning_keeps_the_newest_samples_dense() {
        let s = series(MAX_SAMPLES as u64 + 1, SECOND, HOUR, |i| i);
        let times: Vec<u64> = s.samples.iter().map(|x| (x.t_ns - T0) / SECOND).collect();
        let newest: Vec<u64> = (64..=128).collect();
        assert!(times.ends_with(&newest), "{times:?}");
        assert_eq!(times[..3], [0, 2, 4]);
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn serializes_for_alerts() {
        let g = series(3, SECOND, HOUR, |i| i * MIB).growth().unwrap();
        let json = serde_json::to_value(&g).unwrap();
        assert_eq!(json["rise_bytes"], 2 * MIB);
        assert_eq!(json["idle"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Growth>(json).unwrap(), g);
    }

    #[test]
    fn steady_growth_counts_in_the_forecast_until_it_goes_quiet() {
        // 1 MiB every 250 ms over 4 s of a 30 s window.
        let s = series(17, SECOND / 4, 30 * SECOND, |i| 100 * MIB + i * MIB);
        let g = s.growth().unwrap();
        let rate = g.forecast_rate(30 * SECOND, 0).unwrap();
        assert!(close(rate, 4.0 * MIB as f64, 1e-9), "{rate}");
        // Spaced 250 ms: four spacings are 1 s, so the 5 s floor decides.
        assert_eq!(g.forecast_rate(30 * SECOND, 5 * SECOND), Some(rate));
        assert_eq!(g.forecast_rate(30 * SECOND, 5 * SECOND + 1), None);
    }

    #[test]
    fn sparse_growth_may_be_quiet_longer() {
        // A leak that the sampler sees once a minute: quiet for 3 minutes is its pace.
        let g = series(30, MINUTE, HOUR, |i| i * 8 * MIB).growth().unwrap();
        assert!(g.forecast_rate(HOUR, 3 * MINUTE).is_some());
        assert_eq!(g.forecast_rate(HOUR, 5 * MINUTE), None);
    }

    #[test]
    fn only_a_trend_counts_in_the_forecast() {
        let window = 30 * SECOND;
        let flat = series(20, SECOND / 4, window, |_| 100 * MIB);
        let falling = series(20, SECOND / 4, window, |i| 200 * MIB - i * MIB);
        // Up a little, down a lot, in turn: a positive median slope with no line in it.
        let sawtooth = series(40, SECOND / 4, window, |i| {
            let base = 100 * MIB + i * MIB / 8;
            if i % 2 == 0 { base + 60 * MIB } else { base }
        });
        // Growth over one second of a 30 s window: too short to be a trend yet.
        let young = series(5, SECOND / 4, window, |i| i * MIB);
        // Grew, then held still for the second half (busy: readings keep coming).
        let stopped = series(20, SECOND / 4, window, |i| i.min(8) * MIB);
        for (what, s) in [
            ("flat", flat),
            ("falling", falling),
            ("sawtooth", sawtooth),
            ("young", young),
            ("stopped", stopped),
        ] {
            let g = s.growth().unwrap();
            assert_eq!(g.forecast_rate(window, 0), None, "{what}: {g:?}");
        }
    }

    #[test]
    fn the_last_rise_is_not_a_repeated_reading() {
        let mut s = RssSeries::default();
        assert_eq!(s.last_rise_ns(), None);
        s.push(T0, 10 * MIB, None, HOUR);
        assert_eq!(s.last_rise_ns(), None, "one sample is no rise");
        s.push(T0 + SECOND, 12 * MIB, None, HOUR);
        // CPU readings of a busy process that holds still, and one that gave some back.
        s.push(T0 + 2 * SECOND, 12 * MIB, Some(1), HOUR);
        s.push(T0 + 3 * SECOND, 11 * MIB, Some(2), HOUR);
        assert_eq!(s.last_rise_ns(), Some(T0 + SECOND));
        s.push(T0 + 4 * SECOND, 11 * MIB + 1, None, HOUR);
        assert_eq!(s.last_rise_ns(), Some(T0 + 4 * SECOND));
    }
}
