//! Which measure of memory a total adds up, and the total itself. On Linux a process's
//! RSS counts every shared page in full, so 30 processes sharing a runtime count it 30
//! times; PSS (smaps_rollup) divides each page among those mapping it, so PSS adds up to
//! what the processes really hold. But PSS is read every `--pss-interval`, and a total
//! that took PSS from some members and RSS from others would be neither: a total uses PSS
//! only when every member whose memory is known has a PSS reading, and says so. macOS has
//! neither smaps nor a PSS; its physical footprint stands in, as it always has. Pure.
use serde::{Deserialize, Serialize};

/// The measure a total of memory uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMeasure {
    /// PSS + SwapPss (Linux): shared pages divided among the processes mapping them.
    Pss,
    /// RSS + swap: shared pages counted once per process that maps them. What a document
    /// from a daemon older than the field summed.
    #[default]
    Rss,
    /// macOS's physical footprint (Activity Monitor's Memory).
    Footprint,
}

impl MemoryMeasure {
    /// Every value: the metrics' `measure` label takes no other.
    pub const ALL: [MemoryMeasure; 3] = [Self::Pss, Self::Rss, Self::Footprint];

    /// The name serde and the metrics give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pss => "pss",
            Self::Rss => "rss",
            Self::Footprint => "footprint",
        }
    }
}

/// What one process holds, by each measure its source has read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// RSS + swap (swap counts 0 where unknown); None until RSS is read.
    pub rss_bytes: Option<u64>,
    /// PSS + SwapPss; None until PSS is read (always, off Linux).
    pub pss_bytes: Option<u64>,
    /// macOS's footprint; None elsewhere.
    pub footprint_bytes: Option<u64>,
}

impl Held {
    pub fn new(
        rss_bytes: Option<u64>,
        swap_bytes: Option<u64>,
        pss_bytes: Option<u64>,
        swap_pss_bytes: Option<u64>,
        footprint_bytes: Option<u64>,
    ) -> Self {
        let plus = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_add(b.unwrap_or(0)));
        Self {
            rss_bytes: plus(rss_bytes, swap_bytes),
            pss_bytes: plus(pss_bytes, swap_pss_bytes),
            footprint_bytes,
        }
    }
}

/// A sum of what processes hold, kept by every measure so that the one used can be chosen
/// once all are in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Total {
    /// Processes whose memory is known by some measure.
    known: u64,
    /// Of those, how many have a PSS reading, and how many a footprint.
    with_pss: u64,
    with_footprint: u64,
    rss_bytes: u64,
    pss_bytes: u64,
    /// Footprints, and RSS + swap for a process without one.
    footprint_bytes: u64,
}

impl Total {
    pub fn add(&mut self, held: Held) {
        let Some(rss) = held.rss_bytes.or(held.footprint_bytes) else {
            return;
        };
        self.known += 1;
        self.rss_bytes = self.rss_bytes.saturating_add(rss);
        if let Some(pss) = held.pss_bytes {
            self.with_pss += 1;
            self.pss_bytes = self.pss_bytes.saturating_add(pss);
        }
        self.with_footprint += u64::from(held.footprint_bytes.is_some());
        self.footprint_bytes = self
            .footprint_bytes
            .saturating_add(held.footprint_bytes.unwrap_or(rss));
    }

    /// The measure this total uses: the footprint where any member has one (macOS, where
    /// a member without one counts by RSS, as before PSS); PSS when every member whose
    /// memory is known has a PSS reading; RSS otherwise (and when nothing is known).
    pub fn measure(&self) -> MemoryMeasure {
        if self.with_footprint > 0 {
            MemoryMeasure::Footprint
        } else if self.known > 0 && self.with_pss == self.known {
            MemoryMeasure::Pss
        } else {
            MemoryMeasure::Rss
        }
    }

    /// The total by [`Total::measure`].
    pub fn bytes(&self) -> u64 {
        match self.measure() {
            MemoryMeasure::Pss => self.pss_bytes,
            MemoryMeasure::Rss => self.rss_bytes,
            MemoryMeasure::Footprint => self.footprint_bytes,
        }
    }

    /// RSS + swap summed, whatever the measure: what RSS alone would say.
    pub fn rss_bytes(&self) -> u64 {
        self.rss_bytes
    }
}

impl FromIterator<Held> for Total {
    fn from_iter<I: IntoIterator<Item = Held>>(held: I) -> Self {
        let mut total = Total::default();
        for h in held {
            total.add(h);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn linux(rss: u64, pss: Option<u64>) -> Held {
        Held::new(
            Some(rss * MIB),
            Some(0),
            pss.map(|p| p * MIB),
            Some(0),
            None,
        )
    }

    #[test]
    fn pss_when_every_member_has_it() {
        // 20 processes sharing 64 MiB, each with 1 MiB of its own: RSS says 1300 MiB.
        let total: Total = (0..20).map(|_| linux(65, Some(64 / 20 + 1))).collect();
        assert_eq!(total.measure(), MemoryMeasure::Pss);
        assert_eq!(total.bytes(), 20 * (64 / 20 + 1) * MIB);
        assert_eq!(total.rss_bytes(), 1300 * MIB);
    }

    #[test]
    fn rss_for_all_when_one_member_has_no_pss_yet() {
        let mut members: Vec<Held> = (0..3).map(|_| linux(100, Some(40))).collect();
        members.push(linux(10, None));
        let total: Total = members.into_iter().collect();
        assert_eq!(total.measure(), MemoryMeasure::Rss);
        assert_eq!(total.bytes(), 310 * MIB, "RSS throughout, never a mix");
    }

    #[test]
    fn unknown_members_add_nothing_and_decide_nothing() {
        let total: Total = [linux(100, Some(40)), Held::default()]
            .into_iter()
            .collect();
        assert_eq!(
            (total.measure(), total.bytes()),
            (MemoryMeasure::Pss, 40 * MIB)
        );
        let none = Total::default();
        assert_eq!((none.measure(), none.bytes()), (MemoryMeasure::Rss, 0));
    }

    #[test]
    fn swap_counts_by_each_measure() {
        let held = Held::new(Some(10), Some(5), Some(4), Some(3), None);
        assert_eq!((held.rss_bytes, held.pss_bytes), (Some(15), Some(7)));
        let no_swap_known = Held::new(Some(10), None, Some(4), None, None);
        assert_eq!(
            (no_swap_known.rss_bytes, no_swap_known.pss_bytes),
            (Some(10), Some(4))
        );
        assert_eq!(
            Held::new(None, Some(5), None, Some(3), None),
            Held::default()
        );
    }

    #[test]
    fn macos_keeps_the_footprint() {
        let mac = |rss, footprint| Held::new(Some(rss), None, None, None, footprint);
        let total: Total = [mac(10, Some(40)), mac(20, None)].into_iter().collect();
        assert_eq!(total.measure(), MemoryMeasure::Footprint);
        assert_eq!(
            total.bytes(),
            60,
            "a member without a footprint counts by RSS"
        );
        assert_eq!(total.rss_bytes(), 30);
    }

    #[test]
    fn names_match_serde() {
        for measure in MemoryMeasure::ALL {
            assert_eq!(serde_json::to_value(measure).unwrap(), measure.name());
        }
    }
}
