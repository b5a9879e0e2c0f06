//! Any bytes through the `--replay` reader (`hupwatch run --replay`, `trace --replay`) and
//! on into the tracker, as `hupwatch run --replay` feeds it: no panic, no stall; a bad line
//! ends the replay with a one-line error holding nothing a terminal would act on. Every
//! event read is also printed the ways `trace` prints it: its JSON line reads back as the
//! same event, and its human line is one line with nothing a terminal would act on, whatever
//! the recording's strings hold; each alert is one JSON line.
#![no_main]

use hupwatch::{
    event::Event,
    output::{escaped, write_human, write_json},
    sink::alerts::write_alert,
    source::replay::Replay,
    tracker::{SETTLE_NS, Tracker, TrackerConfig},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tracker = Tracker::new(TrackerConfig {
        require_terminal: true,
        ..TrackerConfig::default()
    });
    let mut out = Vec::new();
    let mut last = 0u64;
    for read in Replay::new(data, "fuzz.jsonl") {
        let event = match read {
            Ok(event) => event,
            Err(err) => {
                let message = err.to_string();
                assert!(
                    message.chars().all(|c| escaped(c).is_none()),
                    "an error line with a newline or a terminal control: {message:?}"
                );
                break;
            }
        };
        one_line(&event, &mut out);
        let mut alerts = tracker.advance(event.time_ns);
        alerts.extend(tracker.apply(&event));
        for alert in &alerts {
            out.clear();
            write_alert(&mut out, alert).unwrap();
            assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        }
        last = last.max(event.time_ns);
    }
    tracker.advance(last.saturating_add(SETTLE_NS));
    let view = tracker.view(last);
    serde_json::to_vec(&view).unwrap();
});

/// `trace --json` and `trace` print the event as one line each, the JSON reads back the
/// same, and the human line holds nothing a terminal would act on.
fn one_line(event: &Event, out: &mut Vec<u8>) {
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
