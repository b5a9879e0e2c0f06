//! The Homebrew formula: deploy/homebrew/hupwatch.rb rendered with the macOS tarball's URL
//! and checksum into target/dist/hupwatch.rb, then checked as far as Linux can: Ruby's
//! syntax check, and every path its `install` names must be in the tarball.
use std::{fs, path::Path, process::Command};

use anyhow::{Context, Result, bail};

/// The template, relative to the workspace root.
pub const TEMPLATE: &str = "deploy/homebrew/hupwatch.rb";
/// Where the tarball will be downloaded from, without the file name: a release page.
const RELEASE_URL_VAR: &str = "HUPWATCH_RELEASE_URL";
/// Without HUPWATCH_RELEASE_URL: a folder every Mac has and every user may write to, where
/// target/dist/ is copied to install from the files at hand.
pub const DEFAULT_RELEASE_URL: &str = "file:///Users/Shared/hupwatch";

/// What the template's placeholders become.
pub struct Release<'a> {
    pub version: &'a str,
    pub tarball: &'a str,
    pub sha256: &'a str,
}

/// The base URL the rendered formula downloads from: HUPWATCH_RELEASE_URL or the default.
pub fn release_url() -> String {
    std::env::var(RELEASE_URL_VAR)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_RELEASE_URL.to_owned())
}

/// The template with every placeholder filled; fails if one is left.
pub fn render(template: &str, base_url: &str, release: &Release) -> Result<String> {
    let base_url = base_url.trim_end_matches('/');
    let text = template
        .replace("@HOMEPAGE@", base_url)
        .replace("@URL@", &format!("{base_url}/{}", release.tarball))
        .replace("@VERSION@", release.version)
        .replace("@SHA256@", release.sha256);
    if let Some(at) = text.find("\"@") {
        let rest = &text[at..];
        let end = rest.find('\n').unwrap_or(rest.len());
        bail!(
            "{TEMPLATE} has a placeholder dist does not fill: {}",
            &rest[..end]
        );
    }
    Ok(text)
}

/// `ruby -c`: the formula parses as Ruby (Homebrew's own DSL is not checked here).
pub fn check_syntax(formula: &Path) -> Result<()> {
    let out = Command::new("ruby")
        .arg("-c")
        .arg(formula)
        .output()
        .context("could not run ruby (Debian's ruby; `cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!(
            "ruby -c {} failed: {}",
            formula.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Fails unless every path the formula's `install` method installs is in the tarball,
/// whose entries are given relative to its top folder (where Homebrew runs `install`).
pub fn check_paths(formula: &str, entries: &[String]) -> Result<()> {
    let sources = installed_sources(formula)?;
    let missing: Vec<&str> = sources
        .iter()
        .filter(|source| !entries.iter().any(|e| matches(source, e)))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "the formula installs what the macOS tarball lacks: {}",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The tarball's entries relative to its top folder (`tar -tzf`).
pub fn tarball_entries(tarball: &Path) -> Result<Vec<String>> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(tarball)
        .output()
        .context("could not run tar")?;
    if !out.status.success() {
        bail!("tar -tzf {} failed", tarball.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('/').map(|(_, rest)| rest))
        .map(|rest| rest.trim_end_matches('/').to_owned())
        .filter(|rest| !rest.is_empty())
        .collect())
}

/// The source of each `X.install` line in `def install`: the string or the `Dir[...]`
/// glob it starts with. A form it cannot read is an error, so nothing goes unchecked.
fn installed_sources(formula: &str) -> Result<Vec<String>> {
    let body = formula
        .split_once("def install")
        .map(|(_, rest)| rest)
        .context("the formula has no `def install`")?;
    let mut sources = Vec::new();
    for line in body.lines() {
        let line = line.trim();
        if line == "end" {
            break;
        }
        let Some((_, args)) = line.split_once(".install ") else {
            continue;
        };
        let source = args
            .strip_prefix("Dir[\"")
            .or_else(|| args.strip_prefix('"'))
            .and_then(|rest| rest.split_once('"'))
            .map(|(source, _)| source);
        match source {
            Some(source) if !source.contains("#{") => sources.push(source.to_owned()),
            _ => bail!(
                "cannot read the formula's install line `{line}`: write it as \
                 X.install \"path\", X.install \"path\" => \"name\" or X.install Dir[\"glob\"]"
            ),
        }
    }
    if sources.is_empty() {
        bail!("the formula's `def install` installs nothing");
    }
    Ok(sources)
}

/// `pattern` (`*` matches within one path segment) names `entry`.
fn matches(pattern: &str, entry: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let entry: Vec<&str> = entry.split('/').collect();
    pattern.len() == entry.len() && pattern.iter().zip(&entry).all(|(p, e)| segment(p, e))
}

fn segment(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            // `*` takes as much as it must: try every split of what follows the head.
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| segment(tail, &rest[i..]))
        }
    }
}

