//! How often the OOM killers are looked for: every 30 s, not with each memory reading.
//! A look reads two small /proc files per process (its name and oom_score) and, when
//! they run, earlyoom's command line and systemd-oomd's files; which killers run, their
//! thresholds and the top of the oom_score order change seldom, and the forecast they
//! feed looks minutes ahead. Between looks each machine reading carries the last one.
use crate::host::OomKillers;

/// The pace of the looks.
pub const KILLER_EVERY_NS: u64 = 30_000_000_000;

#[derive(Debug, Default)]
pub struct KillerSampler {
    next_ns: u64,
    latest: Option<OomKillers>,
}

impl KillerSampler {
    /// The latest look, taking a new one with `look` when the last is `KILLER_EVERY_NS`
    /// old (or there was none).
    pub fn latest(&mut self, now_ns: u64, look: impl FnOnce() -> OomKillers) -> OomKillers {
        if self.latest.is_none() || now_ns >= self.next_ns {
            self.latest = Some(look());
            self.next_ns = now_ns.saturating_add(KILLER_EVERY_NS);
        }
        self.latest.clone().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_its_own_pace() {
        let mut sampler = KillerSampler::default();
        let mut looks = 0;
        let mut look = |level| {
            looks += 1;
            OomKillers {
                macos_pressure_level: Some(level),
                ..OomKillers::default()
            }
        };
        let t0 = 1_000_000_000_000;
        assert_eq!(sampler.latest(t0, || look(1)).macos_pressure_level, Some(1));
        let again = sampler.latest(t0 + KILLER_EVERY_NS - 1, || look(2));
        assert_eq!(
            again.macos_pressure_level,
            Some(1),
            "not due: the last look"
        );
        let due = sampler.latest(t0 + KILLER_EVERY_NS, || look(4));
        assert_eq!(due.macos_pressure_level, Some(4));
        assert_eq!(looks, 2);
    }
}
