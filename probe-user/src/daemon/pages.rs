//! The read-only pages `hupwatch run` serves: the sessions document, the metrics, an index.
use std::sync::{Arc, Mutex};

use super::lock::lock;
use crate::{
    decode::Clock,
    sink::{
        http::{Page, Pages, Viewer},
        metrics::Metrics,
    },
    tracker::Tracker,
};

const INDEX: &[u8] = b"hupwatch\n\
/metrics       Prometheus metrics\n\
/api/sessions  live sessions, their verdicts and evidence (JSON)\n";

/// The read-only pages `hupwatch run` serves.
pub(super) struct SessionPages {
    pub tracker: Arc<Mutex<Tracker>>,
    pub metrics: Arc<Mutex<Metrics>>,
    pub clock: Clock,
    pub about: About,
    /// `--metrics-only`: /api/sessions is not found.
    pub metrics_only: bool,
    /// `--api-group`: its members see every process, as root does.
    pub all_group: Option<u32>,
}

/// Which source the sessions come from and what it cannot see.
pub(super) struct About {
    pub source: &'static str,
    pub unavailable: &'static [&'static str],
}

impl Pages for SessionPages {
    fn get(&self, path: &str, viewer: Viewer) -> Option<Page> {
        match path {
            "/api/sessions" if !self.metrics_only => {
                if viewer == Viewer::Unknown {
                    return Some(Page::forbidden(
                        "the sessions name every command line here, and this client is \
                         nobody the server can name: use the local socket (hupwatch sessions), \
                         or basic_auth_users or client certificates in --web-config",
                    ));
                }
                let mut view = lock(&self.tracker).view(self.clock.epoch_now_ns());
                view.source = Some(self.about.source.to_string());
                view.unavailable = self
                    .about
                    .unavailable
                    .iter()
                    .map(|w| w.to_string())
                    .collect();
                view.events_lost = Some(lock(&self.metrics).events_lost());
                if let Viewer::Own(uid) = viewer
                    && !self
                        .all_group
                        .is_some_and(|gid| crate::host::users::belongs_to(uid, gid))
                {
                    // What that user's own /proc shows: their processes, read now, so a pid
                    // that changed hands since it was judged is not shown.
                    view.keep_only(|p| {
                        crate::host::identity(p.pid)
                            .is_some_and(|now| now.uid == uid && now.started_at(p.started_ns))
                    });
                    // Whom the OOM killer would pick names other users' processes too:
                    // this viewer sees only theirs, as for the sessions.
                    if let Some(killer) = view.memory.killer.as_mut() {
                        killer.would_kill.retain(|c| {
                            crate::host::identity(c.pid).is_some_and(|now| now.uid == uid)
                        });
                    }
                }
                Some(Page::new(
                    "application/json",
                    serde_json::to_vec(&view).ok()?,
                ))
            }
            "/metrics" => {
                // One lock at a time: the event loop takes the tracker's, then the metrics'.
                let limit = lock(&self.metrics).max_session_series();
                let view = lock(&self.tracker).metrics_view(self.clock.epoch_now_ns(), limit);
                Some(Page::new(
                    "text/plain; version=0.0.4; charset=utf-8",
                    lock(&self.metrics).render(&view),
                ))
            }
            "/" => Some(Page::new("text/plain; charset=utf-8", INDEX.to_vec())),
            _ => None,
        }
    }
}
