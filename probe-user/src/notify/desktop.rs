//! The daemon's handle on notifications: the policy and the way to the desktop, fed the
//! alerts, the machine's memory and the flagged sessions' totals as they come.
use super::{deliver::Notifier, policy::NotifyPolicy};
use crate::tracker::{Alert, ProcessView, Tracker};

/// What `--notify` asked for.
pub struct NotifyOptions {
    pub min_process_bytes: u64,
    pub total_bytes: u64,
    /// `--notify-exhaustion`: warn when memory runs out sooner than this at the pace the
    /// sessions grow.
    pub exhaustion_ns: u64,
    /// Whose desktop, when hupwatch cannot tell.
    pub user: Option<u32>,
}

/// The notification policy and the way to the desktop.
pub struct Notifications {
    policy: NotifyPolicy,
    notifier: Notifier,
}

impl Notifications {
    /// Starts delivery; a desktop that cannot be reached is one warning and no
    /// notifications, never an error. Must run before privileges are dropped (deliver.rs).
    pub async fn start(options: &NotifyOptions) -> Option<Self> {
        match Notifier::start(options.user).await {
            Ok(notifier) => Some(Self {
                policy: NotifyPolicy::new(options.min_process_bytes, options.total_bytes)
                    .with_exhaustion(options.exhaustion_ns),
                notifier,
            }),
            Err(why) => {
                super::deliver::warn(&format!("{why:#}"));
                None
            }
        }
    }

    pub fn on_alert(&mut self, alert: &Alert) {
        if let Some(n) = self.policy.on_alert(alert) {
            self.notifier.notify(&n);
        }
    }

    /// Weighed at each reading of the machine's memory: the forecast is cheap, and the
    /// sessions per program are grouped only for a notification.
    pub fn on_memory(&mut self, t: &Tracker, now_ns: u64) {
        let forecast = t.memory(now_ns);
        let programs = || t.metrics_view(now_ns, 0).programs;
        if let Some(n) = self.policy.on_memory(now_ns, &forecast, programs) {
            self.notifier.notify(&n);
        }
    }

    pub fn on_totals(&mut self, now_ns: u64, flagged: &[ProcessView]) {
        if let Some(n) = self.policy.on_totals(now_ns, flagged) {
            self.notifier.notify(&n);
        }
    }

    /// What `--reap-before` ended (or would end), said at once: it is why the user's
    /// sessions are gone.
    pub fn on_reap_before(&mut self, summary: String, body: String) {
        self.notifier.notify(&super::message::Notification {
            summary,
            body,
            urgency: super::message::Urgency::Critical,
        });
    }

    /// Sends what is queued and ends delivery.
    pub async fn close(self) {
        self.notifier.close().await;
    }
}
