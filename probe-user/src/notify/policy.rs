//! When a desktop notification is worth sending (`hupwatch run --notify`): pure policy, no
//! I/O but [`default_total`]. A raised verdict on a process holding at least
//! `--notify-min-memory` is one notification, once per process and verdict; flagged
//! sessions that together hold more than `--notify-total` are one summary, at most every
//! ten minutes and only again when their total grew by a tenth; memory about to run out
//! (`--notify-exhaustion`) or already stalling is one warning until it recovers
//! (exhaustion.rs). Every notification passes one rate limit. Delivery is deliver.rs.
use std::collections::{HashMap, HashSet, VecDeque};

use super::{
    exhaustion::{self, DEFAULT_EXHAUSTION_NS, MemoryWatch},
    message::{Notification, Urgency},
};
use crate::{
    host,
    tracker::{Alert, AlertStatus, MemoryForecast, ProcessView, SessionGroup},
    units::format_size,
    verdict::VerdictKind,
};

/// `--notify-min-memory`'s default: a raised verdict on a smaller process stays quiet.
pub const DEFAULT_MIN_PROCESS_BYTES: u64 = 1 << 30;
/// `--notify-total`'s default share of the machine's memory, in percent.
pub const DEFAULT_TOTAL_PERCENT: u64 = 25;
/// `--notify-total` where the machine's memory cannot be read: a quarter of 16 GiB.
pub const FALLBACK_TOTAL_BYTES: u64 = 4 << 30;
/// (pid, start, verdict) keys remembered as notified; the oldest are forgotten first.
pub const SENT_KEPT: usize = 4096;
/// The rate limit: at most `RATE_MAX` notifications in any `RATE_WINDOW_NS`.
pub const RATE_MAX: usize = 5;
pub const RATE_WINDOW_NS: u64 = 60 * NS_PER_SECOND;
/// A totals summary comes at most this often...
pub const TOTALS_INTERVAL_NS: u64 = 10 * 60 * NS_PER_SECOND;
/// ...and, while the total stays over the limit, only when it grew by this many percent
/// since the last one.
pub const TOTALS_GROWTH_PERCENT: u64 = 10;

const NS_PER_SECOND: u64 = 1_000_000_000;

/// Decides which alerts and totals become notifications. Times are Unix-epoch
/// nanoseconds, like `Verdict::time_ns`.
#[derive(Debug)]
pub struct NotifyPolicy {
    /// `--notify-min-memory`: the least memory a process with a new verdict must hold.
    pub min_process_bytes: u64,
    /// `--notify-total`: flagged sessions holding more than this together are summarized.
    pub total_bytes: u64,
    sent: HashSet<(u32, u64, VerdictKind)>,
    /// `sent` in the order it was filled, to forget the oldest past [`SENT_KEPT`].
    sent_order: VecDeque<(u32, u64, VerdictKind)>,
    /// When the notifications of the last [`RATE_WINDOW_NS`] were let through.
    recent: VecDeque<u64>,
    /// Notifications the rate limit held back, since the start.
    held_back: u64,
    /// Held back since the last one let through, which says so.
    held_back_unsaid: u64,
    /// (time, total) of the last totals summary in the current stretch over the limit.
    last_total: Option<(u64, u64)>,
    /// Time of the last totals summary, over every stretch.
    last_total_time: Option<u64>,
    /// The machine's memory: warned of or not (`--notify-exhaustion`).
    memory: MemoryWatch,
}

impl Default for NotifyPolicy {
    /// The defaults of `--notify-min-memory` and `--notify-total` (a quarter of RAM).
    fn default() -> Self {
        Self::new(DEFAULT_MIN_PROCESS_BYTES, default_total())
    }
}

impl NotifyPolicy {
    pub fn new(min_process_bytes: u64, total_bytes: u64) -> Self {
        Self {
            min_process_bytes,
            total_bytes,
            sent: HashSet::new(),
            sent_order: VecDeque::new(),
            recent: VecDeque::new(),
            held_back: 0,
            held_back_unsaid: 0,
            last_total: None,
            last_total_time: None,
            memory: MemoryWatch::new(DEFAULT_EXHAUSTION_NS),
        }
    }

    /// `--notify-exhaustion`: a forecast of memory running out sooner than this is one
    /// notification.
    pub fn with_exhaustion(mut self, exhaustion_ns: u64) -> Self {
        self.memory = MemoryWatch::new(exhaustion_ns);
        self
    }

