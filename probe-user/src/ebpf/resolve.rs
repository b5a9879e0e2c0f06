//! Builds the programs' load-time configuration for the running kernel: tracepoint field
//! offsets from tracefs, kernel struct offsets from BTF. A tracepoint that is missing (or
//! lacks a field) disables only the programs on it, with a warning naming it.
use std::path::Path;

use probe_common::{ProbeConfig, UNKNOWN_OFFSET};

use super::{
    btf::{Btf, Shape},
    tracefs::{Format, TracefsError},
};

/// One eBPF program and the tracepoint it attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    pub program: &'static str,
    pub category: &'static str,
    pub tracepoint: &'static str,
    pub hook: Hook,
    /// What the user loses when it cannot be attached.
    pub provides: &'static str,
    /// What takes its place then, if anything.
    pub replaced_by: Option<&'static str>,
}

/// How a program attaches to its tracepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// A classic tracepoint: the program reads the record's fields, at tracefs's offsets.
    Fields,
    /// A BTF-typed raw tracepoint (tp_btf): the program gets the tracepoint's C arguments
    /// and loads kernel struct members at BTF's offsets. The kernel skips building the
    /// record, which matters where the tracepoint fires on every page fault.
    Btf,
}

impl ProgramSpec {
    pub fn path(&self) -> String {
        format!("{}/{}", self.category, self.tracepoint)
    }

    /// What a person loses without it, for a warning.
    pub fn loss(&self) -> String {
        match self.replaced_by {
            Some(instead) => format!("{instead} (the rest keeps working)"),
            None => format!("no {} (the rest keeps working)", self.provides),
        }
    }
}

const fn spec(
    program: &'static str,
    category: &'static str,
    provides: &'static str,
) -> ProgramSpec {
    ProgramSpec {
        program,
        category,
        tracepoint: program,
        hook: Hook::Fields,
        provides,
        replaced_by: None,
    }
}

pub const PROGRAMS: [ProgramSpec; 12] = [
    spec(
        "task_newtask",
        "task",
        "fork events and tracking of children",
    ),
    spec(
        "sched_process_exec",
        "sched",
        "exec events and matching on exec",
    ),
    spec("sched_process_exit", "sched", "exit events"),
    spec("sys_enter_setsid", "syscalls", "setsid events"),
    spec("sys_exit_setsid", "syscalls", "setsid events"),
    spec(
        "sys_enter_ioctl",
        "syscalls",
        "detach_tty (TIOCNOTTY) and attach_tty (TIOCSCTTY) events",
    ),
    spec("sys_enter_prctl", "syscalls", "pdeathsig events"),
    ProgramSpec {
        hook: Hook::Btf,
        ..spec("signal_generate", "signal", "signal events")
    },
    ProgramSpec {
        hook: Hook::Btf,
        ..spec("signal_deliver", "signal", "signal_deliver events")
    },
    spec("sys_enter_rt_sigaction", "syscalls", "sigaction events"),
    spec("sys_exit_rt_sigaction", "syscalls", "sigaction events"),
    ProgramSpec {
        hook: Hook::Btf,
        replaced_by: Some("RSS and swap are read from /proc every --rss-interval instead"),
        ..spec("rss_stat", "kmem", "rss events")
    },
];

pub struct Resolved {
    pub config: ProbeConfig,
    pub programs: Vec<ProgramSpec>,
    pub warnings: Vec<String>,
}

/// Resolves every offset the programs need. `btf` is `None` on kernels without BTF.
pub fn resolve(tracefs: &Path, btf: Option<&Btf>) -> Resolved {
    let mut config = ProbeConfig::unresolved();
    let mut programs = Vec::new();
    let mut warnings = Vec::new();
    for spec in PROGRAMS {
        let filled = Format::read(tracefs, spec.category, spec.tracepoint)
            .and_then(|format| fill(&mut config, spec.program, &format));
        match filled {
            Ok(()) => programs.push(spec),
            Err(err) => warnings.push(format!("{err}; {}", spec.loss())),
        }
    }
    // A setsid or sigaction event needs both halves of the syscall.
    for syscall in ["_setsid", "_rt_sigaction"] {
        if programs
            .iter()
            .filter(|p| p.program.ends_with(syscall))
            .count()
            == 1
        {
            programs.retain(|p| !p.program.ends_with(syscall));
        }
    }
    match btf {
        Some(btf) => {
            if let Err(missing) = fill_struct_offsets(&mut config, btf) {
                warnings.push(format!(
                    "kernel BTF has no {missing}; exit codes, parents, sessions, ttys or start times may be unknown"
                ));
            }
        }
        None => warnings.push(
            "no kernel BTF (/sys/kernel/btf/vmlinux); exit codes, parents, sessions, ttys and start times will be unknown"
                .to_string(),
        ),
    }
    // The BTF-typed programs read kernel structs for what a classic tracepoint's record
    // would have held, so without these offsets they have nothing to say.
    programs.retain(|spec| {
        if spec.hook != Hook::Btf {
            return true;
        }
        let filled = match btf {
            Some(btf) => fill_typed(&mut config, spec.program, btf)
                .map_err(|missing| format!("kernel BTF has no {missing}")),
            None => Err("no kernel BTF".to_string()),
        };
        if let Err(missing) = &filled {
            warnings.push(format!(
                "{} cannot read what it reports: {missing}; {}",
                spec.path(),
                spec.loss()
            ));
        }
        filled.is_ok()
    });
    Resolved {
        config,
        programs,
        warnings,
    }
}

