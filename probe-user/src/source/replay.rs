//! Recorded `hupwatch trace --json` files, read back as the same event stream for
//! post-mortems and deterministic tests.
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use crate::event::Event;

/// Lines longer than this are not events hupwatch wrote (its longest is about 5 KiB).
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    // `cause`, not `source`: the message already says it, and a source would be said again
    // when the error is printed with its chain.
    #[error(
        "--replay {path}: cannot read it ({cause}); give a file written by `hupwatch trace --json`"
    )]
    Open {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "--replay {path}:{line}: {detail}; the file must hold one `hupwatch trace --json` event per line"
    )]
    BadLine {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

/// Reads events one line at a time, so a day-long recording needs no more memory than
/// its longest line.
pub struct Replay<R = File> {
    path: PathBuf,
    lines: BufReader<R>,
    line: usize,
    buffer: Vec<u8>,
}

impl Replay<File> {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let open_error = |cause| ReplayError::Open {
            path: path.to_owned(),
            cause,
        };
        let file = File::open(path).map_err(open_error)?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(open_error(std::io::Error::other("it is a directory")));
        }
        Ok(Self::new(file, path))
    }
}

impl<R: Read> Replay<R> {
    /// Events from any reader; `path` names it in errors.
    pub fn new(reader: R, path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lines: BufReader::new(reader),
            line: 0,
            buffer: Vec::new(),
        }
    }

    fn bad(&self, detail: impl Into<String>) -> ReplayError {
        ReplayError::BadLine {
            path: self.path.clone(),
            line: self.line,
            detail: detail.into(),
        }
    }

    fn next_event(&mut self) -> Result<Option<Event>, ReplayError> {
        loop {
            self.buffer.clear();
            self.line += 1;
            let mut limited = Read::take(&mut self.lines, MAX_LINE as u64 + 1);
            let read = limited
                .read_until(b'\n', &mut self.buffer)
                .map_err(|e| self.bad(format!("read failed ({e})")))?;
            if read == 0 {
                return Ok(None);
            }
            if self.buffer.len() > MAX_LINE {
                return Err(self.bad("line longer than 1 MiB"));
            }
            let text = std::str::from_utf8(&self.buffer)
                .map_err(|_| self.bad("not UTF-8"))?
                .trim();
            if text.is_empty() {
                continue;
            }
            // A last line without its newline that ends mid-JSON was cut off; one that is
            // whole JSON but no event says what is wrong with it.
            let cut_off = !self.buffer.ends_with(b"\n");
            return serde_json::from_str(text).map(Some).map_err(|e| {
                if cut_off && e.classify() == serde_json::error::Category::Eof {
                    self.bad("the last line is cut off (was the recording killed?)")
                } else {
                    self.bad(describe(&e))
                }
            });
        }
    }
}

impl<R: Read> Iterator for Replay<R> {
    type Item = Result<Event, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// What is wrong with a line: not JSON at all, or JSON that is not an event. serde quotes
/// what it did not expect (an unknown event kind, a string where a number belongs) as the
/// file holds it, so the quote is escaped: a recording could otherwise put a newline or a
/// terminal escape sequence in hupwatch's error line.
fn describe(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Syntax | Category::Eof => "not JSON",
        Category::Data => "not a hupwatch event",
        Category::Io => "unreadable",
    };
    let detail = crate::output::escape_unsafe(&short(&error.to_string()));
    format!("{what} ({detail})")
}

