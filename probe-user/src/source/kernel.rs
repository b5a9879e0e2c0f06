//! The live source `run` and `trace` read, whichever the OS has: eBPF on Linux, DTrace
//! on macOS. Both give the same events; what differs (programs, kernel statistics) is
//! empty for the one that lacks it.
use std::time::Duration;

use super::{LiveOptions, SourceKind, dtrace::watch::DtraceWatch, poll::PollSource};
use crate::{decode::Clock, error::UserError, event::Event};

#[cfg(target_os = "linux")]
use super::live::LiveSource;

// One exists per run, so the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum KernelSource {
    #[cfg(target_os = "linux")]
    Ebpf(LiveSource),
    Dtrace(DtraceWatch),
    Proc(PollSource),
}

impl KernelSource {
    /// The source asked for, or the best that starts: this OS's tracer, else polling, with
    /// one line saying why and what is lost.
    pub async fn start(options: LiveOptions) -> anyhow::Result<Self> {
        if let Some(kind) = options.source {
            return Self::start_kind(kind, options).await;
        }
        let native = SourceKind::native();
        match Self::start_kind(native, options.clone()).await {
            Ok(source) => Ok(source),
            Err(why) => {
                eprintln!(
                    "hupwatch: warning: --source {} cannot start ({}); falling back to --source proc, which polls the process table every {} and sees no signals",
                    native.name(),
                    crate::error::report(&why).1,
                    crate::units::format_duration(
                        u64::try_from(options.poll_interval.as_nanos()).unwrap_or(u64::MAX)
                    ),
                );
                Self::start_kind(SourceKind::Proc, options).await
            }
        }
    }

    async fn start_kind(kind: SourceKind, options: LiveOptions) -> anyhow::Result<Self> {
        match kind {
            SourceKind::Proc => Ok(Self::Proc(PollSource::start(&options)?)),
            #[cfg(target_os = "linux")]
            SourceKind::Ebpf => {
                let source = LiveSource::start(options)?;
                if let Err(why) = crate::privileges::drop_after_attach() {
                    eprintln!("hupwatch: warning: could not drop privileges after attaching ({why}); going on with them");
                }
                Ok(Self::Ebpf(source))
            }
            #[cfg(not(target_os = "linux"))]
            SourceKind::Ebpf => Err(UserError::new(
                "--source ebpf needs Linux; on macOS use --source dtrace or --source proc",
            )
            .into()),
            #[cfg(target_os = "macos")]
            SourceKind::Dtrace => Ok(Self::Dtrace(DtraceWatch::start(options).await?)),
            #[cfg(not(target_os = "macos"))]
            SourceKind::Dtrace => Err(UserError::new(
                "--source dtrace runs macOS's DTrace and its script reads macOS kernel structures; on Linux use --source ebpf or --source proc",
            )
            .into()),
        }
    }

    pub fn kind(&self) -> SourceKind {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(_) => SourceKind::Ebpf,
            Self::Dtrace(_) => SourceKind::Dtrace,
            Self::Proc(_) => SourceKind::Proc,
        }
    }

    /// The verdicts and figures this source cannot give.
    pub fn unavailable(&self) -> &'static [&'static str] {
        match self {
            Self::Proc(_) => &super::poll::UNAVAILABLE,
            _ => &[],
        }
    }

    pub fn clock(&self) -> Clock {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.clock(),
            Self::Dtrace(s) => s.clock(),
            Self::Proc(s) => s.clock(),
        }
    }

    /// Every eBPF program and whether it is attached; none for DTrace.
    pub fn programs(&self) -> Vec<(&'static str, bool)> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.programs(),
            Self::Dtrace(_) | Self::Proc(_) => Vec::new(),
        }
    }

    /// Time in and runs of each eBPF program; none for DTrace.
    pub fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.program_stats(),
            Self::Dtrace(_) | Self::Proc(_) => Vec::new(),
        }
    }

    /// Events lost so far, by kind.
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.losses().by_kind,
            Self::Dtrace(s) => s.losses(),
            // Nothing is queued between two looks, so nothing can overflow.
            Self::Proc(_) => Vec::new(),
        }
    }

    pub fn existing(&mut self) -> Vec<Event> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.existing(),
            Self::Dtrace(s) => s.existing(),
            Self::Proc(s) => s.existing(),
        }
    }

    /// /proc to re-sync with, when `lost` (the sum of [`KernelSource::losses`]) rose since
    /// the last re-sync; records read on the way go to `out`, to be applied first.
    pub fn rescan(&mut self, lost: u64, out: &mut Vec<Event>) -> Option<super::Rescan> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.rescan(lost, out),
            Self::Dtrace(s) => {
                let _ = out;
                s.rescan(lost)
            }
            Self::Proc(_) => None,
        }
    }

    pub fn ready_line(&self) -> String {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.ready_line(),
            Self::Dtrace(s) => s.ready_line(),
            Self::Proc(s) => s.ready_line(),
        }
    }

    /// Cancel-safe: waits for events and appends them to `out`.
    pub async fn next(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => Ok(s.next(out).await?),
            Self::Dtrace(s) => s.next(out).await,
            Self::Proc(s) => s.next(out).await,
        }
    }

    /// Before leaving: hands `each` the events queued before the stop request, in bounded
    /// batches. With DTrace that is what dtrace already wrote; what it still buffers
    /// itself leaves with it.
    pub async fn drain_queued(
        &mut self,
        mut each: impl FnMut(&mut Vec<Event>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.drain_queued(each),
            Self::Dtrace(s) => {
                let mut out = Vec::new();
                s.drain_queued(&mut out).await;
                each(&mut out)
            }
            Self::Proc(_) => Ok(()),
        }
    }

    pub fn report_losses(&mut self) {
        match self {
            #[cfg(target_os = "linux")]
            Self::Ebpf(s) => s.report_losses(),
            Self::Dtrace(s) => s.report_losses(),
            Self::Proc(_) => {}
        }
    }
}
