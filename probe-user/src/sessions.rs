//! `hupwatch sessions`: what is alive, its state, age, RSS and verdicts. Without `--from` it
//! judges a one-shot /proc snapshot (no root, no eBPF), so everything it says is inferred.
use std::{
    collections::HashSet,
    io::{self, Write},
};

use crate::{
    decode::Clock,
    error::UserError,
    matching::Matcher,
    output, procfs,
    sink::{http, table::write_table},
    source::snapshot::scan_existing,
    tracker::{SessionsView, Tracker, TrackerConfig},
};

pub struct SessionsOptions {
    pub json: bool,
    pub from: Option<String>,
    pub matcher: Matcher,
}

pub async fn run(options: SessionsOptions) -> anyhow::Result<()> {
    let view = match &options.from {
        Some(url) => fetch(url).await?,
        None => look_at_proc(&options.matcher)?,
    };
    let mut out = io::stdout().lock();
    let written = if options.json {
        serde_json::to_writer(&mut out, &view)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"))
    } else {
        write_table(&mut out, &view)
    };
    written
        .and_then(|()| out.flush())
        .or_else(output::unless_reader_gone)
}

async fn fetch(url: &str) -> anyhow::Result<SessionsView> {
    let body = http::get(url, "/api/sessions").await?;
    serde_json::from_slice(&body).map_err(|e| {
        UserError::new(format!(
            "--from {url}: the answer is not hupwatch's sessions document ({e}); point --from at the --listen address of `hupwatch run`"
        ))
        .into()
    })
}

fn look_at_proc(matcher: &Matcher) -> anyhow::Result<SessionsView> {
    let me = std::process::id();
    let mut events = scan_existing(me);
    if !matcher.traces_everything() {
        let keep: HashSet<u32> = matcher
            .seed(&procfs::scan(), me)?
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        events.retain(|e| keep.contains(&e.pid));
    }
    let mut tracker = Tracker::new(TrackerConfig {
        require_terminal: matcher.traces_everything(),
        ..TrackerConfig::default()
    });
    for event in &events {
        tracker.apply(event);
    }
    let now = Clock::now().epoch_now_ns();
    tracker.advance(now);
    Ok(tracker.view(now))
}
