//! Which OOM killers run on this Linux machine, and whom the kernel's order picks first:
//! one pass over /proc reading each process's `comm` and `oom_score` (two small reads a
//! process; the source does this every 30 s, see source/killer.rs), then earlyoom's
//! command line and systemd-oomd's files when those run.
use std::{fs, path::Path};

use super::{
    linux_earlyoom, linux_oomd,
    oom_killer::{Candidate, OomKillers},
};

/// Processes looked at in one pass, at most: the kernel's default pid_max is 4,194,304 on
/// 64-bit, and a machine with that many processes would make each look take seconds.
const MAX_PROCESSES: usize = 65_536;
/// Candidates kept: enough to name the first few the killer would take.
pub const CANDIDATES: usize = 5;

/// The killers running now, their configuration read under `config_root` (`/`, or a test's
/// tree), and the top of the kernel's order.
pub fn read(config_root: &Path) -> OomKillers {
    let mut out = OomKillers::default();
    let mut scores = Vec::new();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    let pids = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .take(MAX_PROCESSES);
    for pid in pids {
        let Some(comm) = fs::read_to_string(format!("/proc/{pid}/comm")).ok() else {
            continue;
        };
        let comm = comm.trim_end_matches('\n');
        match comm {
            "earlyoom" if out.earlyoom.is_none() => {
                out.earlyoom = argv(pid).map(|argv| linux_earlyoom::parse(pid, &argv));
            }
            "systemd-oomd" if out.systemd_oomd.is_none() => {
                out.systemd_oomd = Some(linux_oomd::read(config_root));
            }
            _ => {}
        }
        if pid == me {
            continue;
        }
        if let Some(score) = oom_score(pid).filter(|s| *s > 0) {
            scores.push(Candidate {
                pid,
                comm: comm.to_string(),
                oom_score: score,
            });
        }
    }
    out.by_oom_score = first(scores, CANDIDATES);
    out
}

/// The `n` highest scores, highest first (the lower pid first among equals, as the kernel
/// keeps the first it finds).
pub fn first(mut scores: Vec<Candidate>, n: usize) -> Vec<Candidate> {
    scores.sort_by(|a, b| b.oom_score.cmp(&a.oom_score).then(a.pid.cmp(&b.pid)));
    scores.truncate(n);
    scores
}

/// /proc/PID/oom_score (readable by anyone); 0 for kernel threads and processes with
/// oom_score_adj -1000, which the killer never takes.
fn oom_score(pid: u32) -> Option<u32> {
    fs::read_to_string(format!("/proc/{pid}/oom_score"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The command line's arguments as the process was given them (NUL-separated in /proc).
fn argv(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (!args.is_empty()).then_some(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pid: u32, score: u32) -> Candidate {
        Candidate {
            pid,
            comm: format!("p{pid}"),
            oom_score: score,
        }
    }

    #[test]
    fn highest_scores_first() {
        let top = first(vec![c(5, 10), c(3, 812), c(9, 812), c(1, 400)], 3);
        assert_eq!(top, [c(3, 812), c(9, 812), c(1, 400)]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_machine() {
        let found = read(Path::new("/nonexistent"));
        assert!(found.by_oom_score.len() <= CANDIDATES);
        assert!(
            found
                .by_oom_score
                .windows(2)
                .all(|w| w[0].oom_score >= w[1].oom_score)
        );
        assert!(found.macos_pressure_level.is_none());
    }
}
