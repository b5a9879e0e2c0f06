//! `hupwatch selftest`: proves on this machine, with the source it can use, that hupwatch
//! catches what it claims. It runs the watcher in-process (watcher.rs), starts test
//! processes on a pseudo-terminal it owns (child.rs, through the launcher: launcher.rs,
//! crew.rs), each doing what one verdict is about (plan.rs), hangs the terminal up, and
//! reports per verdict whether it was caught and how long it took, with the source,
//! privileges, OS and each process's memory beside the OS's own figure (report.rs,
//! witness.rs). It ends every test process it started, also when interrupted.
mod again;
mod child;
mod crew;
mod error;
mod launcher;
mod plan;
mod pty;
mod report;
mod reports;
mod stops;
mod watcher;
mod witness;

use std::{
    collections::{BTreeSet, HashMap},
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{error::UserError, source::SourceKind, tracker::SessionsView, verdict::VerdictKind};
use crew::Crew;
pub use error::SelftestError;
use plan::{CHECKS, Cause, Check, Role};
use report::{MemoryRow, ProcessRow, Report, Settings, SourceInUse, VerdictRow};
use reports::{Reports, what};
use stops::Stops;
use watcher::Watcher;

pub struct SelftestOptions {
    pub json: bool,
    /// `--source`; None: this OS's tracer, else polling.
    pub source: Option<SourceKind>,
}

/// One of the test processes (`__selftest-child ROLE ARGS`); returns when its role is
/// done (most never are).
pub fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| -> anyhow::Result<PathBuf> {
        args.get(i).map(PathBuf::from).ok_or_else(|| {
            anyhow::anyhow!("{} {role}: argument {} is missing", again::COMMAND, i + 1)
        })
    };
    match role {
        "launch" => launcher::launch(&arg(0)?, &arg(1)?, &arg(2)?),
        "launcher" => launcher::run(&arg(0)?, &arg(1)?, &arg(2)?),
        "shell" => child::shell(&arg(0)?, &arg(1)?),
        "setsid" => child::detach(&arg(0)?),
        "catcher" => child::catcher(&arg(0)?),
        "grower" => child::grower(&arg(0)?),
        "orphan-parent" => child::orphan_parent(&arg(0)?),
        "sleep" => child::sleep_out(),
        other => Err(anyhow::anyhow!(
            "{}: unknown role {other:?}",
            again::COMMAND
        )),
    }
}

/// Runs the self-test and prints its report; an error when an expected verdict was missed.
pub async fn run(options: SelftestOptions) -> anyhow::Result<()> {
    tokio::task::LocalSet::new()
        .run_until(run_here(options))
        .await
}

