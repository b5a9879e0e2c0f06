//! `hupwatch trace`: live events of the matched processes, straight from the kernel, or the
//! events of a recording.

use std::io::{self, BufWriter, Write};

use tokio::signal::unix::{SignalKind, signal};

use crate::{
    event::Event,
    output,
    source::{
        LiveOptions,
        recording::{RecordedEvents, Recording},
        select,
        shared::Update,
    },
};

pub struct TraceOptions {
    pub json: bool,
    pub live: LiveOptions,
    pub recording: Option<Recording>,
}

/// One event as a JSON line or a human line.
fn print_event(out: &mut impl Write, json: bool, event: &Event) -> io::Result<()> {
    if json {
        output::write_json(out, event)
    } else {
        output::write_human(out, event)
    }
}

pub async fn run(options: TraceOptions) -> anyhow::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    let json = options.json;
    let print =
        move |out: &mut BufWriter<io::StdoutLock<'_>>, event: &Event| print_event(out, json, event);
    if let Some(recording) = &options.recording {
        let mut recorded = RecordedEvents::open(recording)?;
        for event in recorded.by_ref() {
            if let Err(e) = print(&mut out, &event?) {
                return output::unless_reader_gone(e);
            }
        }
        if let Some(warning) = recorded.skipped_report(recording) {
            eprintln!("{warning}");
        }
        return out.flush().or_else(output::unless_reader_gone);
    }

    run_live(options, out).await
}

async fn run_live(
    options: TraceOptions,
    mut out: BufWriter<io::StdoutLock<'static>>,
) -> anyhow::Result<()> {
    let json = options.json;
    let print =
        move |out: &mut BufWriter<io::StdoutLock<'_>>, event: &Event| print_event(out, json, event);
    // Before anything else, so a stop request during start-up is still a clean exit.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let has_terminal = std::fs::File::open("/dev/tty").is_ok();
    let mut source = select::start(options.live).await?.without_parent_checks();
    // A recording must say what already existed, or a replay cannot judge it; people
    // watching live want the changes.
    if json {
        for event in source.existing() {
            print(&mut out, &event)?;
        }
    }
    eprintln!("{}", source.ready_line());

    let mut batch = Vec::new();
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            read = source.next(&mut batch) => {
                if let Err(e) = read { break Err(e) }
                let written = events(&mut batch).try_for_each(|event| print(&mut out, &event));
                if let Err(e) = written.and_then(|()| out.flush()) { break Err(e.into()) }
            }
            _ = sigterm.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
            // A tool that ignores hangups would be what it hunts: leave with the terminal.
            _ = sighup.recv(), if has_terminal => break Ok(()),
        }
    };
    // A stop request is not a reason to drop what already happened.
    let outcome = match outcome {
        Ok(()) => {
            source
                .drain_queued(|batch| {
                    events(batch).try_for_each(|event| print(&mut out, &event))?;
                    Ok(out.flush()?)
                })
                .await
        }
        failed => failed,
    };
    source.report_losses();
    outcome.or_else(|e| match e.downcast::<io::Error>() {
        Ok(io) => output::unless_reader_gone(io),
        Err(other) => Err(other),
    })
}

/// The events among a source's updates; `trace` shows what happened, not re-syncs.
fn events(updates: &mut Vec<Update>) -> impl Iterator<Item = Event> + '_ {
    updates.drain(..).filter_map(|update| match update {
        Update::Event(event) => Some(event),
        Update::Resync(_) | Update::Stats(_) | Update::Machine(_) => None,
    })
}
