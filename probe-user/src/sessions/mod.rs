//! `hupwatch sessions`: what is alive, its state, age, RSS and verdicts. Without `--from` it
//! asks root's `hupwatch run` through its socket when one answers there; else it judges a
//! one-shot /proc snapshot (no root, no eBPF), so everything it says is inferred.
pub mod remote;

use std::{
    collections::HashSet,
    io::{self, Write},
};

use crate::{
    decode::Clock,
    error::UserError,
    host::ProcInfo,
    matching::Matcher,
    output,
    sink::{table::write_table, trees::write_trees},
    source::{
        recording::{RecordedEvents, Recording},
        snapshot::{existing_events, scan_host},
    },
    tracker::{GroupBy, SessionsView, Tracker, TrackerConfig},
};

pub struct SessionsOptions {
    pub json: bool,
    pub from: Option<String>,
    pub matcher: Matcher,
    pub ignore: crate::matching::Ignored,
    /// What the closing totals (and the document's `groups`) add up by.
    pub group_by: GroupBy,
    /// `--tree`: the session trees, members under each.
    pub tree: bool,
    /// `--replay FILE`: the sessions alive at the end of a recording (`trace --json`).
    pub replay: Option<std::path::PathBuf>,
}

pub async fn run(options: SessionsOptions) -> anyhow::Result<()> {
    let mut view = match &options.replay {
        Some(file) => replayed(file, &options.ignore)?,
        None => gather(options.from.as_deref(), &options.matcher, &options.ignore).await?,
    };
    // Also for a document from an older hupwatch, which has no groups.
    view.regroup(options.group_by);
    view.rebuild_trees();
    let mut out = io::stdout().lock();
    let written = if options.json {
        output::write_json_line(&mut out, &view)
    } else if options.tree {
        write_trees(&mut out, &view)
    } else {
        write_table(&mut out, &view, home().as_deref())
    };
    written
        .and_then(|()| out.flush())
        .or_else(output::unless_reader_gone)
}

/// The home directory of whoever reads the table, to show directories under it as `~/`.
fn home() -> Option<String> {
    std::env::var("HOME")
        .ok()
        .filter(|h| h.starts_with('/') && h.len() > 1)
}

/// The live sessions: from a running `hupwatch run` at `from`; without it, from root's
/// `hupwatch run` through its socket when one answers there, else a one-shot /proc look.
pub async fn gather(
    from: Option<&str>,
    matcher: &Matcher,
    ignore: &crate::matching::Ignored,
) -> anyhow::Result<SessionsView> {
    match from.map(str::to_string).or_else(running_daemon) {
        Some(url) => fetch(&url).await,
        None => look_at_proc(matcher, ignore),
    }
}

/// `unix:` and the default socket, when a server answers on it.
pub fn running_daemon() -> Option<String> {
    let path = crate::sink::http::DEFAULT_SOCKET;
    std::os::unix::net::UnixStream::connect(path)
        .is_ok()
        .then(|| format!("unix:{path}"))
}

async fn fetch(url: &str) -> anyhow::Result<SessionsView> {
    let body = remote::get(url, "/api/sessions").await?;
    serde_json::from_slice(&body).map_err(|e| {
        UserError::new(format!(
            "--from {url}: the answer is not hupwatch's sessions document ({e}); point --from at the --listen address of `hupwatch run`"
        ))
        .into()
    })
}

/// The sessions a recording leaves alive at its end, judged as `run --replay` judges it.
fn replayed(
    file: &std::path::Path,
    ignore: &crate::matching::Ignored,
) -> anyhow::Result<SessionsView> {
    let recording = Recording::Trace(file.to_path_buf());
    let mut tracker = Tracker::new(TrackerConfig {
        require_terminal: true,
        ignore: ignore.clone(),
        ..TrackerConfig::default()
    });
    let mut last = 0;
    let mut recorded = RecordedEvents::open(&recording)?;
    for event in recorded.by_ref() {
        let event = event?;
        tracker.advance(event.time_ns);
        tracker.apply(&event);
        last = last.max(event.time_ns);
    }
    if let Some(warning) = recorded.skipped_report(&recording) {
        eprintln!("{warning}");
    }
    tracker.advance(last.saturating_add(crate::tracker::SETTLE_NS));
    Ok(tracker.view(last))
}

fn look_at_proc(
    matcher: &Matcher,
    ignore: &crate::matching::Ignored,
) -> anyhow::Result<SessionsView> {
    let me = std::process::id();
    let clock = Clock::now();
    let now = clock.epoch_now_ns();
    // One look at the process table serves both the matching and the events.
    let scan = scan_host(&clock);
    let mut events = existing_events(&scan.procs, now, scan.boot_epoch_ns, me, scan.tty_name);
    if !matcher.traces_everything() {
        let infos: Vec<ProcInfo> = scan.procs.into_iter().map(|p| p.info).collect();
        let keep: HashSet<u32> = matcher
            .seed(&infos, me)?
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        events.retain(|e| keep.contains(&e.pid));
    }
    // Totals by PSS where it can be read (Linux; this user's processes without root).
    let pss = crate::source::pss::read_existing(&events, now, crate::host::pss);
    events.extend(pss);
    let mut tracker = Tracker::new(TrackerConfig {
        require_terminal: matcher.traces_everything(),
        groups: matcher.clone(),
        ignore: ignore.clone(),
        ..TrackerConfig::default()
    });
    for event in &events {
        tracker.apply(event);
    }
    // Growth needs a running `hupwatch run`; what there is and what is left is one read,
    // and so is which OOM killer is in force.
    let mut machine = crate::host::machine_memory();
    machine.killers = Some(crate::host::oom_killers());
    tracker.set_machine_memory(machine);
    tracker.advance(now);
    Ok(tracker.view(now))
}
