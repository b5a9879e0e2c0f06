//! Empty on purpose: the programs live in the `hupwatch-probes` binary (src/main.rs). This
//! library target exists so probe-user can name this crate as a build dependency, which makes
//! cargo rebuild hupwatch when the programs' dependencies change.
#![no_std]
