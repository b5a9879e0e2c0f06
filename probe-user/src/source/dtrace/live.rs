//! `--source dtrace`: runs `dtrace` with hupwatch's script, reads its output as it comes
//! and samples RSS, which DTrace cannot report on macOS. Nothing here needs macOS itself,
//! so the tests drive it with a stand-in that prints what dtrace prints.
use std::{
    collections::VecDeque,
    ffi::OsString,
    io,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, ChildStdout, Command},
    time::Interval,
};

use super::{
    Records,
    stderr::{ROOT_FIX, SIP_FIX, Said, understand},
};
use crate::{decode::Clock, error::UserError, event::Event};

/// How long dtrace may take to compile the script and print its first line.
const STARTUP: Duration = Duration::from_secs(60);
/// A signal held back for its discard is let go once the output has been quiet this long.
const QUIET: Duration = Duration::from_millis(50);
/// Time for the stderr task to read what dtrace wrote before its first line of output.
const STDERR_CATCH_UP: Duration = Duration::from_millis(200);
/// How often buffered records are let go and dtrace's stderr looked at between reads.
const TICK: Duration = Duration::from_millis(100);
/// Lines of dtrace's stderr passed on as they are, before the rest are only counted.
const PASSED_ON: u64 = 20;

/// The program run as dtrace and its arguments before the script's path.
pub struct DtraceCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl DtraceCommand {
    /// macOS's dtrace, quiet, the script from a file.
    pub fn system() -> Self {
        Self {
            program: "/usr/sbin/dtrace".into(),
            args: vec!["-q".into(), "-s".into()],
        }
    }
}

/// What dtrace's stderr has said so far, kept by the task that reads it.
#[derive(Default, Debug)]
struct Stderr {
    drops: u64,
    dynamic_variable_drops: u64,
    probe_errors: u64,
    other_lines: u64,
    sip_blocks: bool,
    needs_root: bool,
    last: VecDeque<String>,
}

pub struct DtraceSource {
    child: Child,
    stdout: ChildStdout,
    stderr: Arc<Mutex<Stderr>>,
    records: Records,
    /// Lets a held-back signal go and checks for refusals between reads.
    tick: Interval,
    last_read: Instant,
    clock: Clock,
    chunk: Vec<u8>,
    _script: ScriptFile,
}

impl DtraceSource {
    /// Starts dtrace on `script` and waits for its first line; a refusal (SIP, not root)
    /// or an early exit is an error naming the fix.
    pub async fn start(command: DtraceCommand, script: &str, clock: Clock) -> anyhow::Result<Self> {
        let script_file = ScriptFile::write(script)?;
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .arg(&script_file.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                UserError::new(format!(
                    "cannot run {} ({e}); DTrace comes with macOS, use --source ebpf elsewhere",
                    command.program.display()
                ))
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = Arc::new(Mutex::new(Stderr::default()));
        tokio::spawn(read_stderr(
            child.stderr.take().expect("stderr is piped"),
            Arc::clone(&stderr),
        ));
        let mut source = Self {
            child,
            stdout,
            stderr,
            records: Records::new(),
            tick: tokio::time::interval(TICK),
            last_read: Instant::now(),
            clock,
            chunk: vec![0; 64 * 1024],
            _script: script_file,
        };
        match tokio::time::timeout(STARTUP, source.header()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(UserError::new(format!(
                    "dtrace printed nothing in {}s; check that `sudo dtrace -l -n 'proc:::exec-success'` lists the probe",
                    STARTUP.as_secs()
                ))
                .into());
            }
        }
        // dtrace warns about SIP before it prints anything, so the warning is in the stderr
        // pipe by now; give the task reading it a moment to get there.
        tokio::time::sleep(STDERR_CATCH_UP).await;
        source.refused()?;
        Ok(source)
    }

