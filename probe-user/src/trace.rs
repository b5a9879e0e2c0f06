//! `hupwatch trace`: live events of the matched processes, straight from the kernel.
use std::{
    collections::HashMap,
    io::{self, BufWriter, Write},
    time::Duration,
};

use probe_common::reason;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    decode::{Clock, decode},
    ebpf::{Losses, Probes},
    event::{Event, EventKind},
    matching::Matcher,
    output, procfs,
};

pub struct TraceOptions {
    pub json: bool,
    pub matcher: Matcher,
    /// How often the RSS map is sampled.
    pub rss_interval: Duration,
    /// Smallest RSS change reported as an `rss` event.
    pub rss_step: u64,
    /// Size of the kernel's event ring buffer in bytes.
    pub ring_bytes: u32,
}

pub async fn run(options: TraceOptions) -> anyhow::Result<()> {
    // Before anything else, so a stop request during start-up is still a clean exit.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let has_terminal = std::fs::File::open("/dev/tty").is_ok();
    let mut probes = Probes::load(&options.matcher, options.ring_bytes)?;
    for warning in &probes.warnings {
        eprintln!("hupwatch: warning: {warning}");
    }
    let seeded = seed_tracked_set(&mut probes, &options.matcher)?;
    let what = if options.matcher.traces_everything() {
        "every process".to_string()
    } else {
        format!("{seeded} existing processes and what they start")
    };
    eprintln!(
        "hupwatch: ready: {} programs attached, tracing {what}",
        probes.attached.len()
    );

    let events = probes.take_events().expect("the ring buffer is taken once");
    // SAFETY: the ring buffer owns its map fd, which stays open and unchanged until the
    // AsyncFd (which owns the ring buffer) is dropped.
    let mut ring = unsafe { AsyncFd::register_with_interest(events, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let mut tracer = Tracer {
        out: BufWriter::new(io::stdout().lock()),
        json: options.json,
        clock: Clock::now(),
        matcher: options.matcher,
        rss_step: options.rss_step,
        rss_reported: HashMap::new(),
        losses: Losses::default(),
        decode_errors: 0,
    };
    let mut tick = tokio::time::interval(options.rss_interval);

    let outcome: io::Result<()> = loop {
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready?;
                let ring = guard.get_inner_mut();
                while let Some(record) = ring.next() {
                    tracer.on_record(&mut probes, &record)?;
                }
                guard.clear_ready();
                if let Err(e) = tracer.out.flush() { break Err(e) }
            }
            _ = tick.tick() => {
                if let Err(e) = tracer.sample_rss(&probes).and_then(|()| tracer.out.flush()) {
                    break Err(e);
                }
                tracer.report_losses(&probes);
            }
            _ = sigterm.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
            // A tool that ignores hangups would be what it hunts: leave with the terminal.
            _ = sighup.recv(), if has_terminal => break Ok(()),
        }
    };
    tracer.report_losses(&probes);
    match outcome {
        // The reader went away (`hupwatch trace | head`): that is a normal end.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Puts the processes that already exist into the tracked set, then looks once more for
/// children forked by them before their entry was in the kernel map.
fn seed_tracked_set(probes: &mut Probes, matcher: &Matcher) -> anyhow::Result<usize> {
    if matcher.traces_everything() {
        return Ok(0);
    }
    let me = std::process::id();
    let mut seeded = std::collections::HashSet::new();
    for _pass in 0..2 {
        for (pid, why) in matcher.seed(&procfs::scan(), me)? {
            if probes.track(pid, why) {
                seeded.insert(pid);
            }
        }
    }
    Ok(seeded.len())
}

struct Tracer<W: Write> {
    out: W,
    json: bool,
    clock: Clock,
    matcher: Matcher,
    rss_step: u64,
    /// RSS last reported per pid; pruned to the live processes every sample.
    rss_reported: HashMap<u32, u64>,
    losses: Losses,
    decode_errors: u64,
}

impl<W: Write> Tracer<W> {
    fn on_record(&mut self, probes: &mut Probes, record: &[u8]) -> io::Result<()> {
        let event = match decode(record, &self.clock) {
            Ok(event) => event,
            Err(err) => {
                self.decode_errors += 1;
                if self.decode_errors == 1 {
                    eprintln!("hupwatch: warning: skipping undecodable record: {err}");
                }
                return Ok(());
            }
        };
        if let EventKind::Exec { .. } = event.kind
            && !crate::decode::exec_is_tracked(record)
            && !self.adopt_by_cmdline(probes, &event)
        {
            return Ok(());
        }
        if let EventKind::Exit { .. } = event.kind {
            self.rss_reported.remove(&event.pid);
        }
        self.print(&event)
    }

    /// Exec records of untracked processes arrive only when command lines are matched.
    fn adopt_by_cmdline(&mut self, probes: &mut Probes, event: &Event) -> bool {
        let Some(cmdline) = procfs::read_cmdline(event.pid) else {
            return false;
        };
        if !self.matcher.matches(&event.comm, &cmdline) {
            return false;
        }
        if !probes.track(event.pid, reason::MATCHED_CMDLINE) {
            eprintln!(
                "hupwatch: warning: tracked-set map is full; pid {} is not tracked",
                event.pid
            );
        }
        true
    }

    fn print(&mut self, event: &Event) -> io::Result<()> {
        if self.json {
            output::write_json(&mut self.out, event)
        } else {
            output::write_human(&mut self.out, event)
        }
    }

    fn sample_rss(&mut self, probes: &Probes) -> io::Result<()> {
        let snapshot = probes.rss_snapshot();
        let now = self.clock.epoch_now_ns();
        let me = std::process::id();
        let mut live = HashMap::with_capacity(snapshot.len());
        for (pid, rss) in snapshot {
            if pid == me {
                continue;
            }
            let total = rss.total();
            let last = self.rss_reported.get(&pid).copied();
            live.insert(pid, last.unwrap_or(0));
            let changed = match last {
                None => total > 0,
                Some(last) => total.abs_diff(last) >= self.rss_step,
            };
            if !changed {
                continue;
            }
            live.insert(pid, total);
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end_matches('\n').to_string())
                .unwrap_or_default();
            let event = Event {
                kind: EventKind::Rss {
                    rss_bytes: total,
                    peak_rss_bytes: rss.peak.max(total),
                    cpu_ns: None,
                },
                time_ns: now,
                pid,
                comm,
            };
            self.print(&event)?;
        }
        self.rss_reported = live;
        Ok(())
    }

    /// Says on stderr how many records the kernel could not queue since the last report.
    fn report_losses(&mut self, probes: &Probes) {
        let now = probes.losses();
        let new = now.lost_events().saturating_sub(self.losses.lost_events());
        if new > 0 {
            let detail: Vec<String> = now
                .since(&self.losses)
                .into_iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect();
            eprintln!(
                "hupwatch: lost {new} events (ring buffer full): {}; {} lost since start",
                detail.join(" "),
                now.lost_events()
            );
        }
        if now.tracked_map_full > self.losses.tracked_map_full {
            eprintln!(
                "hupwatch: {} processes could not be tracked (tracked-set map full)",
                now.tracked_map_full - self.losses.tracked_map_full
            );
        }
        if now.rss_map_full > self.losses.rss_map_full {
            eprintln!(
                "hupwatch: {} RSS updates dropped (RSS map full)",
                now.rss_map_full - self.losses.rss_map_full
            );
        }
        self.losses = now;
    }
}
