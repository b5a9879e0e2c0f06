//! Holds the tracepoints hupwatch attaches to in use for a guest's whole run, so the
//! tests' many starts and stops of hupwatch never make the guest kernel rewrite its code.
//!
//! A tracepoint's first probe turns on a static key, and going from one probe to two (or
//! back) re-points its static calls; both rewrite kernel text with int3 breakpoints while
//! the other CPUs run. Under qemu's multi-threaded TCG a vCPU can still execute an int3
//! after the kernel has restored the instruction and stopped expecting it: the 5.15 guests
//! died of "int3 ... Fatal exception" in syscall_exit_work and unmap_page_range (the
//! raw_syscalls and rss_stat sites) while the tests ran. Toggling ftrace events in a 5.15
//! guest reproduces it within seconds; with two probes held on each tracepoint, hupwatch's
//! own attach and detach only add or remove a third, which rewrites nothing. Real CPUs do
//! not have this race, and the host's run keeps attaching the usual way.

use std::fmt::Write;

/// The kernel tracepoints hupwatch's programs hang on, as ftrace names them. Its syscall
/// tracepoints (syscalls/sys_enter_setsid...) all run from raw_syscalls' two.
pub const HELD: &[&str] = &[
    "task/task_newtask",
    "sched/sched_process_exec",
    "sched/sched_process_exit",
    "signal/signal_generate",
    "signal/signal_deliver",
    "kmem/rss_stat",
    "raw_syscalls/sys_enter",
    "raw_syscalls/sys_exit",
];

/// Two ftrace instances: one probe per instance on each tracepoint, so two in all.
const INSTANCES: [&str; 2] = ["kernel-matrix-hold-1", "kernel-matrix-hold-2"];

/// Shell lines for the guest's script: mount tracefs, then enable every held tracepoint in
/// each instance with recording off (the probes run and write nothing). A tracepoint that
/// cannot be held is a progress line on the console, and the tests run anyway.
pub fn script(progress: &str) -> String {
    let mut text = String::from(
        "tracing=/sys/kernel/tracing\n\
         mountpoint -q \"$tracing\" || mount -t tracefs nodev \"$tracing\"\n",
    );
    let held = HELD.join(" ");
    for instance in INSTANCES {
        let _ = writeln!(
            text,
            r#"dir="$tracing/instances/{instance}"
mkdir -p "$dir" && echo 0 >"$dir/tracing_on" && echo 4 >"$dir/buffer_size_kb" || echo "{progress}cannot create the tracefs instance {instance}"
for event in {held}; do
    echo 1 >"$dir/events/$event/enable" 2>/dev/null || echo "{progress}cannot hold tracepoint $event: the kernel may rewrite its code while tests run"
done"#
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tracepoint probe-user attaches to is held: a program added there without a
    /// line here would bring the guests' crashes back.
    #[test]
    fn every_tracepoint_hupwatch_attaches_to_is_held() {
        let resolve = include_str!("../../../probe-user/src/ebpf/resolve.rs");
        let table = resolve
            .split("pub const PROGRAMS")
            .nth(1)
            .expect("resolve.rs has its PROGRAMS table");
        let table = &table[..table.find("];").expect("the table ends")];
        let mut found = 0;
        for call in table.split("spec(").skip(1) {
            let quoted: Vec<&str> = call.split('"').skip(1).step_by(2).take(2).collect();
            let [name, category] = quoted[..] else {
                panic!("a spec without its name and category: {call}");
            };
            let held = match (category, name) {
                ("syscalls", n) if n.starts_with("sys_enter_") => "raw_syscalls/sys_enter".into(),
                ("syscalls", n) if n.starts_with("sys_exit_") => "raw_syscalls/sys_exit".into(),
                (category, name) => format!("{category}/{name}"),
            };
            assert!(HELD.contains(&held.as_str()), "{held} is not held");
            found += 1;
        }
        assert!(found >= 11, "read {found} programs from resolve.rs");
    }

    #[test]
    fn the_script_holds_each_tracepoint_in_two_instances() {
        let text = script("kernel-matrix: ");
        assert_eq!(text.matches("for event in").count(), 2);
        assert!(text.contains("for event in task/task_newtask sched/sched_process_exec"));
        assert!(text.contains("echo 0 >\"$dir/tracing_on\""));
    }
}