    /// A notification for a verdict raised on a process that holds at least
    /// `min_process_bytes`, once per (pid, start time, verdict). Resolved alerts, small or
    /// unmeasured processes and repeats give none.
    pub fn on_alert(&mut self, alert: &Alert) -> Option<Notification> {
        if alert.status != AlertStatus::Raised {
            return None;
        }
        let bytes = memory(alert.footprint_bytes, alert.rss_bytes, alert.swap_bytes)?;
        if bytes < self.min_process_bytes {
            return None;
        }
        let key = (alert.pid, alert.started_ns, alert.verdict.kind);
        if !self.remember(key) {
            return None;
        }
        let kind = alert.verdict.kind;
        let notification = Notification {
            summary: format!(
                "{} {} ({}) holds {}",
                capitalized(adjective(kind)),
                alert.comm,
                alert.pid,
                format_size(bytes)
            ),
            body: format!(
                "{}.\npid {}, {} memory.\nhupwatch sessions; hupwatch reap --verdict {}",
                alert.verdict.reason,
                alert.pid,
                format_size(bytes),
                kind.name()
            ),
            urgency: Urgency::Normal,
        };
        self.let_through(alert.verdict.time_ns, notification)
    }

    /// A summary when the `flagged` sessions (those with a verdict) together hold more
    /// than `total_bytes`: at most once per [`TOTALS_INTERVAL_NS`], and while the total
    /// stays over the limit only again once it grew by [`TOTALS_GROWTH_PERCENT`]. A total
    /// that fell back under the limit starts afresh.
    pub fn on_totals(&mut self, now_ns: u64, flagged: &[ProcessView]) -> Option<Notification> {
        let measured: Vec<(&ProcessView, u64)> = flagged
            .iter()
            .filter(|p| !p.ignored && !p.verdicts.is_empty())
            .filter_map(|p| Some((p, memory(p.footprint_bytes, p.rss_bytes, p.swap_bytes)?)))
            .collect();
        let total: u64 = measured.iter().map(|(_, bytes)| bytes).sum();
        if total <= self.total_bytes {
            self.last_total = None;
            return None;
        }
        if let Some(last) = self.last_total_time
            && now_ns.saturating_sub(last) < TOTALS_INTERVAL_NS
        {
            return None;
        }
        if let Some((_, last_bytes)) = self.last_total
            && (total as u128) * 100 < (last_bytes as u128) * (100 + TOTALS_GROWTH_PERCENT as u128)
        {
            return None;
        }
        let notification = totals_notification(&measured, total, self.total_bytes);
        // Counted as sent even if the rate limit holds it back: the next comes no sooner.
        self.last_total = Some((now_ns, total));
        self.last_total_time = Some(now_ns);
        let mut notification = self.let_through(now_ns, notification)?;
        notification.urgency = Urgency::Critical;
        Some(notification)
    }

    /// Notifications the rate limit held back since the start.
    pub fn held_back(&self) -> u64 {
        self.held_back
    }

    /// A notification when the machine's memory runs out within `--notify-exhaustion` at
    /// the pace the sessions grow, or stalls already (see [`MemoryWatch`]): once, then not
    /// again until it has recovered. `programs` (the sessions per program, largest first)
    /// is asked for only then.
    pub fn on_memory(
        &mut self,
        now_ns: u64,
        forecast: &MemoryForecast,
        programs: impl FnOnce() -> Vec<SessionGroup>,
    ) -> Option<Notification> {
        // Judged only while one can go out: held back by the rate limit, the warning would
        // count as given and never come.
        if !self.has_room(now_ns) {
            return None;
        }
        let trouble = self.memory.check(now_ns, forecast)?;
        let notification = exhaustion::notification(trouble, forecast, &programs());
        self.let_through(now_ns, notification)
    }

