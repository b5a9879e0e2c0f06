//! `hupwatch top`: the live sessions on a full screen, for a person debugging. Once a
//! second it reads the sessions document (GET /api/sessions) of a running `hupwatch run`
//! (`--from`), or of one it runs in-process on a free loopback port, and shows a row per
//! process: memory and its last minute, growth, CPU, age, verdicts; Enter shows one in
//! full, `k` ends one as `hupwatch reap --yes` would.
//!
//! One thread runs the loop (the in-process watcher, the look every second, the ending of
//! processes, and drawing); a second reads the keyboard.
mod app;
mod keys;
mod terminal;
mod ui;

use std::{
    io::{self, IsTerminal},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, oneshot},
    task::JoinError,
    time::MissedTickBehavior,
};

use app::App;
use keys::Command;

use crate::{
    error::UserError,
    matching::{Ignored, Matcher},
    output::shown,
    reap::{Criteria, end, identity, select},
    source::LiveOptions,
    tracker::{SessionsView, TrackerConfig},
    verdict::VerdictKind,
};

pub struct TopOptions {
    /// A running `hupwatch run` to show; None runs one in-process.
    pub from: Option<String>,
    pub matcher: Matcher,
    pub ignore: Ignored,
    pub live: LiveOptions,
    /// Desktop notifications from the in-process watcher (`--notify`).
    pub notify: Option<crate::notify::NotifyOptions>,
}

/// How often the sessions are read.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often the in-process watcher reads CPU time (at least its --rss-interval): often
/// enough for a CPU column that follows what a person does.
const CPU_READ_EVERY: Duration = Duration::from_secs(2);
/// `k` ends as `hupwatch reap --yes` does by default: SIGTERM, then SIGKILL 10 s later.
const END_SIGNAL: u32 = libc::SIGTERM as u32;
const END_GRACE: Duration = Duration::from_secs(10);

pub async fn run(options: TopOptions) -> anyhow::Result<()> {
    if !io::stdout().is_terminal() {
        return Err(UserError::new(
            "hupwatch top draws on a terminal and stdout is not one; for a script use `hupwatch sessions --json`",
        )
        .into());
    }
    tokio::task::LocalSet::new()
        .run_until(run_here(options))
        .await
}

type Joined = Result<anyhow::Result<()>, JoinError>;

/// A fresh folder only this user can enter, removed with what is in it when dropped.
struct PrivateFolder(std::path::PathBuf);

impl PrivateFolder {
    fn new() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("hupwatch-top-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| {
                anyhow::anyhow!("cannot make {} for top's watcher: {e}", path.display())
            })?;
        Ok(Self(path))
    }
}

