//! The watcher the self-test checks: `hupwatch run`'s own loop, in this process as `top`
//! runs it, told to watch the shell and what it starts, with the short thresholds of
//! plan.rs. Its sessions come back through a socket in the self-test's private folder.
use std::{path::Path, time::Duration};

use tokio::{sync::oneshot, task::JoinHandle};

use super::{
    error::SelftestError,
    plan::{
        HUP_GRACE, POLL_INTERVAL, RSS_GROWTH, RSS_INTERVAL, RSS_STEP, RSS_WINDOW, STOP_PENDING,
    },
    stops::Stops,
};
use crate::{
    matching::{Ignored, Matcher},
    source::{LiveOptions, SourceKind},
    tracker::{SessionsView, TrackerConfig},
};

/// CPU time is not what the self-test is about: read it as seldom as `run` ever does.
const CPU_INTERVAL: Duration = Duration::from_secs(10);

pub struct Watcher {
    task: Option<JoinHandle<anyhow::Result<()>>>,
    url: String,
}

impl Watcher {
    /// Starts watching `shell` and its descendants; returns once the source is ready.
    pub async fn start(
        source: Option<SourceKind>,
        shell: u32,
        folder: &Path,
        stops: &mut Stops,
    ) -> anyhow::Result<Self> {
        let socket = folder.join("api.sock");
        let live = LiveOptions {
            source,
            poll_interval: POLL_INTERVAL,
            matcher: Matcher::new(&[], None, &[shell])?,
            rss_interval: RSS_INTERVAL,
            cpu_interval: CPU_INTERVAL,
            pss_interval: crate::source::DEFAULT_PSS_INTERVAL,
            rss_step: RSS_STEP,
            ring_bytes: 8 << 20,
            verbose: false,
            run_as: None,
            keep_kill: false,
        };
        let (ready, address) = oneshot::channel();
        let options = crate::daemon::RunOptions {
            live,
            max_session_series: 0,
            listen: "127.0.0.1:0".into(),
            web_config: None,
            metrics_only: false,
            api_socket: Some(socket.clone()),
            api_socket_asked: true,
            api_group: None,
            running_as: String::new(),
            reap_before: None,
            alerts_file: Some("/dev/null".into()),
            json: true,
            tracker: TrackerConfig {
                hup_grace_ns: nanos(HUP_GRACE),
                rss_growth_bytes: RSS_GROWTH,
                rss_window_ns: nanos(RSS_WINDOW),
                ..TrackerConfig::default()
            },
            recording: None,
            notify: None,
            ready: Some(ready),
        };
        let task = tokio::task::spawn_local(crate::daemon::run(options));
        let mut watcher = Self {
            task: Some(task),
            url: format!("unix:{}", socket.display()),
        };
        tokio::select! {
            address = address => {
                if address.is_err() {
                    // It ended before it was ready: a stop request it took too, or its
                    // error says why.
                    if let Ok(signal) = tokio::time::timeout(STOP_PENDING, stops.next()).await {
                        return Err(SelftestError::Interrupted(signal).into());
                    }
                    watcher.check().await?;
                    anyhow::bail!("the watcher ended before it was ready");
                }
            }
            signal = stops.next() => return Err(SelftestError::Interrupted(signal).into()),
        }
        Ok(watcher)
    }

    /// The watcher's sessions now.
    pub async fn view(&self) -> anyhow::Result<SessionsView> {
        crate::sessions::gather(Some(&self.url), &Matcher::default(), &Ignored::default()).await
    }

    /// An error when the watcher has ended (with its own error, when it had one).
    pub async fn check(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.task.take_if(|t| t.is_finished()) else {
            return Ok(());
        };
        match task.await {
            Ok(Err(why)) => Err(why.context("the watcher failed")),
            Ok(Ok(())) => Err(anyhow::anyhow!("the watcher stopped")),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(anyhow::anyhow!("the watcher was cancelled")),
        }
    }

    /// Stops it: its source detaches as it is dropped.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
