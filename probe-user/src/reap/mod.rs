//! `hupwatch reap`: lists the sessions that should be gone and, with --yes, ends them. A
//! dry run by default. Sessions come from a running `hupwatch run` (--from, or root's socket
//! when one answers there) or else from a one-shot /proc look; whose they are, whether they are kernel threads and whether
//! their pid still names them is checked against the OS right before acting.
pub mod before;
pub(crate) mod end;
pub(crate) mod identity;
pub(crate) mod select;

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

pub use select::Criteria;

use crate::{
    error::UserError,
    matching::Matcher,
    output,
    sessions::remote::is_socket,
    signals,
    units::{format_duration, format_size},
};

pub struct ReapOptions {
    pub from: Option<String>,
    pub matcher: Matcher,
    pub criteria: Criteria,
    pub signal: u32,
    pub grace: Duration,
    pub yes: bool,
}

pub async fn run(options: ReapOptions) -> anyhow::Result<()> {
    let from = options
        .from
        .clone()
        .or_else(crate::sessions::running_daemon);
    if options.criteria.idle_at_least.is_some() && from.is_none() {
        return Err(UserError::new(
            "--idle needs CPU readings taken over time, which a one-shot look has not got; run `hupwatch run` as root (reap then asks it through unix:/run/hupwatch/api.sock) or add --from (its address)",
        )
        .into());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if let Some(url) = from
        .as_deref()
        .filter(|url| root && options.yes && !is_socket(url))
    {
        return Err(UserError::new(format!(
            "--from {url}: as root, reap --yes acts only on what root's own hupwatch says through its socket, which no other user can serve; use --from unix:/run/hupwatch/api.sock (the default when `hupwatch run` serves it), or drop --yes for a dry run"
        ))
        .into());
    }
    let mut view =
        crate::sessions::gather(from.as_deref(), &options.matcher, &options.criteria.ignore)
            .await?;
    // A document from a daemon older than trees has none: make them from its processes.
    view.rebuild_trees();
    let reaper = identity::reaper();
    let (targets, spared) = select::choose(&view, &options.criteria, &reaper, identity::look);
    let mut out = io::stdout().lock();
    if !options.yes {
        return dry_run(&mut out, &options, &targets, &spared, view.processes.len())
            .or_else(output::unless_reader_gone);
    }
    for s in &spared {
        eprintln!(
            "hupwatch: reap: left alone {} {}: {}",
            s.pid,
            output::shown(&s.comm),
            s.reason
        );
    }
    let failed = end::end_all(&targets, options.signal, options.grace, &mut out)
        .await
        .or_else(|e| output::unless_reader_gone(e).map(|()| 0))?;
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} processes could not be ended (see the log lines above)",
            targets.len()
        );
    }
    Ok(())
}

/// `tree claude (pid 200): 3 processes, 1.2 GiB`: the tree the next rows belong to, with
/// what ending them frees (of those that would be ended).
fn tree_heading(tree: &crate::tracker::TreeRef, targets: &[select::Target]) -> String {
    let members: Vec<&select::Target> = targets
        .iter()
        .filter(|t| t.process.tree.as_ref() == Some(tree))
        .collect();
    let memory: crate::tracker::Total = members.iter().map(|t| t.process.held()).collect();
    format!(
        "tree {} (pid {}): {} process{}, {} {}",
        output::shown(&tree.root_comm),
        tree.root_pid,
        members.len(),
        if members.len() == 1 { "" } else { "es" },
        format_size(memory.bytes()),
        memory.measure().name().to_uppercase()
    )
}

/// `path` as `--cwd` compares it with working directories: absolute (relative to where
/// reap runs) and with its symlinks resolved, as the OS reports a process's directory.
pub fn absolute(path: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .map(|here| here.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    std::fs::canonicalize(&joined).unwrap_or(joined)
}

fn dry_run(
    out: &mut impl Write,
    options: &ReapOptions,
    targets: &[select::Target],
    spared: &[select::Spared],
    looked_at: usize,
) -> io::Result<()> {
    if targets.is_empty() {
        writeln!(out, "nothing to end among {looked_at} sessions")?;
    } else {
        let then = if options.signal == libc::SIGKILL as u32 {
            String::new()
        } else {
            format!(
                ", then SIGKILL after {}",
                format_duration(options.grace.as_nanos() as u64)
            )
        };
        writeln!(
            out,
            "dry run: these would get {}{then}; run again with --yes to end them",
            signals::name(options.signal)
        )?;
        writeln!(
            out,
            "{:>8}  {:<15}  {:>8}  {:>9}  {:<28}  COMMAND",
            "PID", "COMM", "AGE", "RSS", "VERDICTS"
        )?;
        let mut tree_shown = None;
        for t in targets {
            let p = &t.process;
            if options.criteria.tree && p.tree.as_ref() != tree_shown {
                tree_shown = p.tree.as_ref();
                if let Some(tree) = tree_shown {
                    writeln!(out, "{}", tree_heading(tree, targets))?;
                }
            }
            let verdicts: Vec<&str> = p.verdicts.iter().map(|v| v.kind.name()).collect();
            let command: String = p
                .cmdline
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            writeln!(
                out,
                "{:>8}  {:<15}  {:>8}  {:>9}  {:<28}  {}",
                p.pid,
                p.comm.escape_debug().to_string(),
                format_duration((p.age_seconds * 1e9) as u64),
                p.rss_bytes.map_or("-".into(), format_size),
                verdicts.join(","),
                command.escape_debug(),
            )?;
        }
    }
    for s in spared {
        writeln!(
            out,
            "left alone: {} {}: {}",
            s.pid,
            s.comm.escape_debug(),
            s.reason
        )?;
    }
    Ok(())
}
