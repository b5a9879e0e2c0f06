//! hupwatch's kernel side: tracepoint programs that filter to the tracked set, record what
//! the processes in it do, and keep their RSS in a map. One module per concern.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod config;
#[cfg(target_arch = "bpf")]
mod emit;
#[cfg(target_arch = "bpf")]
mod lifecycle;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod memory;
#[cfg(target_arch = "bpf")]
mod session;
#[cfg(target_arch = "bpf")]
mod signals;
#[cfg(target_arch = "bpf")]
mod task;

/// The host build of this crate (e.g. `cargo check --workspace`) has nothing to run: hupwatch
/// embeds the bpf build of this binary.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Programs that can panic do not pass the verifier, so this is never reached.
    loop {}
}
