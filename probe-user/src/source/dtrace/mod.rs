//! The macOS source: hupwatch's DTrace script (dtrace/hupwatch.d), its output format
//! (dtrace/FORMAT.md) and the reader that turns that output into [`Event`]s. The reader
//! works on any OS, so captured output can be replayed and tested anywhere.
pub mod convert;
pub mod format;
pub mod input;
pub mod live;
pub mod script;
pub mod stderr;
pub mod watch;

pub use input::{DtraceError, DtraceInput, Records};
