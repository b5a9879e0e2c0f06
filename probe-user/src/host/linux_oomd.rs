//! systemd-oomd's configuration and the units it manages, read under a root directory
//! (`/` on a live machine, a temporary tree in tests). The parsing is pure.
//!
//! Configuration, as oomd.conf(5) orders it: `/etc/systemd/oomd.conf`, then drop-ins
//! `oomd.conf.d/*.conf` from /usr/lib, /usr/local/lib, /run and /etc (under `systemd/`),
//! sorted by file name whichever directory holds them, a name in /etc hiding the same name
//! in /run and /usr; the last setting read wins. Units: a unit file and its `NAME.d/*.conf`
//! drop-ins likewise, from the system and user unit directories. Which of those units are
//! loaded is not asked (that is D-Bus): a unit configured to be managed is reported.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use super::oom_killer::{ManagedUnit, SystemdOomd};

/// systemd's compiled-in defaults (oomd.conf(5), and the commented lines of the oomd.conf
/// Debian ships).
pub const DEFAULT_SWAP_USED_LIMIT: f64 = 90.0;
pub const DEFAULT_PRESSURE_LIMIT: f64 = 60.0;
pub const DEFAULT_PRESSURE_DURATION: f64 = 30.0;
/// Configuration directories, lowest precedence first (relative to the root).
const CONF_DIRS: &[&str] = &[
    "usr/lib/systemd/oomd.conf.d",
    "usr/local/lib/systemd/oomd.conf.d",
    "run/systemd/oomd.conf.d",
    "etc/systemd/oomd.conf.d",
];
/// Unit directories of the system manager and of users' managers, lowest precedence
/// first; /lib is /usr/lib on a merged-/usr system and read as well for one that is not.
const SYSTEM_UNIT_DIRS: &[&str] = &[
    "lib/systemd/system",
    "usr/lib/systemd/system",
    "run/systemd/system",
    "etc/systemd/system",
];
const USER_UNIT_DIRS: &[&str] = &["usr/lib/systemd/user", "etc/systemd/user"];
/// Files read at most in one look at the unit directories (Debian 12 has about 300 unit
/// files): a tree that is far larger is read in part, not for seconds.
const MAX_UNIT_FILES: usize = 4096;
/// A unit file or drop-in longer than this is not one worth reading.
const MAX_FILE_BYTES: u64 = 64 << 10;

/// The configuration and managed units under `root`.
pub fn read(root: &Path) -> SystemdOomd {
    let mut texts = Vec::new();
    if let Some(text) = read_small(&root.join("etc/systemd/oomd.conf")) {
        texts.push(text);
    }
    texts.extend(
        drop_ins(root, CONF_DIRS)
            .into_values()
            .filter_map(|p| read_small(&p)),
    );
    let mut oomd = parse_config(texts.iter().map(String::as_str));
    let (swap, pressure) = managed_units(root);
    oomd.swap_units = swap;
    oomd.pressure_units = pressure;
    oomd
}

/// The `[OOM]` settings of the configuration texts in the order they are read.
pub fn parse_config<'a>(texts: impl IntoIterator<Item = &'a str>) -> SystemdOomd {
    let mut oomd = SystemdOomd {
        swap_used_limit_percent: DEFAULT_SWAP_USED_LIMIT,
        memory_pressure_limit_percent: DEFAULT_PRESSURE_LIMIT,
        memory_pressure_duration_seconds: DEFAULT_PRESSURE_DURATION,
        swap_units: Vec::new(),
        pressure_units: Vec::new(),
    };
    for text in texts {
        for (key, value) in settings(text, "OOM") {
            match key {
                "SwapUsedLimit" => {
                    oomd.swap_used_limit_percent =
                        percent(value).unwrap_or(DEFAULT_SWAP_USED_LIMIT);
                }
                "DefaultMemoryPressureLimit" => {
                    oomd.memory_pressure_limit_percent =
                        percent(value).unwrap_or(DEFAULT_PRESSURE_LIMIT);
                }
                "DefaultMemoryPressureDurationSec" => {
                    oomd.memory_pressure_duration_seconds =
                        seconds(value).unwrap_or(DEFAULT_PRESSURE_DURATION);
                }
                _ => {}
            }
        }
    }
    oomd
}

/// What one unit's files say of oomd, read in order (unit file, then drop-ins).
#[derive(Debug, Default, PartialEq)]
pub struct UnitOom {
    pub swap_kill: bool,
    pub pressure_kill: bool,
    pub pressure_limit_percent: Option<f64>,
}

