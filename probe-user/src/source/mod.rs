//! Where events come from: the kernel (eBPF), /proc (processes that already exist) and
//! recorded files (replay). Each produces the same [`crate::event::Event`] stream.
pub mod snapshot;
