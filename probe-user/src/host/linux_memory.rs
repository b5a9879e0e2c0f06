//! Linux's machine-wide memory: /proc/meminfo for what there is and what is left,
//! /proc/pressure/memory (PSI) for whether tasks already stall waiting for it. The parsing
//! is pure and tested on any OS.
use std::fs;

use super::MachineMemory;

/// Reads both files now; what cannot be read is None.
pub fn read() -> MachineMemory {
    let mut memory = fs::read_to_string("/proc/meminfo")
        .map(|text| parse_meminfo(&text))
        .unwrap_or_default();
    if let Ok(text) = fs::read_to_string("/proc/pressure/memory") {
        memory.pressure_some_avg10 = parse_pressure(&text);
        memory.pressure_full_avg10 = parse_pressure_full(&text);
    }
    memory
}

/// Total and available from the text of /proc/meminfo. Swap counts on both sides: memory
/// runs out when RAM and swap are both gone, and the kernel pages a growing process out
/// before it fails. MemAvailable is the kernel's own estimate of what can be allocated
/// without swapping (free pages plus the page cache and slab it can reclaim); MemFree
/// alone would call a machine full of cache full.
pub fn parse_meminfo(text: &str) -> MachineMemory {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(kib)
    };
    // A kernel without swap configured still says `SwapTotal: 0 kB`; its absence is no swap.
    let swap_total = field("SwapTotal").unwrap_or(0);
    let swap_free = field("SwapFree").unwrap_or(0);
    MachineMemory {
        ram_bytes: field("MemTotal"),
        total_bytes: field("MemTotal").map(|ram| ram.saturating_add(swap_total)),
        available_bytes: field("MemAvailable").map(|ram| ram.saturating_add(swap_free)),
        ..MachineMemory::default()
    }
}

/// `some avg10` of /proc/pressure/memory, in percent.
pub fn parse_pressure(text: &str) -> Option<f64> {
    avg10(text, "some ")
}

/// `full avg10` of /proc/pressure/memory, in percent.
pub fn parse_pressure_full(text: &str) -> Option<f64> {
    avg10(text, "full ")
}

fn avg10(text: &str, line: &str) -> Option<f64> {
    let some = text.lines().find_map(|l| l.strip_prefix(line))?;
    some.split_whitespace()
        .find_map(|pair| pair.strip_prefix("avg10="))?
        .parse::<f64>()
        .ok()
        .filter(|share| share.is_finite() && *share >= 0.0)
}

/// `"  16318480 kB"` -> bytes; the kernel's kB are KiB.
fn kib(value: &str) -> Option<u64> {
    let value = value.trim();
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    number.parse::<u64>().ok()?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       16318480 kB\nMemFree:          512000 kB\nMemAvailable:    8000000 kB\nBuffers:           10000 kB\nSwapCached:            0 kB\nSwapTotal:       2097148 kB\nSwapFree:        1048576 kB\n";

    #[test]
    fn counts_swap_in_both_the_total_and_what_is_available() {
        let memory = parse_meminfo(MEMINFO);
        assert_eq!(memory.total_bytes, Some((16_318_480 + 2_097_148) * 1024));
        assert_eq!(memory.ram_bytes, Some(16_318_480 * 1024));
        assert_eq!(memory.available_bytes, Some((8_000_000 + 1_048_576) * 1024));
        assert_eq!(memory.pressure_some_avg10, None);
    }

    #[test]
    fn a_machine_without_swap_or_mem_available() {
        let memory = parse_meminfo("MemTotal: 1024 kB\nMemFree: 512 kB\n");
        assert_eq!(memory.total_bytes, Some(1 << 20));
        assert_eq!(
            memory.available_bytes, None,
            "MemFree is not what is available"
        );
        assert_eq!(parse_meminfo(""), MachineMemory::default());
        assert_eq!(
            parse_meminfo("MemTotal: lots kB\nMemAvailable: 1 kB\n").total_bytes,
            None
        );
    }

    #[test]
    fn ram_is_mem_total() {
        // `--notify-total`'s default is a share of it.
        let meminfo = "MemTotal:       16314412 kB\nMemFree:         1067904 kB\n";
        assert_eq!(parse_meminfo(meminfo).ram_bytes, Some(16_314_412 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n").ram_bytes, None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n").ram_bytes, None);
    }

    #[test]
    fn field_names_match_whole() {
        // `MemAvailableX` or `SwapFreeish` are not the fields asked for.
        let memory = parse_meminfo("MemTotal: 4 kB\nMemAvailableX: 9 kB\nMemAvailable: 2 kB\n");
        assert_eq!(memory.available_bytes, Some(2048));
    }

    #[test]
    fn reads_some_avg10_of_memory_pressure() {
        let psi = "some avg10=12.34 avg60=3.00 avg300=0.50 total=123456\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=100\n";
        assert_eq!(parse_pressure(psi), Some(12.34));
        assert_eq!(parse_pressure_full(psi), Some(1.0));
        assert_eq!(
            parse_pressure("full avg10=1.00 avg60=0.00 avg300=0.00 total=1\n"),
            None
        );
        assert_eq!(parse_pressure("some avg60=1.00\n"), None);
        assert_eq!(parse_pressure("some avg10=NaN\n"), None);
        assert_eq!(parse_pressure(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_machine() {
        let memory = read();
        let total = memory.total_bytes.expect("/proc/meminfo has MemTotal");
        let available = memory
            .available_bytes
            .expect("Linux 3.14+ has MemAvailable");
        assert!(total > 64 << 20, "{memory:?}");
        assert!(available <= total, "{memory:?}");
        // A kernel booted with psi=0 lists the file but refuses to read it.
        let psi = fs::read_to_string("/proc/pressure/memory").is_ok();
        assert_eq!(memory.pressure_some_avg10.is_some(), psi, "{memory:?}");
    }
}
