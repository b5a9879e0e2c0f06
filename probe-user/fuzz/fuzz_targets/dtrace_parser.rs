//! Any bytes through the DTrace reader and on into the tracker: no panic, no stall, and
//! every record either parsed or counted as malformed.
#![no_main]

use hupwatch::{
    source::dtrace::DtraceInput,
    tracker::{Tracker, TrackerConfig},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = DtraceInput::new(data);
    if input.header().is_err() {
        return;
    }
    let mut tracker = Tracker::new(TrackerConfig::default());
    for event in input.by_ref() {
        tracker.advance(event.time_ns);
        tracker.apply(&event);
    }
});
