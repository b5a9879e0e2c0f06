//! A process's proportional set size from /proc/PID/smaps_rollup (Linux 4.14+): each
//! resident page divided by the number of processes mapping it, so 30 processes sharing
//! a runtime count it once between them, where their RSS counts it 30 times. The kernel
//! walks the page tables to answer, which is why it is read far less often than RSS. The
//! parsing is pure and tested on any OS.
use std::{fs, io};

use super::Pss;

/// Reads `pid`'s smaps_rollup now. None when it cannot say: gone, a kernel thread or
/// zombie (no memory map: the file is empty), another user's process without the right to
/// read it, or a kernel without the file.
pub fn read(pid: u32) -> Option<Pss> {
    parse(&fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

/// Whether this kernel has smaps_rollup at all, asked of this process: a missing file
/// here means no process has one, and the sampler need not try.
pub fn supported() -> bool {
    match fs::metadata("/proc/self/smaps_rollup") {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// The rollup's fields, in bytes. `Pss` is required (no figure without it); the rest are
/// None when the kernel does not write them (SwapPss since 4.3, the Pss_Anon/File/Shmem
/// split since 5.6).
pub fn parse(text: &str) -> Option<Pss> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(kib)
    };
    Some(Pss {
        pss_bytes: field("Pss")?,
        swap_pss_bytes: field("SwapPss"),
        pss_anon_bytes: field("Pss_Anon"),
        pss_file_bytes: field("Pss_File"),
        pss_shmem_bytes: field("Pss_Shmem"),
    })
}

/// `"   298 kB"` -> bytes; the kernel's kB are KiB.
fn kib(value: &str) -> Option<u64> {
    let value = value.trim();
    let number = value.strip_suffix("kB")?.trim();
    number.parse::<u64>().ok()?.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cat /proc/self/smaps_rollup` on Linux 6.18 (x86_64).
    const ROLLUP_6_18: &str =
        "56492bc7c000-7fff7a985000 ---p 00000000 00:00 0                          [rollup]
Rss:                1768 kB
Pss:                 298 kB
Pss_Dirty:           116 kB
Pss_Anon:            116 kB
Pss_File:            182 kB
Pss_Shmem:             0 kB
Shared_Clean:       1612 kB
Shared_Dirty:          0 kB
Private_Clean:        40 kB
Private_Dirty:       116 kB
Referenced:         1768 kB
Anonymous:           116 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
";

    /// The same file of a forked python3 on that kernel: it and its parent share a 16 MiB
    /// file mapped MAP_SHARED, both touched every page of it.
    const ROLLUP_SHARED_FILE: &str =
        "563f65cce000-7fff403ae000 ---p 00000000 00:00 0                          [rollup]
Rss:               26948 kB
Pss:               13526 kB
Pss_Dirty:         12348 kB
Pss_Anon:           4156 kB
Pss_File:           9370 kB
Pss_Shmem:             0 kB
Shared_Clean:       3112 kB
Shared_Dirty:      22976 kB
Private_Clean:         0 kB
Private_Dirty:       860 kB
Referenced:        20612 kB
Anonymous:          7452 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
ShmemPmdMapped:        0 kB
FilePmdMapped:         0 kB
Shared_Hugetlb:        0 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
";

    #[test]
    fn reads_pss_swap_pss_and_the_split() {
        let pss = parse(ROLLUP_6_18).unwrap();
        assert_eq!(pss.pss_bytes, 298 * 1024);
        assert_eq!(pss.swap_pss_bytes, Some(0));
        assert_eq!(pss.pss_anon_bytes, Some(116 * 1024));
        assert_eq!(pss.pss_file_bytes, Some(182 * 1024));
        assert_eq!(pss.pss_shmem_bytes, Some(0));
        assert_eq!(pss.total_bytes(), 298 * 1024);
    }

    #[test]
    fn a_shared_mapping_counts_half_in_each_of_two() {
        let pss = parse(ROLLUP_SHARED_FILE).unwrap();
        assert_eq!(pss.pss_bytes, 13526 * 1024);
        assert_eq!(pss.pss_file_bytes, Some(9370 * 1024));
        assert_eq!(pss.total_bytes(), 13526 * 1024);
    }

    #[test]
    fn an_older_kernel_without_the_split_is_unknown_there_not_zero() {
        // Before 5.6 the rollup had no Pss_Anon, Pss_File or Pss_Shmem lines (the
        // capture above with those lines taken out, and part of it in swap).
        let old: String = ROLLUP_SHARED_FILE
            .lines()
            .filter(|line| !line.starts_with("Pss_"))
            .map(|line| match line.strip_prefix("SwapPss:") {
                Some(_) => "SwapPss:            1536 kB\n".to_string(),
                None => format!("{line}\n"),
            })
            .collect();
        let pss = parse(&old).unwrap();
        assert_eq!(pss.pss_bytes, 13526 * 1024);
        assert_eq!(pss.swap_pss_bytes, Some(1536 * 1024));
        assert_eq!(pss.pss_anon_bytes, None);
        assert_eq!(pss.total_bytes(), (13526 + 1536) * 1024);
        // Before 4.3, no SwapPss: unknown, and the total is what is known.
        let no_swap_pss: String = old
            .lines()
            .filter(|l| !l.starts_with("SwapPss"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse(&no_swap_pss).unwrap().swap_pss_bytes, None);
    }

    #[test]
    fn no_pss_line_is_no_figure() {
        // A kernel thread's or a zombie's file is empty.
        assert_eq!(parse(""), None);
        // `Pss_Anon` and `Pss_Dirty` are not `Pss`.
        assert_eq!(parse("Pss_Anon: 4 kB\nPss_Dirty: 4 kB\n"), None);
        assert_eq!(parse("Pss: lots kB\n"), None);
        assert_eq!(parse("Pss: 12\n"), None, "a line without its unit");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process_and_not_one_that_is_gone() {
        assert!(
            supported(),
            "every kernel hupwatch runs on has smaps_rollup"
        );
        let me = read(std::process::id()).expect("its own rollup is readable");
        assert!(me.pss_bytes > 0, "{me:?}");
        let rss = crate::host::usage(std::process::id()).unwrap().rss_bytes;
        assert!(
            me.pss_bytes <= rss + (1 << 20),
            "PSS {me:?} is at most RSS {rss}"
        );
        assert_eq!(read(u32::MAX), None);
    }
}