    async fn header(&mut self) -> anyhow::Result<()> {
        loop {
            match self.records.header() {
                Some(Ok(())) => return Ok(()),
                Some(Err(found)) => {
                    return Err(UserError::new(format!(
                        "dtrace printed {found:?} where hupwatch's script starts with `hupwatch-dtrace 1`; is /usr/sbin/dtrace macOS's DTrace?"
                    ))
                    .into());
                }
                None => {}
            }
            let n = self.stdout.read(&mut self.chunk).await?;
            if n == 0 {
                return Err(self.ended().await);
            }
            self.records.feed(&self.chunk[..n]);
        }
    }

    /// dtrace has closed its output: why, as an error with the fix when there is one.
    async fn ended(&mut self) -> anyhow::Error {
        let status = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        // The stderr task reads to the end once dtrace is gone; give it a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Err(refusal) = self.refused() {
            return refusal;
        }
        let said = lock(&self.stderr).last.back().cloned().unwrap_or_default();
        let status = match status {
            Ok(Ok(status)) => status.to_string(),
            _ => "no exit status".into(),
        };
        UserError::new(format!("dtrace stopped ({status}): {said}")).into()
    }

    /// SIP or a missing privilege, once dtrace has said so.
    fn refused(&self) -> anyhow::Result<()> {
        let stderr = lock(&self.stderr);
        if stderr.needs_root {
            return Err(UserError::new(ROOT_FIX).into());
        }
        if stderr.sip_blocks {
            return Err(UserError::new(SIP_FIX).into());
        }
        Ok(())
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Waits for dtrace's output or the tick and appends what they say to `out`.
    /// dtrace ending is an error: without it nothing is watched.
    pub async fn next(&mut self, out: &mut Vec<Event>) -> anyhow::Result<()> {
        tokio::select! {
            read = self.stdout.read(&mut self.chunk) => {
                let n = read?;
                if n == 0 {
                    self.records.finish(out);
                    return Err(self.ended().await);
                }
                self.last_read = Instant::now();
                self.records.feed(&self.chunk[..n]);
                self.release(out, false);
            }
            _ = self.tick.tick() => {
                // Records that came in the same read as the header are still buffered.
                self.release(out, self.last_read.elapsed() >= QUIET);
                self.refused()?;
            }
        }
        Ok(())
    }

    /// Before leaving: the records dtrace has written and hupwatch has not read yet, taken
    /// without waiting for more (at most four pipefuls), and a held-back signal.
    pub async fn drain_queued(&mut self, out: &mut Vec<Event>) {
        for _ in 0..4 {
            // A zero timeout still polls the read once: what the pipe holds comes out.
            let read = tokio::time::timeout(Duration::ZERO, self.stdout.read(&mut self.chunk));
            match read.await {
                Ok(Ok(n)) if n > 0 => self.records.feed(&self.chunk[..n]),
                _ => break,
            }
        }
        self.release(out, true);
    }

    /// Appends the events of the complete records buffered (and a held-back signal too,
    /// with `flush`).
    fn release(&mut self, out: &mut Vec<Event>, flush: bool) {
        self.records.drain(out);
        if flush {
            self.records.flush(out);
        }
    }

    /// Losses so far, by kind, for `hupwatch_events_lost_total`.
    pub fn losses(&self) -> Vec<(&'static str, u64)> {
        let stderr = lock(&self.stderr);
        vec![
            ("dtrace_drops", stderr.drops),
            (
                "dtrace_dynamic_variable_drops",
                stderr.dynamic_variable_drops,
            ),
            ("dtrace_probe_errors", stderr.probe_errors),
            ("malformed_records", self.records.skipped.malformed),
        ]
    }

    pub fn lost_events(&self) -> u64 {
        self.losses().iter().map(|(_, n)| n).sum()
    }
}

