//! Delivery through a helper process that runs as the desktop's user, since that user's
//! session bus refuses root. The protocol: one JSON `Notification` a line on the helper's
//! stdin; one answer a line on its stdout, `ok` or `error REASON`. Lines that are neither
//! are skipped, so a helper may print other things there.
use std::{ffi::OsStr, path::Path, process::Stdio};

use anyhow::Context;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, ChildStdout, Command},
};

use super::{dbus, message::Notification};

const OK: &str = "ok";
const ERROR: &str = "error ";
/// The longest answer line root's hupwatch reads from the helper, which runs as (and can
/// be driven by) the desktop's user: a longer one ends the helper's use, so that user
/// cannot make the daemon hold an unbounded line.
pub const MAX_ANSWER_BYTES: u64 = 4096;

pub struct Client {
    /// Killed when the client is dropped; it also ends by itself when its stdin closes.
    _child: Child,
    stdin: ChildStdin,
    answers: BufReader<ChildStdout>,
    /// Why the helper can no longer be used, once it cannot.
    gone: Option<String>,
}

impl Client {
    /// Starts `program ARGS` as `uid`/`gid`, with no supplementary groups and an empty
    /// environment but for HOME and PATH. Needs the privilege to change user (root),
    /// which hupwatch holds only until it drops its capabilities.
    pub fn spawn(program: &Path, args: &[&OsStr], uid: u32, gid: u32) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env(
                "HOME",
                super::target::home_of(uid).unwrap_or_else(|| "/".into()),
            )
            .current_dir("/")
            // Out of hupwatch's process group: a Ctrl-C on hupwatch's terminal is for
            // hupwatch, which ends the helper by closing its stdin.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its own failures (a panic) reach hupwatch's stderr.
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != uid {
            // std clears the supplementary groups (setgroups(0)) before setuid as root.
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().with_context(|| {
            format!(
                "cannot start the notification helper {} as uid {uid}",
                program.display()
            )
        })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        Ok(Self {
            _child: child,
            stdin,
            answers: BufReader::new(stdout),
            gone: None,
        })
    }

    pub async fn deliver(&mut self, n: &Notification) -> Result<(), String> {
        if let Some(why) = &self.gone {
            return Err(why.clone());
        }
        let outcome = self.exchange(n).await;
        if let Err(Gone(why)) = &outcome {
            self.gone = Some(why.clone());
        }
        match outcome {
            Ok(answer) => answer,
            Err(Gone(why)) => Err(why),
        }
    }

    /// The helper's answer, or `Gone` when it cannot answer any more.
    async fn exchange(&mut self, n: &Notification) -> Result<Result<(), String>, Gone> {
        let mut line = serde_json::to_string(n).expect("a notification serializes");
        line.push('\n');
        let write = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await
        };
        write
            .await
            .map_err(|e| Gone(format!("the notification helper is gone: {e}")))?;
        next_answer(&mut self.answers).await
    }
}

/// Reads answer lines until one is `ok` or `error REASON`, each at most
/// [`MAX_ANSWER_BYTES`]; the reason comes back escaped, as it may reach a terminal.
async fn next_answer(
    answers: &mut (impl AsyncBufRead + Unpin),
) -> Result<Result<(), String>, Gone> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = answers
            .take(MAX_ANSWER_BYTES + 1)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Gone(format!("cannot read the notification helper's answer: {e}")))?;
        if read == 0 {
            return Err(Gone("the notification helper exited".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(Gone(format!(
                "the notification helper sent an answer longer than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let answer = text.trim_end_matches(['\n', '\r']);
        if answer == OK {
            return Ok(Ok(()));
        }
        if let Some(why) = answer.strip_prefix(ERROR) {
            return Ok(Err(crate::output::escape_unsafe(why)));
        }
    }
}

struct Gone(String);

/// The helper's loop: each line of `input` a notification, sent on the bus at `bus`,
/// each answered on `output`. Ends when `input` does.
pub async fn serve(
    bus: &str,
    input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
) -> anyhow::Result<()> {
    let mut session = dbus::Session::new(bus.to_string());
    let mut lines = input.lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Notification>(&line) {
            Ok(n) => match session.deliver(&n).await {
                Ok(()) => OK.to_string(),
                Err(why) => format!("{ERROR}{}", one_line(&why)),
            },
            Err(e) => format!("{ERROR}the helper read a line that is not a notification: {e}"),
        };
        output.write_all(answer.as_bytes()).await?;
        output.write_all(b"\n").await?;
        output.flush().await?;
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::super::message::Urgency;
    use super::*;

    #[tokio::test]
    async fn the_helper_answers_every_line() {
        let n = Notification {
            summary: "s".into(),
            body: "b".into(),
            urgency: Urgency::Low,
        };
        let input = format!("{}\n\nnot json\n", serde_json::to_string(&n).unwrap());
        let mut output = Vec::new();
        serve(
            "unix:path=/nonexistent/hupwatch-helper-test/bus",
            input.as_bytes(),
            &mut output,
        )
        .await
        .unwrap();
        let output = String::from_utf8(output).unwrap();
        let answers: Vec<&str> = output.lines().collect();
        assert_eq!(answers.len(), 2, "{output}");
        assert!(
            answers[0].starts_with("error cannot connect to the session bus"),
            "{output}"
        );
        assert!(
            answers[1].starts_with("error the helper read a line that is not a notification"),
            "{output}"
        );
    }

    #[test]
    fn a_notification_is_one_json_line() {
        let n = Notification {
            summary: "3 orphaned claude sessions hold 6.2 GiB".into(),
            body: "line one\nline \"two\"".into(),
            urgency: Urgency::Critical,
        };
        let line = serde_json::to_string(&n).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains(r#""urgency":"critical""#), "{line}");
        assert_eq!(serde_json::from_str::<Notification>(&line).unwrap(), n);
    }

    #[tokio::test]
    async fn answers_are_read_within_a_bound_and_escaped() {
        let mut answers = BufReader::new(&b"chatter\nerror bad \x1b[2J bus\nok\n"[..]);
        assert_eq!(
            next_answer(&mut answers).await.ok(),
            Some(Err("bad \\u{1b}[2J bus".to_string()))
        );
        assert_eq!(next_answer(&mut answers).await.ok(), Some(Ok(())));
        assert!(
            matches!(next_answer(&mut answers).await, Err(Gone(why)) if why.contains("exited"))
        );
        // A helper driven to send one endless line is dropped after the bound, not read
        // to its end.
        let endless = tokio::io::repeat(b'x');
        let mut answers = BufReader::new(endless);
        let Err(Gone(why)) = next_answer(&mut answers).await else {
            panic!("an endless line is not an answer");
        };
        assert!(why.contains("longer than 4096 bytes"), "{why}");
    }
}