/// The rendered formula, written beside the tarball.
pub fn write(root: &Path, out: &Path, release: &Release) -> Result<()> {
    let template = fs::read_to_string(root.join(TEMPLATE))
        .with_context(|| format!("could not read {TEMPLATE}"))?;
    fs::write(out, render(&template, &release_url(), release)?)
        .with_context(|| format!("could not write {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE_TEXT: &str = include_str!("../../../deploy/homebrew/hupwatch.rb");

    /// The entries of dist's macOS tarball as `tar -tzf` lists them after the top folder.
    fn tarball() -> Vec<String> {
        [
            "LICENSE-APACHE",
            "LICENSE-MIT",
            "README.md",
            "completions",
            "completions/_hupwatch",
            "completions/hupwatch.bash",
            "completions/hupwatch.fish",
            "dashboards",
            "dashboards/alerts.yml",
            "docs",
            "docs/macos.md",
            "hupwatch",
            "launchd",
            "launchd/com.hupwatch.plist",
            "launchd/com.hupwatch.reap.plist",
            "man",
            "man/man1",
            "man/man1/hupwatch-run.1",
            "man/man1/hupwatch.1",
        ]
        .map(String::from)
        .to_vec()
    }

    fn release() -> Release<'static> {
        Release {
            version: "0.1.0",
            tarball: "hupwatch-0.1.0-universal-apple-darwin.tar.gz",
            sha256: "ab12",
        }
    }

    #[test]
    fn renders_url_version_and_checksum() {
        let text = render(TEMPLATE_TEXT, "https://example.org/v0.1.0/", &release()).unwrap();
        assert!(text.contains(
            "  url \"https://example.org/v0.1.0/hupwatch-0.1.0-universal-apple-darwin.tar.gz\"\n"
        ));
        assert!(text.contains("  version \"0.1.0\"\n"));
        assert!(text.contains("  sha256 \"ab12\"\n"));
        assert!(!text.contains('@'), "a placeholder is left");
    }

    #[test]
    fn a_placeholder_left_is_an_error() {
        let err = render("  foo \"@NEW@\"\n", "file:///x", &release()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{TEMPLATE} has a placeholder dist does not fill: \"@NEW@\"")
        );
    }

    #[test]
    fn reads_what_the_template_installs() {
        assert_eq!(
            installed_sources(TEMPLATE_TEXT).unwrap(),
            [
                "hupwatch",
                "man/man1/*.1",
                "completions/hupwatch.bash",
                "completions/_hupwatch",
                "completions/hupwatch.fish",
                "launchd/*.plist",
                "dashboards",
                "docs",
                "README.md",
            ]
        );
        check_paths(TEMPLATE_TEXT, &tarball()).unwrap();
    }

    #[test]
    fn a_path_missing_from_the_tarball_fails() {
        let mut entries = tarball();
        entries.retain(|e| !e.starts_with("man/man1/") && e != "completions/_hupwatch");
        let err = check_paths(TEMPLATE_TEXT, &entries).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the formula installs what the macOS tarball lacks: man/man1/*.1, completions/_hupwatch"
        );
    }

    #[test]
    fn an_install_line_it_cannot_read_is_an_error() {
        let formula = "def install\n  bin.install buildpath/\"hupwatch\"\nend\n";
        assert!(
            installed_sources(formula)
                .unwrap_err()
                .to_string()
                .starts_with("cannot read the formula's install line `bin.install buildpath/")
        );
    }

    #[test]
    fn globs_match_within_one_segment() {
        assert!(matches("man/man1/*.1", "man/man1/hupwatch-run.1"));
        assert!(!matches("man/man1/*.1", "man/man1/x/hupwatch.1"));
        assert!(!matches("man/man1/*.1", "man/man1/hupwatch.1.gz"));
        assert!(matches("launchd/*.plist", "launchd/com.hupwatch.plist"));
        assert!(matches("hupwatch", "hupwatch"));
        assert!(!matches("hupwatch", "hupwatch-run"));
    }
}
