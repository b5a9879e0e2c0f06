//! Flags and subcommands.
use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    source::SourceKind,
    tracker::GroupBy,
    units::{parse_duration, parse_size},
    verdict::VerdictKind,
};

/// The release and the commit it was built from (build.rs; "unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HUPWATCH_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "hupwatch",
    version = VERSION,
    about = "Watch processes that detach from their terminal, ignore hangups, outlive their session or keep growing",
    long_about = "Watch processes that detach from their terminal, ignore hangups, outlive their session or keep growing.\n\n\
        hupwatch raises a verdict with its evidence for each such process: detached, hangup_ignored, \
        hangup_survived, terminal_lost, orphaned, rss_growth, cpu_spin, zombies, stopped. It watches \
        from the kernel with eBPF on Linux and with DTrace on macOS, and polls the process table where \
        neither is allowed.\n\n\
        With no command, hupwatch runs `hupwatch run`. The rules behind each verdict, the alert and \
        sessions API formats and the metrics are documented in /usr/share/doc/hupwatch/docs/ (the \
        .deb) or docs/ (the tarball).",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch processes, raise alerts (JSON lines) and serve the live sessions over HTTP
    /// (needs root: it loads eBPF programs)
    Run(Box<RunArgs>),
    /// Print live events of the matched processes (needs root: it loads eBPF programs)
    Trace(TraceArgs),
    /// Show the live sessions: a one-shot look at /proc (no root needed), or what a running
    /// `hupwatch run` sees (--from)
    Sessions(SessionsArgs),
    /// End the sessions that should be gone: a dry run that lists them unless --yes is
    /// given; then the signal, the grace period and SIGKILL, each logged as a JSON line
    Reap(ReapArgs),
    /// A live full-screen view of the sessions: memory and its last minute, growth, CPU,
    /// verdicts; Enter shows one in full, k ends one as `reap --yes` would. Watches
    /// in-process (as `run` does) unless --from names a running `hupwatch run`
    Top(TopArgs),
    /// Check on this machine that hupwatch catches what it claims: starts test processes on
    /// a pseudo-terminal of its own (one calls setsid, one runs under nohup, one catches
    /// SIGHUP, one grows, one is orphaned), hangs it up and reports per verdict whether the
    /// source in use caught it and how fast, with memory beside the OS's figures; exits 1
    /// when an expected verdict is missed. Takes a few seconds; ends every process it started
    Selftest(SelftestArgs),
    /// Print a shell completion script: `hupwatch completions bash > /etc/bash_completion.d/hupwatch`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Writes hupwatch's man pages (hupwatch.1 and one per command) into DIR: for packaging
    #[command(name = "__man-pages", hide = true)]
    ManPages { dir: PathBuf },
    /// Delivers desktop notifications on a session bus, as the user who owns it: started
    /// by `run --notify` when it runs as root
    #[command(name = "__notify-helper", hide = true)]
    NotifyHelper { bus: String },
    /// One of `selftest`'s test processes (the launcher, the shell on its terminal, ...)
    #[command(name = "__selftest-child", hide = true)]
    SelftestChild { role: String, args: Vec<String> },
}

#[derive(Debug, Args)]
pub struct SelftestArgs {
    /// The report as one JSON object (for a bug report) instead of tables
    #[arg(long)]
    pub json: bool,

    /// The source to test: ebpf (Linux) or dtrace (macOS), or proc, polling the process
    /// table. By default the one `run` would use: this OS's tracer, and proc when it
    /// cannot start
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub matching: MatchArgs,

    /// Address of the read-only HTTP API (GET /metrics, /api/sessions)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: String,

    /// TLS and basic authentication for the listener, in the Prometheus exporter-toolkit
    /// web configuration format (tls_server_config, basic_auth_users with bcrypt hashes);
    /// reread on SIGHUP when running as a service
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,

    /// Serve /metrics only: no /api/sessions, so the command lines it shows are not
    /// reachable at all (a fleet's scrape port)
    #[arg(long)]
    pub metrics_only: bool,

    /// The local sessions API's Unix socket, where each user sees only their own
    /// processes and root all; `none` serves none [default: /run/hupwatch/api.sock as
    /// root, none otherwise]
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<PathBuf>,

