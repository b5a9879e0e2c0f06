//! The command line's good path: help. Bad input of every kind (flags, sizes, durations,
//! regexes, addresses, files, privileges) is the table in bad_input.rs.
mod support;

use std::process::Command;

use support::HUPWATCH;

#[test]
fn help_works_and_exits_zero() {
    let out = Command::new(HUPWATCH)
        .args(["trace", "--help"])
        .output()
        .expect("hupwatch runs");
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--json",
        "--match",
        "--match-cmdline",
        "--pid",
        "--rss-interval",
        "--source",
    ] {
        assert!(text.contains(flag), "{flag} missing from help");
    }
}
