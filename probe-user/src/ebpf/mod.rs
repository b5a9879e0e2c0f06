//! The eBPF source: loads and attaches the programs, seeds and maintains the tracked set,
//! and gives access to the ring buffer and the maps user space samples.
pub mod batch;
pub mod btf;
mod refusal;
pub mod resolve;
pub mod tracefs;
mod tracked_set;

use std::path::Path;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
};
use probe_common::{COMM_LEN, ProbeConfig, RssValue, counter, kind};

use crate::{error::UserError, matching::Matcher};
use batch::{BatchError, HashBatch};
use resolve::{Hook, ProgramSpec};
use tracked_set::TrackedSet;

/// Entries per batch read of the RSS map: 44 KiB of buffers, ten calls at 10,000 processes.
const RSS_BATCH: usize = 1024;

static PROBES_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/hupwatch-probes"));

/// Loaded, attached programs and the maps user space uses. Dropping it detaches everything.
pub struct Probes {
    ebpf: Ebpf,
    events: Option<RingBuf<MapData>>,
    tracked: TrackedSet,
    rss: BpfHashMap<MapData, u32, RssValue>,
    /// None once the kernel refused batch lookups: then the RSS map is read entry by entry.
    rss_batch: Option<HashBatch<u32, RssValue>>,
    counters: PerCpuArray<MapData, u64>,
    pub attached: Vec<ProgramSpec>,
    pub warnings: Vec<String>,
}

/// Records lost because the ring buffer was full, by kind name, and the other give-ups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Losses {
    pub by_kind: Vec<(&'static str, u64)>,
    pub tracked_map_full: u64,
    pub rss_map_full: u64,
}

impl Losses {
    pub fn lost_events(&self) -> u64 {
        self.by_kind.iter().map(|(_, n)| n).sum()
    }

    /// Records lost per kind since `before`, only the kinds that lost any.
    pub fn since(&self, before: &Losses) -> Vec<(&'static str, u64)> {
        self.by_kind
            .iter()
            .enumerate()
            .map(|(i, &(name, n))| {
                (
                    name,
                    n.saturating_sub(before.by_kind.get(i).map_or(0, |&(_, b)| b)),
                )
            })
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Fails with the fix when this process cannot load eBPF programs.
pub fn check_privileges() -> Result<(), UserError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    Err(UserError::new(
        "loading eBPF programs needs root (or CAP_BPF and CAP_PERFMON); run it with sudo: sudo hupwatch ...",
    ))
}

impl Probes {
    /// Loads and attaches the programs; `ring_bytes` sizes the event ring buffer. A
    /// program the kernel refuses becomes one warning; its verifier log goes to a file,
    /// or with `verbose` to stderr.
    pub fn load(matcher: &Matcher, ring_bytes: u32, verbose: bool) -> anyhow::Result<Self> {
        check_privileges()?;
        if PROBES_OBJECT.is_empty() {
            return Err(UserError::new(
                "this hupwatch was built without its eBPF programs (AYA_BUILD_SKIP was set); rebuild it with `cargo xtask run`",
            )
            .into());
        }
        bump_memlock_rlimit();
        let tracefs = tracefs::root()?;
        let btf = btf::Btf::from_file(Path::new("/sys/kernel/btf/vmlinux")).ok();
        let resolved = resolve::resolve(&tracefs, btf.as_ref());
        // Tens of MiB parsed; gone before the heap is trimmed below.
        drop(btf);

        let mut config: ProbeConfig = resolved.config;
        config.self_tgid = std::process::id();
        config.trace_all = u32::from(matcher.traces_everything());
        config.exec_all = u32::from(matcher.matches_cmdlines());
        config.page_shift = page_size().trailing_zeros();

        // aya's own parse of the kernel's BTF: the loader needs it for relocations (and
        // would parse it itself), the BTF-typed programs to find their tracepoints.
        // Dropped before the heap is trimmed.
        let kernel_btf = aya::Btf::from_sys_fs();
        let mut ebpf = EbpfLoader::new()
            .btf(kernel_btf.as_ref().ok())
            .override_global("CONFIG", &config, true)
            .map_max_entries("EVENTS", ring_bytes)
            .map_max_entries(
                "TRACKED_FLAGS",
                tracked_set::flag_entries(
                    tracked_set::kernel_pid_max(),
                    matcher.traces_everything(),
                ),
            )
            .load(PROBES_OBJECT)
            .map_err(|e| anyhow::anyhow!("loading the eBPF object failed: {e}"))?;

        let mut attached = Vec::new();
        let mut warnings = resolved.warnings;
        for spec in resolved.programs {
            match attach(&mut ebpf, &spec, kernel_btf.as_ref()) {
                Ok(()) => attached.push(spec),
                Err(refused) => {
                    let log = refused.keep_log(spec.program, verbose);
                    let mut warning = format!(
                        "this kernel refused {} on {}: {}; {}",
                        spec.program,
                        spec.path(),
                        refused.reason,
                        spec.loss()
                    );
                    if let Some(log) = &log {
                        warning.push_str(&format!(" ({})", log.mention()));
                        if let refusal::LogPlace::Printed(text) = log {
                            warning.push('\n');
                            warning.push_str(text.trim_end());
                        }
                    }
                    warnings.push(warning);
                }
            }
        }
        drop(kernel_btf);
        if attached.is_empty() {
            anyhow::bail!("no eBPF program could be attached: {}", warnings.join("; "));
        }

        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow::anyhow!("the eBPF object has no map {name}"))
        };
        let mut match_comms: BpfHashMap<MapData, [u8; COMM_LEN], u8> =
            BpfHashMap::try_from(take(&mut ebpf, "MATCH_COMMS")?)?;
        for key in matcher.comm_keys() {
            match_comms.insert(key, 1, 0)?;
        }
        give_back_freed_heap();
        Ok(Self {
            events: Some(RingBuf::try_from(take(&mut ebpf, "EVENTS")?)?),
            tracked: TrackedSet::new(
                take(&mut ebpf, "TRACKED")?,
                take(&mut ebpf, "TRACKED_FLAGS")?,
            )?,
            rss: BpfHashMap::try_from(take(&mut ebpf, "RSS")?)?,
            rss_batch: Some(HashBatch::new(RSS_BATCH)),
            counters: PerCpuArray::try_from(take(&mut ebpf, "COUNTERS")?)?,
            ebpf,
            attached,
            warnings,
        })
    }

    /// Time spent in and runs of each attached program, as the kernel counts them while
    /// `kernel.bpf_stats_enabled` is 1 (zero otherwise).
    pub fn program_stats(&self) -> Vec<(&'static str, std::time::Duration, u64)> {
        self.attached
            .iter()
            .filter_map(|spec| {
                let info = self.ebpf.program(spec.program)?.info().ok()?;
                Some((spec.program, info.run_time(), info.run_count()))
            })
            .collect()
    }

    /// The ring buffer of records; there is one reader, so it can be taken once.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// Adds a process to the tracked set; false when the map is full.
    pub fn track(&mut self, pid: u32, reason: u32) -> bool {
        self.tracked.insert(pid, reason)
    }

    /// The processes in the kernel's tracked set (empty when every process is traced).
    pub fn tracked_pids(&self) -> std::collections::HashSet<u32> {
        self.tracked.pids()
    }

    /// The RSS counters of every process the kernel side has seen fault: in batches where
    /// the kernel has them (5.6+), else, or when a batch read fails, entry by entry.
    pub fn rss_snapshot(&mut self) -> Vec<(u32, RssValue)> {
        if let Some(batch) = &mut self.rss_batch {
            match batch.read(&self.rss) {
                Ok(entries) => return entries,
                Err(BatchError::Unsupported(_)) => self.rss_batch = None,
                Err(BatchError::Failed(_)) => {}
            }
        }
        self.rss.iter().filter_map(Result::ok).collect()
    }

    pub fn losses(&self) -> Losses {
        let total = |slot: u32| -> u64 {
            self.counters
                .get(&slot, 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0)
        };
        Losses {
            by_kind: (1..kind::END)
                .map(|k| (kind_name(k), total(u32::from(k))))
                .collect(),
            tracked_map_full: total(counter::TRACKED_MAP_FULL),
            rss_map_full: total(counter::RSS_MAP_FULL),
        }
    }
}