    /// A group whose members see every process through the local API, as root does
    /// (others see only their own)
    #[arg(long, value_name = "GROUP")]
    pub api_group: Option<String>,

    /// When the forecast says the OOM killer (or, without one, exhaustion) acts within
    /// DURATION, end the session trees that outlived their terminal and sat idle
    /// (--reap-idle), largest first, until it no longer does; each decision is an alert
    /// line and a notification. Off by default
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub reap_before: Option<Duration>,

    /// With --reap-before: say what it would end, end nothing
    #[arg(long, requires = "reap_before")]
    pub dry_run: bool,

    /// With --reap-before: how long a tree must have used under 1% of a CPU to be ended
    #[arg(long, value_name = "DURATION", default_value = "5m", requires = "reap_before", value_parser = crate::units::parse_duration)]
    pub reap_idle: Duration,

    /// With --reap-before: other users' trees too (otherwise only root's, or under sudo
    /// those of the user who ran sudo)
    #[arg(long, requires = "reap_before")]
    pub all_users: bool,

    /// The user to run as once the programs are attached, keeping only the two
    /// capabilities that read other users' /proc (Linux; `root` stays root) [default:
    /// hupwatch, when root and that user exists]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Append alert lines to this file instead of writing them to stdout (reopened on
    /// SIGHUP when running as a service, for log rotation)
    #[arg(long, value_name = "PATH")]
    pub alerts_file: Option<PathBuf>,

    /// Alert lines as JSON (the documented contract) even on a terminal; they are JSON
    /// anyway with --alerts-file or when stdout is not a terminal
    #[arg(long)]
    pub json: bool,

    /// A program that is meant to outlive its terminal (tmux, screen, ssh-agent): its
    /// processes raise nothing and are shown as ignored; matched by process name, by the
    /// name before a colon (`tmux: server`) or by the program's file name; repeatable
    #[arg(long = "ignore", value_name = "NAME")]
    pub ignore: Vec<String>,

    #[command(flatten)]
    pub notify: NotifyArgs,

    /// How long a process may live after its SIGHUP handler ran, or after its terminal
    /// hung up, before it counts as having survived the hangup
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub hup_grace: Duration,

    /// RSS rise within --rss-window that counts as growth
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub rss_growth: u64,

    /// Window over which memory growth is measured; growth must go on for a quarter of it
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub rss_window: Duration,

    /// Share of one CPU that a process off its terminal keeping busy over --cpu-window
    /// spins (cpu_spin)
    #[arg(long, value_name = "PERCENT", default_value = "90%", value_parser = parse_cpu_share, allow_hyphen_values = true)]
    pub cpu_spin: f64,

    /// Window over which CPU use is measured for cpu_spin
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub cpu_window: Duration,

    /// Exited children left unreaped that make a process's zombies verdict
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub zombies: u32,

    /// Most per-process metric series (processes with a verdict, largest RSS first)
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_session_series: u32,

    /// Judge a recording made with `hupwatch trace --json` instead of the live kernel; only
    /// processes that came from a terminal are judged; no HTTP server is started
    #[arg(long, value_name = "FILE", conflicts_with = "dtrace_input")]
    pub replay: Option<PathBuf>,

    /// Judge DTrace output captured on a Mac with dtrace/hupwatch.d (dtrace/FORMAT.md);
    /// works on any OS; no HTTP server is started
    #[arg(long, value_name = "FILE")]
    pub dtrace_input: Option<PathBuf>,

    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// One JSON object per line instead of human-readable lines; a recording starts with
    /// one `existing` event per process that was already running
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub matching: MatchArgs,

    /// Print the events of a recording made with `hupwatch trace --json` instead
    #[arg(long, value_name = "FILE", conflicts_with = "dtrace_input")]
    pub replay: Option<PathBuf>,

    /// Print the events of DTrace output captured on a Mac with dtrace/hupwatch.d
    /// (dtrace/FORMAT.md); works on any OS
    #[arg(long, value_name = "FILE")]
    pub dtrace_input: Option<PathBuf>,

    #[command(flatten)]
    pub live: LiveArgs,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The sessions as JSON (the same document as GET /api/sessions)
    #[arg(long)]
    pub json: bool,

