//! The machine's memory as a whole, as one read finds it: what there is, what is left and
//! whether tasks already stall waiting for it. Each OS reads it in its own file
//! (`linux_memory.rs`, `darwin_memory.rs`); the tracker keeps the latest reading.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}
