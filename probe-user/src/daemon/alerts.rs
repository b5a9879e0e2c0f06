//! Where alert lines go, and what goes with each: the memory read when it is raised, the
//! metrics' count, a desktop notification.
use std::{
    fs::OpenOptions,
    io::{self, BufWriter, IsTerminal, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

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
        // Alert lines carry command lines, which hold tokens: readable by the owner only,
        // and never through a symlink another user planted where the file is expected. A
        // link root or this user made (/dev/stdout, a logrotate setup) is theirs to follow.
        let open = |follow: bool| {
            let mut options = OpenOptions::new();
            options.create(true).append(true).mode(0o600);
            if !follow {
                options.custom_flags(libc::O_NOFOLLOW);
            }
            options.open(path)
        };
        let cannot = |why: String| {
            UserError::new(format!(
                "--alerts-file {}: cannot open it for appending ({why}); choose a writable path",
                path.display()
            ))
        };
        let file = match open(false) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                let owner = std::fs::symlink_metadata(path)
                    .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                    .map_err(|e| cannot(e.to_string()))?;
                // SAFETY: geteuid has no preconditions.
                if owner != 0 && owner != unsafe { libc::geteuid() } {
                    return Err(cannot(format!(
                        "it is a symbolic link owned by uid {owner}, which hupwatch does not follow: another user could point it anywhere"
                    ))
                    .into());
                }
                open(true).map_err(|e| cannot(e.to_string()))?
            }
            opened => opened.map_err(|e| cannot(e.to_string()))?,
        };
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

    /// Gives the alerts file to the user hupwatch is about to become, so that reopening it
    /// after rotation still works. Only a regular file, and not through a link: a link
    /// (/dev/stdout, say) leads to something that is not hupwatch's to give away.
    pub(super) fn hand_to(&self, uid: u32, gid: u32) {
        let Some(path) = self.path.as_deref() else {
            return;
        };
        let regular = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
        if regular && let Err(why) = std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
            eprintln!(
                "hupwatch: warning: --alerts-file {}: cannot give it to uid {uid} ({why}); reopening it after rotation will fail",
                path.display()
            );
        }
    }

    /// A line that is not an alert (what `--reap-before` decided): `json` as a JSON line,
    /// or `human` for a person at a terminal.
    pub(super) fn write_note(
        &mut self,
        json: &impl serde::Serialize,
        human: &str,
    ) -> io::Result<()> {
        match self.human {
            Some(_) => writeln!(self.out, "{human}")?,
            None => crate::output::write_json_line(&mut self.out, json)?,
        }
        self.out.flush()
    }

    /// JSON lines written elsewhere (reap's log of what it ended) as they are, or for a
    /// person at a terminal the one-line `summary` instead.
    pub(super) fn write_raw(&mut self, json_lines: &[u8], summary: &str) -> io::Result<()> {
        match self.human {
            Some(_) => writeln!(self.out, "{summary}")?,
            None => self.out.write_all(json_lines)?,
        }
        self.out.flush()
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Opens the file again (after log rotation). A file that cannot be opened leaves the
    /// one in use in place, with a warning: a rotation gone wrong must not stop the daemon.
    pub(super) fn reopen(&mut self) -> io::Result<()> {
        let Some(path) = self.path.as_deref() else {
            return Ok(());
        };
        self.out.flush()?;
        match Self::target(Some(path)) {
            Ok(fresh) => self.out = BufWriter::new(fresh),
            Err(why) => eprintln!(
                "hupwatch: warning: {why:#}; keeping the alerts file that was open, reopen it with another SIGHUP"
            ),
        }
        Ok(())
    }
}
