//! How a self-test ends when it does not pass: the exit status follows (cli/report.rs
//! gives both 1, as neither is the user's input to fix).
#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("selftest: {} expected verdict(s) missed: {}", .0.len(), .0.join(", "))]
    Missed(Vec<String>),
    #[error("selftest interrupted by {0}; its test processes were ended")]
    Interrupted(&'static str),
}