/// serde_json's message without its " at line 1 column 7" tail, which is about the line's
/// own text, not the file.
fn short(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use std::io::Write;

    fn file_with(text: &str) -> tempfile_path::TempPath {
        tempfile_path::write(text)
    }

    /// A throwaway file in the system temp dir, removed on drop.
    mod tempfile_path {
        use std::path::PathBuf;

        pub struct TempPath(pub PathBuf);

        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }

        pub fn write(text: &str) -> TempPath {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "hupwatch-replay-{}-{}.jsonl",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, text).unwrap();
            TempPath(path)
        }
    }

    fn line(event: &Event) -> String {
        serde_json::to_string(event).unwrap() + "\n"
    }

    fn fork(pid: u32) -> Event {
        Event {
            kind: EventKind::Fork { ppid: 1 },
            time_ns: 5,
            pid,
            comm: "a \"quoted\"\nname".into(),
        }
    }

    #[test]
    fn reads_back_what_trace_json_writes() {
        let text = line(&fork(7)) + "\n" + &line(&fork(8));
        let file = file_with(&text);
        let events: Vec<Event> = Replay::open(&file.0)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(events, [fork(7), fork(8)]);
    }

    #[test]
    fn a_bad_line_names_the_file_and_line() {
        let teleport = r#"{"event":"teleport","time_ns":1,"pid":1,"comm":"x"}"#;
        let file = file_with(&(line(&fork(7)) + teleport + "\n"));
        let err = Replay::open(&file.0)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: "), "{err}");
        assert!(err.contains("teleport"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn a_cut_off_last_line_says_so() {
        let whole = line(&fork(7));
        let file = file_with(&(whole.clone() + &whole[..whole.len() / 2]));
        let err = Replay::open(&file.0)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: the last line is cut off"), "{err}");
        // Whole JSON without the final newline is not cut off: its own fault is named.
        let whole = line(&fork(7)).replace("\"pid\":7", "\"pid\":-7");
        let err = Replay::new(whole.trim_end().as_bytes(), "x.jsonl")
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.jsonl:1: not a hupwatch event (invalid value: integer `-7`"),
            "{err}"
        );
    }

    /// Found by `cargo xtask fuzz` (replay_parser): serde quotes an unknown event kind as
    /// the file spells it, so a kind with an escaped newline in it made a two-line error.
    #[test]
    fn what_a_bad_line_quotes_is_escaped() {
        let crash = br#"{"event":"sigacti\n","signal":0,"signal_name":"SIGHUP","disposition":"ignore","time_ns":1732190000003000000,"pid":4242,"comm":"nohup"}
"#;
        let err = Replay::new(&crash[..], "crash.jsonl")
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "--replay crash.jsonl:1: not a hupwatch event (unknown variant `sigacti\\n`"
            ),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        // A terminal escape sequence, a bidirectional override, a string where a number
        // belongs: quoted, never sent to the terminal as they are.
        let hostile = concat!(
            r#"{"event":"\u001b[31mred\u202e","time_ns":1,"pid":1,"comm":"x"}"#,
            "\n",
            r#"{"event":"fork","ppid":"\u001b]0;title\u0007","time_ns":1,"pid":1,"comm":"x"}"#,
            "\n"
        );
        for line in hostile.lines() {
            let err = Replay::new(line.as_bytes(), "x.jsonl")
                .next()
                .unwrap()
                .unwrap_err()
                .to_string();
            assert!(err.contains("\\u{1b}"), "{err}");
            assert!(
                err.chars().all(|c| crate::output::escaped(c).is_none()),
                "{err:?}"
            );
        }
    }

    #[test]
    fn binary_garbage_and_missing_files_are_errors_not_panics() {
        let file = file_with("");
        std::fs::File::create(&file.0)
            .unwrap()
            .write_all(&[0xff, 0xfe, 0x00, b'\n'])
            .unwrap();
        let err = Replay::open(&file.0).unwrap().next().unwrap().unwrap_err();
        assert!(err.to_string().contains("not UTF-8"));
        let missing = Replay::open(Path::new("/nonexistent/trace.jsonl"))
            .err()
            .unwrap()
            .to_string();
        assert!(missing.contains("cannot read it"), "{missing}");
        let dir = Replay::open(Path::new("/")).err().unwrap().to_string();
        assert!(dir.contains("directory"), "{dir}");
    }
}
