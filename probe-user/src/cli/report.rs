//! Exit status for an error that ends hupwatch: 2 when the user can fix it (the one line
//! names the fix), 1 otherwise. Decided here, at the top, because only the command line
//! knows every layer's error types.
use crate::error::{UserError, one_line};

/// Exit status and one-line message for an error that ends hupwatch.
pub fn report(err: &anyhow::Error) -> (u8, String) {
    let user_fixable = err.chain().any(|cause| {
        cause.is::<UserError>()
            || cause.is::<crate::matching::MatchError>()
            || cause.is::<crate::source::replay::ReplayError>()
            || cause.is::<crate::source::dtrace::DtraceError>()
            || cause.is::<crate::sink::http::HttpError>()
            || cause.is::<crate::sink::http::WebConfigError>()
            || cause.is::<crate::sessions::remote::FetchError>()
            || is_linux_user_error(cause)
    });
    (if user_fixable { 2 } else { 1 }, one_line(err))
}

#[cfg(target_os = "linux")]
fn is_linux_user_error(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause.is::<crate::ebpf::tracefs::TracefsError>()
}

#[cfg(not(target_os = "linux"))]
fn is_linux_user_error(_cause: &(dyn std::error::Error + 'static)) -> bool {
    false
}