    /// Whether the rate limit lets one more through now.
    fn has_room(&mut self, now_ns: u64) -> bool {
        while let Some(&oldest) = self.recent.front() {
            // A clock that went back keeps its entries until they are a window old again.
            if now_ns.saturating_sub(oldest) >= RATE_WINDOW_NS || oldest > now_ns {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() < RATE_MAX
    }

    /// Adds `key` to the sent set unless it is there; false if it was.
    fn remember(&mut self, key: (u32, u64, VerdictKind)) -> bool {
        if !self.sent.insert(key) {
            return false;
        }
        self.sent_order.push_back(key);
        while self.sent_order.len() > SENT_KEPT {
            if let Some(old) = self.sent_order.pop_front() {
                self.sent.remove(&old);
            }
        }
        true
    }

    /// `notification`, unless [`RATE_MAX`] went out in the last [`RATE_WINDOW_NS`]; the
    /// first let through after some were held back says how many.
    fn let_through(&mut self, now_ns: u64, mut notification: Notification) -> Option<Notification> {
        if !self.has_room(now_ns) {
            self.held_back += 1;
            self.held_back_unsaid += 1;
            return None;
        }
        self.recent.push_back(now_ns);
        if self.held_back_unsaid > 0 {
            let n = self.held_back_unsaid;
            notification.body.push_str(&format!(
                "\n({n} more notification{} held back; see hupwatch sessions)",
                if n == 1 { " was" } else { "s were" }
            ));
            self.held_back_unsaid = 0;
        }
        Some(notification)
    }
}

/// The memory a notification speaks of: macOS's footprint where known, else RSS + swap;
/// `None` before the first read.
fn memory(footprint: Option<u64>, rss: Option<u64>, swap: Option<u64>) -> Option<u64> {
    footprint.or_else(|| Some(rss?.saturating_add(swap.unwrap_or(0))))
}

/// "3 orphaned claude sessions hold 6.2 GiB": the most common (verdict, comm) among the
/// flagged sessions names them.
fn totals_notification(measured: &[(&ProcessView, u64)], total: u64, limit: u64) -> Notification {
    // (verdict, comm) -> (sessions, bytes); a session counts once under each verdict.
    let mut groups: HashMap<(VerdictKind, &str), (usize, u64)> = HashMap::new();
    for (process, bytes) in measured {
        let kinds: HashSet<VerdictKind> = process.verdicts.iter().map(|v| v.kind).collect();
        for kind in kinds {
            let entry = groups.entry((kind, process.comm.as_str())).or_default();
            entry.0 += 1;
            entry.1 += bytes;
        }
    }
    // The most sessions; then the most memory; then the verdict's and the name's order.
    let ((kind, comm), (count, group_bytes)) = groups
        .into_iter()
        .max_by(|(ka, va), (kb, vb)| (va.0, va.1).cmp(&(vb.0, vb.1)).then_with(|| kb.cmp(ka)))
        .expect("a total over the limit has a session");
    let sessions = |n: usize| if n == 1 { "session" } else { "sessions" };
    let others = measured.len() - count;
    let summary = if others == 0 {
        format!(
            "{count} {} {comm} {} {} {}",
            adjective(kind),
            sessions(count),
            if count == 1 { "holds" } else { "hold" },
            format_size(total)
        )
    } else {
        format!(
            "{count} {} {comm} {} and {others} more hold {}",
            adjective(kind),
            sessions(count),
            format_size(total)
        )
    };
    let mut body = format!(
        "{} flagged {} hold {}, over the {} set by --notify-total.",
        measured.len(),
        sessions(measured.len()),
        format_size(total),
        format_size(limit)
    );
    if others > 0 {
        body.push_str(&format!(
            "\nThe {count} {} {comm} {} hold {}.",
            adjective(kind),
            sessions(count),
            format_size(group_bytes)
        ));
    }
    let mut largest: Vec<&(&ProcessView, u64)> = measured.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.pid.cmp(&b.0.pid)));
    let pids: Vec<String> = largest
        .iter()
        .take(5)
        .map(|(p, bytes)| format!("{} ({})", p.pid, format_size(*bytes)))
        .collect();
    body.push_str(&format!(
        "\nLargest: pid {}{}.\nhupwatch sessions; hupwatch reap --verdict {}",
        pids.join(", "),
        if largest.len() > 5 { ", ..." } else { "" },
        kind.name()
    ));
    Notification {
        summary,
        body,
        urgency: Urgency::Critical,
    }
}

