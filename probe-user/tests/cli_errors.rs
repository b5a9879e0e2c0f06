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

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let out = Command::new(HUPWATCH)
        .arg("--version")
        .output()
        .expect("hupwatch runs");
    assert_eq!(out.status.code(), Some(0));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .expect("git runs");
    let head = String::from_utf8_lossy(&head.stdout);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "hupwatch {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            head.trim()
        )
    );
}

#[test]
fn completions_are_printed_for_each_shell_and_refused_for_an_unknown_one() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef hupwatch"),
        ("fish", "complete -c hupwatch"),
    ] {
        let out = Command::new(HUPWATCH)
            .args(["completions", shell])
            .output()
            .expect("hupwatch runs");
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("rss-growth"), "{shell} lacks run's flags");
    }
    let out = Command::new(HUPWATCH)
        .args(["completions", "tcsh"])
        .output()
        .expect("hupwatch runs");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("bash"), "{said}");
}
