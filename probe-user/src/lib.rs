//! hupwatch: finds the processes that outlive their terminal. The kernel side (eBPF on
//! Linux) records what matched processes do; this library decodes it into one event stream
//! and presents it. See ARCHITECTURE.md for the map.
pub mod cli;
pub mod decode;
pub mod error;
pub mod event;
pub mod host;
pub mod matching;
pub mod notify;
pub mod origin;
pub mod output;
pub mod privileges;
pub mod reap;
pub mod selftest;
pub mod sessions;
pub mod signals;
pub mod sink;
pub mod source;
pub mod stats;
pub mod top;
pub mod tracker;
pub mod units;
pub mod verdict;
pub mod watch;

pub mod daemon;
#[cfg(target_os = "linux")]
pub mod ebpf;
pub mod trace;
