//! `run --reap-before`: sessions a closed terminal left behind grow (a CLI stand-in and a
//! server it started in a session of its own, both catching SIGHUP), beside a larger
//! process that grows too but still has its terminal. With the horizon set past the
//! forecast, the daemon ends the left-over tree, says so in an alert line, and leaves the
//! process on its terminal alone; with --dry-run it only says so. The real OOM killer
//! is not involved here (the machine has plenty of memory); the kernel matrix's guard
//! test is where it is. Runs as root.
#[path = "support/harness.rs"]
mod harness;
#[path = "support/processes.rs"]
mod processes;
#[path = "support/pty.rs"]
mod pty;
mod support;

use std::{
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use harness::Hupwatch;
use processes::{PYTHON, running, wait_for_cmdline};
use pty::Pty;
use support::{kill, require_root, scratch_dir, unique};

/// Grows by 2 MiB every 100 ms (touched, so resident), stays through SIGHUP; with
/// `spawn`, first starts a copy of itself in a session of its own.
const GROWER: &str = r#"
import os, signal, subprocess, sys, time
signal.signal(signal.SIGHUP, lambda *a: None)
if len(sys.argv) > 2 and sys.argv[2] == "spawn":
    subprocess.Popen([sys.executable, sys.argv[0], sys.argv[1] + "-server"], start_new_session=True)
held = []
for _ in range(3000):
    held.append(bytearray(b"x" * (2 << 20)))
    time.sleep(0.1)
"#;

struct Started {
    terminal: Option<Pty>,
    shell: Child,
}

/// `grower.py TAG [spawn]` typed at a shell on a fresh terminal.
fn typed(dir: &Path, tag: &str, spawn: bool) -> Started {
    let terminal = Pty::open();
    let shell = terminal.spawn(Command::new("/bin/sh").arg("-c").arg(format!(
        "{PYTHON} {}/grower.py {tag} {}; true",
        dir.display(),
        if spawn { "spawn" } else { "" }
    )));
    Started {
        terminal: Some(terminal),
        shell,
    }
}

/// Runs the scenario with `extra` flags; returns the decision line, and the pids of the
/// left-over CLI, its server and the process on its terminal.
fn scenario(extra: &[&str]) -> (serde_json::Value, [u32; 3]) {
    // Both tests run at once: each its own names.
    let tag = format!("{}x{}", unique("rb"), extra.len());
    let dir = scratch_dir(&tag);
    std::fs::write(dir.join("grower.py"), GROWER).unwrap();
    let d = dir.display().to_string();
    let mut args = vec![
        "--hup-grace",
        "1s",
        "--rss-interval",
        "100ms",
        "--rss-window",
        "16s",
        "--cpu-window",
        "1s",
        "--reap-before",
        "3650d",
        "--reap-idle",
        "0s",
        "--match-cmdline",
        &d,
    ];
    args.extend_from_slice(extra);
    let hupwatch = Hupwatch::run(&args);
    let mut left = typed(&dir, &format!("{tag}-cli"), true);
    let kept = typed(&dir, &format!("{tag}-kept"), false);
    let cli = wait_for_cmdline(&format!("{tag}-cli spawn"));
    let server = wait_for_cmdline(&format!("{tag}-cli-server"));
    let on_terminal = wait_for_cmdline(&format!("{tag}-kept"));
    // The left-over session: its terminal closes.
    left.terminal.take().unwrap().hang_up();
    let _ = left.shell.wait();
    let decision = hupwatch.wait_for("the reap_before decision", |l| l["action"] == "reap_before");
    let pids = [cli, server, on_terminal];
    if !extra.contains(&"--dry-run") {
        // What it ended is logged as reap logs it.
        hupwatch.wait_for("the cli ended", |l| {
            l["action"] == "exited" && l["pid"] == cli
        });
    }
    hupwatch.stop();
    for pid in pids {
        if extra.contains(&"--dry-run") || pid == on_terminal {
            assert!(running(pid), "{pid} was ended: {decision}");
        }
    }
    for pid in pids {
        kill(pid, libc::SIGKILL);
    }
    drop(kept);
    (decision, pids)
}

#[test]
fn the_left_over_tree_is_ended_before_the_forecast_and_the_process_on_a_terminal_lives() {
    require_root();
    let (decision, [cli, server, on_terminal]) = scenario(&[]);
    assert_eq!(decision["dry_run"], false, "{decision}");
    let trees = decision["trees"].as_array().unwrap();
    let pids: Vec<u64> = trees
        .iter()
        .flat_map(|t| t["pids"].as_array().unwrap().iter())
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(
        pids.contains(&u64::from(cli)) && pids.contains(&u64::from(server)),
        "{decision}"
    );
    assert!(!pids.contains(&u64::from(on_terminal)), "{decision}");
    assert!(decision["freed_bytes"].as_u64().unwrap() > 0, "{decision}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (running(cli) || running(server)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !running(cli) && !running(server),
        "the tree outlived the guard"
    );
}

#[test]
fn with_dry_run_it_only_says_what_it_would_end() {
    require_root();
    let (decision, _) = scenario(&["--dry-run"]);
    assert_eq!(decision["dry_run"], true, "{decision}");
    assert!(!decision["trees"].as_array().unwrap().is_empty());
}
