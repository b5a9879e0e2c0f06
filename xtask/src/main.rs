//! `cargo xtask <setup|run|test|bench>`: hupwatch's developer and CI tasks.
mod bench;
mod run;
mod setup;
mod sh;
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
