//! Where alert lines go, and what goes with each: the memory read when it is raised, the
//! metrics' count, a desktop notification.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, IsTerminal, Write},
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::{
    error::UserError,
    event::{Event, EventKind},
    notify::Notifications,
    sink::{
        alerts::write_alert,
        human::{self, Colour},
        metrics::Metrics,
    },
    tracker::{Alert, AlertStatus},
};

/// Where alert lines go: stdout, or a file opened for appending (reopened on SIGHUP); as
/// JSON, or as readable lines for a person at a terminal.
pub(super) struct AlertSink {
    path: Option<PathBuf>,
    out: BufWriter<Box<dyn Write + Send>>,
    /// `None`: JSON lines.
    human: Option<Colour>,
    /// The processes are alive now (not a recording's): an alert raised before its
    /// process's memory was first sampled reads it at that moment.
    pub live: bool,
    /// Those readings, as `rss` events for the tracker, so that the sessions API and the
    /// per-session series agree with the alert line.
    pub readings: Vec<Event>,
    /// Desktop notifications, with `--notify`.
    pub notify: Option<Notifications>,
}

impl AlertSink {
    pub(super) fn open(path: Option<&Path>, json: bool) -> anyhow::Result<Self> {
        let terminal = path.is_none() && io::stdout().is_terminal();
        Ok(Self {
            path: path.map(Path::to_owned),
            out: BufWriter::new(Self::target(path)?),
            human: (terminal && !json).then(|| Colour::for_terminal(terminal)),
            live: false,
            readings: Vec::new(),
            notify: None,
        })
    }

    fn target(path: Option<&Path>) -> anyhow::Result<Box<dyn Write + Send>> {
        let Some(path) = path else {
            return Ok(Box::new(io::stdout()));
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                UserError::new(format!(
                    "--alerts-file {}: cannot open it for appending ({e}); choose a writable path",
                    path.display()
                ))
            })?;
        Ok(Box::new(file))
    }

    pub(super) fn write(&mut self, metrics: &Metrics, alerts: Vec<Alert>) -> io::Result<()> {
        for mut alert in alerts {
            if self.live && alert.status == AlertStatus::Raised {
                // The memory when it is raised, not at the last sample (up to
                // --rss-interval old, or none yet: a detach is judged 80 ms after it).
                if let Some(now) = crate::host::usage(alert.pid) {
                    alert.rss_bytes = Some(now.rss_bytes);
                    alert.swap_bytes = now.swap_bytes;
                    alert.footprint_bytes = now.footprint_bytes;
                    self.readings.push(Event {
                        kind: EventKind::Rss {
                            rss_bytes: now.rss_bytes,
                            peak_rss_bytes: now.peak_rss_bytes.unwrap_or(now.rss_bytes),
                            swap_bytes: now.swap_bytes,
                            cpu_ns: None,
                            footprint_bytes: now.footprint_bytes,
                        },
                        time_ns: alert.verdict.time_ns,
                        pid: alert.pid,
                        comm: alert.comm.clone(),
                    });
                }
            }
            metrics.observe_alert(&alert);
            if let Some(n) = self.notify.as_mut() {
                n.on_alert(&alert);
            }
            match self.human {
                Some(colour) => human::write_alert(&mut self.out, &alert, colour)?,
                None => write_alert(&mut self.out, &alert)?,
            }
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub(super) fn reopen(&mut self) -> anyhow::Result<()> {
        if self.path.is_some() {
            self.out.flush()?;
            self.out = BufWriter::new(Self::target(self.path.as_deref()).context("reopening")?);
        }
        Ok(())
    }
}