fn attach(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    kernel_btf: Result<&aya::Btf, &aya::BtfError>,
) -> Result<(), refusal::Refusal> {
    let program = ebpf
        .program_mut(spec.program)
        .ok_or_else(|| refusal::Refusal::said("the eBPF object has no such program"))?;
    let failed = |e: aya::programs::ProgramError| refusal::Refusal::of(&e);
    match spec.hook {
        Hook::Fields => {
            let program: &mut TracePoint = program.try_into().map_err(failed)?;
            program.load().map_err(failed)?;
            program
                .attach(spec.category, spec.tracepoint)
                .map_err(failed)?;
        }
        Hook::Btf => {
            let btf = kernel_btf.map_err(|e| {
                refusal::Refusal::said(&format!("cannot read the kernel's BTF: {e}"))
            })?;
            let program: &mut BtfTracePoint = program.try_into().map_err(failed)?;
            program.load(spec.tracepoint, btf).map_err(failed)?;
            program.attach().map_err(failed)?;
        }
    }
    Ok(())
}

pub fn kind_name(kind: u16) -> &'static str {
    match kind {
        kind::EXEC => "exec",
        kind::FORK => "fork",
        kind::EXIT => "exit",
        kind::SETSID => "setsid",
        kind::DETACH_TTY => "detach_tty",
        kind::PDEATHSIG => "pdeathsig",
        kind::SIGNAL => "signal",
        kind::SIGNAL_DELIVER => "signal_deliver",
        kind::SIGACTION => "sigaction",
        kind::ATTACH_TTY => "attach_tty",
        _ => "unknown",
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as u64,
        _ => 4096,
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK. Newer ones use the memory
/// cgroup, and a sandbox may forbid raising the limit, so failure is not an error.
fn bump_memlock_rlimit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// Returns the heap freed after loading to the OS. Parsing the kernel's BTF (ours for the
/// offsets, aya's for relocations) peaks at tens of MiB; glibc keeps freed memory mapped,
/// so without this an always-on daemon carried the peak as RSS for good (49 MiB at rest,
/// 23 MiB with it, 16 MiB of which is the ring buffer's double mapping).
fn give_back_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_kind_has_a_name_for_loss_reports() {
        for k in 1..kind::END {
            assert_ne!(kind_name(k), "unknown", "kind {k}");
        }
    }
}
