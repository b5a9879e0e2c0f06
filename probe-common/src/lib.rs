//! The kernel/user boundary of hupwatch: `#[repr(C)]` records the eBPF programs write into
//! the ring buffer and maps, and the load-time configuration user space hands them.
//!
//! Every struct is laid out by hand with explicit padding fields, so the layout is the same
//! for the bpf target and the host and no uninitialised padding bytes cross the boundary.
#![no_std]

mod config;
mod records;

pub use config::{ProbeConfig, UNKNOWN_OFFSET};
pub use records::*;

#[cfg(all(feature = "user", target_os = "linux"))]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, made of integers and byte arrays, with no
    // implicit padding (checked by the size assertions in records.rs and config.rs).
    unsafe impl aya::Pod for ProbeConfig {}
    unsafe impl aya::Pod for RssValue {}
    unsafe impl aya::Pod for TrackedValue {}
}
