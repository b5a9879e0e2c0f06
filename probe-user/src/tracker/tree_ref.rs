//! Which session tree a process belongs to, as a process and the API carry it: the
//! root's identity (pid and start time name one life of a pid) and name. A leaf, so that
//! a process can hold it without knowing how trees are made (trees.rs).
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRef {
    pub root_pid: u32,
    pub root_started_ns: u64,
    /// The root's name when this member joined (the root's own entry says it now).
    pub root_comm: String,
}

impl TreeRef {
    /// The tree's name in the API and metrics: `PID-START`, one life of the root's pid.
    pub fn id(&self) -> String {
        format!("{}-{}", self.root_pid, self.root_started_ns)
    }
}