impl Drop for PrivateFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn run_here(options: TopOptions) -> anyhow::Result<()> {
    // Before anything else: from here on these are requests to leave, not the default end.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let TopOptions {
        from,
        matcher,
        ignore,
        mut live,
        notify,
    } = options;
    let mut _private = None;
    let (url, origin, daemon) = match from {
        Some(url) => (url.clone(), url, None),
        None => {
            live.cpu_interval = CPU_READ_EVERY.max(live.rss_interval);
            // The watcher's sessions reach this screen through a socket in a folder of
            // its own that only this user can enter: no other user reads them, and no
            // loopback port has to name its client (macOS cannot).
            let folder = PrivateFolder::new()?;
            let socket = folder.0.join("api.sock");
            _private = Some(folder);
            let (ready, address) = oneshot::channel();
            let run = crate::daemon::RunOptions {
                live,
                max_session_series: 0,
                listen: "127.0.0.1:0".into(),
                web_config: None,
                metrics_only: false,
                api_socket: Some(socket.clone()),
                api_socket_asked: true,
                api_group: None,
                running_as: String::new(),
                reap_before: None,
                alerts_file: Some("/dev/null".into()),
                json: true,
                tracker: TrackerConfig {
                    ignore: ignore.clone(),
                    ..TrackerConfig::default()
                },
                recording: None,
                notify,
                ready: Some(ready),
            };
            let task = tokio::task::spawn_local(crate::daemon::run(run));
            // Loading the probes takes a moment; a stop request meanwhile is a clean end.
            tokio::select! {
                address = address => match address {
                    Ok(_address) => {}
                    // It ended before it was ready: an error, or a stop request it took.
                    Err(_) => return watcher_ended(task.await),
                },
                _ = sigterm.recv() => return Ok(()),
                _ = sighup.recv() => return Ok(()),
                _ = sigint.recv() => return Ok(()),
            };
            let url = format!("unix:{}", socket.display());
            let origin = format!("in-process, {url}");
            (url, origin, Some(task))
        }
    };

    let (views_tx, mut views) = mpsc::channel(1);
    tokio::task::spawn_local(look(url, matcher, ignore.clone(), views_tx));
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();

    let mut guard = terminal::enter()?;
    if daemon.is_some() {
        terminal::capture_stderr(messages_tx)?;
    } else {
        drop(messages_tx);
    }
    let (keys_tx, mut keys) = mpsc::unbounded_channel();
    let stop_keys = Arc::new(AtomicBool::new(false));
    let key_reader = {
        let stop = Arc::clone(&stop_keys);
        std::thread::Builder::new()
            .name("top-keys".into())
            .spawn(move || read_keys(&keys_tx, &stop))?
    };

    let watcher = async move {
        match daemon {
            Some(task) => task.await,
            None => std::future::pending::<Joined>().await,
        }
    };
    tokio::pin!(watcher);
    let mut app = App::new(origin);
    let outcome: anyhow::Result<()> = loop {
        if let Err(e) = guard.screen.draw(|frame| ui::draw(frame, &app)) {
            break Err(e.into());
        }
        // A resize needs nothing more than the redraw above: drawing fits the new size.
        tokio::select! {
            Some(event) = keys.recv() => {
                let Event::Key(key) = event else { continue };
                if key.kind == KeyEventKind::Release {
                    continue;
                }
                match keys::handle(&mut app, key) {
                    Command::Quit => break Ok(()),
                    Command::End(pid) => end_one(&mut app, pid, &ignore, &ended_tx),
                    Command::Nothing => {}
                }
            }
            Some(got) = views.recv() => app.update(got),
            Some(line) = messages.recv() => app.note(line),
            Some(done) = ended.recv() => done.report(&mut app),
            joined = &mut watcher => break watcher_ended(joined),
            _ = sigterm.recv() => break Ok(()),
            _ = sighup.recv() => break Ok(()),
            _ = sigint.recv() => break Ok(()),
        }
    };
    // Not joined: once the terminal has hung up, crossterm's poll can spin without
    // returning, and waiting for it kept a hung-up top alive at a full CPU. The thread
    // ends with the process.
    stop_keys.store(true, Ordering::SeqCst);
    drop(key_reader);
    drop(guard);
    // What the watcher wrote after the last draw, then everything it wrote, where it
    // would have gone without the screen.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while let Some(line) = messages.recv().await {
            app.note(line);
        }
    })
    .await;
    for line in &app.messages {
        eprintln!("{line}");
    }
    for line in &app.ended_log {
        println!("{line}");
    }
    outcome
}

/// The in-process watcher ended: with its error, or cleanly (a stop request it took too).
fn watcher_ended(joined: Joined) -> anyhow::Result<()> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Ok(()),
    }
}

/// Reads the sessions every second; stops when the loop is gone.
async fn look(
    url: String,
    matcher: Matcher,
    ignore: Ignored,
    views: mpsc::Sender<Result<SessionsView, String>>,
) {
    let mut tick = tokio::time::interval(LOOK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let got = crate::sessions::gather(Some(&url), &matcher, &ignore)
            .await
            .map_err(|e| crate::error::one_line(&e));
        if views.send(got).await.is_err() {
            return;
        }
    }
}