async fn run_here(options: SelftestOptions) -> anyhow::Result<()> {
    let began = Instant::now();
    // First: from here on SIGINT, SIGTERM and SIGHUP end the test and its processes.
    let mut stops = Stops::new()?;
    let nohup = plan::nohup().ok_or_else(|| {
        UserError::new(
            "selftest runs the system's nohup and there is none in /usr/bin or on PATH; install coreutils",
        )
    })?;
    let folder = PrivateFolder::new()?;
    let mut terminal = pty::Terminal::open()
        .map_err(|e| anyhow::anyhow!("cannot open a pseudo-terminal for the test: {e}"))?;
    let mut crew = Crew::start(&folder.0, &terminal.slave, &nohup)?;
    let watcher = Watcher::start(options.source, crew.shell, &folder.0, &mut stops).await?;
    let mut run = Run {
        watcher,
        stops,
        pids: HashMap::from([(Role::Shell, crew.shell)]),
        raised: HashMap::new(),
        verdicts_of: HashMap::new(),
        reports: Reports::default(),
        view: None,
    };
    let first = run.watcher.view().await?;
    let source = SourceInUse {
        asked: options.source.map_or("auto", SourceKind::name).to_string(),
        used: first.source.clone(),
        unavailable: first.unavailable.clone(),
    };
    // After the source started, which gives up what it no longer needs.
    let privileges = witness::privileges();
    let expected: Vec<Check> = CHECKS
        .into_iter()
        .filter(|c| why_not(c, &source).is_none())
        .collect();

    terminal.type_line("go")?;
    let before: Vec<Check> = expected
        .iter()
        .copied()
        .filter(|c| !c.after_hangup())
        .collect();
    run.until(&crew, &before, |r| r.has(what::GROWN), plan::PHASE_LIMIT)
        .await?;
    // The grower holds still now: a few samples later both sides read the same memory.
    run.pause(plan::RSS_INTERVAL * 5).await?;
    let memory = run.memory(&crew).await?;

    terminal.hang_up();
    let hangup_ns = reports::now_ns();
    let after: Vec<Check> = expected
        .iter()
        .copied()
        .filter(Check::after_hangup)
        .collect();
    run.until(&crew, &after, |_| true, plan::HUP_GRACE + plan::PHASE_LIMIT)
        .await?;
    let Run {
        watcher,
        pids,
        raised,
        verdicts_of,
        reports,
        ..
    } = run;
    watcher.stop().await;
    let ended = crew.end();
    drop(folder);

    let cause_ns = |cause: Cause| match cause {
        Cause::Setsid => reports.time_ns(what::SETSID),
        Cause::NohupStarted => reports.time_ns(what::NOHUP),
        Cause::ParentExit => reports.time_ns(what::PARENT_EXIT),
        Cause::GrowthBegan => reports.time_ns(what::GROW),
        Cause::Hangup => Some(hangup_ns),
    };
    let verdicts: Vec<VerdictRow> = CHECKS
        .iter()
        .map(|c| {
            let pid = pids.get(&c.role).copied();
            let seen = pid.and_then(|p| raised.get(&(p, c.verdict)).copied());
            let cause = cause_ns(c.cause);
            let not_expected_why = why_not(c, &source);
            VerdictRow {
                verdict: c.verdict.name(),
                process: c.role.name(),
                pid,
                expected: not_expected_why.is_none(),
                not_expected_why,
                caught: seen.is_some(),
                latency_seconds: seen
                    .zip(cause)
                    .map(|(s, c)| (s.seen_ns as f64 - c as f64) / 1e9),
                cause: c.cause.words(),
                cause_time: cause.map(crate::units::rfc3339),
                seen_time: seen.map(|s| crate::units::rfc3339(s.seen_ns)),
                raised_time: seen.map(|s| crate::units::rfc3339(s.stamped_ns)),
            }
        })
        .collect();
    let processes = Role::ALL
        .iter()
        .map(|&role| {
            let pid = pids.get(&role).copied();
            ProcessRow {
                process: role.name(),
                pid,
                verdicts: pid
                    .and_then(|p| verdicts_of.get(&p))
                    .map(|v| v.iter().map(|k| k.name().to_string()).collect())
                    .unwrap_or_default(),
                memory: memory
                    .get(&role)
                    .cloned()
                    .unwrap_or_else(|| memory_row(None, None)),
            }
        })
        .collect();
    let missed: Vec<String> = verdicts
        .iter()
        .filter(|v| v.missed())
        .map(|v| v.verdict.to_string())
        .collect();
    let report = Report {
        hupwatch: VERSION.to_string(),
        passed: missed.is_empty(),
        os: witness::os(),
        source,
        privileges,
        settings: Settings {
            hup_grace_seconds: plan::HUP_GRACE.as_secs_f64(),
            rss_growth_bytes: plan::RSS_GROWTH,
            rss_window_seconds: plan::RSS_WINDOW.as_secs_f64(),
            rss_interval_seconds: plan::RSS_INTERVAL.as_secs_f64(),
            poll_interval_seconds: plan::POLL_INTERVAL.as_secs_f64(),
        },
        nohup: nohup.display().to_string(),
        verdicts,
        processes,
        duration_seconds: began.elapsed().as_secs_f64(),
        ended_processes: ended,
    };
    let mut out = io::stdout().lock();
    let written = if options.json {
        report.write_json(&mut out)
    } else {
        report.write_table(&mut out)
    };
    written
        .and_then(|()| out.flush())
        .or_else(crate::output::unless_reader_gone)?;
    if missed.is_empty() {
        Ok(())
    } else {
        Err(SelftestError::Missed(missed).into())
    }
}

/// As `hupwatch --version` says it (cli/args.rs), spelled out here: cli/ sits above this.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HUPWATCH_COMMIT"),
    ")"
);

/// Why `check` is not expected from the source in use; None when it is.
fn why_not(check: &Check, source: &SourceInUse) -> Option<String> {
    let used = source.used.as_deref().unwrap_or("unknown");
    plan::not_expected(check.verdict, used, &source.unavailable)
}

/// A verdict as the self-test first saw it.
#[derive(Clone, Copy)]
struct Seen {
    seen_ns: u64,
    stamped_ns: u64,
}

/// The run's state while it watches.
struct Run {
    watcher: Watcher,
    stops: Stops,
    pids: HashMap<Role, u32>,
    /// When each (pid, verdict) was first seen raised: when a look first showed it (the
    /// detection, what the latency is measured to), and the time the watcher gave it. The
    /// two differ: polling dates what it finds by what it read (a process it first sees
    /// already detached is dated by its start, before its setsid), so only the first
    /// says how long detection took.
    raised: HashMap<(u32, VerdictKind), Seen>,
    verdicts_of: HashMap<u32, BTreeSet<VerdictKind>>,
    reports: Reports,
    view: Option<SessionsView>,
}

