//! Reads a whole BPF hash map with the kernel's batch lookup (BPF_MAP_LOOKUP_BATCH, Linux
//! 5.6+), which aya 0.14 does not offer. Its own map iterator costs two system calls per
//! entry (the next key, then its value), and the RSS sampler reads every tracked process's
//! entry on each tick: 20,000 calls a tick at 10,000 processes, where a batch call copies a
//! thousand entries (on the 6.18 host, 2.1 µs an entry one by one, 0.25 µs in batches).
//! The batch also walks the table by bucket index, while a next-key walk starts over from
//! the first bucket when the key it holds was deleted meanwhile (a process exited) and
//! hands back entries it already gave.
use std::{
    io,
    mem::{MaybeUninit, offset_of},
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Pod,
    maps::{HashMap, IterableMap, MapData},
};

/// bpf(2)'s command number (enum bpf_cmd in include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// The kernel's own "not supported", which bpf(2) returns for a map type without batch
/// operations; libc does not name it, as it is meant to stay inside the kernel.
const ENOTSUPP: i32 = 524;
/// No bucket of a hash map holds 16 Mi entries: a kernel still answering ENOSPC to buffers
/// this large is not doing what this module expects.
const MAX_CHUNK: usize = 1 << 24;

/// The `batch` member of union bpf_attr (include/uapi/linux/bpf.h, unchanged since 5.6),
/// the only part of the union passed: the kernel zeroes what lies beyond the size given.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = {
    assert!(size_of::<BatchAttr>() == 56);
    assert!(offset_of!(BatchAttr, out_batch) == 8);
    assert!(offset_of!(BatchAttr, keys) == 16);
    assert!(offset_of!(BatchAttr, values) == 24);
    assert!(offset_of!(BatchAttr, count) == 32);
    assert!(offset_of!(BatchAttr, map_fd) == 36);
    assert!(offset_of!(BatchAttr, elem_flags) == 40);
    assert!(offset_of!(BatchAttr, flags) == 48);
};

#[derive(Debug)]
pub enum BatchError {
    /// The kernel has no batch lookup (before 5.6: EINVAL), or not for this map
    /// (ENOTSUPP, EOPNOTSUPP), answered before any batch read worked: read entry by entry.
    Unsupported(io::Error),
    /// A batch read failed for another reason; the next may work.
    Failed(io::Error),
}

/// Reads a hash map (plain or LRU; not per-CPU, whose values are one per CPU) in batches,
/// keeping its buffers from one read to the next.
pub struct HashBatch<K, V> {
    keys: Vec<MaybeUninit<K>>,
    values: Vec<MaybeUninit<V>>,
    worked: bool,
}

impl<K: Pod, V: Pod> HashBatch<K, V> {
    /// Buffers for `chunk` entries a call; grown when one bucket holds more.
    pub fn new(chunk: usize) -> Self {
        let chunk = chunk.clamp(1, MAX_CHUNK);
        Self {
            keys: vec![MaybeUninit::uninit(); chunk],
            values: vec![MaybeUninit::uninit(); chunk],
            worked: false,
        }
    }

    /// How many entries a call can take now (more once a bucket outgrew the buffers).
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// Every entry of `map`, in the kernel's bucket order.
    pub fn read<T: std::borrow::Borrow<MapData>>(
        &mut self,
        map: &HashMap<T, K, V>,
    ) -> Result<Vec<(K, V)>, BatchError> {
        let fd = map.map().fd().as_fd().as_raw_fd();
        let mut entries = Vec::new();
        // A hash map's position is a u32 bucket index; a u64 leaves room to spare.
        let mut position: u64 = 0;
        let mut next: u64 = 0;
        let mut first = true;
        loop {
            let chunk = self.keys.len();
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { &raw const position as u64 },
                out_batch: &raw mut next as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: chunk as u32,
                map_fd: fd as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: attr is a complete bpf_attr batch member of the size passed; its
            // pointers are to `chunk` keys and values and to two u64s, all alive and
            // otherwise untouched until the call returns.
            let status = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &raw mut attr,
                    size_of::<BatchAttr>(),
                )
            };
            if status == 0 {
                if attr.count == 0 {
                    // Not an answer the kernel gives; do not ask again forever.
                    return Err(BatchError::Failed(io::Error::other(
                        "the batch lookup returned nothing before the end of the map",
                    )));
                }
                self.take(attr.count, &mut entries);
                position = next;
                first = false;
                continue;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                // The walk reached the end; what this call filled still counts.
                Some(libc::ENOENT) => {
                    self.take(attr.count, &mut entries);
                    return Ok(entries);
                }
                // One bucket holds more entries than the buffers: grow them, read it again.
                Some(libc::ENOSPC) if chunk < MAX_CHUNK => {
                    self.keys.resize(chunk * 2, MaybeUninit::uninit());
                    self.values.resize(chunk * 2, MaybeUninit::uninit());
                }
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if !self.worked => {
                    return Err(BatchError::Unsupported(error));
                }
                _ => return Err(BatchError::Failed(error)),
            }
        }
    }

    /// Appends the `filled` entries a call wrote to `entries`.
    fn take(&mut self, filled: u32, entries: &mut Vec<(K, V)>) {
        let filled = (filled as usize).min(self.keys.len());
        entries.extend(
            self.keys[..filled]
                .iter()
                .zip(&self.values[..filled])
                // SAFETY: the kernel wrote the first `filled` keys and values, and K and V
                // are Pod: any bytes make a valid one.
                .map(|(key, value)| unsafe { (key.assume_init_read(), value.assume_init_read()) }),
        );
        self.worked = true;
    }
}
