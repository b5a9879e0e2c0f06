//! `run --reap-before DUR` in the daemon: every few seconds it weighs the forecast; when
//! the OOM killer would act within DUR it ends the left-over session trees that
//! reap/before.rs picks, largest first, on a task of its own (the grace period must not
//! hold up the events), and says what it ended and what that freed in an alert line and a
//! notification. `--dry-run` says what it would end and ends nothing.
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;
use tokio::sync::mpsc;

use super::{alerts::AlertSink, lock::lock};
use crate::{
    reap::{
        before::{self, Plan},
        end, identity,
        select::Criteria,
    },
    tracker::Tracker,
    units::{format_duration, format_size, rfc3339},
};

/// How often the forecast is weighed.
pub const EVERY: Duration = Duration::from_secs(5);
/// How long ended processes get between SIGTERM and SIGKILL: memory is running out.
const GRACE: Duration = Duration::from_secs(5);
/// After acting, how long before acting again: the ended trees' memory must show as freed
/// in the next readings before the forecast is believed again.
const SETTLE: Duration = Duration::from_secs(15);

/// What `--reap-before` asked for.
#[derive(Clone, Debug)]
pub struct GuardOptions {
    pub within: Duration,
    pub dry_run: bool,
    /// The trees qualify as `reap --tree` would pick them, with these filters.
    pub criteria: Criteria,
}

pub(super) struct Guard {
    options: GuardOptions,
    /// A reap running on its task, and when the last one started.
    busy: bool,
    last: Option<Instant>,
    done_tx: mpsc::UnboundedSender<Ended>,
    done_rx: mpsc::UnboundedReceiver<Ended>,
}

/// What a finished reap sends back: its log lines (reap's JSON lines) and failures.
pub(super) struct Ended {
    lines: Vec<u8>,
    failed: usize,
    targets: usize,
}

/// The decision, as the alert line states it.
#[derive(Serialize)]
struct Decision<'a> {
    time: String,
    action: &'static str,
    dry_run: bool,
    /// The forecast's time until the killer acts, when the guard looked, and which killer
    /// (null: memory running out, no killer known).
    acts_in_seconds: f64,
    killer: Option<&'static str>,
    within_seconds: f64,
    freed_bytes: u64,
    freed_measure: &'static str,
    clears: bool,
    trees: Vec<TreeLine<'a>>,
}

#[derive(Serialize)]
struct TreeLine<'a> {
    id: &'a str,
    root_pid: u32,
    root_comm: &'a str,
    pids: Vec<u32>,
}

impl Guard {
    pub fn new(options: GuardOptions) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            options,
            busy: false,
            last: None,
            done_tx,
            done_rx,
        }
    }

    /// Weighs the forecast and acts on it. The full view is built only when the forecast
    /// already says the killer is near.
    pub fn check(&mut self, tracker: &Mutex<Tracker>, now_ns: u64, alerts: &mut AlertSink) {
        if self.busy || self.last.is_some_and(|at| at.elapsed() < SETTLE) {
            return;
        }
        let within = self.options.within.as_secs_f64();
        let near = lock(tracker)
            .memory(now_ns)
            .acts_in_seconds()
            .is_some_and(|s| s <= within);
        if !near {
            return;
        }
        let view = lock(tracker).view(now_ns);
        let reaper = identity::reaper();
        let Some(plan) = before::plan(
            &view,
            within,
            &self.options.criteria,
            &reaper,
            identity::look,
        ) else {
            return;
        };
        self.last = Some(Instant::now());
        self.announce(&plan, now_ns, alerts);
        if self.options.dry_run {
            return;
        }
        self.busy = true;
        let targets: Vec<_> = plan.trees.into_iter().flat_map(|(_, t)| t).collect();
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let mut lines = Vec::new();
            let failed = end::end_all(&targets, libc::SIGTERM as u32, GRACE, &mut lines)
                .await
                .unwrap_or(targets.len());
            let _ = done.send(Ended {
                lines,
                failed,
                targets: targets.len(),
            });
        });
    }

    /// The next finished reap (pending while none runs).
    pub async fn finished(&mut self) -> Ended {
        match self.done_rx.recv().await {
            Some(ended) => ended,
            None => std::future::pending().await,
        }
    }

    /// Writes what a finished reap did.
    pub fn report(&mut self, ended: Ended, alerts: &mut AlertSink) -> std::io::Result<()> {
        self.busy = false;
        let summary = format!(
            "hupwatch: reap-before: ended {} of {} processes{}",
            ended.targets - ended.failed,
            ended.targets,
            if ended.failed > 0 {
                " (the others could not be ended; see the lines above)"
            } else {
                ""
            }
        );
        alerts.write_raw(&ended.lines, &summary)
    }

    fn announce(&self, plan: &Plan, now_ns: u64, alerts: &mut AlertSink) {
        let trees: Vec<TreeLine<'_>> = plan
            .trees
            .iter()
            .map(|(tree, targets)| TreeLine {
                id: &tree.id,
                root_pid: tree.root_pid,
                root_comm: &tree.root_comm,
                pids: targets.iter().map(|t| t.process.pid).collect(),
            })
            .collect();
        let names: Vec<String> = plan
            .trees
            .iter()
            .map(|(tree, targets)| {
                format!(
                    "{} (pid {}, {} process{})",
                    crate::output::shown(&tree.root_comm),
                    tree.root_pid,
                    targets.len(),
                    if targets.len() == 1 { "" } else { "es" }
                )
            })
            .collect();
        let verb = if self.options.dry_run {
            "would end"
        } else {
            "ending"
        };
        let freed = format!(
            "{} {}",
            format_size(plan.freed.bytes()),
            plan.freed.measure().name().to_uppercase()
        );
        let when = match plan.killer {
            Some(killer) => format!("{killer} acts in"),
            None => "memory runs out in".to_string(),
        };
        let human = format!(
            "hupwatch: reap-before: {when} {} (within {}): {verb} {} to free {freed}{}",
            format_duration((plan.acts_in_seconds * 1e9) as u64),
            format_duration(self.options.within.as_nanos() as u64),
            names.join(", "),
            if plan.clears {
                ""
            } else {
                "; not enough to clear the forecast"
            }
        );
        let decision = Decision {
            time: rfc3339(now_ns),
            action: "reap_before",
            dry_run: self.options.dry_run,
            acts_in_seconds: plan.acts_in_seconds,
            killer: plan.killer,
            within_seconds: self.options.within.as_secs_f64(),
            freed_bytes: plan.freed.bytes(),
            freed_measure: plan.freed.measure().name(),
            clears: plan.clears,
            trees,
        };
        if let Err(why) = alerts.write_note(&decision, &human) {
            eprintln!("hupwatch: warning: reap-before: cannot write its alert line: {why}");
        }
        if let Some(n) = alerts.notify.as_mut() {
            n.on_reap_before(
                format!(
                    "hupwatch {verb} {} left-over session trees",
                    plan.trees.len()
                ),
                format!(
                    "{} {}. {} {} to free {freed}.",
                    when,
                    format_duration((plan.acts_in_seconds * 1e9) as u64),
                    if self.options.dry_run {
                        "It would end"
                    } else {
                        "Ending"
                    },
                    names.join(", ")
                ),
            );
        }
    }
}
