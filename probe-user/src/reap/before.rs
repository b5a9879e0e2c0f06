//! `run --reap-before DUR`: when the forecast says the OOM killer acts within DUR, which
//! session trees to end first, so that it is the left-over sessions that go rather than
//! what the killer would pick (the editor, the browser). The trees that qualify are the
//! ones `reap --tree` would end (outlived their terminal, idle, none of their members on
//! a terminal, not ignored, no keeper, not another user's without --all-users), largest
//! first, until the forecast clears. Pure: the view and the live looks come in.
use super::select::{Criteria, Identity, Reaper, Target, choose};
use crate::{
    tracker::{SessionTree, SessionsView, Total},
    verdict::VerdictKind,
};

/// The verdicts that say a tree outlived its terminal.
pub const OUTLIVED: [VerdictKind; 4] = [
    VerdictKind::TerminalLost,
    VerdictKind::Orphaned,
    VerdictKind::HangupSurvived,
    VerdictKind::Detached,
];

/// What the guard decided.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The killer's time when the guard looked, in seconds.
    pub acts_in_seconds: f64,
    /// Which killer that is (`earlyoom`, `systemd-oomd`, `kernel`...), when known.
    pub killer: Option<&'static str>,
    /// The trees to end, largest first, each with the members that passed reap's checks.
    pub trees: Vec<(SessionTree, Vec<Target>)>,
    /// What ending them frees, by the measure the totals use.
    pub freed: Total,
    /// Ending them pushes the killer past the horizon (or stops the growth); false when
    /// every qualifying tree is not enough, and all of them are ended anyway.
    pub clears: bool,
}

/// The plan when the forecast says the killer acts within `within_seconds`; None when it
/// does not, or nothing qualifies.
pub fn plan(
    view: &SessionsView,
    within_seconds: f64,
    criteria: &Criteria,
    reaper: &Reaper,
    look: impl Fn(u32) -> Option<Identity>,
) -> Option<Plan> {
    let acts_in = view.memory.acts_in_seconds()?;
    let growth = view.memory.growth_bytes_per_second;
    if acts_in > within_seconds || growth <= 0.0 {
        return None;
    }
    let criteria = Criteria {
        tree: true,
        ..criteria.clone()
    };
    let (targets, _spared) = choose(view, &criteria, reaper, look);
    // What is left before the killer acts, in bytes: the forecast's time at its growth.
    let headroom = acts_in * growth;
    let mut remaining_growth = growth;
    let mut freed = Total::default();
    let mut trees = Vec::new();
    let mut clears = false;
    // view.trees is ordered by memory, largest first.
    for tree in &view.trees {
        let members: Vec<Target> = targets
            .iter()
            .filter(|t| {
                t.process.tree.as_ref().is_some_and(|r| {
                    r.root_pid == tree.root_pid && r.root_started_ns == tree.root_started_ns
                })
            })
            .cloned()
            .collect();
        if members.is_empty() {
            continue;
        }
        for t in &members {
            freed.add(t.process.held());
            remaining_growth -= t
                .process
                .growth
                .as_ref()
                .map_or(0.0, |g| g.slope_bytes_per_second.max(0.0));
        }
        trees.push((tree.clone(), members));
        let after = (headroom + freed.bytes() as f64) / remaining_growth;
        if remaining_growth <= 0.0 || after > within_seconds {
            clears = true;
            break;
        }
    }
    (!trees.is_empty()).then_some(Plan {
        acts_in_seconds: acts_in,
        killer: view.memory.killer.as_ref().map(|k| k.name.name()),
        trees,
        freed,
        clears,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        host::Identity,
        tracker::{ProcessView, TreeRef},
        verdict::growth::Growth,
    };

    const STARTED_NS: u64 = 1_780_000_000_000_000_000;
    const MIB: u64 = 1 << 20;

    fn member(pid: u32, root: u32, rss: u64, growth: f64) -> ProcessView {
        ProcessView {
            started_ns: STARTED_NS,
            idle_seconds: Some(3600.0),
            tree: Some(TreeRef {
                root_pid: root,
                root_started_ns: STARTED_NS,
                root_comm: format!("cli{root}"),
            }),
            growth: Some(Growth {
                slope_bytes_per_second: growth,
                fitted_growth_bytes: 0.0,
                r_squared: 1.0,
                rise_bytes: 0,
                late_rise_bytes: 0,
                span_seconds: 60.0,
                samples: 10,
                from_bytes: rss,
                to_bytes: rss,
                cpu_seconds: None,
                idle: Some(true),
            }),
            ..ProcessView::example(pid, rss, VerdictKind::TerminalLost)
        }
    }

    fn look(pid: u32) -> Option<Identity> {
        Some(Identity {
            uid: 1000,
            comm: format!("p{pid}"),
            start: 7,
            started_epoch_ns: STARTED_NS,
            kernel_thread: false,
        })
    }

    fn criteria() -> Criteria {
        Criteria {
            verdicts: OUTLIVED.to_vec(),
            older_than: None,
            min_rss_bytes: None,
            idle_at_least: None,
            terminal_program: None,
            cwd: None,
            all_users: false,
            ignore: Default::default(),
            named: false,
            tree: true,
        }
    }

    const REAPER: Reaper = Reaper {
        protected_pids: Vec::new(),
        uid: 1000,
    };

    /// Two trees: a large one growing 1 MiB/s (two members) and a small still one; 100 MiB
    /// left before the killer at 1 MiB/s: it acts in 100 s.
    fn view() -> SessionsView {
        let processes = vec![
            member(11, 10, 600 * MIB, 0.5 * MIB as f64),
            member(12, 10, 400 * MIB, 0.5 * MIB as f64),
            member(21, 20, 50 * MIB, 0.0),
        ];
        let mut view = SessionsView::with_sessions(processes);
        view.rebuild_trees();
        view.memory.available_bytes = Some(100 * MIB);
        view.memory.growth_bytes_per_second = MIB as f64;
        view.memory.exhausted_in_seconds = Some(100.0);
        view
    }

    #[test]
    fn nothing_is_planned_while_the_killer_is_further_off_than_the_horizon() {
        assert!(plan(&view(), 60.0, &criteria(), &REAPER, look).is_none());
    }

    #[test]
    fn the_largest_tree_goes_first_and_alone_when_it_clears_the_forecast() {
        let plan = plan(&view(), 600.0, &criteria(), &REAPER, look).expect("a plan");
        assert_eq!(plan.trees.len(), 1);
        assert_eq!(plan.trees[0].0.root_pid, 10);
        assert_eq!(plan.trees[0].1.len(), 2);
        assert_eq!(plan.freed.bytes(), 1000 * MIB);
        assert!(plan.clears, "its growth was all the growth there was");
    }

    #[test]
    fn a_tree_with_a_member_on_a_terminal_is_never_planned() {
        let mut view = view();
        view.processes[1].tty = Some("pts/3".into());
        let plan = plan(&view, 600.0, &criteria(), &REAPER, look).expect("the other tree");
        assert_eq!(plan.trees[0].0.root_pid, 20);
        assert!(!plan.clears, "50 MiB does not hold off 1 MiB/s for 600 s");
    }
}