impl Run {
    /// Looks until every check in `checks` is caught and `also` holds, or `limit` passes.
    async fn until(
        &mut self,
        crew: &Crew,
        checks: &[Check],
        also: impl Fn(&Reports) -> bool,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.look(crew).await?;
            let caught = checks.iter().all(|c| {
                self.pids
                    .get(&c.role)
                    .is_some_and(|&pid| self.raised.contains_key(&(pid, c.verdict)))
            });
            if (caught && also(&self.reports)) || Instant::now() >= deadline {
                return Ok(());
            }
            self.pause(plan::TICK).await?;
        }
    }

    /// Reads the reports and the watcher's sessions.
    async fn look(&mut self, crew: &Crew) -> anyhow::Result<()> {
        self.reports = crew.reports();
        for (role, said) in [
            (Role::Setsid, what::SETSID),
            (Role::Nohup, what::NOHUP),
            (Role::Catcher, what::CATCHER),
            (Role::Grower, what::GROW),
            (Role::Orphan, what::ORPHAN),
        ] {
            if let Some(pid) = self.reports.pid(said) {
                self.pids.insert(role, pid);
            }
        }
        let view = match self.watcher.view().await {
            Ok(view) => view,
            Err(why) => return Err(self.stopped_or(why).await),
        };
        let seen_ns = reports::now_ns();
        for p in &view.processes {
            for v in &p.verdicts {
                self.raised.entry((p.pid, v.kind)).or_insert(Seen {
                    seen_ns,
                    stamped_ns: v.time_ns,
                });
                self.verdicts_of.entry(p.pid).or_default().insert(v.kind);
            }
        }
        self.view = Some(view);
        Ok(())
    }

    /// Waits, unless a stop request comes or the watcher ends.
    async fn pause(&mut self, time: Duration) -> anyhow::Result<()> {
        tokio::select! {
            () = tokio::time::sleep(time) => {}
            signal = self.stops.next() => return Err(SelftestError::Interrupted(signal).into()),
        }
        match self.watcher.check().await {
            Ok(()) => Ok(()),
            Err(why) => Err(self.stopped_or(why).await),
        }
    }

    /// The in-process watcher takes SIGINT, SIGTERM and SIGHUP too, and stops: a look that
    /// failed, or a watcher that ended, right after one is the interruption, not an error.
    async fn stopped_or(&mut self, why: anyhow::Error) -> anyhow::Error {
        match tokio::time::timeout(plan::STOP_PENDING, self.stops.next()).await {
            Ok(signal) => SelftestError::Interrupted(signal).into(),
            Err(_) => why,
        }
    }

    /// Each test process's memory by the watcher and, right after, by the OS.
    async fn memory(&mut self, crew: &Crew) -> anyhow::Result<HashMap<Role, MemoryRow>> {
        self.look(crew).await?;
        let Some(view) = &self.view else {
            return Ok(HashMap::new());
        };
        let mut rows = HashMap::new();
        for (&role, &pid) in &self.pids {
            let seen = view.processes.iter().find(|p| p.pid == pid);
            let ours = seen.and_then(|p| {
                if cfg!(target_os = "macos") {
                    p.footprint_bytes
                } else {
                    p.rss_bytes
                }
            });
            rows.insert(role, memory_row(ours, witness::memory(pid)));
        }
        Ok(rows)
    }
}

fn memory_row(ours: Option<u64>, theirs: Option<u64>) -> MemoryRow {
    MemoryRow {
        hupwatch_bytes: ours,
        hupwatch_measure: if cfg!(target_os = "macos") {
            "footprint"
        } else {
            "rss"
        },
        os_bytes: theirs,
        os_measure: witness::OS_MEASURE,
        difference_bytes: ours.zip(theirs).map(|(o, t)| {
            i64::try_from(t).unwrap_or(i64::MAX) - i64::try_from(o).unwrap_or(i64::MAX)
        }),
    }
}

/// A fresh folder only this user can enter, for the watcher's socket and the reports;
/// removed with what is in it when dropped.
struct PrivateFolder(PathBuf);

impl PrivateFolder {
    fn new() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("hupwatch-selftest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                anyhow::anyhow!("cannot make {} for the self-test: {e}", path.display())
            })?;
        Ok(Self(path))
    }
}

impl Drop for PrivateFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
