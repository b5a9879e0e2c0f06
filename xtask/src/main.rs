//! `cargo xtask <setup|run|test|dist|bench|soak|fuzz>`: hupwatch's developer and CI tasks.
mod bench;
mod dist;
mod fuzz;
mod install;
mod kernels;
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
    /// Install what building and testing need (idempotent)
    Setup,
    /// Build hupwatch and run it as root: `cargo xtask run -- ARGS` (default: run)
    Run(Passthrough),
    /// Check formatting, run clippy, then `cargo test ARGS` as root, then the kernel-dependent
    /// tests again in qemu guests of other kernels (the kernel matrix)
    Test(TestArgs),
    /// Build the release artifacts into target/dist/: static binaries for x86_64 and arm64
    /// as tarballs and .debs (man pages, completions, systemd unit, dashboards), SHA256SUMS
    Dist,
    /// Measure overhead, loss, footprint and latency against bpftrace (root); writes
    /// bench/RESULTS.md and bench/results.json
    Bench {
        /// Small workloads, two rounds, output under target/bench-quick: checks that the
        /// harness works and every figure is produced, not how good the figures are
        #[arg(long)]
        quick: bool,
        /// Measure only this section again, at full size, into bench/results.json and
        /// RESULTS.md, keeping the other figures (those that can: sampling, poll, scale,
        /// pss)
        #[arg(long, value_name = "SECTION", conflicts_with = "quick")]
        only: Option<String>,
        /// Measure this hupwatch binary instead of building target/release's (`cargo
        /// xtask test` passes the static one dist just built, so a run builds it once)
        #[arg(long, value_name = "PATH")]
        hupwatch: Option<PathBuf>,
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
    /// The install test on the artifacts `dist` wrote, run as root by `test`
    #[command(hide = true)]
    InstallTest,
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

#[derive(Args)]
struct TestArgs {
    /// Only the kernel matrix's tests, in a guest of this kernel image (builds the tests
    /// first; nothing else runs)
    #[arg(long, value_name = "VMLINUZ", conflicts_with = "guard_only")]
    kernel: Option<PathBuf>,
    /// Only the kernel matrix's guard guest (tests/oom_guard.rs in a 6.1 guest with little
    /// memory; builds the tests first; nothing else runs)
    #[arg(long)]
    guard_only: bool,
    /// A kernel the matrix cannot run (image or qemu/vng missing) is reported NOT RUN
    /// without failing the run. Refused when CI is set
    #[arg(long)]
    skip_missing_kernels: bool,
    #[command(flatten)]
    passthrough: Passthrough,
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
        Cmd::Setup => setup::setup_for_tests(),
        Cmd::Run(Passthrough { args }) => run::run(&root, &args).map(|never| match never {}),
        Cmd::Test(TestArgs {
            kernel,
            guard_only,
            skip_missing_kernels,
            passthrough: Passthrough { args },
        }) => test::test(
            &root,
            test::Options {
                args,
                kernel,
                guard_only,
                skip_missing_kernels,
            },
        ),
        Cmd::Bench {
            quick,
            only,
            hupwatch,
        } => match only {
            Some(section) => bench::bench_only(&root, &section),
            None => bench::bench(&root, quick, hupwatch),
        },
        Cmd::Dist => dist::dist(&root).map(|_| ()),
        Cmd::InstallTest => install::test(&root, &dist::Artifacts::existing(&root)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn test_args(line: &[&str]) -> TestArgs {
        let cli = Cli::try_parse_from(["xtask", "test"].iter().chain(line)).unwrap();
        match cli.command {
            Cmd::Test(args) => args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn test_passes_what_follows_the_double_dash_to_cargo_test() {
        let args = test_args(&["--", "--release", "-p", "probe-user", "--", "--nocapture"]);
        assert_eq!(
            args.passthrough.args,
            ["--release", "-p", "probe-user", "--", "--nocapture"]
        );
        assert_eq!(args.kernel, None);
    }

    #[test]
    fn test_passes_unknown_flags_to_cargo_test_as_before() {
        let args = test_args(&["--release", "--kernel", "k"]);
        assert_eq!(args.passthrough.args, ["--release", "--kernel", "k"]);
        assert_eq!(args.kernel, None);
    }

    #[test]
    fn test_runs_the_guard_guest_alone_but_not_with_a_kernel() {
        assert!(test_args(&["--guard-only"]).guard_only);
        assert!(!test_args(&[]).guard_only);
        let both = ["xtask", "test", "--guard-only", "--kernel", "k"];
        assert!(Cli::try_parse_from(both).is_err());
    }

    #[test]
    fn test_takes_one_kernel_before_the_passthrough() {
        let args = test_args(&["--kernel", "/k/vmlinuz-5.15.215"]);
        assert_eq!(args.kernel, Some(PathBuf::from("/k/vmlinuz-5.15.215")));
        assert!(args.passthrough.args.is_empty());
        assert!(!args.skip_missing_kernels);
    }
}
