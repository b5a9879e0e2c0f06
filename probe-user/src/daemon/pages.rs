//! The read-only pages `hupwatch run` serves: the sessions document, the metrics, an index.
use std::sync::{Arc, Mutex};

use super::lock::lock;
use crate::{
    decode::Clock,
    sink::{
        http::{Page, Pages},
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
}

/// Which source the sessions come from and what it cannot see.
pub(super) struct About {
    pub source: &'static str,
    pub unavailable: &'static [&'static str],
}

impl Pages for SessionPages {
    fn get(&self, path: &str) -> Option<Page> {
        match path {
            "/api/sessions" if !self.metrics_only => {
                let mut view = lock(&self.tracker).view(self.clock.epoch_now_ns());
                view.source = Some(self.about.source.to_string());
                view.unavailable = self
                    .about
                    .unavailable
                    .iter()
                    .map(|w| w.to_string())
                    .collect();
                view.events_lost = Some(lock(&self.metrics).events_lost());
                Some(Page {
                    content_type: "application/json",
                    body: serde_json::to_vec(&view).ok()?,
                })
            }
            "/metrics" => {
                // One lock at a time: the event loop takes the tracker's, then the metrics'.
                let limit = lock(&self.metrics).max_session_series();
                let view = lock(&self.tracker).metrics_view(self.clock.epoch_now_ns(), limit);
                Some(Page {
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    body: lock(&self.metrics).render(&view),
                })
            }
            "/" => Some(Page {
                content_type: "text/plain; charset=utf-8",
                body: INDEX.to_vec(),
            }),
            _ => None,
        }
    }
}
