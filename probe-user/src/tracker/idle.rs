//! How long a process has sat idle, from the CPU readings its source hands on: since the
//! start of the last run of readings that each show it using under 1% of a CPU.
//!
//! The sampler (source::memory) reads CPU time every `--cpu-window`/5 (at most 10 s) and
//! hands a reading on when the CPU time moved since its last read, and once more when it
//! stopped moving; readings that did not move are not handed on again. So a silence means
//! no CPU was used, and what a reading after a silence shows was used since the read
//! before it, at most one read interval earlier: a short burst after a long quiet stretch
//! is measured over that interval, not spread over the whole stretch.

/// Below this share of one CPU a process counts as idle (the growth fit's notion too).
pub const IDLE_SHARE: f64 = 0.01;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    /// The last reading: (time, CPU time), Unix-epoch and CPU nanoseconds.
    last: Option<(u64, u64)>,
    /// When its current idle stretch began; None while it is busy.
    since_ns: Option<u64>,
    /// Two readings were taken: whether it is idle is known.
    known: bool,
}

impl Idle {
    /// Takes a reading of `cpu_ns` at `t_ns`. `read_every_ns` is the sampler's CPU read
    /// interval (0 when readings come with no such promise, as from a recording).
    pub fn read(&mut self, t_ns: u64, cpu_ns: u64, read_every_ns: u64) {
        let Some((t0, cpu0)) = self.last else {
            self.last = Some((t_ns, cpu_ns));
            return;
        };
        if t_ns <= t0 {
            return;
        }
        let gap = t_ns - t0;
        let span = if read_every_ns > 0 {
            gap.min(read_every_ns)
        } else {
            gap
        };
        let used = cpu_ns.saturating_sub(cpu0);
        if (used as f64) < IDLE_SHARE * span as f64 {
            self.since_ns.get_or_insert(t0);
        } else {
            self.since_ns = None;
        }
        self.known = true;
        self.last = Some((t_ns, cpu_ns));
    }

    /// Seconds it has been idle at `now_ns`: 0 while busy, None until two readings.
    pub fn seconds(&self, now_ns: u64) -> Option<f64> {
        if !self.known {
            return None;
        }
        Some(
            self.since_ns
                .map_or(0.0, |since| now_ns.saturating_sub(since) as f64 / 1e9),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    /// The sampler's read interval in these tests.
    const EVERY: u64 = 10 * S;

    #[test]
    fn unknown_until_two_readings() {
        let mut idle = Idle::default();
        assert_eq!(idle.seconds(100 * S), None);
        idle.read(S, 0, EVERY);
        assert_eq!(idle.seconds(100 * S), None);
        idle.read(11 * S, 0, EVERY);
        assert_eq!(idle.seconds(100 * S), Some(99.0), "idle since the first");
    }

    #[test]
    fn busy_is_zero_and_idle_counts_from_the_reading_that_began_it() {
        let mut idle = Idle::default();
        // Half a CPU for 20 s, then nothing.
        idle.read(0, 0, EVERY);
        idle.read(10 * S, 5 * S, EVERY);
        idle.read(20 * S, 10 * S, EVERY);
        assert_eq!(idle.seconds(25 * S), Some(0.0));
        idle.read(30 * S, 10 * S, EVERY);
        assert_eq!(idle.seconds(30 * S), Some(10.0));
        // Silence: no CPU used, so idle goes on.
        assert_eq!(idle.seconds(3600 * S), Some(3580.0));
    }

    #[test]
    fn under_one_percent_is_idle() {
        let mut idle = Idle::default();
        idle.read(0, 0, EVERY);
        // 0.5 % of a CPU, reported at every read because it moves.
        for i in 1..=6 {
            idle.read(i * EVERY, i * EVERY / 200, EVERY);
        }
        assert_eq!(idle.seconds(60 * S), Some(60.0));
        // 2 %: busy.
        idle.read(70 * S, 60 * S / 200 + EVERY / 50, EVERY);
        assert_eq!(idle.seconds(70 * S), Some(0.0));
    }

    #[test]
    fn a_burst_after_a_long_silence_ends_the_idle_stretch() {
        let mut idle = Idle::default();
        idle.read(0, 0, EVERY);
        idle.read(10 * S, 0, EVERY);
        // An hour of silence, then 2 s of CPU within the last read interval: 0.06 % of the
        // hour, 20 % of the interval it happened in.
        idle.read(3610 * S, 2 * S, EVERY);
        assert_eq!(idle.seconds(3610 * S), Some(0.0));
        // Without the sampler's promise the whole gap is the span.
        let mut plain = Idle::default();
        plain.read(0, 0, 0);
        plain.read(10 * S, 0, 0);
        plain.read(3610 * S, 2 * S, 0);
        assert_eq!(plain.seconds(3610 * S), Some(3610.0));
    }

    #[test]
    fn stale_or_repeated_readings_change_nothing() {
        let mut idle = Idle::default();
        idle.read(10 * S, 0, EVERY);
        idle.read(10 * S, 5 * S, EVERY);
        idle.read(5 * S, 9 * S, EVERY);
        assert_eq!(idle.seconds(20 * S), None);
        idle.read(20 * S, 0, EVERY);
        assert_eq!(idle.seconds(20 * S), Some(10.0));
    }
}
