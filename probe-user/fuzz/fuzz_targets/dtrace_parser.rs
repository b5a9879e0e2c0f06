//! Any bytes through the DTrace reader and on into the tracker: no panic, no stall, and
//! every record either parsed or counted as malformed. Every event read is also printed the
//! ways `trace` prints it: its JSON line reads back as the same event, and its human line
//! is one line with nothing a terminal would act on, whatever the names hold.
#![no_main]

use hupwatch::{
    event::Event,
    output::{escaped, write_human, write_json},
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
    let mut out = Vec::new();
    for event in input.by_ref() {
        printed_safely(&event, &mut out);
        tracker.advance(event.time_ns);
        tracker.apply(&event);
    }
});

fn printed_safely(event: &Event, out: &mut Vec<u8>) {
    out.clear();
    write_json(out, event).unwrap();
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
    let back: Event = serde_json::from_slice(out).unwrap();
    assert_eq!(&back, event, "the JSON line does not read back the same");
    out.clear();
    write_human(out, event).unwrap();
    let line = std::str::from_utf8(out).unwrap();
    let line = line.strip_suffix('\n').expect("ends its line");
    assert!(line.chars().all(|c| escaped(c).is_none()), "{line:?}");
}
