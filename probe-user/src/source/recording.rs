//! Recorded input, whichever kind: a `hupwatch trace --json` file (`--replay`) or captured
//! DTrace output (`--dtrace-input`), read as one event stream for `run` and `trace`.
use std::{
    fs::File,
    path::{Path, PathBuf},
};

use super::{dtrace::DtraceInput, replay::Replay};
use crate::event::Event;

#[derive(Clone, Debug)]
pub enum Recording {
    /// `--replay FILE`
    Trace(PathBuf),
    /// `--dtrace-input FILE`
    Dtrace(PathBuf),
}

impl Recording {
    /// `--replay` or `--dtrace-input`, whichever was given (clap keeps them apart).
    pub fn from_flags(replay: Option<PathBuf>, dtrace_input: Option<PathBuf>) -> Option<Self> {
        replay
            .map(Self::Trace)
            .or_else(|| dtrace_input.map(Self::Dtrace))
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Trace(path) | Self::Dtrace(path) => path,
        }
    }
}

pub enum RecordedEvents {
    Trace(Replay),
    Dtrace(Box<DtraceInput<File>>),
}

impl RecordedEvents {
    pub fn open(recording: &Recording) -> anyhow::Result<Self> {
        Ok(match recording {
            Recording::Trace(path) => Self::Trace(Replay::open(path)?),
            Recording::Dtrace(path) => Self::Dtrace(Box::new(DtraceInput::open(path)?)),
        })
    }

    /// A warning line about records that were skipped, once the input is read.
    pub fn skipped_report(&self, recording: &Recording) -> Option<String> {
        match self {
            Self::Trace(_) => None,
            Self::Dtrace(input) => input.skipped().report(recording.path()),
        }
    }
}

impl Iterator for RecordedEvents {
    type Item = anyhow::Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Trace(replay) => replay.next().map(|r| r.map_err(Into::into)),
            Self::Dtrace(input) => input.next().map(Ok),
        }
    }
}
