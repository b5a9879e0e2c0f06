//! Which processes a re-sync covers: the source knows (it holds the tracked set), the
//! tracker applies it. Shared by both, so it stands below both.
use std::collections::HashSet;

/// Which processes in /proc the tracker should know, besides those it already does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    Everything,
    /// The kernel's tracked set, read after the loss.
    Pids(HashSet<u32>),
    /// Children of tracked processes, and theirs (when the tracked set lives where it
    /// cannot be read, in a DTrace script).
    Descendants,
}