    /// Ask a running `hupwatch run` (http://127.0.0.1:9464) instead of looking at /proc
    #[arg(long, value_name = "URL", conflicts_with_all = ["names", "cmdline", "pids"])]
    pub from: Option<String>,

    /// A program meant to outlive its terminal (tmux, screen, ssh-agent): shown, marked
    /// ignored, with no verdicts; repeatable
    #[arg(long = "ignore", value_name = "NAME")]
    pub ignore: Vec<String>,

    /// What the totals at the end add up by: name (the program), cwd (the project),
    /// terminal_program (the editor or terminal that started them) or tree_root (the
    /// program at the root of their session tree)
    #[arg(long, value_name = "KEY", default_value = "name", value_parser = parse_group_by)]
    pub group_by: GroupBy,

    /// Show session trees: each tree a session started (the command typed at a terminal
    /// and everything under it, also what moved to a session of its own) with its totals,
    /// members indented
    #[arg(long)]
    pub tree: bool,

    /// The sessions alive at the end of a recording (`hupwatch trace --json > FILE`),
    /// judged as `run --replay` judges it, instead of live ones
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "names", "cmdline", "pids"])]
    pub replay: Option<PathBuf>,

    #[command(flatten)]
    pub matching: MatchArgs,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Show what a running `hupwatch run` sees (http://127.0.0.1:9464) instead of watching
    /// in-process
    #[arg(long, value_name = "URL", conflicts_with_all = ["names", "cmdline", "pids", "source"])]
    pub from: Option<String>,

    /// A program meant to outlive its terminal (tmux, screen, ssh-agent): never ended by
    /// `k`; watching in-process, also shown as ignored, with no verdicts; repeatable
    #[arg(long = "ignore", value_name = "NAME")]
    pub ignore: Vec<String>,

    #[command(flatten)]
    pub matching: MatchArgs,

    #[command(flatten)]
    pub live: LiveArgs,

    /// Desktop notifications, as `run --notify` sends them (watching in-process)
    #[command(flatten)]
    pub notify: NotifyArgs,
}

#[derive(Debug, Args)]
pub struct ReapArgs {
    /// Verdict that qualifies a process (repeatable) [default: terminal_lost, orphaned]
    #[arg(long = "verdict", value_name = "VERDICT", value_parser = parse_verdict)]
    pub verdicts: Vec<VerdictKind>,

    /// A program meant to outlive its terminal (tmux, screen, ssh-agent): never ended;
    /// repeatable
    #[arg(long = "ignore", value_name = "NAME")]
    pub ignore: Vec<String>,

    /// Only processes at least this old, like 2h
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub older_than: Option<Duration>,

    /// Only processes using at least this much memory, like 500MiB
    #[arg(long, value_name = "SIZE", value_parser = parse_size, allow_hyphen_values = true)]
    pub min_rss: Option<u64>,

    /// Only processes that used under 1% of a CPU for at least this long, like 2h (needs
    /// --from: a one-shot look cannot tell)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub idle: Option<Duration>,

    /// Only processes started in this program's terminal: vscode, iTerm.app,
    /// Apple_Terminal, tmux, ssh, or a terminal emulator's name (as `hupwatch sessions`
    /// shows it under FROM)
    #[arg(long, value_name = "NAME")]
    pub terminal_program: Option<String>,

    /// Only processes whose working directory is PATH or below it
    #[arg(long, value_name = "PATH")]
    pub cwd: Option<PathBuf>,

    /// The signal sent first: a name (TERM, SIGHUP) or a number
    #[arg(long, value_name = "SIGNAL", default_value = "TERM", value_parser = parse_signal)]
    pub signal: u32,

    /// How long to wait after the signal before SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub grace: Duration,

    /// Really end them (without it, only list what would be ended and why)
    #[arg(long)]
    pub yes: bool,

    /// Also other users' processes (by default only those of the user who ran hupwatch,
    /// under sudo the one who ran sudo)
    #[arg(long)]
    pub all_users: bool,

    /// End whole session trees: a qualifying process brings every member of the tree it
    /// was started in (wrappers, servers, those that moved to a session of their own), so
    /// nothing of the session survives; a tree with a member still on its terminal is
    /// left alone, and --idle and --min-rss apply to the tree as a whole
    #[arg(long)]
    pub tree: bool,