fn fill(c: &mut ProbeConfig, program: &str, f: &Format) -> Result<(), TracefsError> {
    match program {
        "task_newtask" => {
            c.newtask_pid = f.offset("pid")?;
            c.newtask_comm = f.offset("comm")?;
            c.newtask_clone_flags = f.offset("clone_flags")?;
        }
        "sched_process_exec" => c.exec_filename = f.offset("filename")?,
        // group_dead arrived in Linux 6.x; without it the thread-group leader's exit counts.
        "sched_process_exit" => {
            c.exit_group_dead = f.offset("group_dead").unwrap_or(UNKNOWN_OFFSET)
        }
        "sys_enter_setsid" => {}
        "sys_exit_setsid" => c.setsid_ret = f.offset("ret")?,
        "sys_enter_ioctl" => {
            c.ioctl_fd = f.offset("fd")?;
            c.ioctl_cmd = f.offset("cmd")?;
        }
        "sys_enter_prctl" => {
            c.prctl_option = f.offset("option")?;
            c.prctl_arg2 = f.offset("arg2")?;
        }
        "sys_enter_rt_sigaction" => {
            c.sigaction_sig = f.offset("sig")?;
            c.sigaction_act = f.offset("act")?;
        }
        "sys_exit_rt_sigaction" => c.sigaction_ret = f.offset("ret")?,
        // BTF-typed: their formats only show that this kernel has them (see fill_typed).
        "rss_stat" | "signal_generate" | "signal_deliver" => {}
        other => unreachable!("no tracepoint fields listed for program {other}"),
    }
    Ok(())
}

/// Fills the struct member offsets; on failure names the first one missing.
fn fill_struct_offsets(c: &mut ProbeConfig, btf: &Btf) -> Result<(), String> {
    let member = |s: &str, m: &str| member_offset(btf, s, m);
    c.task_tgid = member("task_struct", "tgid")?;
    c.task_real_parent = member("task_struct", "real_parent")?;
    c.task_exit_code = member("task_struct", "exit_code")?;
    c.task_signal = member("task_struct", "signal")?;
    c.signal_tty = member("signal_struct", "tty")?;
    let sid_index = btf
        .enum_value("PIDTYPE_SID")
        .ok_or("enum pid_type's PIDTYPE_SID")?;
    let pointer = size_of::<u64>() as u32;
    c.signal_sid_pid = member("signal_struct", "pids")? + sid_index as u32 * pointer;
    c.pid_nr = member("pid", "numbers")? + member("upid", "nr")?;
    c.tty_name = member("tty_struct", "name")?;
    c.task_start_boottime = member("task_struct", "start_boottime")?;
    c.task_sighand = member("task_struct", "sighand")?;
    // action[0] is SIGHUP's.
    c.sighand_hup_handler = member("sighand_struct", "action")?
        + member("k_sigaction", "sa")?
        + member("sigaction", "sa_handler")?;
    c.sighand_action = member("sighand_struct", "action")?;
    c.ksigaction_size = btf
        .struct_size("k_sigaction")
        .ok_or("struct k_sigaction's size")?;
    let sa = member("k_sigaction", "sa")?;
    c.ksigaction_handler = sa + member("sigaction", "sa_handler")?;
    c.ksigaction_flags = sa + member("sigaction", "sa_flags")?;
    Ok(())
}

/// `struct.member`'s offset, or its name as what is missing.
fn member_offset(btf: &Btf, s: &str, m: &str) -> Result<u32, String> {
    btf.member_offset(s, m).ok_or_else(|| format!("{s}.{m}"))
}

/// How rss_stat's program learns a counter's new value on this kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RssCount {
    /// Before Linux 6.2 the tracepoint passes it: `(mm, member, long count)`. Reading it
    /// from `mm->rss_stat.count[member]` instead is refused by 6.1's verifier ("Type
    /// 'atomic_long_t' is not a struct": it does not look through the typedef).
    Argument,
    /// Since 6.2 it is `(mm, member)` and the counters are `struct percpu_counter
    /// rss_stat[NR_MM_COUNTERS]`, read at their shared `count` (what get_mm_counter()
    /// reports): the first one's offset in mm_struct, and the stride.
    PerCpuCounters { first: u32, stride: u32 },
}

