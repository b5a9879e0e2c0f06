//! The load-time configuration global. User space overwrites it with
//! `EbpfLoader::override_global` before loading; the verifier then sees the values as
//! constants of a frozen map.
use aya_ebpf::helpers::bpf_probe_read_kernel;
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

/// Reads a tracepoint field, `Err(0)` when its offset is unresolved. Where the running
/// kernel puts the field at `$usual` (its place in the formats this build was written
/// against, 6.x), this is one load from the context: the verifier sees the frozen config
/// as a constant and keeps only that branch. Elsewhere it falls back to
/// bpf_probe_read_kernel at the resolved offset, since the verifier refuses context loads
/// at an offset held in a register. The helper call cost about as much as the rest of a
/// trivial program (bench/RESULTS.md).
macro_rules! field {
    ($ctx:expr, $name:ident: $ty:ty = $usual:literal) => {{
        let at = $crate::config::config!($name);
        if at == $usual {
            // SAFETY: tracepoint formats align every field to its size, and the kernel
            // says this field is here.
            Ok::<$ty, u32>(unsafe {
                core::ptr::read(
                    (aya_ebpf::EbpfContext::as_ptr($ctx) as *const u8).add($usual) as *const $ty,
                )
            })
        } else {
            $crate::config::offset(at)
                .and_then(|at| unsafe { $ctx.read_at::<$ty>(at) }.map_err(|_| 0u32))
        }
    }};
}
pub(crate) use field;

/// A load from a BTF-typed kernel pointer (a tp_btf program's argument, or what
/// bpf_get_current_task_btf returns) at an offset from the frozen config. The verifier
/// sees the offset as a constant, checks it against the kernel's BTF and turns the load
/// into a fault-safe one, so no bpf_probe_read_kernel call is needed.
#[inline(always)]
pub fn btf_load<T>(base: *const u8, offset: u32) -> Result<T, u32> {
    if offset == UNKNOWN_OFFSET {
        return Err(0);
    }
    Ok(unsafe { core::ptr::read_volatile(base.add(offset as usize).cast::<T>()) })
}

/// The same load through bpf_probe_read_kernel, for an argument the verifier may not type:
/// kernels that know an argument can hold a small code instead of a pointer (signal_generate
/// and signal_deliver's siginfo on the 6.18 builds seen here) mark it a plain number and
/// refuse a direct load from it.
#[inline(always)]
pub fn probe_load<T>(base: *const u8, offset: u32) -> Result<T, u32> {
    if offset == UNKNOWN_OFFSET {
        return Err(0);
    }
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()) }.map_err(|_| 0u32)
}
