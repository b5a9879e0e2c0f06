//! earlyoom's thresholds from its running command line. Pure, tested on any OS.
//!
//! What the flags mean, from rfjakob/earlyoom: README.md ("What does it do": "if both
//! [available memory and free swap] are below 10%, it will kill the largest process
//! (highest `oom_score`)"; "Command line options": "both memory and swap must be below
//! minimum for earlyoom to act"; changelog v1.5: with both `-M` and `-m` "the lower value
//! (converted to percentages) will be used"), MANPAGE.md (`-s 100` makes it ignore swap;
//! a SIGKILL "at or below" KILL_PERCENT), and `earlyoom -h` of Debian 12's 1.7;
//! checked by running that binary with `--dryrun`, whose start-up line says what it
//! settled on:
//! - it acts (SIGTERM to the process with the highest oom_score) once BOTH available
//!   memory is at or below `-m` percent of MemTotal AND free swap at or below `-s`
//!   percent of SwapTotal ("sending SIGTERM when mem <= 1.00% and swap <= 1.00%");
//!   defaults 10 and 10; SIGKILL follows at the `,KILL_PERCENT` part, half of PERCENT
//!   unless given;
//! - `-M SIZE` and `-S SIZE` (KiB) are the same minimums as sizes: given alone, one
//!   replaces the 10% default (`-M 102400` alone printed `mem <= 0.41%` on a 24 GiB
//!   machine); given with the percentage, the lower is used;
//! - without swap the swap condition always holds (its meminfo.c takes free swap as 0%).
//!
//! Newer earlyoom (after 1.7) takes the memory percentage of MemAvailable + AnonPages
//! ("user memory") rather than of MemTotal; the tracker's level uses MemTotal, as 1.7
//! (Debian 12, Ubuntu 22.04) does, and so says a level somewhat high for those.
//!
//! Options are read as getopt reads them: `-m 5` or `-m5`, short flags run together
//! (`-dm 5`), `--` ends them. Values that do not parse leave the default, as earlyoom
//! would have refused to start with them.
use super::oom_killer::Earlyoom;

const DEFAULT_PERCENT: f64 = 10.0;
/// Its short options that take a value (earlyoom 1.7's `-h`, and older ones' `-i`/`-k`
/// taking none).
const WITH_VALUE: &[char] = &['m', 's', 'M', 'S', 'r', 'N', 'P'];
/// Its long options that take a value.
const LONG_WITH_VALUE: &[&str] = &["--prefer", "--avoid", "--ignore"];

/// earlyoom's thresholds from its argv (`argv[0]` included or not).
pub fn parse(pid: u32, argv: &[String]) -> Earlyoom {
    let mut out = Earlyoom {
        pid,
        memory_percent: DEFAULT_PERCENT,
        memory_kib: None,
        swap_percent: DEFAULT_PERCENT,
        swap_kib: None,
        dry_run: false,
    };
    let (mut m, mut s) = (None, None);
    let mut args = argv.iter().skip_while(|a| !a.starts_with('-'));
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            if name == "dryrun" {
                out.dry_run = true;
            } else if LONG_WITH_VALUE.contains(&arg.as_str()) {
                args.next();
            }
            continue;
        }
        let Some(flags) = arg.strip_prefix('-') else {
            continue;
        };
        for (at, flag) in flags.char_indices() {
            if !WITH_VALUE.contains(&flag) {
                continue;
            }
            let rest = &flags[at + flag.len_utf8()..];
            let value = if rest.is_empty() {
                args.next().map(String::as_str)
            } else {
                Some(rest)
            };
            match flag {
                'm' => m = value.and_then(first_number).or(m),
                's' => s = value.and_then(first_number).or(s),
                'M' => out.memory_kib = value.and_then(first_number).map(|k| k as u64),
                'S' => out.swap_kib = value.and_then(first_number).map(|k| k as u64),
                _ => {}
            }
            break;
        }
    }
    // A size given alone replaces the default percentage; only with both does earlyoom
    // compare them (against MemTotal, which the tracker knows).
    out.memory_percent = m.unwrap_or(if out.memory_kib.is_some() {
        100.0
    } else {
        DEFAULT_PERCENT
    });
    out.swap_percent = s.unwrap_or(if out.swap_kib.is_some() {
        100.0
    } else {
        DEFAULT_PERCENT
    });
    out
}

/// `PERCENT[,KILL_PERCENT]` -> PERCENT.
fn first_number(value: &str) -> Option<f64> {
    value
        .split(',')
        .next()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn thresholds(line: &str) -> (f64, Option<u64>, f64, Option<u64>, bool) {
        let e = parse(1, &argv(line));
        (
            e.memory_percent,
            e.memory_kib,
            e.swap_percent,
            e.swap_kib,
            e.dry_run,
        )
    }

    #[test]
    fn debian_defaults() {
        // Debian 12's earlyoom.service: ExecStart=/usr/bin/earlyoom $EARLYOOM_ARGS, with
        // EARLYOOM_ARGS="-r 3600" from /etc/default/earlyoom.
        assert_eq!(
            thresholds("/usr/bin/earlyoom -r 3600"),
            (10.0, None, 10.0, None, false)
        );
        assert_eq!(thresholds("earlyoom"), (10.0, None, 10.0, None, false));
    }

    #[test]
    fn percentages_sizes_and_kill_levels() {
        // The examples in Debian's /etc/default/earlyoom.
        assert_eq!(thresholds("earlyoom -m 5").0, 5.0);
        assert_eq!(
            thresholds("earlyoom -m 15 -s 5"),
            (15.0, None, 5.0, None, false)
        );
        assert_eq!(
            thresholds("/usr/bin/earlyoom -m 20,18 -s 4.5,2 --dryrun"),
            (20.0, None, 4.5, None, true)
        );
        // Percent and size together: the lower applies (the tracker compares them).
        assert_eq!(
            thresholds("/usr/bin/earlyoom -r 0 -m 4 -M 409600 -n"),
            (4.0, Some(409_600), 10.0, None, false)
        );
        // A size alone replaces the default percentage.
        assert_eq!(
            thresholds("earlyoom -M 102400 -S 51200,25600"),
            (100.0, Some(102_400), 100.0, Some(51_200), false)
        );
    }

    #[test]
    fn reads_options_as_getopt_does() {
        assert_eq!(thresholds("earlyoom -m5 -s1").0, 5.0);
        assert_eq!(thresholds("earlyoom -m5 -s1").2, 1.0);
        assert_eq!(thresholds("earlyoom -dnm 3").0, 3.0, "flags run together");
        // A regex is a value, not options, even when it looks like one.
        let line = [
            "earlyoom",
            "--avoid",
            "-m 50",
            "--prefer",
            "(^|/)(java|chromium)$",
            "-s",
            "7",
        ];
        let e = parse(1, &line.map(String::from));
        assert_eq!((e.memory_percent, e.swap_percent), (10.0, 7.0));
        assert_eq!(thresholds("earlyoom -- -m 5").0, 10.0);
        assert_eq!(thresholds("earlyoom -m lots").0, 10.0);
        assert_eq!(thresholds("earlyoom -m").0, 10.0);
    }
}
