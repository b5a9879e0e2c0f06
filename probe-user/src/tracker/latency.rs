//! The hangup-to-exit latencies of every process that exited after a hangup, as cumulative
//! bucket counts kept when each exit happens. `/metrics` reads them as they stand at the
//! scrape, so however many exits come between two scrapes, each is counted (the last
//! 256 kept for the sessions API are a sample, not the record).

/// Upper bounds, in seconds: a well-behaved process exits within milliseconds; the upper
/// buckets catch slow shutdowns that still end.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyCounts {
    /// Exits at or under each bound of [`BUCKETS`] (cumulative, as Prometheus counts).
    pub at_most: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyCounts {
    pub fn observe(&mut self, seconds: f64) {
        for (bound, n) in BUCKETS.iter().zip(self.at_most.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_slowest_counts_only_in_the_total() {
        let mut counts = LatencyCounts::default();
        for seconds in [0.0005, 0.2, 0.2, 30.0] {
            counts.observe(seconds);
        }
        assert_eq!(counts.at_most[0], 1);
        assert_eq!(counts.at_most[6], 3, "0.25");
        assert_eq!(counts.at_most[11], 3, "10");
        assert_eq!(counts.count, 4);
        assert!((counts.sum_seconds - 30.4005).abs() < 1e-9);
    }
}
