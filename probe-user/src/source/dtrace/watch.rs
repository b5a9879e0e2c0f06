//! The DTrace source as `run` and `trace` use it: the matching flags become the script's
//! names and seeds, processes that already exist come from the process table, and losses
//! are reported as the eBPF source reports its own.
// Only macOS builds choose this source; elsewhere its tests still run it with a stand-in.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::collections::HashSet;

use super::{
    live::{DtraceCommand, DtraceSource},
    script::{ScriptOptions, render},
    stderr::ROOT_FIX,
};
use crate::{
    decode::Clock,
    error::UserError,
    event::Event,
    host,
    source::{
        LiveOptions, SourceKind,
        shared::seed_pids,
        tracer::{Pending, Tracer},
    },
    watch::Watch,
};

pub struct DtraceWatch {
    source: DtraceSource,
    /// The processes traced from the start; `None` when tracing every process.
    seeded: Option<HashSet<u32>>,
}

impl DtraceWatch {
    pub async fn start(options: &LiveOptions, clock: Clock) -> anyhow::Result<Self> {
        if options.matcher.matches_cmdlines() {
            return Err(UserError::new(
                "--match-cmdline is not available with --source dtrace, which matches names inside the kernel; use --match NAME or --pid PID",
            )
            .into());
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(UserError::new(ROOT_FIX).into());
        }
        let seeded = seed_pids(&options.matcher, &host::process_infos())?;
        let seeds: Vec<u32> = seeded.iter().flatten().copied().collect();
        let script = render(&ScriptOptions {
            self_pid: std::process::id(),
            names: options.matcher.names(),
            seeds: &seeds,
        });
        let source = DtraceSource::start(DtraceCommand::system(), &script, clock).await?;
        Ok(Self::new(source, seeded))
    }

    /// A running dtrace, traced from the given processes.
    pub fn new(source: DtraceSource, seeded: Option<HashSet<u32>>) -> Self {
        Self { source, seeded }
    }
}

impl Tracer for DtraceWatch {
    fn kind(&self) -> SourceKind {
        SourceKind::Dtrace
    }

    fn describe(&self) -> String {
        "dtrace running".into()
    }

    fn seeded(&self) -> Option<&HashSet<u32>> {
        self.seeded.as_ref()
    }

    fn watch(&self) -> Watch {
        match self.seeded {
            None => Watch::Everything,
            // The script's tracked set lives in the kernel, out of reach.
            Some(_) => Watch::Descendants,
        }
    }

    fn losses(&self) -> Vec<(&'static str, u64)> {
        self.source.losses()
    }

    fn loss_cause(&self) -> &'static str {
        "dtrace could not keep up"
    }

    fn next<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, anyhow::Result<()>> {
        Box::pin(self.source.next(out))
    }

    /// What dtrace wrote that was not read yet; what it still buffers itself leaves with it.
    fn drain<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, bool> {
        Box::pin(async move {
            self.source.drain_queued(out).await;
            false
        })
    }
}