fn read_keys(keys: &mpsc::UnboundedSender<Event>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => match event::read() {
                Ok(event) => {
                    if keys.send(event).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

/// How ending one process went.
struct Ended {
    pid: u32,
    comm: String,
    /// How many could not be ended, or why the log could not be written.
    failed: Result<usize, String>,
    /// end_all's JSON lines.
    log: Vec<u8>,
}

impl Ended {
    fn report(self, app: &mut App) {
        app.ending.remove(&self.pid);
        let lines: Vec<String> = String::from_utf8_lossy(&self.log)
            .lines()
            .map(str::to_string)
            .collect();
        let steps: Vec<String> = lines.iter().filter_map(|l| step(l)).collect();
        let outcome = match self.failed {
            Ok(0) => "ended",
            Ok(_) => "could not end",
            Err(_) => "ending failed:",
        };
        app.ended_log.extend(lines);
        app.note(format!(
            "{outcome} {} {}: {}",
            self.pid,
            shown(&self.comm),
            match &self.failed {
                Err(e) => e.clone(),
                Ok(_) => steps.join(", "),
            }
        ));
    }
}

/// One of end_all's log lines in a few words: `signal SIGTERM`, `exited after 0.01s`.
fn step(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let action = value["action"].as_str()?;
    let mut words = action.to_string();
    if let Some(signal) = value["signal"].as_str() {
        words.push_str(&format!(" {signal}"));
    }
    if let Some(after) = value["after_seconds"].as_f64() {
        words.push_str(&format!(" after {after:.2}s"));
    }
    for why in ["reason", "error"] {
        if let Some(text) = value[why].as_str() {
            words.push_str(&format!(" ({text})"));
        }
    }
    Some(words)
}

/// Ends `pid` under `hupwatch reap`'s rules: only a process with a verdict, never init,
/// hupwatch or its ancestors, an ignored program or another user's; its owner, name and
/// start time checked against the OS right before the signal. SIGTERM, 10 s, SIGKILL, in
/// the background; the outcome comes back on `done`.
fn end_one(app: &mut App, pid: u32, ignore: &Ignored, done: &mpsc::UnboundedSender<Ended>) {
    let (Some(view), Some(process)) = (&app.view, app.process(pid)) else {
        app.say(format!("{pid} is gone"));
        return;
    };
    let comm = process.comm.clone();
    let one = SessionsView {
        processes: vec![process.clone()],
        hangup_exits: Vec::new(),
        ..view.clone()
    };
    let criteria = Criteria {
        verdicts: VerdictKind::ALL.to_vec(),
        older_than: None,
        min_rss_bytes: None,
        idle_at_least: None,
        terminal_program: None,
        cwd: None,
        all_users: false,
        ignore: ignore.clone(),
        named: true,
        tree: false,
    };
    let (targets, spared) = select::choose(&one, &criteria, &identity::reaper(), identity::look);
    if let Some(s) = spared.first() {
        app.note(format!(
            "left alone {} {}: {}",
            s.pid,
            shown(&s.comm),
            s.reason
        ));
        return;
    }
    if targets.is_empty() {
        app.note(format!(
            "left alone {pid} {}: it has no verdict (top ends what `hupwatch reap` would)",
            shown(&comm)
        ));
        return;
    }
    app.ending.insert(pid);
    app.say(format!(
        "ending {pid} {}: SIGTERM, then SIGKILL after 10s if it is still alive",
        shown(&comm)
    ));
    let done = done.clone();
    tokio::task::spawn_local(async move {
        let mut log = Vec::new();
        let failed = end::end_all(&targets, END_SIGNAL, END_GRACE, &mut log)
            .await
            .map_err(|e| e.to_string());
        let _ = done.send(Ended {
            pid,
            comm,
            failed,
            log,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_log_line_is_told_in_a_few_words() {
        let line = r#"{"time":"t","action":"exited","pid":4,"comm":"sleep","cmdline":null,"verdicts":["orphaned"],"after_seconds":0.012}"#;
        assert_eq!(step(line).as_deref(), Some("exited after 0.01s"));
        let line = r#"{"action":"signal","pid":4,"signal":"SIGTERM"}"#;
        assert_eq!(step(line).as_deref(), Some("signal SIGTERM"));
        assert_eq!(step("not json"), None);
    }
}
