//! A captured DTrace session (`--dtrace-input FILE`) read as events. Bad records are
//! counted and skipped, never fatal: the first one is remembered for the report.
use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use super::{
    convert::Converter,
    format::{HEADER, Parsed, parse},
};
use crate::event::Event;

#[derive(Debug, thiserror::Error)]
pub enum DtraceError {
    // `cause`, not `source`: the message already says it, and a source would be said again
    // when the error is printed with its chain.
    #[error(
        "--dtrace-input {path}: cannot read it ({cause}); give a file of hupwatch's DTrace output (dtrace/FORMAT.md)"
    )]
    Open {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "--dtrace-input {path}: it does not start with `hupwatch-dtrace 1` but {found:?}; capture it with dtrace/hupwatch.d (see dtrace/FORMAT.md)"
    )]
    NotACapture { path: PathBuf, found: String },
}

/// What was skipped: how many bad records, and the first one's line and reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub malformed: u64,
    pub first: Option<(usize, String)>,
}

impl Skipped {
    /// One line for stderr, or None when nothing was skipped.
    pub fn report(&self, path: &Path) -> Option<String> {
        let (line, why) = self.first.as_ref()?;
        Some(format!(
            "hupwatch: warning: --dtrace-input {}: skipped {} malformed record(s); the first, at line {line}: {why}",
            path.display(),
            self.malformed
        ))
    }
}

/// Records split out of a byte stream as it arrives, whether a file or a live `dtrace`.
/// Bad records are counted and skipped; a record cut by the end of a read waits for the
/// next bytes.
#[derive(Default)]
pub struct Records {
    buffer: Vec<u8>,
    start: usize,
    /// Line number of the byte at `start`, counting the header as line 1.
    line: usize,
    converter: Converter,
    pub skipped: Skipped,
}

impl Records {
    pub fn new() -> Self {
        Self {
            line: 1,
            ..Self::default()
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.drain(..self.start);
        self.start = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// Consumes the version line once it is complete: `Some(Ok)` when it is
    /// `hupwatch-dtrace 1`, `Some(Err(what is there instead))` when not, `None` while it
    /// may still arrive.
    pub fn header(&mut self) -> Option<Result<(), String>> {
        let rest = &self.buffer[self.start..];
        let shown = |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into();
        match rest.iter().position(|&b| b == b'\n') {
            Some(newline) if &rest[..newline] == HEADER => {
                self.start += newline + 1;
                self.line += 1;
                Some(Ok(()))
            }
            Some(newline) => Some(Err(shown(&rest[..newline]))),
            None if rest.len() > 4096 => Some(Err(shown(rest))),
            None => None,
        }
    }

    /// What stands where the header should, for the error when the input ended first.
    pub fn header_so_far(&self) -> String {
        let rest = &self.buffer[self.start..];
        String::from_utf8_lossy(&rest[..rest.len().min(60)]).into()
    }

    /// The events of every complete record fed so far. A signal stays held back in case
    /// its discard follows; [`Records::flush`] lets it go.
    pub fn drain(&mut self, out: &mut Vec<Event>) {
        loop {
            match parse(&self.buffer[self.start..]) {
                Parsed::Record(record, used) => {
                    self.advance(used);
                    self.converter.push(record, out);
                }
                Parsed::Malformed(why, used) => self.skip(why, used),
                Parsed::Incomplete => return,
            }
        }
    }

    /// Releases a held-back signal: nothing more is coming for now.
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        self.converter.flush(out);
    }

    /// The input has ended: a record left incomplete is counted as cut off.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.drain(out);
        if self.start < self.buffer.len() {
            let rest = self.buffer.len() - self.start;
            self.skip("the input ends inside a record".into(), rest);
        }
        self.flush(out);
    }

    fn skip(&mut self, why: String, used: usize) {
        self.skipped.malformed += 1;
        self.skipped.first.get_or_insert((self.line, why));
        self.advance(used);
    }

    fn advance(&mut self, used: usize) {
        let taken = &self.buffer[self.start..self.start + used];
        self.line += taken.iter().filter(|&&b| b == b'\n').count();
        self.start += used;
    }
}

/// Reads a capture in 64 KiB chunks, so a long one needs no more memory than a chunk and
/// the events of one record.
pub struct DtraceInput<R> {
    reader: R,
    eof: bool,
    records: Records,
    ready: std::collections::VecDeque<Event>,
}

impl DtraceInput<File> {
    pub fn open(path: &Path) -> Result<Self, DtraceError> {
        let open_error = |cause| DtraceError::Open {
            path: path.to_owned(),
            cause,
        };
        let file = File::open(path).map_err(open_error)?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(open_error(std::io::Error::other("it is a directory")));
        }
        let mut input = Self::new(file);
        input.header().map_err(|found| DtraceError::NotACapture {
            path: path.to_owned(),
            found,
        })?;
        Ok(input)
    }
}

impl<R: Read> DtraceInput<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            eof: false,
            records: Records::new(),
            ready: Default::default(),
        }
    }

    pub fn skipped(&self) -> &Skipped {
        &self.records.skipped
    }

    /// Checks and consumes the version line; the error is what was there instead.
    pub fn header(&mut self) -> Result<(), String> {
        loop {
            if let Some(found) = self.records.header() {
                return found;
            }
            if self.eof {
                return Err(self.records.header_so_far());
            }
            self.fill();
        }
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 64 * 1024];
        match self.reader.read(&mut chunk) {
            Ok(0) | Err(_) => self.eof = true,
            Ok(n) => self.records.feed(&chunk[..n]),
        }
    }
}

impl<R: Read> Iterator for DtraceInput<R> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let mut out = Vec::new();
            if self.eof {
                self.records.finish(&mut out);
                if out.is_empty() {
                    return None;
                }
            } else {
                self.fill();
                self.records.drain(&mut out);
            }
            self.ready.extend(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &[u8]) -> (Vec<Event>, Skipped) {
        let mut input = DtraceInput::new(text);
        input.header().expect("a header");
        let events: Vec<Event> = input.by_ref().collect();
        (events, input.skipped().clone())
    }

    #[test]
    fn bad_records_are_counted_and_skipped_and_the_rest_is_read() {
        let text = b"hupwatch-dtrace 1\n\
            fork 1 43 42 4:bash\n\
            garbage here\n\
            exit 2 43 42 0 4:bash\n\
            exit 3 44 42 0 9:cut";
        let (events, skipped) = read(text);
        assert_eq!(events.len(), 2);
        assert_eq!(skipped.malformed, 2);
        assert_eq!(skipped.first.as_ref().unwrap().0, 3);
        let report = skipped.report(Path::new("x.txt")).unwrap();
        assert!(
            report.contains("skipped 2 malformed record(s); the first, at line 3"),
            "{report}"
        );
    }

    #[test]
    fn line_numbers_count_newlines_inside_names() {
        let text = b"hupwatch-dtrace 1\nfork 1 43 42 3:a\nb\nnonsense\n";
        let (events, skipped) = read(text);
        assert_eq!(events.len(), 1);
        assert_eq!(skipped.first.unwrap().0, 4);
    }

    #[test]
    fn a_file_that_is_not_a_capture_is_refused_with_what_it_holds() {
        let mut input = DtraceInput::new(&b"{\"event\":\"exec\"}\n"[..]);
        assert_eq!(input.header().unwrap_err(), "{\"event\":\"exec\"}");
        let mut input = DtraceInput::new(&b"hupwatch-dtrace 2\n"[..]);
        assert!(input.header().is_err());
        let mut input = DtraceInput::new(&b""[..]);
        assert!(input.header().is_err());
    }
}
