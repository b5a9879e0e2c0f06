//! The command line: parsing, turning bad input into one line with the fix (exit 2), and
//! dispatching to the commands.
mod args;

use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command, MatchArgs, TraceArgs};

use crate::{error, matching::Matcher};

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let (status, line) = error::report(&err);
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
    eprintln!("hupwatch: error: {first}; see `hupwatch --help`");
    ExitCode::from(2)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Trace(args) => {
            let matcher = matcher(&args.matching)?;
            let options = crate::trace::TraceOptions {
                json: args.json,
                matcher,
                rss_interval: args.rss_interval,
                rss_step: args.rss_step,
                ring_bytes: args.ring_buffer_size,
            };
            runtime()?.block_on(crate::trace::run(options))
        }
    }
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
