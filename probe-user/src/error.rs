//! Errors a user can fix: bad flags, missing privileges, a broken environment. They print
//! as one line with the fix and exit with status 2 (`cli::report` decides which errors
//! count as fixable; this leaf only says them).
use std::fmt;

#[derive(Debug)]
pub struct UserError(String);

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UserError {}

/// The error on one line: `{:#}` joins the causes, and a cause's own newlines are folded.
/// The exit status that goes with it is decided at the top, in `cli::report`.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}
