//! The workloads the probes are measured against. Each runs in a child process (the xtask
//! binary re-executed with the hidden `bench-workload` command) so that it is one process
//! the probes see start and end, and so that its name is known (`xtask`).
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// mmap 16 MiB, touch every page, munmap: page faults and rss_stat updates.
    PageFaults,
    /// fork, exec /bin/true, wait: task_newtask, sched_process_exec, sched_process_exit.
    ForkExec,
    /// SIGHUP to itself with a handler installed: signal_generate and signal_deliver.
    Sighup,
    /// fork, setsid in the child, exit: the setsid tracepoints and the lifecycle ones.
    Setsid,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Self::PageFaults, Self::ForkExec, Self::Sighup, Self::Setsid];

    pub fn name(self) -> &'static str {
        match self {
            Self::PageFaults => "page_faults",
            Self::ForkExec => "fork_exec_exit",
            Self::Sighup => "sighup_handler",
            Self::Setsid => "setsid",
        }
    }

    fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|w| w.name() == name)
            .with_context(|| format!("unknown workload {name}"))
    }

    /// Iterations for a full run; `--quick` uses a twentieth.
    pub fn iterations(self, quick: bool) -> u64 {
        let full = match self {
            Self::PageFaults => 200,
            Self::ForkExec => 2_000,
            Self::Sighup => 200_000,
            Self::Setsid => 3_000,
        };
        if quick { full / 20 } else { full }
    }

    /// Runs the workload in a child and returns the time it took, as the child measured it.
    pub fn measure(self, xtask: &Path, quick: bool) -> Result<Duration> {
        let out = Command::new(xtask)
            .args(["bench-workload", self.name()])
            .arg(self.iterations(quick).to_string())
            .output()
            .context("running a workload")?;
        if !out.status.success() {
            bail!(
                "workload {} failed: {}",
                self.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let nanos: u64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("the workload prints its time in ns")?;
        Ok(Duration::from_nanos(nanos))
    }
}

/// The body of `xtask bench-workload NAME N`: runs it and prints the nanoseconds taken.
pub fn child_main(name: &str, iterations: u64) -> Result<()> {
    let workload = Workload::from_name(name)?;
    let started = Instant::now();
    match workload {
        Workload::PageFaults => page_faults(iterations)?,
        Workload::ForkExec => fork_exec(iterations)?,
        Workload::Sighup => sighup(iterations)?,
        Workload::Setsid => setsid(iterations)?,
    }
    println!("{}", started.elapsed().as_nanos());
    Ok(())
}

fn page_faults(iterations: u64) -> Result<()> {
    const SIZE: usize = 16 << 20;
    let page = 4096;
    for _ in 0..iterations {
        // SAFETY: a fresh private anonymous mapping, written only within its bounds and
        // unmapped before the next.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if map == libc::MAP_FAILED {
                bail!("mmap failed");
            }
            let bytes = map.cast::<u8>();
            for offset in (0..SIZE).step_by(page) {
                bytes.add(offset).write_volatile(1);
            }
            libc::munmap(map, SIZE);
        }
    }
    Ok(())
}

fn fork_exec(iterations: u64) -> Result<()> {
    for _ in 0..iterations {
        let status = Command::new("/bin/true").status()?;
        if !status.success() {
            bail!("/bin/true failed");
        }
    }
    Ok(())
}

extern "C" fn on_hup(_: libc::c_int) {}

fn sighup(iterations: u64) -> Result<()> {
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGHUP, on_hup as *const () as libc::sighandler_t);
        for _ in 0..iterations {
            libc::raise(libc::SIGHUP);
        }
    }
    Ok(())
}

fn setsid(iterations: u64) -> Result<()> {
    for _ in 0..iterations {
        // SAFETY: the child only calls async-signal-safe functions before _exit.
        unsafe {
            match libc::fork() {
                -1 => bail!("fork failed"),
                0 => {
                    libc::setsid();
                    libc::_exit(0);
                }
                child => {
                    libc::waitpid(child, std::ptr::null_mut(), 0);
                }
            }
        }
    }
    Ok(())
}
