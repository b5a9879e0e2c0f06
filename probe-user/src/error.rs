//! Errors a user can fix: bad flags, missing privileges, a broken environment. They print
//! as one line with the fix and exit with status 2.
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

/// Exit status and one-line message for an error that ends hupwatch.
pub fn report(err: &anyhow::Error) -> (u8, String) {
    let user_fixable = err.chain().any(|cause| {
        cause.is::<UserError>()
            || cause.is::<crate::matching::MatchError>()
            || cause.is::<crate::source::replay::ReplayError>()
            || cause.is::<crate::source::dtrace::DtraceError>()
            || cause.is::<crate::sink::http::HttpError>()
            || cause.is::<crate::sink::http::WebConfigError>()
            || is_linux_user_error(cause)
    });
    // `{:#}` joins the causes on one line; a cause's own newlines are folded too.
    let line = format!("{err:#}").replace('\n', " ");
    (if user_fixable { 2 } else { 1 }, line)
}

#[cfg(target_os = "linux")]
fn is_linux_user_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<crate::ebpf::tracefs::TracefsError>()
}

#[cfg(not(target_os = "linux"))]
fn is_linux_user_error(_cause: &(dyn std::error::Error + 'static)) -> bool {
    false
}
