//! The machine's memory as a whole, as one read finds it: what there is, what is left and
//! whether tasks already stall waiting for it, and the OOM killers that act when it runs
//! short. Each OS reads it in its own file (`linux_memory.rs`, `darwin_memory.rs`); the
//! killers are looked for far less often (source/killer.rs) and ride along with each
//! reading; the tracker keeps the latest.
use serde::{Deserialize, Serialize};

use super::OomKillers;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineMemory {
    /// The machine's RAM (Linux MemTotal, macOS hw.memsize): what "% of RAM" is of.
    #[serde(default)]
    pub ram_bytes: Option<u64>,
    /// Linux: RAM plus swap (MemTotal + SwapTotal), the most `available_bytes` can be.
    /// macOS: RAM (hw.memsize). None when unreadable.
    pub total_bytes: Option<u64>,
    /// What can still be allocated before memory runs out. Linux: MemAvailable plus
    /// SwapFree. macOS: free, inactive and purgeable pages. None when unreadable.
    pub available_bytes: Option<u64>,
    /// Linux PSI (/proc/pressure/memory): the share of the last 10 s, in percent, in which
    /// at least one task stalled waiting for memory. None where the kernel has no PSI
    /// (macOS, a kernel built or booted without it).
    pub pressure_some_avg10: Option<f64>,
    /// PSI's `full avg10`: the share in which every task stalled at once, the figure
    /// systemd-oomd's pressure limits are set in. None where there is no PSI.
    #[serde(default)]
    pub pressure_full_avg10: Option<f64>,
    /// The OOM killers the source last found (see [`OomKillers`]); None until looked for
    /// (a recording, a one-shot read that did not look, a daemon older than the field).
    #[serde(default)]
    pub killers: Option<OomKillers>,
}
