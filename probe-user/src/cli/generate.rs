//! Shell completions and man pages, generated from the same clap definitions as `--help`.
use std::{fs, io, path::Path};

use clap::CommandFactory;

use super::Cli;

/// `hupwatch completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "hupwatch", &mut io::stdout());
}

/// `hupwatch.1` and one page per visible command (`hupwatch-run.1`, ...) into `dir`.
pub fn man_pages(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut command = Cli::command();
    command.build();
    write_page(&command, "hupwatch", dir)?;
    for sub in command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
    {
        let name = format!("hupwatch-{}", sub.get_name());
        // NAME says `hupwatch-run`, the page man(1) finds; SYNOPSIS `hupwatch run`.
        let page = sub.clone().display_name(name.clone());
        write_page(&page, &name, dir)?;
    }
    Ok(())
}

fn write_page(command: &clap::Command, name: &str, dir: &Path) -> io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name.to_uppercase())
        .section("1")
        .source(format!("hupwatch {}", env!("CARGO_PKG_VERSION")))
        .manual("hupwatch manual")
        .render(&mut page)?;
    fs::write(dir.join(format!("{name}.1")), page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_page_that_names_its_flags() {
        let dir = std::env::temp_dir().join(format!("hupwatch-man-{}", std::process::id()));
        man_pages(&dir).unwrap();
        let mut pages: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        pages.sort();
        assert_eq!(
            pages,
            [
                "hupwatch-completions.1",
                "hupwatch-reap.1",
                "hupwatch-run.1",
                "hupwatch-selftest.1",
                "hupwatch-sessions.1",
                "hupwatch-top.1",
                "hupwatch-trace.1",
                "hupwatch.1",
            ]
        );
        let run = fs::read_to_string(dir.join("hupwatch-run.1")).unwrap();
        assert!(run.contains(".TH HUPWATCH-RUN 1"), "{run}");
        // roff escapes the hyphens of a flag.
        assert!(run.contains(r"\-\-rss\-growth"), "{run}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
