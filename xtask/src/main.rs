//! `cargo xtask <setup|run|test|bench|soak|fuzz>`: hupwatch's developer and CI tasks.
mod bench;
mod fuzz;
mod run;
mod setup;
mod sh;
mod soak;
mod test;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, error::ErrorKind};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "hupwatch's developer and CI tasks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building the eBPF programs needs (idempotent)
    Setup,
    /// Build hupwatch and run it as root: `cargo xtask run -- ARGS` (default: run)
    Run(Passthrough),
    /// Check formatting, run clippy, then `cargo test ARGS` as root
    Test(Passthrough),
    /// Measure overhead, loss, footprint and latency against bpftrace (root); writes
    /// bench/RESULTS.md and bench/results.json
    Bench {
        /// Small workloads, two rounds, output under target/bench-quick: checks that the
        /// harness works and every figure is produced, not how good the figures are
        #[arg(long)]
        quick: bool,
    },
    /// hupwatch under steady churn for N minutes (root): its RSS and open file descriptors
    /// must stay flat; writes target/soak/soak.json
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
    },
    /// Fuzz the DTrace and `--replay` parsers with cargo-fuzz (nightly; installs cargo-fuzz
    /// when missing), each target for --seconds, from corpora seeded with the test fixtures
    Fuzz {
        /// How long each target runs
        #[arg(long, value_name = "N", default_value_t = 60)]
        seconds: u64,
    },
    /// One benchmark workload, run by `bench` in a child process
    #[command(hide = true)]
    BenchWorkload { name: String, iterations: u64 },
}

/// Arguments handed on untouched, hyphens and all.
#[derive(Args)]
struct Passthrough {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return ExitCode::from(2);
        }
        Err(err) => {
            // clap's usage and tips bury the one line that says what was wrong.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            eprintln!("xtask: {first}");
            return ExitCode::from(2);
        }
    };
    sh::put_cargo_bin_on_path();
    let root = workspace_root();
    let result = match cli.command {
        Cmd::Setup => setup::setup(),
        Cmd::Run(Passthrough { args }) => run::run(&root, &args).map(|never| match never {}),
        Cmd::Test(Passthrough { args }) => test::test(&root, &args),
        Cmd::Bench { quick } => bench::bench(&root, quick),
        Cmd::Fuzz { seconds } => fuzz::fuzz(&root, seconds),
        Cmd::Soak { minutes } => soak::soak(&root, minutes),
        Cmd::BenchWorkload { name, iterations } => bench::workload::child_main(&name, iterations),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