/// The verdict as a word before a program's name: "orphaned claude".
fn adjective(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::Detached => "detached",
        VerdictKind::HangupIgnored => "hangup-ignoring",
        VerdictKind::HangupSurvived => "hangup-surviving",
        VerdictKind::TerminalLost => "terminal-lost",
        VerdictKind::Orphaned => "orphaned",
        VerdictKind::RssGrowth => "growing",
        VerdictKind::CpuSpin => "spinning",
        VerdictKind::Zombies => "zombie-holding",
        VerdictKind::Stopped => "stopped",
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `--notify-total`'s default: a quarter of the machine's RAM (as the host layer reads it:
/// MemTotal on Linux, hw.memsize on macOS); [`FALLBACK_TOTAL_BYTES`] where it cannot be
/// read.
pub fn default_total() -> u64 {
    host::machine_memory()
        .ram_bytes
        .map(|bytes| bytes / 100 * DEFAULT_TOTAL_PERCENT)
        .filter(|bytes| *bytes > 0)
        .unwrap_or(FALLBACK_TOTAL_BYTES)
}

#[cfg(test)]
mod tests {
    use super::{
        exhaustion::tests::{full_in, program},
        *,
    };
    use crate::{
        tracker::AlertStatus,
        verdict::{Verdict, reason::Reason},
    };

    const GIB: u64 = 1 << 30;
    const SECOND: u64 = NS_PER_SECOND;
    const T0: u64 = 1_780_000_000 * SECOND;
    const MINUTE: u64 = 60 * SECOND;

    fn alert(pid: u32, kind: VerdictKind, rss: Option<u64>, time_ns: u64) -> Alert {
        Alert {
            status: AlertStatus::Raised,
            verdict: Verdict {
                kind,
                time_ns,
                reason: Reason::ParentExited {
                    comm: "zsh".into(),
                    pid: 4000,
                },
                evidence: Vec::new(),
                inferred: false,
                growth: None,
            },
            pid,
            comm: "claude".into(),
            cmdline: None,
            started_ns: 1000 + u64::from(pid),
            age_seconds: 60.0,
            rss_bytes: rss,
            swap_bytes: None,
            footprint_bytes: None,
            terminal_program: None,
            cwd: None,
        }
    }

    fn flagged(pid: u32, comm: &str, bytes: u64, kinds: &[VerdictKind]) -> ProcessView {
        let mut view = ProcessView::example(pid, bytes, kinds[0]);
        view.comm = comm.into();
        let template = view.verdicts[0].clone();
        view.verdicts = kinds
            .iter()
            .map(|kind| Verdict {
                kind: *kind,
                ..template.clone()
            })
            .collect();
        view
    }

    #[test]
    fn a_large_process_with_a_new_verdict_is_one_notification() {
        let mut policy = NotifyPolicy::new(GIB, 100 * GIB);
        let a = alert(4242, VerdictKind::Orphaned, Some(2 * GIB), T0);
        let n = policy.on_alert(&a).expect("2 GiB is over 1 GiB");
        assert_eq!(n.summary, "Orphaned claude (4242) holds 2.0 GiB");
        assert_eq!(
            n.body,
            "its parent zsh (4000) exited and it was reparented.\npid 4242, 2.0 GiB memory.\nhupwatch sessions; hupwatch reap --verdict orphaned"
        );
        assert_eq!(n.urgency, Urgency::Normal);
        assert_eq!(
            policy.on_alert(&a),
            None,
            "the same alert twice is one notification"
        );
        // Another verdict on the same process, or the same pid started again, is news.
        assert!(
            policy
                .on_alert(&alert(4242, VerdictKind::RssGrowth, Some(2 * GIB), T0))
                .is_some()
        );
        let mut restarted = a.clone();
        restarted.started_ns += 1;
        assert!(policy.on_alert(&restarted).is_some());
    }

    #[test]
    fn small_unmeasured_and_resolved_stay_quiet() {
        let mut policy = NotifyPolicy::new(GIB, 100 * GIB);
        assert_eq!(
            policy.on_alert(&alert(1, VerdictKind::Orphaned, Some(GIB - 1), T0)),
            None
        );
        assert_eq!(
            policy.on_alert(&alert(2, VerdictKind::Orphaned, None, T0)),
            None
        );
        let mut resolved = alert(3, VerdictKind::Orphaned, Some(2 * GIB), T0);
        resolved.status = AlertStatus::Resolved;
        assert_eq!(policy.on_alert(&resolved), None);
        // Exactly the minimum is enough; swap counts with RSS; a footprint replaces both.
        assert!(
            policy
                .on_alert(&alert(4, VerdictKind::Orphaned, Some(GIB), T0))
                .is_some()
        );
        let mut swapped = alert(5, VerdictKind::Orphaned, Some(GIB / 2), T0);
        swapped.swap_bytes = Some(GIB / 2);
        assert!(policy.on_alert(&swapped).is_some());
        let mut footprint = alert(6, VerdictKind::Orphaned, Some(4 * GIB), T0);
        footprint.footprint_bytes = Some(GIB / 2);
        assert_eq!(policy.on_alert(&footprint), None);
    }

    #[test]
    fn the_rate_limit_holds_back_and_counts() {
        let mut policy = NotifyPolicy::new(GIB, 100 * GIB);
        let sent: Vec<bool> = (0..8)
            .map(|pid| {
                policy
                    .on_alert(&alert(
                        pid,
                        VerdictKind::Orphaned,
                        Some(2 * GIB),
                        T0 + u64::from(pid),
                    ))
                    .is_some()
            })
            .collect();
        assert_eq!(sent, [true, true, true, true, true, false, false, false]);
        assert_eq!(policy.held_back(), 3);
        // Held back is not forgotten as sent: the same alert stays quiet later.
        assert_eq!(
            policy.on_alert(&alert(
                7,
                VerdictKind::Orphaned,
                Some(2 * GIB),
                T0 + 61 * SECOND
            )),
            None
        );
        let next = policy
            .on_alert(&alert(
                8,
                VerdictKind::Orphaned,
                Some(2 * GIB),
                T0 + 61 * SECOND,
            ))
            .expect("a minute later the limit lets one through");
        assert!(
            next.body
                .ends_with("(3 more notifications were held back; see hupwatch sessions)"),
            "{}",
            next.body
        );
        let after = policy
            .on_alert(&alert(
                9,
                VerdictKind::Orphaned,
                Some(2 * GIB),
                T0 + 62 * SECOND,
            ))
            .unwrap();
        assert!(!after.body.contains("held back"));
    }

    #[test]
    fn the_sent_set_is_bounded() {
        let mut policy = NotifyPolicy::new(GIB, 100 * GIB);
        let minute = 60 * SECOND;
        for pid in 0..(SENT_KEPT as u32 + 10) {
            // One a minute apart keeps the rate limit out of it.
            let a = alert(
                pid,
                VerdictKind::Orphaned,
                Some(2 * GIB),
                T0 + u64::from(pid) * minute,
            );
            assert!(policy.on_alert(&a).is_some());
        }
        assert_eq!(policy.sent.len(), SENT_KEPT);
        assert_eq!(policy.sent_order.len(), SENT_KEPT);
        // The oldest was forgotten, the newest is remembered.
        let late = T0 + 10_000 * minute;
        assert!(
            policy
                .on_alert(&alert(0, VerdictKind::Orphaned, Some(2 * GIB), late))
                .is_some()
        );
        let newest = SENT_KEPT as u32 + 9;
        assert_eq!(
            policy.on_alert(&alert(
                newest,
                VerdictKind::Orphaned,
                Some(2 * GIB),
                late + minute
            )),
            None
        );
    }

    #[test]
    fn totals_summarize_the_most_common_verdict_and_name() {
        let mut policy = NotifyPolicy::new(GIB, 4 * GIB);
        let orphaned = [VerdictKind::Orphaned];
        let sessions = vec![
            flagged(11, "claude", 2 * GIB, &orphaned),
            flagged(12, "claude", 2 * GIB, &orphaned),
            flagged(
                13,
                "claude",
                2 * GIB + 2 * (GIB / 10),
                &[VerdictKind::Orphaned, VerdictKind::RssGrowth],
            ),
        ];
        let n = policy
            .on_totals(T0, &sessions)
            .expect("6.2 GiB is over 4 GiB");
        assert_eq!(n.summary, "3 orphaned claude sessions hold 6.2 GiB");
        assert_eq!(n.urgency, Urgency::Critical);
        assert!(
            n.body.starts_with(
                "3 flagged sessions hold 6.2 GiB, over the 4.0 GiB set by --notify-total."
            ),
            "{}",
            n.body
        );
        assert!(
            n.body
                .contains("Largest: pid 13 (2.2 GiB), 11 (2.0 GiB), 12 (2.0 GiB)."),
            "{}",
            n.body
        );
        assert!(
            n.body.ends_with("hupwatch reap --verdict orphaned"),
            "{}",
            n.body
        );

        let mut mixed = sessions.clone();
        mixed.push(flagged(14, "node", 3 * GIB, &[VerdictKind::Detached]));
        let mut fresh = NotifyPolicy::new(GIB, 4 * GIB);
        let n = fresh.on_totals(T0, &mixed).unwrap();
        assert_eq!(
            n.summary,
            "3 orphaned claude sessions and 1 more hold 9.2 GiB"
        );
        assert!(
            n.body
                .contains("The 3 orphaned claude sessions hold 6.2 GiB."),
            "{}",
            n.body
        );
    }

    #[test]
    fn totals_under_the_limit_or_unflagged_stay_quiet() {
        let mut policy = NotifyPolicy::new(GIB, 4 * GIB);
        let orphaned = [VerdictKind::Orphaned];
        assert_eq!(
            policy.on_totals(T0, &[flagged(1, "claude", 4 * GIB, &orphaned)]),
            None,
            "exactly the limit is not more than it"
        );
        let mut ignored = flagged(2, "claude", 8 * GIB, &orphaned);
        ignored.ignored = true;
        let mut unflagged = flagged(3, "claude", 8 * GIB, &orphaned);
        unflagged.verdicts.clear();
        let mut unmeasured = flagged(4, "claude", 0, &orphaned);
        unmeasured.rss_bytes = None;
        assert_eq!(
            policy.on_totals(T0, &[ignored, unflagged, unmeasured]),
            None
        );
        assert_eq!(policy.on_totals(T0, &[]), None);
    }

    #[test]
    fn totals_come_every_ten_minutes_at_most_and_only_when_grown() {
        let mut policy = NotifyPolicy::new(GIB, 4 * GIB);
        let at = |bytes: u64| vec![flagged(1, "claude", bytes, &[VerdictKind::Orphaned])];
        let minute = 60 * SECOND;
        assert!(policy.on_totals(T0, &at(5 * GIB)).is_some());
        // Grown a lot, but too soon.
        assert_eq!(policy.on_totals(T0 + 9 * minute, &at(10 * GIB)), None);
        // Late enough, but grown by less than a tenth.
        assert_eq!(
            policy.on_totals(T0 + 11 * minute, &at(5 * GIB + GIB / 4)),
            None
        );
        // Late enough and grown by a tenth.
        assert!(
            policy
                .on_totals(T0 + 12 * minute, &at(5 * GIB + GIB / 2))
                .is_some()
        );
        // Back under the limit, then over again: a fresh start, still ten minutes apart.
        assert_eq!(policy.on_totals(T0 + 13 * minute, &at(GIB)), None);
        assert_eq!(policy.on_totals(T0 + 14 * minute, &at(5 * GIB)), None);
        assert!(policy.on_totals(T0 + 23 * minute, &at(5 * GIB)).is_some());
    }

    #[test]
    fn totals_pass_the_rate_limit_too() {
        let mut policy = NotifyPolicy::new(GIB, 4 * GIB);
        for pid in 0..RATE_MAX as u32 {
            assert!(
                policy
                    .on_alert(&alert(pid, VerdictKind::Orphaned, Some(2 * GIB), T0))
                    .is_some()
            );
        }
        let sessions = vec![flagged(1, "claude", 5 * GIB, &[VerdictKind::Orphaned])];
        assert_eq!(policy.on_totals(T0 + SECOND, &sessions), None);
        assert_eq!(policy.held_back(), 1);
    }

    #[test]
    fn the_warning_waits_for_room_under_the_rate_limit() {
        let mut policy = NotifyPolicy::new(GIB, 100 * GIB).with_exhaustion(DEFAULT_EXHAUSTION_NS);
        let asked = std::cell::Cell::new(0);
        let programs = || {
            asked.set(asked.get() + 1);
            vec![program("claude", 2, 3 * GIB)]
        };
        assert_eq!(policy.on_memory(T0, &full_in(180.0, None), programs), None);
        assert_eq!(asked.get(), 0, "no trouble, no grouping");
        for pid in 0..5 {
            let alert = alert(pid, VerdictKind::Orphaned, Some(2 * GIB), T0);
            assert!(policy.on_alert(&alert).is_some());
        }
        assert_eq!(policy.on_memory(T0, &full_in(60.0, None), programs), None);
        let n = policy
            .on_memory(T0 + MINUTE, &full_in(59.0, None), programs)
            .expect("the warning comes once there is room");
        assert!(n.body.contains("2 claude (3.0 GiB RSS)"), "{}", n.body);
        assert_eq!(
            policy.on_memory(T0 + 2 * MINUTE, &full_in(58.0, None), programs),
            None
        );
        assert_eq!(policy.held_back(), 0);
    }

    #[test]
    fn default_total_is_a_quarter_of_ram() {
        let total = default_total();
        #[cfg(target_os = "linux")]
        {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
            let ram = crate::host::linux_memory::parse_meminfo(&meminfo)
                .ram_bytes
                .unwrap();
            assert_eq!(total, ram / 100 * 25);
        }
        assert!(total > 0);
    }
}
