//! Booting the arm64 guest: qemu-system-aarch64 emulating (TCG: there is no KVM here, and
//! none for another architecture anywhere), its serial console on qemu's stdout, copied
//! into a file and read afterwards. qemu is killed when the guest overruns its time, so a
//! hung guest fails its line rather than the CI job.
use std::{
    fs,
    io::{self, BufRead, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::script::MARK;
use crate::sh;

/// The guest's machine: qemu's generic arm64 board with every CPU feature qemu emulates,
/// and as many vCPUs as the hosts have cores (more buy nothing under TCG).
const MACHINE: &[&str] = &["-M", "virt", "-cpu", "max", "-m", "2G", "-smp", "2"];
/// The kernel's command line: the console on the board's serial port; a panic (init
/// dying, say) restarts the guest at once, and -no-reboot turns that into qemu's exit.
const APPEND: &str = "console=ttyAMA0 panic=-1 rdinit=/init";

/// What one boot did.
pub struct Boot {
    pub console: PathBuf,
    pub elapsed: Duration,
    pub timed_out: bool,
    /// When each progress line arrived, from qemu's start.
    pub progress: Vec<(Duration, String)>,
}

/// Boots `kernel` with `initrd` and waits for qemu to end, `timeout` at most; the console
/// goes to `console`, and the guest's progress lines onto our stderr as they come.
pub fn boot(
    qemu: &Path,
    kernel: &Path,
    initrd: &Path,
    console: &Path,
    timeout: Duration,
    name: &str,
) -> Result<Boot> {
    let mut cmd = Command::new(qemu);
    cmd.args(MACHINE)
        .args(["-nographic", "-no-reboot", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", APPEND]);
    let (reader, writer) = io::pipe().context("a pipe for qemu's output")?;
    cmd.stdin(Stdio::null())
        .stdout(writer.try_clone().context("a pipe for qemu's output")?)
        .stderr(writer);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", sh::display(&cmd)))?;
    // The Command holds the pipe's writing ends: the reading would never see its end.
    drop(cmd);
    let file =
        fs::File::create(console).with_context(|| format!("creating {}", console.display()))?;
    let (progress_tx, progress_rx) = mpsc::channel();
    let label = name.to_owned();
    let copier = thread::spawn(move || copy_console(reader, file, &label, started, progress_tx));
    let mut timed_out = false;
    loop {
        if child.try_wait().context("waiting for qemu")?.is_some() {
            break;
        }
        if started.elapsed() >= timeout {
            timed_out = true;
            eprintln!(
                "  [{name}] killing qemu: the guest is still running after {} s",
                timeout.as_secs()
            );
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let elapsed = started.elapsed();
    let _ = copier.join();
    Ok(Boot {
        console: console.to_owned(),
        elapsed,
        timed_out,
        progress: progress_rx.try_iter().collect(),
    })
}

/// Copies qemu's output into `file` and echoes the guest's progress lines, timed.
fn copy_console(
    reader: io::PipeReader,
    mut file: fs::File,
    name: &str,
    started: Instant,
    progress: mpsc::Sender<(Duration, String)>,
) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let marker = format!("{MARK} progress ");
    while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
        let _ = file.write_all(&line);
        let text = String::from_utf8_lossy(&line);
        if let Some((_, said)) = text.split_once(&marker) {
            let said = said.trim_end().to_owned();
            eprintln!("  [{name}] {said}");
            let _ = progress.send((started.elapsed(), said));
        }
        line.clear();
    }
}
