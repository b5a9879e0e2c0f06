//! The guest's shell scripts: `/init`, which sets the guest up, starts `hupwatch run` and
//! reports on the console, and `/scenario.sh`, the session on a terminal whose processes
//! must raise the verdicts. Everything the host reads is a console line starting with
//! [`MARK`] (see serial.rs).
//!
//! The scenario's terminal is a virtual console, /dev/tty2, not the serial console the
//! results come back on: its session leader's exit hangs the terminal up, and the serial
//! one must keep working after that.
//!
//! The scenario names its programs by path (/bin/sleep, not sleep): busybox's shell runs a
//! bare applet name in a forked copy of itself or through /proc/self/exe, and the alerts
//! would then be about processes called `sh` and `exe`.
use std::fmt::Write as _;

/// Marks the script's lines among the kernel's on the console.
pub const MARK: &str = "hupwatch-arm64:";

/// The verdicts the scenario raises, each for a process it names on the console.
pub const VERDICTS: [&str; 5] = [
    "rss_growth",
    "detached",
    "hangup_ignored",
    "orphaned",
    "terminal_lost",
];

/// Where the initramfs puts what the host hands in.
pub const HUPWATCH: &str = "bin/hupwatch";
pub const LIB_TESTS: &str = "lib-tests";

/// `hupwatch run`'s thresholds, short for a guest that runs for a minute: a 2 s grace
/// period, and growth of 48 MiB within 20 s (going on for 5 s). The scenario's process
/// grows 2 MiB a step, each step 100 ms plus a fork and exec of usleep: 8.7 MiB/s in a
/// guest on an idle host (r² 0.998), where the alert came 6 s after it started; slower
/// than 2.4 MiB/s (a step every 800 ms) would never reach the threshold within the window.
const HUPWATCH_ARGS: &str =
    "--hup-grace 2s --rss-growth 48MiB --rss-window 20s --rss-interval 250ms";
/// How long the guest waits for hupwatch's ready line (it came after 3-5 s), for each alert
/// (1-6 s), for the whole scenario (10 s), and for the library's tests (12-14 s). Seconds of the
/// guest's clock, together well within the host's timeout over the whole guest (mod.rs),
/// so a stage that hangs is reported by the guest itself.
pub const READY_SECS: u32 = 120;
pub const ALERT_SECS: u32 = 60;
pub const SCENARIO_SECS: u32 = 300;
pub const STOP_SECS: u32 = 30;
pub const LIB_TESTS_SECS: u32 = 300;
/// How long `hupwatch selftest` may take there: it took 25-40 s in guests on a busy 2-core
/// host (5 s on the host itself).
pub const SELFTEST_SECS: u32 = 180;
/// libtest threads: the guest's CPUs, as the x86 guests run theirs (guest.rs).
const TEST_THREADS: u32 = 2;

/// `/init`: `lib_tests` are the arguments for the library's unit tests (`--skip NAME`...),
/// or None when there is no such binary in the initramfs.
pub fn init(lib_tests: Option<&[&str]>) -> String {
    let mut text = format!(
        r#"#!/bin/busybox sh
# Written by `cargo xtask test`: the kernel matrix's arm64 guest (xtask/src/kernels/arm64/).
/bin/busybox --install -s /bin
export PATH=/bin
mark() {{ echo "{MARK} $*"; }}
{AWAIT}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The pseudo-terminals `hupwatch selftest` opens.
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /tmp
# hupwatch serves its API (and the metrics read below) on loopback.
ifconfig lo 127.0.0.1 up
mark "release $(uname -r)"
mark "progress booted"

# Each alert goes onto the console as it comes, so that a guest killed halfway still shows
# what had been raised.
: >/tmp/alerts.jsonl
tail -f /tmp/alerts.jsonl | while IFS= read -r line; do mark "alert $line"; done &
# Watching everything, as installed: only processes that came from a terminal count.
/{HUPWATCH} run --json --alerts-file /tmp/alerts.jsonl --listen 127.0.0.1:9464 {HUPWATCH_ARGS} </dev/null >/tmp/hupwatch.out 2>/tmp/hupwatch.err &
hupwatch=$!
waited=0
until grep -q '^hupwatch: ready:' /tmp/hupwatch.err; do
    kill -0 $hupwatch 2>/dev/null || break
    [ $waited -ge {READY_SECS} ] && break
    sleep 1
    waited=$((waited + 1))
done
said=0
while IFS= read -r line; do mark "stderr $line"; said=$((said + 1)); done </tmp/hupwatch.err
if grep -q '^hupwatch: ready:' /tmp/hupwatch.err; then
    mark "progress hupwatch ready after $waited s"
    wget -q -O /tmp/metrics http://127.0.0.1:9464/metrics || mark "progress no metrics from hupwatch"
    grep '^hupwatch_probe_attached' /tmp/metrics | while IFS= read -r line; do mark "metric $line"; done
    # A session on a terminal of its own: its leader is the scenario's shell.
    /bin/setsid -c /bin/sh /scenario.sh </dev/tty2 >/dev/console 2>&1 &
    waited=0
    until [ -e /tmp/scenario.done ] || [ $waited -ge {SCENARIO_SECS} ]; do sleep 1; waited=$((waited + 1)); done
    mark "progress scenario over after $waited s"
    subject=$(cat /tmp/hangup_ignored.pid 2>/dev/null)
    await terminal_lost "$subject" {ALERT_SECS}
else
    mark "progress hupwatch not ready after $waited s"
fi
# Stopped as a service is: SIGTERM, after which it must exit 0 (SIGKILL if it hangs).
kill -TERM $hupwatch 2>/dev/null
(sleep {STOP_SECS}; kill -KILL $hupwatch 2>/dev/null) &
watchdog=$!
wait $hupwatch
mark "hupwatch-exit $?"
kill $watchdog 2>/dev/null
tail -n +$((said + 1)) /tmp/hupwatch.err | while IFS= read -r line; do mark "stderr $line"; done
# Nothing is expected on stdout with --alerts-file; anything there is shown (and not JSON
# alerts, it fails the line). tail looks at the alerts once a second.
while IFS= read -r line; do mark "alert $line"; done </tmp/hupwatch.out
sleep 2

# `hupwatch selftest` as a user runs it, once the watcher above has stopped: its report is
# one JSON line.
mark "progress selftest"
(timeout {SELFTEST_SECS} /{HUPWATCH} selftest --json </dev/null 2>/tmp/selftest.err; echo $? >/tmp/selftest.rc) | while IFS= read -r line; do mark "selftest $line"; done
while IFS= read -r line; do mark "selftest-stderr $line"; done </tmp/selftest.err
mark "selftest-exit $(cat /tmp/selftest.rc)"
"#
    );
    if let Some(args) = lib_tests {
        let _ = write!(
            text,
            r#"mark "progress library tests"
cd /tmp
(timeout {LIB_TESTS_SECS} /{LIB_TESTS} --test-threads={TEST_THREADS}{args} 2>&1; echo $? >/tmp/lib-tests.rc) | while IFS= read -r line; do mark "libtest $line"; done
mark "libtest-exit $(cat /tmp/lib-tests.rc)"
"#,
            args = args.iter().map(|arg| format!(" {arg}")).collect::<String>()
        );
    }
    text.push_str("mark done\npoweroff -f\n");
    text
}

