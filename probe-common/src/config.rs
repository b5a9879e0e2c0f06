//! Load-time configuration, written by user space into the programs' read-only global
//! `CONFIG` before loading. Field offsets differ between kernels, so none is a constant:
//! tracepoint fields come from tracefs `format` files, kernel struct members from
//! `/sys/kernel/btf/vmlinux`.

/// An offset that could not be resolved; programs skip the read it would have enabled.
pub const UNKNOWN_OFFSET: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// hupwatch's own tgid: never traced.
    pub self_tgid: u32,
    /// 1 when no matching flag was given: every process is traced and the tracked map unused.
    pub trace_all: u32,
    /// 1 when user space matches command lines: exec records are sent for untracked
    /// processes too, so user space can decide.
    pub exec_all: u32,
    pub _pad: u32,

    // sched/sched_process_exec
    pub exec_filename: u32,
    // sched/sched_process_exit (group_dead is absent before 6.x: UNKNOWN_OFFSET)
    pub exit_group_dead: u32,
    // task/task_newtask
    pub newtask_pid: u32,
    pub newtask_comm: u32,
    pub newtask_clone_flags: u32,
    // syscalls/sys_exit_setsid
    pub setsid_ret: u32,
    // syscalls/sys_enter_rt_sigaction and sys_exit_rt_sigaction
    pub sigaction_sig: u32,
    pub sigaction_act: u32,
    pub sigaction_ret: u32,
    // syscalls/sys_enter_ioctl
    pub ioctl_fd: u32,
    pub ioctl_cmd: u32,
    // syscalls/sys_enter_prctl
    pub prctl_option: u32,
    pub prctl_arg2: u32,

    // struct members from BTF
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub signal_tty: u32,
    /// Offset of `signal_struct.pids[PIDTYPE_SID]` (the array offset plus the index).
    pub signal_sid_pid: u32,
    /// Offset of `pid.numbers[0].nr`: the id in the initial pid namespace.
    pub pid_nr: u32,
    pub tty_name: u32,
    pub task_start_boottime: u32,
    pub task_sighand: u32,
    /// Offset of `sighand_struct.action[SIGHUP - 1].sa.sa_handler`.
    pub sighand_hup_handler: u32,
    /// Offset of `sighand_struct.action`, and `sizeof(struct k_sigaction)`: where signal
    /// N's action is, as the kernel holds it after rt_sigaction(2) returned.
    pub sighand_action: u32,
    pub ksigaction_size: u32,
    // rss_stat is BTF-typed (tp_btf): it is handed the mm and the counter's index and loads
    // the counter itself
    pub task_mm: u32,
    /// 1 when rss_stat hands the counter's new value as its third argument (before Linux
    /// 6.2); 0 when the program reads it from the mm at the two offsets below.
    pub rss_count_arg: u32,
    /// Offset of `mm_struct.rss_stat[0].count` (per-CPU counters, since 6.2).
    pub mm_rss_count: u32,
    /// `sizeof(struct percpu_counter)`: from one RSS counter to the next.
    pub rss_counter_stride: u32,
    /// log2 of the page size: rss_stat's counters count pages.
    pub page_shift: u32,
    // signal_generate and signal_deliver are BTF-typed too: they read the task, the
    // siginfo and the k_sigaction they are handed (and the task's tgid, from task_tgid)
    pub task_comm: u32,
    pub siginfo_code: u32,
    /// Offset of `k_sigaction.sa.sa_handler`.
    pub ksigaction_handler: u32,
    /// Offset of `k_sigaction.sa.sa_flags`.
    pub ksigaction_flags: u32,
    pub _pad2: u32,
}

impl ProbeConfig {
    pub const fn unresolved() -> Self {
        const U: u32 = UNKNOWN_OFFSET;
        Self {
            self_tgid: 0,
            trace_all: 1,
            exec_all: 0,
            _pad: 0,
            exec_filename: U,
            exit_group_dead: U,
            newtask_pid: U,
            newtask_comm: U,
            newtask_clone_flags: U,
            setsid_ret: U,
            sigaction_sig: U,
            sigaction_act: U,
            sigaction_ret: U,
            ioctl_fd: U,
            ioctl_cmd: U,
            prctl_option: U,
            prctl_arg2: U,
            task_tgid: U,
            task_real_parent: U,
            task_signal: U,
            task_exit_code: U,
            signal_tty: U,
            signal_sid_pid: U,
            pid_nr: U,
            tty_name: U,
            task_start_boottime: U,
            task_sighand: U,
            sighand_hup_handler: U,
            sighand_action: U,
            ksigaction_size: U,
            task_mm: U,
            rss_count_arg: 0,
            mm_rss_count: U,
            rss_counter_stride: U,
            page_shift: 12,
            task_comm: U,
            siginfo_code: U,
            ksigaction_handler: U,
            ksigaction_flags: U,
            _pad2: 0,
        }
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self::unresolved()
    }
}

const _: () = assert!(size_of::<ProbeConfig>() == 40 * 4);
