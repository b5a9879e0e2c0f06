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
    source::{LiveOptions, snapshot},
};

pub struct DtraceWatch {
    source: DtraceSource,
    traces_everything: bool,
    seeded: HashSet<u32>,
    lost_reported: u64,
    synced_losses: u64,
}

impl DtraceWatch {
    pub async fn start(options: LiveOptions) -> anyhow::Result<Self> {
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
        let me = std::process::id();
        let seeded: HashSet<u32> = if options.matcher.traces_everything() {
            HashSet::new()
        } else {
            let scan = snapshot::scan_host(&Clock::now());
            let infos: Vec<_> = scan.procs.into_iter().map(|p| p.info).collect();
            options
                .matcher
                .seed(&infos, me)?
                .into_iter()
                .map(|(pid, _)| pid)
                .collect()
        };
        let seeds: Vec<u32> = seeded.iter().copied().collect();
        let script = render(&ScriptOptions {
            self_pid: me,
            names: options.matcher.names(),
            seeds: &seeds,
        });
        let source = DtraceSource::start(
            DtraceCommand::system(),
            &script,
            options.rss_interval,
            options.rss_step,
        )
        .await?;
        Ok(Self {
            source,
            traces_everything: options.matcher.traces_everything(),
            seeded,
            lost_reported: 0,
            synced_losses: 0,
        })
    }

    pub fn clock(&self) -> Clock {
        self.source.clock()
    }

    /// `existing` events for the watched processes alive at start; their RSS is sampled
    /// from now on.
    pub fn existing(&mut self) -> Vec<Event> {
        let mut events = snapshot::scan_existing_with(&self.clock(), std::process::id());
        if !self.traces_everything {
            events.retain(|e| self.seeded.contains(&e.pid));
        }
        self.source.follow(&mut events);
        events
    }

    /// /proc (the process table) when dtrace lost records since the last re-sync (`lost`
    /// is its total so far, as [`DtraceWatch::losses`] counts). What
    /// dtrace printed before is already read: its output is consumed as it comes.
    pub fn rescan(&mut self, lost: u64) -> Option<crate::source::Rescan> {
        if lost <= self.synced_losses {
            return None;
        }
        let watch = if self.traces_everything {
            crate::tracker::Watch::Everything
        } else {
            // The script's tracked set lives in the kernel, out of reach.
            crate::tracker::Watch::Descendants
        };
        let clock = self.clock();
        Some(crate::source::Rescan::take(
            lost,
            &mut self.synced_losses,
            &clock,
            watch,
        ))
    }

    pub fn ready_line(&self) -> String {
        let what = if self.traces_everything {
            "every process".to_string()
        } else {
            format!(
                "{} existing processes and what they start",
                self.seeded.len()
            )
        };
        format!("hupwatch: ready: dtrace running, tracing {what}")
    }

    pub async fn next(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        self.source.next(out).await
    }

    /// Before leaving: what dtrace wrote that was not read yet.
    pub async fn drain_queued(&mut self, out: &mut Vec<Event>) {
        self.source.drain_queued(out).await
    }

    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        self.source.losses()
    }

    /// Says on stderr what was lost since the last report.
    pub fn report_losses(&mut self) {
        let total = self.source.lost_events();
        if total > self.lost_reported {
            let detail: Vec<String> = self
                .losses()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| format!("{kind}={n}"))
                .collect();
            eprintln!(
                "hupwatch: lost {} events (dtrace could not keep up): {} since start",
                total - self.lost_reported,
                detail.join(" ")
            );
            self.lost_reported = total;
        }
    }
}