/// ManagedOOMSwap=, ManagedOOMMemoryPressure= and ManagedOOMMemoryPressureLimit= from
/// the texts of one unit's files in order; the section is the unit's own (`[Service]`,
/// `[Slice]`, `[Scope]`), so any section is read. An empty value resets to the default.
pub fn parse_unit<'a>(texts: impl IntoIterator<Item = &'a str>) -> UnitOom {
    let mut unit = UnitOom::default();
    for text in texts {
        for (key, value) in settings(text, "") {
            match key {
                "ManagedOOMSwap" => unit.swap_kill = value == "kill",
                "ManagedOOMMemoryPressure" => unit.pressure_kill = value == "kill",
                "ManagedOOMMemoryPressureLimit" => unit.pressure_limit_percent = percent(value),
                _ => {}
            }
        }
    }
    unit
}

/// `Key=value` lines of `section` (any section when empty), comments and blank lines
/// skipped, as systemd.syntax(7) writes them.
fn settings<'a>(text: &'a str, section: &str) -> Vec<(&'a str, &'a str)> {
    let mut current = "";
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name;
            continue;
        }
        if !section.is_empty() && current != section {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.push((key.trim(), value.trim()));
        }
    }
    out
}

/// `90%`, `90.5%`, `905‰`, `9050‱` -> 90.5; None for anything else (systemd refuses a
/// bare number here).
pub fn percent(value: &str) -> Option<f64> {
    let (number, per) = if let Some(n) = value.strip_suffix('%') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('‰') {
        (n, 10.0)
    } else {
        (value.strip_suffix('‱')?, 100.0)
    };
    let n: f64 = number.trim().parse().ok()?;
    (n.is_finite() && (0.0..=100.0 * per).contains(&n)).then_some(n / per)
}

/// A systemd time span (systemd.time(7)): `30s`, `1min 30s`, `2m`, `500ms`, or a bare
/// number of seconds; None when any part does not parse.
pub fn seconds(value: &str) -> Option<f64> {
    const UNITS: &[(&[&str], f64)] = &[
        (&["us", "usec", "µs"], 1e-6),
        (&["ms", "msec"], 1e-3),
        (&["", "s", "sec", "second", "seconds"], 1.0),
        (&["m", "min", "minute", "minutes"], 60.0),
        (&["h", "hr", "hour", "hours"], 3600.0),
        (&["d", "day", "days"], 86400.0),
    ];
    let mut total = 0.0;
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = UNITS.iter().find(|(names, _)| names.contains(&unit))?.1;
        total += number * factor;
        rest = rest[unit_len..].trim_start();
    }
    Some(total)
}

/// Drop-ins `*.conf` of `dirs` (lowest precedence first) by file name, each name the path
/// of the directory with the highest precedence that holds it; sorted by name.
fn drop_ins(root: &Path, dirs: &[&str]) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for dir in dirs {
        for (name, path) in listing(&root.join(dir)) {
            if name.ends_with(".conf") {
                out.insert(name, path);
            }
        }
    }
    out
}

/// The units set to be killed by swap and by pressure, by name, sorted; a user manager's
/// unit is named with ` (user)` after it.
fn managed_units(root: &Path) -> (Vec<String>, Vec<ManagedUnit>) {
    let mut budget = MAX_UNIT_FILES;
    let (mut swap, mut pressure) = managed_in(root, SYSTEM_UNIT_DIRS, "", &mut budget);
    let (user_swap, user_pressure) = managed_in(root, USER_UNIT_DIRS, " (user)", &mut budget);
    swap.extend(user_swap);
    pressure.extend(user_pressure);
    (swap, pressure)
}

/// [`managed_units`] of one manager's directories, reading at most `budget` files.
fn managed_in(
    root: &Path,
    dirs: &[&str],
    suffix: &str,
    budget: &mut usize,
) -> (Vec<String>, Vec<ManagedUnit>) {
    // unit name -> (its file, its drop-ins by name), the highest precedence winning.
    let mut units: BTreeMap<String, (Option<PathBuf>, BTreeMap<String, PathBuf>)> = BTreeMap::new();
    for dir in dirs {
        for (name, path) in listing(&root.join(dir)) {
            if let Some(unit) = name.strip_suffix(".d") {
                let drops = listing(&path)
                    .into_iter()
                    .filter(|(n, _)| n.ends_with(".conf"));
                units.entry(unit.to_string()).or_default().1.extend(drops);
            } else if name.contains('.') {
                units.entry(name).or_default().0 = Some(path);
            }
        }
    }
    let (mut swap, mut pressure) = (Vec::new(), Vec::new());
    for (name, (file, drops)) in units {
        let paths: Vec<PathBuf> = file.into_iter().chain(drops.into_values()).collect();
        if *budget < paths.len() {
            break;
        }
        *budget -= paths.len();
        let texts: Vec<String> = paths.iter().filter_map(|p| read_small(p)).collect();
        if !texts.iter().any(|t| t.contains("ManagedOOM")) {
            continue;
        }
        let unit = parse_unit(texts.iter().map(String::as_str));
        if unit.swap_kill {
            swap.push(format!("{name}{suffix}"));
        }
        if unit.pressure_kill {
            pressure.push(ManagedUnit {
                unit: format!("{name}{suffix}"),
                limit_percent: unit.pressure_limit_percent,
            });
        }
    }
    (swap, pressure)
}