    /// Take the sessions and verdicts from a running `hupwatch run` (http://127.0.0.1:9464)
    /// instead of a one-shot look at /proc
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,

    #[command(flatten)]
    pub matching: MatchArgs,
}

fn parse_group_by(text: &str) -> Result<GroupBy, String> {
    GroupBy::parse(text).ok_or_else(|| {
        let names: Vec<&str> = GroupBy::ALL.iter().map(|by| by.name()).collect();
        format!("unknown grouping {text:?}; use one of {}", names.join(", "))
    })
}

fn parse_verdict(text: &str) -> Result<VerdictKind, String> {
    VerdictKind::parse(text).ok_or_else(|| {
        let names: Vec<&str> = VerdictKind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown verdict {text:?}; use one of {}", names.join(", "))
    })
}

fn parse_signal(text: &str) -> Result<u32, String> {
    crate::signals::parse(text).ok_or_else(|| {
        format!("unknown signal {text:?}; use a name like TERM, HUP or KILL, or a number")
    })
}

/// Which kernel tracer, and how it samples and buffers.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Where events come from: ebpf (Linux) or dtrace (macOS), which see every signal, or
    /// proc, polling the process table. By default this OS's tracer, and proc when the
    /// tracer cannot start (not root, BPF refused, dtrace blocked); a source given here
    /// that cannot start is an error
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,

    /// How often --source proc looks at the process table
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub poll_interval: Duration,

    /// How often RSS is sampled (from the kernel map with eBPF, /proc where the kernel
    /// refuses rss_stat, proc_pidinfo with DTrace)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub rss_interval: Duration,

    /// Smallest RSS change reported as an rss event
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size, allow_hyphen_values = true)]
    pub rss_step: u64,

    /// How often each watched process's proportional memory (PSS and SwapPss, from
    /// /proc/PID/smaps_rollup) is read, for the totals (Linux). Reading it makes the kernel
    /// walk the process's page tables, so it is read far less often than RSS; a process
    /// whose RSS moved by a quarter since is read sooner. 0 turns it off: totals then add
    /// up RSS
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub pss_interval: Duration,

    /// Size of the kernel's event ring buffer (a power of two, at least 4KiB; eBPF only);
    /// events that do not fit while hupwatch is busy are counted as lost and reported
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_ring_size, allow_hyphen_values = true)]
    pub ring_buffer_size: u32,

    /// Print the whole verifier log of a program this kernel refuses (by default it goes
    /// to a file the warning names)
    #[arg(long)]
    pub verbose: bool,
}

/// Desktop notifications (`run --notify`).
#[derive(Debug, Args, Default)]
pub struct NotifyArgs {
    /// Send a desktop notification when a verdict is raised for a process holding at least
    /// --notify-min-memory, when the flagged sessions together hold more than
    /// --notify-total, and when memory runs out within --notify-exhaustion or already
    /// stalls (the logged-in user's session bus; as root, through a helper running as that
    /// user)
    #[arg(long)]
    pub notify: bool,

    /// Smallest memory of a process whose verdict is notified
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub notify_min_memory: u64,

    /// Memory the flagged sessions together may hold before a notification [default: a
    /// quarter of RAM]
    #[arg(long, value_name = "SIZE", value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub notify_total: Option<u64>,

    /// Warn once when the machine's memory runs out sooner than this at the pace the
    /// watched sessions grow (again only after it has recovered)
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = parse_positive_duration, allow_hyphen_values = true)]
    pub notify_exhaustion: Duration,

    /// Whose desktop to notify (uid) when hupwatch runs as root and cannot tell
    #[arg(long, value_name = "UID")]
    pub notify_user: Option<u32>,
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
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pids: Vec<u32>,
}

fn parse_pid(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!(
            "{text:?} is not a process id; give a number like --pid 4242"
        )),
    }
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(duration)
}

/// `90%` or `90`: a share of one CPU, more than 0 and at most 100 %.
fn parse_cpu_share(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(percent) if percent > 0.0 && percent <= 100.0 => Ok(percent / 100.0),
        _ => Err(format!(
            "{text:?} is not a share of one CPU; give a percentage like 90%"
        )),
    }
}

fn parse_positive_size(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes == 0 {
        return Err(format!("{text:?} must be larger than zero"));
    }
    Ok(bytes)
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
