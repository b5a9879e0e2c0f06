//! The command line: parsing, turning bad input into one line with the fix (exit 2), and
//! dispatching to the commands.
mod args;
mod generate;
mod identity;
mod report;

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

pub use args::{
    Cli, Command, LiveArgs, MatchArgs, ReapArgs, RunArgs, SessionsArgs, TopArgs, TraceArgs,
};

use crate::{
    error::UserError,
    matching::Matcher,
    source::{LiveOptions, recording::Recording},
    tracker::TrackerConfig,
};

pub fn main() -> ExitCode {
    // A bare `hupwatch` (`sudo hupwatch`) is the daemon with its defaults.
    let parsed = if std::env::args_os().len() == 1 {
        Cli::try_parse_from(["hupwatch", "run"])
    } else {
        Cli::try_parse()
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (status, line) = report::report(&err);
            eprintln!("hupwatch: error: {line}");
            ExitCode::from(status)
        }
    }
}

/// clap's own errors span several lines; keep its first line and point at --help.
fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = err.print();
        return ExitCode::from(2);
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("hupwatch: error: {first}; {}", clap_fix(&err));
    ExitCode::from(2)
}

/// What clap knows of the fix (the values allowed, a flag with a similar name), on the same
/// line as the problem; clap itself puts it on lines of its own.
fn clap_fix(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let listed = |kind| match err.get(kind) {
        Some(ContextValue::Strings(values)) if !values.is_empty() => Some(values.join(", ")),
        Some(ContextValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    if let Some(values) = listed(ContextKind::ValidValue) {
        format!("use one of: {values}")
    } else if let Some(flag) = listed(ContextKind::SuggestedArg) {
        format!("did you mean {flag}? see `hupwatch --help`")
    } else if let Some(command) = listed(ContextKind::SuggestedSubcommand) {
        format!("did you mean `hupwatch {command}`? see `hupwatch --help`")
    } else {
        "see `hupwatch --help`".to_string()
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let matcher = matcher(&args.matching)?;
            let recording = Recording::from_flags(args.replay, args.dtrace_input);
            recording_is_alone(recording.as_ref(), &matcher)?;
            let mut live = live(matcher, &args.live);
            let (run_as, running_as) = identity::run_as(args.user.as_deref())?;
            live.run_as = run_as;
            // Ending other processes needs CAP_KILL after the drop.
            live.keep_kill = args.reap_before.is_some() && !args.dry_run;
            // Five reads per CPU window at least, so a spin shows within a fifth of it.
            live.cpu_interval = (args.cpu_window / 5).clamp(args.live.rss_interval, CPU_READ_MOST);
            let options = crate::daemon::RunOptions {
                live,
                max_session_series: args.max_session_series as usize,
                listen: args.listen,
                web_config: args.web_config,
                metrics_only: args.metrics_only,
                api_socket_asked: args.api_socket.is_some(),
                api_socket: api_socket(args.api_socket),
                api_group: identity::api_group(args.api_group.as_deref())?,
                running_as,
                reap_before: args.reap_before.map(|within| crate::daemon::GuardOptions {
                    within,
                    dry_run: args.dry_run,
                    criteria: crate::reap::Criteria {
                        verdicts: crate::reap::before::OUTLIVED.to_vec(),
                        older_than: None,
                        min_rss_bytes: None,
                        idle_at_least: Some(args.reap_idle),
                        terminal_program: None,
                        cwd: None,
                        all_users: args.all_users,
                        ignore: crate::matching::Ignored::new(&args.ignore),
                        named: false,
                        tree: true,
                    },
                }),
                alerts_file: args.alerts_file,
                json: args.json,
                notify: notify_options(&args.notify),
                tracker: TrackerConfig {
                    hup_grace_ns: nanos(args.hup_grace),
                    rss_growth_bytes: args.rss_growth,
                    rss_window_ns: nanos(args.rss_window),
                    cpu_spin_share: args.cpu_spin,
                    cpu_window_ns: nanos(args.cpu_window),
                    zombies_min: args.zombies,
                    ignore: crate::matching::Ignored::new(&args.ignore),
                    ..TrackerConfig::default()
                },
                recording,
                ready: None,
            };
            runtime()?.block_on(crate::daemon::run(options))
        }
        Command::Trace(args) => {
            let matcher = matcher(&args.matching)?;
            let recording = Recording::from_flags(args.replay, args.dtrace_input);
            recording_is_alone(recording.as_ref(), &matcher)?;
            let options = crate::trace::TraceOptions {
                json: args.json,
                live: live(matcher, &args.live),
                recording,
            };
            runtime()?.block_on(crate::trace::run(options))
        }
        Command::Sessions(args) => {
            let options = crate::sessions::SessionsOptions {
                json: args.json,
                from: args.from,
                matcher: matcher(&args.matching)?,
                ignore: crate::matching::Ignored::new(&args.ignore),
                group_by: args.group_by,
                tree: args.tree,
                replay: args.replay,
            };
            runtime()?.block_on(crate::sessions::run(options))
        }
        Command::Reap(args) => {
            let verdicts = if args.verdicts.is_empty() {
                crate::reap::Criteria::DEFAULT_VERDICTS.to_vec()
            } else {
                args.verdicts
            };
            let options = crate::reap::ReapOptions {
                from: args.from,
                matcher: matcher(&args.matching)?,
                criteria: crate::reap::Criteria {
                    verdicts,
                    older_than: args.older_than,
                    min_rss_bytes: args.min_rss,
                    idle_at_least: args.idle,
                    terminal_program: args.terminal_program,
                    cwd: args.cwd.map(|path| crate::reap::absolute(&path)),
                    all_users: args.all_users,
                    ignore: crate::matching::Ignored::new(&args.ignore),
                    named: !args.matching.names.is_empty()
                        || args.matching.cmdline.is_some()
                        || !args.matching.pids.is_empty(),
                    tree: args.tree,
                },
                signal: args.signal,
                grace: args.grace,
                yes: args.yes,
            };
            runtime()?.block_on(crate::reap::run(options))
        }
        Command::Completions { shell } => {
            generate::completions(shell);
            Ok(())
        }
        Command::ManPages { dir } => Ok(generate::man_pages(&dir)?),
        Command::NotifyHelper { bus } => runtime()?.block_on(crate::notify::helper_main(&bus)),
        Command::Selftest(args) => {
            let options = crate::selftest::SelftestOptions {
                json: args.json,
                source: args.source,
            };
            runtime()?.block_on(crate::selftest::run(options))
        }
        Command::SelftestChild { role, args } => crate::selftest::child(&role, &args),
        Command::Top(args) => {
            let matcher = matcher(&args.matching)?;
            let options = crate::top::TopOptions {
                notify: notify_options(&args.notify),
                from: args.from,
                live: live(matcher.clone(), &args.live),
                matcher,
                ignore: crate::matching::Ignored::new(&args.ignore),
            };
            runtime()?.block_on(crate::top::run(options))
        }
    }
}

/// What `--notify` and its flags ask for; None without `--notify`.
/// `--api-socket`: as given (`none` for none), else root's default; a user's daemon serves
/// no socket unless asked, since a socket in a folder of their own serves only them.
fn api_socket(asked: Option<PathBuf>) -> Option<PathBuf> {
    match asked {
        Some(path) if path.as_os_str() == "none" => None,
        Some(path) => Some(path),
        // SAFETY: geteuid has no preconditions.
        None if unsafe { libc::geteuid() } == 0 => Some(crate::sink::http::DEFAULT_SOCKET.into()),
        None => None,
    }
}

fn notify_options(args: &args::NotifyArgs) -> Option<crate::notify::NotifyOptions> {
    args.notify.then(|| crate::notify::NotifyOptions {
        min_process_bytes: args.notify_min_memory,
        total_bytes: args
            .notify_total
            .unwrap_or_else(crate::notify::default_total),
        exhaustion_ns: nanos(args.notify_exhaustion),
        user: args.notify_user,
    })
}

/// The longest time between two CPU reads of a watched process.
const CPU_READ_MOST: std::time::Duration = std::time::Duration::from_secs(10);

fn live(matcher: Matcher, args: &LiveArgs) -> LiveOptions {
    LiveOptions {
        source: args.source,
        poll_interval: args.poll_interval,
        matcher,
        rss_interval: args.rss_interval,
        cpu_interval: CPU_READ_MOST,
        pss_interval: args.pss_interval,
        rss_step: args.rss_step,
        ring_bytes: args.ring_buffer_size,
        verbose: args.verbose,
        run_as: None,
        keep_kill: false,
    }
}

/// A recording holds what was matched when it was made; matching again is not supported.
fn recording_is_alone(recording: Option<&Recording>, matcher: &Matcher) -> Result<(), UserError> {
    let flag = match recording {
        Some(Recording::Trace(_)) => "--replay",
        Some(Recording::Dtrace(_)) => "--dtrace-input",
        None => return Ok(()),
    };
    if !matcher.traces_everything() {
        return Err(UserError::new(format!(
            "{flag} takes the processes the recording holds; drop --match, --match-cmdline and --pid (record with them instead)"
        )));
    }
    Ok(())
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn matcher(args: &MatchArgs) -> anyhow::Result<Matcher> {
    Ok(Matcher::new(
        &args.names,
        args.cmdline.as_deref(),
        &args.pids,
    )?)
}

/// One thread is plenty for a collector and keeps its footprint small.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
