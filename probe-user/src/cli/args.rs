//! Flags and subcommands.
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::units::{parse_duration, parse_size};

#[derive(Debug, Parser)]
#[command(
    name = "hupwatch",
    version,
    about = "Watch processes that detach from their terminal, ignore hangups, outlive their session or keep growing",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print live events of the matched processes (needs root: it loads eBPF programs)
    Trace(TraceArgs),
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// One JSON object per line instead of human-readable lines
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub matching: MatchArgs,

    /// How often RSS is sampled from the kernel map
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration)]
    pub rss_interval: Duration,

    /// Smallest RSS change reported as an rss event
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub rss_step: u64,

    /// Size of the kernel's event ring buffer (a power of two, at least 4KiB); events that
    /// do not fit while hupwatch is busy are counted as lost and reported
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_ring_size)]
    pub ring_buffer_size: u32,
}

/// Which processes to watch. Each flag also takes in the descendants of what it matches;
/// with none of them every process is watched.
#[derive(Debug, Args, Default)]
pub struct MatchArgs {
    /// Process name (comm, as `ps -o comm` shows it); repeatable
    #[arg(long = "match", value_name = "NAME")]
    pub names: Vec<String>,

    /// Regular expression searched in the command line (arguments joined by spaces)
    #[arg(long = "match-cmdline", value_name = "REGEX")]
    pub cmdline: Option<String>,

    /// Process id; repeatable
    #[arg(long = "pid", value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
    pub pids: Vec<u32>,
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(duration)
}

fn parse_ring_size(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "{text:?} must be a power of two from 4KiB to 1GiB, like 8MiB"
        ));
    }
    Ok(bytes as u32)
}
