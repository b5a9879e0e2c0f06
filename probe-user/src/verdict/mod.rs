//! Verdicts: what the tracker concluded about a process, with the evidence behind it.
pub mod growth;
