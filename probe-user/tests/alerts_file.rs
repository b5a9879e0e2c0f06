//! `--alerts-file` as a service opens it, as root: alert lines carry command lines (tokens
//! sit in argv), so the file is made readable by its owner only, and a symbolic link
//! another user planted at the path is not followed, while one root made (/dev/stdout) is.
#[path = "support/processes.rs"]
mod processes;
mod support;

use std::{
    os::unix::fs::{MetadataExt, lchown, symlink},
    process::{Command, Output},
};

use processes::NOBODY;
use support::{HUPWATCH, require_root, scratch_dir};

/// `hupwatch run --replay` of an empty recording, its alerts to `alerts`.
fn replay_into(dir: &std::path::Path, alerts: &std::path::Path) -> Output {
    let recording = dir.join("empty.jsonl");
    std::fs::write(&recording, "").unwrap();
    Command::new(HUPWATCH)
        .args(["run", "--replay"])
        .arg(&recording)
        .arg("--alerts-file")
        .arg(alerts)
        .output()
        .unwrap()
}

#[test]
fn the_alerts_file_is_the_owners_alone_and_a_planted_link_is_not_followed() {
    require_root();
    let dir = scratch_dir("alerts-file");
    let fresh = dir.join("alerts.jsonl");
    let out = replay_into(&dir, &fresh);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&fresh).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");

    // Another user's link to a file of root's.
    let target = dir.join("roots-file");
    std::fs::write(&target, "root's\n").unwrap();
    let planted = dir.join("planted.jsonl");
    symlink(&target, &planted).unwrap();
    lchown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = replay_into(&dir, &planted);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("a symbolic link owned by uid 65534"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root's\n");

    // Root's own link (as /dev/stdout is) is followed.
    let own = dir.join("own.jsonl");
    symlink(dir.join("through-link.jsonl"), &own).unwrap();
    let out = replay_into(&dir, &own);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(dir.join("through-link.jsonl"))
        .unwrap()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
}
