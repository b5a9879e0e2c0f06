//! Empty programs on the tracepoints hupwatch attaches as BTF-typed (tp_btf): the floor for
//! those three, which bpftrace 0.17 cannot give (its rawtracepoint probes do not attach on
//! these machines). Each is two instructions, `r0 = 0; exit`, loaded and attached with
//! the bpf system call directly; the fds live in this process, so its fdinfo lists them
//! for `bpfstats`, under the tracepoint's name.
use std::{ffi::CString, os::fd::OwnedFd, process::Command};

use anyhow::{Context, Result, bail};

/// The tracepoints hupwatch reaches through tp_btf (probe-user's resolve.rs says which).
pub const TRACEPOINTS: [&str; 3] = ["rss_stat", "signal_generate", "signal_deliver"];

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_RAW_TP: u32 = 23;

/// `r0 = 0` (BPF_ALU64 | BPF_MOV | BPF_K), then `exit` (BPF_JMP | BPF_EXIT).
const EMPTY_PROGRAM: [u64; 2] = [0xb7, 0x95];

/// The part of `union bpf_attr` that BPF_PROG_LOAD reads, up to attach_btf_obj_fd.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    /// Spelled out so that no padding byte reaches the kernel, which wants zeros.
    core_relo_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct RawTracepointOpen {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

const _: () = assert!(std::mem::offset_of!(ProgLoad, attach_btf_id) == 108);

/// Loaded and attached; dropping it detaches and unloads them.
pub struct EmptyBtfPrograms {
    _links: Vec<OwnedFd>,
}

impl EmptyBtfPrograms {
    pub fn attach() -> Result<Self> {
        let ids = btf_ids()?;
        let license = CString::new("GPL").expect("no NUL");
        let mut links = Vec::new();
        for (tracepoint, id) in TRACEPOINTS.iter().zip(ids) {
            let mut attr = ProgLoad {
                prog_type: BPF_PROG_TYPE_TRACING,
                insn_cnt: EMPTY_PROGRAM.len() as u32,
                insns: EMPTY_PROGRAM.as_ptr() as u64,
                license: license.as_ptr() as u64,
                expected_attach_type: BPF_TRACE_RAW_TP,
                attach_btf_id: id,
                ..ProgLoad::default()
            };
            // bpfstats finds a program by its name (cut at 15 bytes, as the kernel does).
            let name = &tracepoint.as_bytes()[..tracepoint.len().min(15)];
            attr.prog_name[..name.len()].copy_from_slice(name);
            let program = bpf(BPF_PROG_LOAD, &attr)
                .with_context(|| format!("loading an empty tp_btf program for {tracepoint}"))?;
            let open = RawTracepointOpen {
                prog_fd: fd_number(&program),
                ..RawTracepointOpen::default()
            };
            let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &open)
                .with_context(|| format!("attaching an empty tp_btf program to {tracepoint}"))?;
            // The link holds the program; its own fd can go.
            drop(program);
            links.push(link);
        }
        Ok(Self { _links: links })
    }
}

fn fd_number(fd: &OwnedFd) -> u32 {
    std::os::fd::AsRawFd::as_raw_fd(fd) as u32
}

#[cfg(target_os = "linux")]
fn bpf<T>(command: libc::c_long, attr: &T) -> Result<OwnedFd> {
    // SAFETY: `attr` is a repr(C) prefix of union bpf_attr for `command`, with every byte
    // initialised; the kernel reads `size_of::<T>()` bytes of it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    };
    if fd < 0 {
        bail!("bpf(): {}", std::io::Error::last_os_error());
    }
    use std::os::fd::FromRawFd;
    // SAFETY: a new fd the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The bench runs on Linux only; this keeps xtask building for macOS, where CI checks it.
#[cfg(not(target_os = "linux"))]
fn bpf<T>(_command: libc::c_long, _attr: &T) -> Result<OwnedFd> {
    bail!("the bpf system call exists only on Linux")
}

/// The kernel BTF ids of the `btf_trace_<tracepoint>` typedefs, in `TRACEPOINTS` order.
fn btf_ids() -> Result<Vec<u32>> {
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file", "/sys/kernel/btf/vmlinux"])
        .output()
        .context("running bpftool btf dump")?;
    if !out.status.success() {
        bail!(
            "bpftool btf dump: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let dump = String::from_utf8_lossy(&out.stdout);
    TRACEPOINTS
        .iter()
        .map(|tracepoint| typedef_id(&dump, &format!("btf_trace_{tracepoint}")))
        .collect()
}

/// The id in a `bpftool btf dump` line `[ID] TYPEDEF 'NAME' type_id=...`.
fn typedef_id(dump: &str, name: &str) -> Result<u32> {
    let wanted = format!("] TYPEDEF '{name}' ");
    dump.lines()
        .find(|line| line.contains(&wanted))
        .and_then(|line| line.strip_prefix('[')?.split(']').next()?.parse().ok())
        .with_context(|| format!("the kernel's BTF has no {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typedef_id_is_read_from_bpftools_dump() {
        let dump = "[16091] FUNC_PROTO '(anon)' ret_type_id=0 vlen=3\n\
                    [16092] TYPEDEF 'btf_trace_rss_stat' type_id=16093\n\
                    [16094] TYPEDEF 'btf_trace_rss_stat_other' type_id=1\n";
        assert_eq!(typedef_id(dump, "btf_trace_rss_stat").unwrap(), 16092);
        assert!(typedef_id(dump, "btf_trace_signal_deliver").is_err());
    }
}