/// Chooses by the tracepoint's prototype and the type of `mm_struct.rss_stat`, as the
/// running kernel's BTF describes them, not by version number.
pub fn rss_count(btf: &Btf) -> Result<RssCount, String> {
    let member = |s: &str, m: &str| member_offset(btf, s, m);
    match btf.tracepoint_args("rss_stat") {
        Some(3) => return Ok(RssCount::Argument),
        Some(2) => {}
        other => {
            return Err(format!(
                "rss_stat prototype of 2 or 3 arguments (it has {other:?})"
            ));
        }
    }
    match btf.member_shape("mm_struct", "rss_stat") {
        Some(Shape::ArrayOf(element)) if element == "percpu_counter" => {
            Ok(RssCount::PerCpuCounters {
                first: member("mm_struct", "rss_stat")? + member("percpu_counter", "count")?,
                stride: btf
                    .struct_size("percpu_counter")
                    .ok_or("struct percpu_counter")?,
            })
        }
        other => Err(format!(
            "mm_struct.rss_stat as per-CPU counters (its type is {other:?})"
        )),
    }
}

/// The struct offsets a BTF-typed program reads its arguments with; on failure names the
/// first one missing.
fn fill_typed(c: &mut ProbeConfig, program: &str, btf: &Btf) -> Result<(), String> {
    let member = |s: &str, m: &str| member_offset(btf, s, m);
    match program {
        "rss_stat" => {
            c.task_mm = member("task_struct", "mm")?;
            match rss_count(btf)? {
                RssCount::Argument => c.rss_count_arg = 1,
                RssCount::PerCpuCounters { first, stride } => {
                    c.mm_rss_count = first;
                    c.rss_counter_stride = stride;
                }
            }
        }
        "signal_generate" => {
            c.task_tgid = member("task_struct", "tgid")?;
            c.task_comm = member("task_struct", "comm")?;
            c.siginfo_code = member("kernel_siginfo", "si_code")?;
        }
        "signal_deliver" => {
            c.siginfo_code = member("kernel_siginfo", "si_code")?;
            let sa = member("k_sigaction", "sa")?;
            c.ksigaction_handler = sa + member("sigaction", "sa_handler")?;
            c.ksigaction_flags = sa + member("sigaction", "sa_flags")?;
        }
        other => unreachable!("no struct offsets listed for program {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_has_its_fields_listed() {
        let format = Format::default();
        for spec in PROGRAMS {
            let mut config = ProbeConfig::unresolved();
            // An empty format fails on the first field, never on an unlisted program.
            let _ = fill(&mut config, spec.program, &format);
        }
    }

    #[test]
    fn this_kernels_btf_has_what_every_typed_program_reads() {
        let Some(btf) = crate::ebpf::btf::tests::this_kernels_btf() else {
            return;
        };
        let mut config = ProbeConfig::unresolved();
        for spec in PROGRAMS.iter().filter(|spec| spec.hook == Hook::Btf) {
            fill_typed(&mut config, spec.program, &btf)
                .unwrap_or_else(|missing| panic!("{}: {missing}", spec.program));
        }
        assert_ne!(config.ksigaction_flags, config.ksigaction_handler);
        // Each kernel gives the count one way or the other.
        assert_ne!(
            config.rss_count_arg == 1,
            config.mm_rss_count != UNKNOWN_OFFSET,
            "{config:?}"
        );
    }

    #[test]
    fn a_missing_tracepoint_disables_only_its_programs() {
        let dir = std::env::temp_dir().join(format!("hupwatch-tracefs-{}", std::process::id()));
        let write = |cat: &str, name: &str, fields: &str| {
            let d = dir.join("events").join(cat).join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("format"), fields).unwrap();
        };
        let field = |name: &str, off: u32| {
            format!("\tfield:int {name};\toffset:{off};\tsize:4;\tsigned:1;\n")
        };
        write(
            "syscalls",
            "sys_enter_ioctl",
            &["fd", "cmd"]
                .iter()
                .enumerate()
                .map(|(i, n)| field(n, 16 + 8 * i as u32))
                .collect::<String>(),
        );
        write("syscalls", "sys_enter_setsid", "");
        // Its tracepoint exists, but a BTF-typed program cannot read anything without BTF.
        write("signal", "signal_generate", "");
        let resolved = resolve(&dir, None);
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<&str> = resolved.programs.iter().map(|p| p.program).collect();
        assert_eq!(
            names,
            vec!["sys_enter_ioctl"],
            "setsid needs both of its tracepoints"
        );
        assert_eq!(resolved.config.ioctl_cmd, 24);
        assert!(resolved.warnings.iter().any(|w| w.contains(
            "signal/signal_generate cannot read what it reports: no kernel BTF; no signal events"
        )));
        assert!(
            resolved
                .warnings
                .iter()
                .any(|w| w.contains("kmem/rss_stat does not exist")
                    && w.contains("RSS and swap are read from /proc every --rss-interval instead"))
        );
        assert!(
            resolved
                .warnings
                .iter()
                .any(|w| w.contains("no kernel BTF"))
        );
    }
}