/// A directory's entries by name; empty when it cannot be read.
fn listing(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

fn read_small(path: &Path) -> Option<String> {
    let meta = fs::metadata(path).ok()?;
    (meta.is_file() && meta.len() <= MAX_FILE_BYTES)
        .then(|| fs::read_to_string(path).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 12's /etc/systemd/oomd.conf (package systemd-oomd 252), comments shortened:
    /// every line commented out, the defaults shown.
    const DEBIAN_OOMD_CONF: &str = "#  This file is part of systemd.
#
# Entries in this file show the compile time defaults. Local configuration
# should be created by either modifying this file, or by creating \"drop-ins\" in
# the oomd.conf.d/ subdirectory. The latter is generally recommended.
#
# See oomd.conf(5) for details

[OOM]
#SwapUsedLimit=90%
#DefaultMemoryPressureLimit=60%
#DefaultMemoryPressureDurationSec=30s
";
    /// Debian 12's /usr/lib/systemd/oomd.conf.d/10-oomd-defaults.conf.
    const DEBIAN_DEFAULTS: &str = "[OOM]\nDefaultMemoryPressureDurationSec=20s\n";
    /// Debian 12's /usr/lib/systemd/system/user@.service.d/10-oomd-user-service-defaults.conf.
    const DEBIAN_USER_SERVICE: &str =
        "[Service]\nManagedOOMMemoryPressure=kill\nManagedOOMMemoryPressureLimit=50%\n";

    #[test]
    fn debian_configuration() {
        let oomd = parse_config([DEBIAN_OOMD_CONF]);
        assert_eq!(
            (
                oomd.swap_used_limit_percent,
                oomd.memory_pressure_limit_percent,
                oomd.memory_pressure_duration_seconds
            ),
            (90.0, 60.0, 30.0)
        );
        let oomd = parse_config([DEBIAN_OOMD_CONF, DEBIAN_DEFAULTS]);
        assert_eq!(oomd.memory_pressure_duration_seconds, 20.0);
        let local = "[OOM]\nSwapUsedLimit=80%\nDefaultMemoryPressureLimit=40%\n";
        let oomd = parse_config([DEBIAN_OOMD_CONF, DEBIAN_DEFAULTS, local]);
        assert_eq!(
            (
                oomd.swap_used_limit_percent,
                oomd.memory_pressure_limit_percent
            ),
            (80.0, 40.0)
        );
        // Another section's keys are not oomd's; a bad value is the default again.
        let odd = "[Journal]\nSwapUsedLimit=10%\n[OOM]\nDefaultMemoryPressureLimit=lots\n";
        let oomd = parse_config([local, odd]);
        assert_eq!(
            (
                oomd.swap_used_limit_percent,
                oomd.memory_pressure_limit_percent
            ),
            (80.0, 60.0)
        );
    }

    #[test]
    fn debian_units() {
        let root_slice = "[Slice]\nManagedOOMSwap=kill\n";
        assert_eq!(
            parse_unit([root_slice]),
            UnitOom {
                swap_kill: true,
                ..UnitOom::default()
            }
        );
        let user = parse_unit([
            "[Unit]\nDescription=User Manager for UID %i\n",
            DEBIAN_USER_SERVICE,
        ]);
        assert!(user.pressure_kill && !user.swap_kill);
        assert_eq!(user.pressure_limit_percent, Some(50.0));
        // A later drop-in turns it off again.
        let off = parse_unit([
            DEBIAN_USER_SERVICE,
            "[Service]\nManagedOOMMemoryPressure=auto\n",
        ]);
        assert!(!off.pressure_kill);
    }

    #[test]
    fn percents_and_time_spans() {
        assert_eq!(percent("90%"), Some(90.0));
        assert_eq!(percent("90.5%"), Some(90.5));
        assert_eq!(percent("905‰"), Some(90.5));
        assert_eq!(percent("9050‱"), Some(90.5));
        assert_eq!(percent("90"), None);
        assert_eq!(percent("120%"), None);
        assert_eq!(seconds("30s"), Some(30.0));
        assert_eq!(seconds("20"), Some(20.0));
        assert_eq!(seconds("1min 30s"), Some(90.0));
        assert_eq!(seconds("2m"), Some(120.0));
        assert_eq!(seconds("500ms"), Some(0.5));
        assert_eq!(seconds("soon"), None);
        assert_eq!(seconds(""), None);
    }
}
