//! What differs between the sources (eBPF, DTrace, polling): how events are read, what
//! can be lost, where memory is read. Everything else (seeding, the memory sampler, loss
//! reporting, re-sync, parent checks, the ready line) is [`super::Source`]'s, once.
use std::{collections::HashMap, collections::HashSet, future::Future, pin::Pin, time::Duration};

use super::SourceKind;
use crate::{event::Event, host::Usage, watch::Watch};

/// A future borrowed from the tracer; boxed so that the tracers can sit behind one trait
/// object (one allocation per batch read).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Where the sampler reads memory on a tick.
pub enum Memory {
    /// The host layer, per process.
    Host,
    /// What the tracer already holds (the eBPF RSS map, the last poll); a process missing
    /// from it is read from the host layer.
    Known(HashMap<u32, Usage>),
}

pub trait Tracer {
    fn kind(&self) -> SourceKind;

    /// What it is doing, for the ready line: "12 programs attached".
    fn describe(&self) -> String;

    /// What the ready line adds after what is traced.
    fn note(&self) -> String {
        String::new()
    }

    /// Verdicts and figures it cannot give.
    fn unavailable(&self) -> &'static [&'static str] {
        &[]
    }

    /// The processes it watches that existed at start; `None` when it watches every one.
    fn seeded(&self) -> Option<&HashSet<u32>>;

    /// The look at the process table it took to start, once, for the `existing` events;
    /// `None` when it took none (they are read then).
    fn first_look(&mut self) -> Option<super::snapshot::Look> {
        None
    }

    /// Which processes a re-sync brings in.
    fn watch(&self) -> Watch;

    /// It reports reparenting itself, so its processes' parents need no checking.
    fn sees_reparenting(&self) -> bool {
        false
    }

    /// Every eBPF program and whether it is attached.
    fn programs(&self) -> Vec<(&'static str, bool)> {
        Vec::new()
    }

    /// Time in and runs of each eBPF program.
    fn program_stats(&self) -> Vec<(&'static str, Duration, u64)> {
        Vec::new()
    }

    /// Events lost so far, by kind (absolute counts).
    fn losses(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Why events get lost, for the loss line: "ring buffer full".
    fn loss_cause(&self) -> &'static str {
        "lost"
    }

    /// Other things dropped so far, each with the sentence that says what.
    fn dropped(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Waits for events and appends them to `out`. Cancel-safe.
    fn next<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, anyhow::Result<()>>;

    /// Appends what is queued without waiting for more; true when more may be queued.
    fn drain<'a>(&'a mut self, out: &'a mut Vec<Event>) -> Pending<'a, bool>;

    /// `drain` calls that read all it can hold: the bound of a drain before leaving.
    fn queue_batches(&self) -> usize {
        1
    }

    /// Zombies it saw whose exit it never reported (they ended between two looks), as
    /// (pid, ppid): the zombie count needs them too.
    fn unseen_zombies(&self) -> Vec<(u32, u32)> {
        Vec::new()
    }

    /// Where memory is read on this tick.
    fn memory(&mut self) -> Memory {
        Memory::Host
    }
}