async fn read_stderr(pipe: tokio::process::ChildStderr, state: Arc<Mutex<Stderr>>) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let said = understand(&line);
        let mut s = lock(&state);
        match said {
            Said::Drops(n) => s.drops = s.drops.saturating_add(n),
            Said::DynamicVariableDrops(n) => {
                s.dynamic_variable_drops = s.dynamic_variable_drops.saturating_add(n);
            }
            Said::ProbeError => s.probe_errors += 1,
            Said::SipBlocks => s.sip_blocks = true,
            Said::NeedsRoot => s.needs_root = true,
            Said::Other => {
                s.other_lines += 1;
                if s.other_lines <= PASSED_ON {
                    eprintln!("hupwatch: dtrace: {}", line.trim_start_matches("dtrace: "));
                } else if s.other_lines == PASSED_ON + 1 {
                    eprintln!("hupwatch: dtrace says more; further lines are not shown");
                }
            }
        }
        if s.last.len() == 4 {
            s.last.pop_front();
        }
        s.last.push_back(line);
    }
}

fn lock<T>(shared: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The rendered script, in a file only its owner can read, removed when the source goes.
struct ScriptFile {
    path: PathBuf,
}

impl ScriptFile {
    fn write(script: &str) -> anyhow::Result<Self> {
        use std::{io::Write, os::unix::fs::OpenOptionsExt};
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("hupwatch-{}-{n}.d", std::process::id());
        let path = std::env::temp_dir().join(name);
        // A leftover of an earlier hupwatch with the same pid is ours to replace.
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        file.write_all(script.as_bytes())?;
        Ok(Self { path })
    }
}

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::EventKind,
        source::shared::{Source, Update},
    };

    /// A stand-in for dtrace: `sh SCRIPT` where the script is the shell program given,
    /// which the source writes out as it would write the D script.
    async fn start(shell: &str) -> anyhow::Result<DtraceSource> {
        let command = DtraceCommand {
            program: "/bin/sh".into(),
            args: vec![],
        };
        DtraceSource::start(command, shell, Clock::now()).await
    }

    /// The stand-in behind the source every tracer sits in, which samples memory.
    async fn watched(shell: &str) -> anyhow::Result<Source> {
        let dtrace = start(shell).await?;
        let clock = dtrace.clock();
        let tracer = Box::new(super::super::watch::DtraceWatch::new(dtrace, None));
        Ok(Source::new(tracer, clock, Duration::from_millis(20), 1))
    }

    async fn updates_until(source: &mut Source, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
        let (mut updates, mut out) = (Vec::new(), Vec::new());
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !done(&out) {
                source.next(&mut updates).await.expect("dtrace running");
                out.extend(updates.drain(..).filter_map(|u| match u {
                    Update::Event(event) => Some(event),
                    _ => None,
                }));
            }
        })
        .await;
        assert!(waited.is_ok(), "stalled with {out:?}");
        out
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn user_error(result: anyhow::Result<DtraceSource>) -> String {
        let err = result.err().expect("an error");
        assert!(err.is::<UserError>(), "{err:#}");
        err.to_string()
    }

    async fn events_until(
        source: &mut DtraceSource,
        done: impl Fn(&[Event]) -> bool,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while !done(&out) {
                source.next(&mut out).await.expect("dtrace running");
            }
        })
        .await;
        assert!(waited.is_ok(), "stalled with {out:?}");
        out
    }

    #[test]
    fn records_come_out_while_dtrace_runs_and_losses_are_counted() {
        runtime().block_on(async {
            let mut child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            let pid = child.id();
            // The header and the records in one write, so they arrive in one read: the
            // records behind the header must still come out without more output.
            let shell = format!(
                "echo 'dtrace: 17 drops on CPU 1' >&2\n\
                 echo 'dtrace: 3 dynamic variable drops' >&2\n\
                 printf 'hupwatch-dtrace 1\\nfork 1 {pid} 1 5:sleep\\n\
                 signal 2 {pid} 1 0 1 5:sleep 0:\\ndiscard 2 {pid} 1 5:sleep\\nbroken record\\n'\n\
                 exec sleep 30\n"
            );
            let mut source = watched(&shell).await.expect("started");
            let out = updates_until(&mut source, |out| {
                out.iter().any(|e| matches!(e.kind, EventKind::Rss { .. }))
                    && out
                        .iter()
                        .any(|e| matches!(e.kind, EventKind::Signal { .. }))
            })
            .await;
            let rss = out
                .iter()
                .find(|e| matches!(e.kind, EventKind::Rss { .. }))
                .unwrap();
            assert_eq!(rss.pid, pid, "the forked process is sampled");
            let ignored = out
                .iter()
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::Signal {
                            result: crate::event::SignalResult::Ignored,
                            ..
                        }
                    )
                })
                .count();
            assert_eq!(
                ignored, 1,
                "send and discard are one ignored signal: {out:?}"
            );
            let losses = source.losses();
            assert!(losses.contains(&("dtrace_drops", 17)), "{losses:?}");
            assert!(losses.contains(&("dtrace_dynamic_variable_drops", 3)));
            assert!(losses.contains(&("malformed_records", 1)));
            assert_eq!(losses.iter().map(|(_, n)| n).sum::<u64>(), 21);
            child.kill().unwrap();
            child.wait().unwrap();
        });
    }

    #[test]
    fn records_written_before_a_stop_request_come_out_when_it_leaves() {
        runtime().block_on(async {
            // The fork comes out at once; the signal is held back for a discard that may
            // follow; the exit is written after hupwatch last read.
            let shell = "echo 'hupwatch-dtrace 1'\n\
                 sleep 0.3\n\
                 printf 'fork 1 43 42 5:sleep\\nsignal 2 43 1 0 1 5:sleep 0:\\n'\n\
                 sleep 0.3\n\
                 printf 'exit 3 43 42 0 5:sleep\\n'\n\
                 exec sleep 30\n";
            let mut source = start(shell).await.expect("started");
            let mut out = events_until(&mut source, |out| {
                out.iter().any(|e| matches!(e.kind, EventKind::Fork { .. }))
            })
            .await;
            assert!(
                !out.iter()
                    .any(|e| matches!(e.kind, EventKind::Signal { .. })),
                "the signal is held back: {out:?}"
            );
            // Past the last write; the runtime does not read meanwhile.
            std::thread::sleep(Duration::from_millis(600));
            source.drain_queued(&mut out).await;
            let kinds: Vec<&str> = out.iter().map(|e| e.kind.name()).collect();
            assert_eq!(kinds, ["fork", "signal", "exit"], "{out:?}");
        });
    }

    #[test]
    fn sip_and_root_refusals_name_their_fix() {
        runtime().block_on(async {
            let sip = user_error(
                start(
                    "echo 'dtrace: system integrity protection is on, some features will not be available' >&2\n\
                     echo 'hupwatch-dtrace 1'\nexec sleep 30\n",
                )
                .await,
            );
            assert!(sip.contains("csrutil enable --without dtrace"), "{sip}");
            let root = user_error(
                start(
                    "echo 'dtrace: failed to initialize dtrace: DTrace requires additional privileges' >&2\nexit 1\n",
                )
                .await,
            );
            assert!(root.contains("sudo"), "{root}");
        });
    }

    #[test]
    fn dtrace_that_fails_or_prints_something_else_is_an_error_with_what_it_said() {
        runtime().block_on(async {
            let died = user_error(
                start(
                    "echo 'dtrace: failed to compile script: line 3: syntax error' >&2\nexit 1\n",
                )
                .await,
            );
            assert!(died.contains("syntax error"), "{died}");
            assert!(died.contains("exit status: 1"), "{died}");
            let other = user_error(start("echo 'CPU ID FUNCTION:NAME'\nexec sleep 30\n").await);
            assert!(other.contains("CPU ID"), "{other}");
        });
    }

    #[test]
    fn dtrace_ending_mid_run_ends_the_source_with_its_reason() {
        runtime().block_on(async {
            let mut source = start(
                "echo 'hupwatch-dtrace 1'\nsleep 0.2\necho 'dtrace: processing aborted: Abort due to systemic unresponsiveness' >&2\nexit 1\n",
            )
            .await
            .expect("started");
            let mut out = Vec::new();
            let end = loop {
                if let Err(e) = source.next(&mut out).await {
                    break e;
                }
            };
            assert!(end.to_string().contains("systemic unresponsiveness"), "{end}");
        });
    }
}