/// Shell functions for /init and the scenario: `raised VERDICT PID` (an alert line raised
/// it), `await VERDICT PID SECS` (waits for that, saying how long it took). The host reads
/// the alerts as JSON; these only pace the guest.
const AWAIT: &str = r#"raised() {
    grep -F "\"status\":\"raised\",\"alert\":\"$1\"" /tmp/alerts.jsonl 2>/dev/null | grep -qF "\"pid\":$2,"
}
await() {
    waited=0
    until raised "$1" "$2"; do
        if [ $waited -ge "$3" ]; then mark "progress no $1 alert for pid $2 after $3 s"; return 1; fi
        sleep 1
        waited=$((waited + 1))
    done
    mark "progress $1 for pid $2 after $waited s"
}
"#;

/// `/scenario.sh`, the terminal's session: one process per verdict, named on the console
/// (`subject VERDICT PID`), each waited for before the next starts. Its end (the leader
/// leaving its terminal) is what makes terminal_lost.
pub fn scenario() -> String {
    format!(
        r#"# The session's leader, on /dev/tty2 (see /init).
mark() {{ echo "{MARK} $*"; }}
{AWAIT}
# Steady growth: 2 MiB more every step, a line the fit over the RSS samples follows; then it
# holds what it has for a minute.
/bin/awk 'BEGIN {{ s = sprintf("%2097152s", ""); for (i = 0; i < 100; i++) {{ a[i] = s i; system("usleep 100000") }}; system("sleep 60") }}' </dev/null >/dev/null 2>&1 &
grower=$!
mark "subject rss_growth $grower"
await rss_growth $grower {ALERT_SECS}
kill $grower

# setsid(2) from the terminal's session: detached.
/bin/setsid /bin/sleep 1001 </dev/null >/dev/null 2>&1 &
detached=$!
mark "subject detached $detached"
await detached $detached {ALERT_SECS}

# SIGHUP set to SIG_IGN before the exec, as nohup does (busybox has no nohup that keeps it
# ignored): hangup_ignored now, terminal_lost once the leader leaves.
(trap "" HUP; exec /bin/sleep 1002) </dev/null >/dev/null 2>&1 &
ignoring=$!
echo $ignoring >/tmp/hangup_ignored.pid
mark "subject hangup_ignored $ignoring"
mark "subject terminal_lost $ignoring"
await hangup_ignored $ignoring {ALERT_SECS}

# A child whose parent exits at once: orphaned.
orphan=$(/bin/sh -c '/bin/sleep 1003 </dev/null >/dev/null 2>&1 & echo $!')
mark "subject orphaned $orphan"
await orphaned $orphan {ALERT_SECS}

mark "progress the session's leader leaves its terminal"
touch /tmp/scenario.done
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_names_a_process_for_every_verdict() {
        let scenario = scenario();
        for verdict in VERDICTS {
            assert!(
                scenario.contains(&format!("mark \"subject {verdict} ")),
                "{verdict}"
            );
        }
    }

    #[test]
    fn the_library_tests_run_only_when_handed_in() {
        assert!(!init(None).contains(LIB_TESTS));
        let with = init(Some(&["--skip", "needs_python"]));
        assert!(with.contains(&format!(
            "/{LIB_TESTS} --test-threads=2 --skip needs_python"
        )));
        assert!(with.ends_with("mark done\npoweroff -f\n"));
    }

    #[test]
    fn await_is_defined_before_init_uses_it() {
        let init = init(None);
        let defined = init.find("await() {").unwrap();
        let used = init.find("await terminal_lost").unwrap();
        assert!(defined < used);
    }
}
