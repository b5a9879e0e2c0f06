//! `hupwatch run`: events from the kernel (or a recording) through the tracker into alert
//! lines, with the live sessions served read-only over HTTP. This file is the loop; the
//! pages it serves are pages.rs, where alert lines go is alerts.rs.
mod alerts;
mod guard;
mod lock;
mod pages;

use std::{
    fs::File,
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::signal::unix::{SignalKind, signal};

pub use self::guard::GuardOptions;

use self::{
    alerts::AlertSink,
    lock::lock,
    pages::{About, SessionPages},
};
use crate::{
    decode::Clock,
    event::Event,
    notify::{Notifications, NotifyOptions},
    output,
    sink::{
        http::{self, WebConfig},
        metrics::Metrics,
    },
    source::{
        LiveOptions, Rescan,
        recording::{RecordedEvents, Recording},
        select,
        shared::Update,
    },
    tracker::{SETTLE_NS, Tracker, TrackerConfig},
};

pub struct RunOptions {
    pub live: LiveOptions,
    pub max_session_series: usize,
    pub listen: String,
    /// `--web-config`: TLS and basic authentication for the listener.
    pub web_config: Option<PathBuf>,
    /// `--metrics-only`: no /api/sessions.
    pub metrics_only: bool,
    /// `--api-socket`: the local sessions API on a Unix socket (root's default
    /// /run/hupwatch/api.sock), where each peer sees what its uid may.
    pub api_socket: Option<PathBuf>,
    /// The socket was asked for (`--api-socket`): failing to serve it is an error. The
    /// default one is served when it can be, with a warning when it cannot.
    pub api_socket_asked: bool,
    /// `--api-group`: a gid whose members see every process through the API.
    pub api_group: Option<u32>,
    /// How the ready line ends, saying which user hupwatch runs as (`--user`).
    pub running_as: String,
    /// `--reap-before`: end left-over session trees before the OOM killer acts.
    pub reap_before: Option<GuardOptions>,
    pub alerts_file: Option<PathBuf>,
    /// JSON alert lines even on a terminal.
    pub json: bool,
    pub tracker: TrackerConfig,
    pub recording: Option<Recording>,
    /// Desktop notifications (`--notify`).
    pub notify: Option<NotifyOptions>,
    /// Told the HTTP server's address once it serves (`hupwatch top` runs the daemon
    /// in-process on a free port).
    pub ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
}

/// How often the flagged sessions' total memory is weighed for a notification.
const NOTIFY_TOTALS_EVERY: Duration = Duration::from_secs(30);

pub async fn run(options: RunOptions) -> anyhow::Result<()> {
    let mut alerts = AlertSink::open(options.alerts_file.as_deref(), options.json)?;
    if let Some(recording) = &options.recording {
        return replay(recording, options.tracker, &mut alerts);
    }
    alerts.live = true;
    run_live(options, alerts).await
}

async fn run_live(options: RunOptions, mut alerts: AlertSink) -> anyhow::Result<()> {
    // Before anything else, so a stop request during start-up is still a clean exit.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let has_terminal = File::open("/dev/tty").is_ok();
    // Read and bound before the probes load, so a bad file or a port in use fails fast
    // and loads nothing.
    let web = match &options.web_config {
        Some(file) => WebConfig::load(file)?,
        None => WebConfig::open(),
    };
    warn_about(&web);
    let listener = http::bind(&options.listen).await?;
    let socket = match &options.api_socket {
        Some(path) => match http::bind_unix(path) {
            Ok(api) => Some(Arc::new(api)),
            Err(why) if !options.api_socket_asked => {
                eprintln!("hupwatch: warning: {why}; serving no local API socket");
                None
            }
            Err(why) => return Err(why.into()),
        },
        None => None,
    };
    if let Some(warning) = http::exposure_warning(&listener, &web, options.metrics_only) {
        eprintln!("hupwatch: warning: {warning}");
    }
    let address = listener.local_addr();
    let groups = options.live.matcher.group_names();
    let tracker_config = TrackerConfig {
        require_terminal: options.live.matcher.traces_everything(),
        groups: options.live.matcher.clone(),
        cpu_read_ns: u64::try_from(options.live.cpu_interval.as_nanos()).unwrap_or(u64::MAX),
        ..options.tracker
    };
    // Before the source starts: it drops the privileges a helper running as the desktop's
    // user needs to be started with.
    if let Some(notify) = &options.notify {
        alerts.notify = Notifications::start(notify).await;
    }
    if let Some(to) = options.live.run_as {
        alerts.hand_to(to.uid, to.gid);
    }
    let mut source = select::start(options.live).await?;
    let clock = source.clock();
    let tracker = Arc::new(Mutex::new(Tracker::new(tracker_config)));
    let metrics = Arc::new(Mutex::new(Metrics::new(
        options.max_session_series,
        &groups,
    )));
    let about = About {
        source: source.kind().name(),
        unavailable: source.unavailable(),
    };
    {
        let m = lock(&metrics);
        for (program, attached) in source.programs() {
            m.set_attached(program, attached);
        }
        m.set_source(about.source, about.unavailable);
    }
    let mut updates: Vec<Update> = source.existing().into_iter().map(Update::Event).collect();
    let mut pipe = Pipe {
        tracker: &tracker,
        metrics: &metrics,
        alerts: &mut alerts,
        clock,
    };
    pipe.take(&mut updates)?;
    let pages = Arc::new(SessionPages {
        tracker: Arc::clone(&tracker),
        metrics: Arc::clone(&metrics),
        clock,
        about,
        metrics_only: options.metrics_only,
        all_group: options.api_group,
    });
    let local = socket
        .as_ref()
        .map(|api| format!("; local API at unix:{}", api.path().display()))
        .unwrap_or_default();
    let servers = http::spawn_servers(listener, socket, pages, web.clone())?;
    let scheme = if web.current().is_tls() {
        "https"
    } else {
        "http"
    };
    let served = if options.metrics_only {
        format!("metrics at {scheme}://{address}/metrics")
    } else {
        format!("sessions at {scheme}://{address}/api/sessions")
    };
    eprintln!(
        "{}{}{local}; {served}",
        source.ready_line(),
        options.running_as
    );
    if let Some(ready) = options.ready {
        let _ = ready.send(address);
    }

    let mut weigh_totals = tokio::time::interval(NOTIFY_TOTALS_EVERY);
    let mut guard = options.reap_before.map(guard::Guard::new);
    let mut guard_every = tokio::time::interval(guard::EVERY);
    let notifying = pipe.alerts.notify.is_some();
    let outcome: anyhow::Result<()> = loop {
        let wait = lock(&tracker)
            .next_deadline()
            .map(|due| Duration::from_nanos(due.saturating_sub(clock.epoch_now_ns())));
        // Every arm's failure ends the loop below, so it goes through the same exit: the
        // loss report, and a vanished alert reader counted as a normal end.
        let step: anyhow::Result<()> = tokio::select! {
            read = source.next(&mut updates) => read.and_then(|()| pipe.take(&mut updates)),
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {
                pipe.take(&mut updates)
            }
            _ = weigh_totals.tick(), if notifying => {
                let now = clock.epoch_now_ns();
                let flagged = lock(&tracker).metrics_view(now, usize::MAX).flagged;
                if let Some(n) = pipe.alerts.notify.as_mut() {
                    n.on_totals(now, &flagged);
                }
                Ok(())
            }
            _ = guard_every.tick(), if guard.is_some() => {
                if let Some(g) = guard.as_mut() {
                    g.check(&tracker, clock.epoch_now_ns(), pipe.alerts);
                }
                Ok(())
            }
            ended = async { guard.as_mut().expect("guarded by the condition").finished().await }, if guard.is_some() => {
                match guard.as_mut() {
                    Some(g) => g.report(ended, pipe.alerts).map_err(Into::into),
                    None => Ok(()),
                }
            }
            _ = sigterm.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
            _ = sighup.recv() => {
                // With a terminal, a hangup means the user is gone: leave with it. As a
                // service, it is the usual request to reopen the log (after rotation).
                if has_terminal { break Ok(()) }
                reload_web_config(&web);
                Ok(pipe.alerts.reopen()?)
            }
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    // A stop request is not a reason to drop what already happened: its alerts are written.
    let outcome = match outcome {
        Ok(()) => source.drain_queued(|batch| pipe.take(batch)).await,
        failed => failed,
    };
    source.report_losses();
    // The servers stop with their thread; the socket's file goes with its last holder.
    drop(servers);
    if let Some(n) = alerts.notify.take() {
        // What is queued goes out, within a bound: leaving must not hang on a desktop.
        let _ = tokio::time::timeout(Duration::from_secs(5), n.close()).await;
    }
    outcome.or_else(|e| match e.downcast::<io::Error>() {
        Ok(io) => output::unless_reader_gone(io),
        Err(other) => Err(other),
    })
}

/// The one way updates go through: into the tracker, counted, verdicts due by now raised,
/// alert lines written and flushed.
struct Pipe<'a> {
    tracker: &'a Mutex<Tracker>,
    metrics: &'a Mutex<Metrics>,
    alerts: &'a mut AlertSink,
    clock: Clock,
}

impl Pipe<'_> {
    fn take(&mut self, updates: &mut Vec<Update>) -> anyhow::Result<()> {
        let (mut t, mut m) = (lock(self.tracker), lock(self.metrics));
        for update in updates.drain(..) {
            match update {
                Update::Event(event) => take(&mut t, &m, self.alerts, &event)?,
                Update::Resync(rescan) => resync(&mut t, &m, self.alerts, &rescan)?,
                Update::Stats(stats) => m.set_source_stats(stats),
                Update::Machine(memory) => {
                    t.set_machine_memory(memory);
                    if let Some(n) = self.alerts.notify.as_mut() {
                        n.on_memory(&t, self.clock.epoch_now_ns());
                    }
                }
            }
        }
        self.alerts
            .write(&m, t.advance(self.clock.epoch_now_ns()))?;
        // A live alert's memory reading, so the sessions API and series agree with it.
        for event in std::mem::take(&mut self.alerts.readings) {
            take(&mut t, &m, self.alerts, &event)?;
        }
        Ok(self.alerts.flush()?)
    }
}

/// One event through the tracker, counted, its alerts written.
fn take(t: &mut Tracker, m: &Metrics, alerts: &mut AlertSink, event: &Event) -> io::Result<()> {
    m.observe_event(event);
    alerts.write(m, t.apply(event))
}

/// Brings the tracker in line with /proc after lost events, and says what that changed.
fn resync(t: &mut Tracker, m: &Metrics, alerts: &mut AlertSink, rescan: &Rescan) -> io::Result<()> {
    let (done, raised) = t.resync(&rescan.scan, &rescan.watch);
    m.observe_resync(&done);
    eprintln!(
        "hupwatch: re-synced with /proc after {} lost events: {} processes gone, {} found, {} verdicts withdrawn",
        rescan.lost, done.gone, done.added, done.withdrawn
    );
    alerts.write(m, raised)
}

/// Feeds a recording through the tracker; at its end, what has settled is raised.
fn replay(
    recording: &Recording,
    config: TrackerConfig,
    alerts: &mut AlertSink,
) -> anyhow::Result<()> {
    let mut tracker = Tracker::new(TrackerConfig {
        require_terminal: true,
        ..config
    });
    let (mut events, mut last) = (0u64, 0u64);
    let metrics = Metrics::new(0, &[]);
    let mut recorded = RecordedEvents::open(recording)?;
    for event in recorded.by_ref() {
        let event = event?;
        alerts.write(&metrics, tracker.advance(event.time_ns))?;
        take(&mut tracker, &metrics, alerts, &event)?;
        last = last.max(event.time_ns);
        events += 1;
    }
    alerts.write(&metrics, tracker.advance(last.saturating_add(SETTLE_NS)))?;
    alerts.flush()?;
    if let Some(warning) = recorded.skipped_report(recording) {
        eprintln!("{warning}");
    }
    eprintln!(
        "hupwatch: replayed {events} events; {} sessions still alive at the end of the recording",
        tracker.view(last).processes.len()
    );
    Ok(())
}

/// A web config that no longer loads leaves the one in force: a typo must not open the
/// listener, nor close it to the fleet's scrapers.
fn reload_web_config(web: &WebConfig) {
    match web.reload() {
        Ok(()) => warn_about(web),
        Err(why) => eprintln!("hupwatch: warning: {why}; keeping the web config in force"),
    }
}

fn warn_about(web: &WebConfig) {
    for warning in web.current().warnings() {
        eprintln!("hupwatch: warning: {warning}");
    }
}
