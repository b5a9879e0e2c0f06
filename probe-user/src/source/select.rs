//! Which source `run` and `trace` watch with: the one asked for, or the best this machine
//! allows (eBPF on Linux, DTrace on macOS, else polling the process table).
use super::{LiveOptions, SourceKind, poll::PollSource, shared::Source, tracer::Tracer};
use crate::{decode::Clock, error::UserError};

/// Starts the source asked for (a failure is the error), or with none asked for, this
/// OS's tracer, falling back to polling with one line saying why and what is lost.
pub async fn start(options: LiveOptions) -> anyhow::Result<Source> {
    let clock = Clock::now();
    let tracer = match options.source {
        Some(kind) => tracer(kind, &options, clock).await?,
        None => {
            let native = SourceKind::native();
            match tracer(native, &options, clock).await {
                Ok(tracer) => tracer,
                Err(why) => {
                    let every = u64::try_from(options.poll_interval.as_nanos()).unwrap_or(u64::MAX);
                    eprintln!(
                        "hupwatch: warning: --source {} cannot start ({}); falling back to --source proc, which polls the process table every {} and sees no signals",
                        native.name(),
                        crate::error::one_line(&why),
                        crate::units::format_duration(every),
                    );
                    tracer(SourceKind::Proc, &options, clock).await?
                }
            }
        }
    };
    let cpu_every = options.cpu_interval.as_nanos() / options.rss_interval.as_nanos().max(1);
    Ok(
        Source::new(tracer, clock, options.rss_interval, options.rss_step)
            .with_cpu_every(u32::try_from(cpu_every).unwrap_or(u32::MAX))
            .with_pss_every(options.pss_interval, options.rss_interval),
    )
}

async fn tracer(
    kind: SourceKind,
    options: &LiveOptions,
    clock: Clock,
) -> anyhow::Result<Box<dyn Tracer>> {
    match kind {
        SourceKind::Proc => {
            let source = PollSource::start(options, clock)?;
            // Polling needs only to read /proc: the same two capabilities as after attaching.
            #[cfg(target_os = "linux")]
            drop_privileges(options.run_as, options.keep_kill)?;
            Ok(Box::new(source))
        }
        #[cfg(target_os = "linux")]
        SourceKind::Ebpf => {
            let source = super::live::LiveSource::start(options, clock)?;
            drop_privileges(options.run_as, options.keep_kill)?;
            Ok(Box::new(source))
        }
        #[cfg(not(target_os = "linux"))]
        SourceKind::Ebpf => Err(UserError::new(
            "--source ebpf needs Linux; on macOS use --source dtrace (the default) or --source proc",
        )
        .into()),
        #[cfg(target_os = "macos")]
        SourceKind::Dtrace => Ok(Box::new(
            super::dtrace::watch::DtraceWatch::start(options, clock).await?,
        )),
        #[cfg(not(target_os = "macos"))]
        SourceKind::Dtrace => Err(UserError::new(
            "--source dtrace runs macOS's DTrace and its script reads macOS kernel structures; on Linux use --source ebpf (the default) or --source proc",
        )
        .into()),
    }
}

/// A capability that cannot be dropped is a warning (hupwatch has at most what it started
/// with); a change of user asked for and refused is an error, since going on would run
/// with more than asked.
#[cfg(target_os = "linux")]
fn drop_privileges(
    run_as: Option<crate::privileges::SwitchTo>,
    keep_kill: bool,
) -> Result<(), UserError> {
    use crate::privileges::{DropError, drop_after_attach};
    match drop_after_attach(run_as, keep_kill) {
        Ok(()) if keep_kill && !crate::privileges::may_kill_others() => {
            eprintln!(
                "hupwatch: warning: --reap-before: no CAP_KILL, so only this user's processes can be ended; under systemd add CAP_KILL to the unit's CapabilityBoundingSet (docs/service.md)"
            );
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(DropError::Capabilities(why)) => {
            eprintln!(
                "hupwatch: warning: could not drop privileges after starting ({why}); going on with them"
            );
            Ok(())
        }
        Err(why @ DropError::Switch { .. }) => Err(UserError::new(format!(
            "--user: {why}; start hupwatch as root with CAP_SETUID and CAP_SETGID, or pass --user root"
        ))),
    }
}
