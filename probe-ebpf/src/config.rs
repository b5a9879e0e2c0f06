//! The load-time configuration global. User space overwrites it with `EbpfLoader::set_global`
//! before loading; the verifier then sees the values as constants of a frozen map.
use probe_common::{ProbeConfig, UNKNOWN_OFFSET};

#[unsafe(no_mangle)]
pub static CONFIG: ProbeConfig = ProbeConfig::unresolved();

/// Reads one field of the configuration. The volatile read keeps the compiler from folding
/// the compiled-in defaults into the code.
macro_rules! config {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let value = unsafe { core::ptr::read_volatile(&raw const $crate::config::CONFIG.$field) };
        value
    }};
}
pub(crate) use config;

/// An offset as usize, or `Err(0)` when user space could not resolve it (the program then
/// does nothing rather than read garbage).
#[inline(always)]
pub fn offset(value: u32) -> Result<usize, u32> {
    if value == UNKNOWN_OFFSET {
        Err(0)
    } else {
        Ok(value as usize)
    }
}
