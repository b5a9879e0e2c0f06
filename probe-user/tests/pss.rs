//! True memory for totals, as root: 20 real processes map one 64 MiB file MAP_SHARED and
//! read every page of it, so each one's RSS counts the whole file and RSS summed over the
//! group counts it 20 times. `hupwatch run` (the real eBPF programs) reads their PSS from
//! smaps_rollup, and the group's total by PSS must be within a few percent of the memory
//! the 20 really hold: the physical pages mapped by any of them, each counted once, read
//! from /proc/PID/pagemap (root sees the page frame numbers). Both figures are asserted,
//! so the test shows the difference.
#![cfg(target_os = "linux")]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    collections::HashSet,
    fs::File,
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use harness::{Hupwatch, metric};
use processes::named_python;
use serde_json::Value;
use support::{event_timeout, scratch_dir, unique};

const MIB: u64 = 1 << 20;
const FILE_BYTES: u64 = 64 * MIB;
const CHILDREN: usize = 20;
/// Maps the file named on its command line shared, reads a byte of every page (each read
/// maps the page-cache page into it), says so and waits on stdin.
const SHARER: &str = "import mmap, sys
f = open(sys.argv[1], 'r+b')
m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED)
total = 0
for i in range(0, len(m), 4096):
    total += m[i]
print('ready', total, flush=True)
sys.stdin.read()
";
const PAGE: u64 = 4096;

/// The 20 processes; killed when dropped.
struct Sharers(Vec<Child>);

impl Drop for Sharers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The physical pages mapped by any of `pids`, each counted once: what they really hold
/// in RAM (nothing of this test is in swap).
fn distinct_pages(pids: &[u32]) -> u64 {
    let mut frames = HashSet::new();
    for &pid in pids {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let mut pagemap = File::open(format!("/proc/{pid}/pagemap")).unwrap();
        for line in maps.lines() {
            if line.ends_with("[vsyscall]") {
                continue;
            }
            let range = line.split_whitespace().next().unwrap();
            let (start, end) = range.split_once('-').unwrap();
            let start = u64::from_str_radix(start, 16).unwrap();
            let end = u64::from_str_radix(end, 16).unwrap();
            let pages = ((end - start) / PAGE) as usize;
            let mut entries = vec![0u8; pages * 8];
            pagemap.seek(SeekFrom::Start(start / PAGE * 8)).unwrap();
            pagemap.read_exact(&mut entries).unwrap();
            for entry in entries.chunks_exact(8) {
                let entry = u64::from_le_bytes(entry.try_into().unwrap());
                // Bit 63: present in RAM; bits 0-54: the page frame number.
                if entry >> 63 == 1 {
                    let frame = entry & ((1 << 55) - 1);
                    assert_ne!(frame, 0, "page frame numbers need CAP_SYS_ADMIN");
                    frames.insert(frame);
                }
            }
        }
    }
    frames.len() as u64 * PAGE
}

/// The field `name` (kB) of `pid`'s smaps_rollup, in bytes.
fn rollup(pid: u32, name: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{name} in {pid}'s smaps_rollup"))
        * 1024
}

#[test]
fn a_file_shared_by_20_processes_is_counted_once_by_pss_and_20_times_by_rss() {
    let dir = scratch_dir("pss");
    let name = unique("pss");
    let path = dir.join("shared.bin");
    let mut file = File::create(&path).unwrap();
    // Bytes, not a hole: real pages in the page cache.
    let chunk = vec![7u8; MIB as usize];
    for _ in 0..FILE_BYTES / MIB {
        file.write_all(&chunk).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);

    let python = named_python(&dir, &name);
    let mut sharers = Sharers(Vec::new());
    for _ in 0..CHILDREN {
        let child = Command::new(&python)
            .args(["-c", SHARER])
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        sharers.0.push(child);
    }
    for child in &mut sharers.0 {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("ready"), "{line}");
    }
    let pids: Vec<u32> = sharers.0.iter().map(Child::id).collect();

    // Started once they all hold the file: its first look finds them, and each is read at
    // once as a process never read before.
    let hupwatch = Hupwatch::run(&["--match", &name]);
    let deadline = Instant::now() + event_timeout();
    let group = loop {
        let view: Value = serde_json::from_str(&hupwatch.http_get("/api/sessions")).unwrap();
        let group = view["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name.as_str())
            .cloned();
        if let Some(g) = group
            && g["sessions"] == CHILDREN
            && g["memory_measure"] == "pss"
        {
            break (g, view);
        }
        assert!(Instant::now() < deadline, "no PSS total for {name}: {view}");
        thread::sleep(Duration::from_millis(200));
    };
    let (group, view) = group;

    let real = distinct_pages(&pids);
    let by_pss = group["memory_bytes"].as_u64().unwrap();
    let by_rss = group["rss_memory_bytes"].as_u64().unwrap();
    let private: u64 = pids
        .iter()
        .map(|&pid| rollup(pid, "Private_Clean") + rollup(pid, "Private_Dirty"))
        .sum();
    eprintln!(
        "{CHILDREN} processes sharing a {} MiB file: held {:.1} MiB (distinct pages; {:.1} MiB private to one of them), PSS total {:.1} MiB, RSS total {:.1} MiB",
        FILE_BYTES / MIB,
        real as f64 / MIB as f64,
        private as f64 / MIB as f64,
        by_pss as f64 / MIB as f64,
        by_rss as f64 / MIB as f64,
    );
    // What they hold: the file once, what each has to itself, and the interpreter's pages
    // they share.
    assert!(real >= FILE_BYTES + private, "{real} held");
    // PSS gives a page shared with processes outside the group (libc, the interpreter
    // run by other tests) only the group's share of it, so it is a little under.
    let off = by_pss.abs_diff(real) as f64 / real as f64;
    assert!(
        off < 0.05,
        "PSS total {by_pss} is {:.1} % off the {real} bytes held",
        off * 100.0
    );
    // RSS counts the file in every one of them.
    assert!(by_rss >= CHILDREN as u64 * FILE_BYTES, "{group}");
    assert!(
        by_rss > 5 * real,
        "{group}: RSS counts shared pages per process"
    );

    // The group adds up exactly what its members' readings say.
    let members: Vec<&Value> = view["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| pids.contains(&(p["pid"].as_u64().unwrap() as u32)))
        .collect();
    assert_eq!(members.len(), CHILDREN);
    let summed: u64 = members
        .iter()
        .map(|p| p["pss_bytes"].as_u64().unwrap() + p["swap_pss_bytes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(summed, by_pss, "{group}");

    // The metrics say the same, and which measure it is.
    let metrics = hupwatch.http_get("/metrics");
    let series = format!("hupwatch_program_memory_bytes{{measure=\"pss\",program=\"{name}\"}}");
    assert_eq!(metric(&metrics, &series), Some(by_pss as f64), "{series}");
    // And a person reading the group line is told.
    let table = Command::new(support::HUPWATCH)
        .args(["sessions", "--from", &hupwatch.api_url()])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no group line for {name} in\n{table}"));
    assert!(line.contains(" PSS ("), "{line}");
    hupwatch.stop();
    drop(sharers);
    let _ = std::fs::remove_dir_all(&dir);
}
