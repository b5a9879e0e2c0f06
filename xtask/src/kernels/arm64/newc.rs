//! A cpio archive in the "newc" format, the one the kernel unpacks as an initramfs: only
//! what the arm64 guest's root needs (folders and files; busybox makes its links at boot),
//! owned by root, dated 0 so that the same inputs give the same bytes.
//!
//! Each entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex fields), the
//! path and a NUL padded to a multiple of 4, then the data padded the same way; a
//! `TRAILER!!!` entry ends the archive.
use std::{
    fs::File,
    io::{self, Read, Write},
    path::Path,
};

use anyhow::{Context, Result, bail};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const DIR: u32 = 0o040_000;
const FILE: u32 = 0o100_000;

pub struct Newc<W: Write> {
    out: W,
    /// The next inode number: every entry has its own, as the kernel links entries that
    /// share one (and a size) as hard links.
    ino: u32,
    written: u64,
}

impl<W: Write> Newc<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            written: 0,
        }
    }

    /// A folder; its parents must come first.
    pub fn dir(&mut self, path: &str) -> Result<()> {
        self.entry(path, DIR | 0o755, 2, &mut io::empty(), 0)
    }

    /// A regular file with `mode`'s permission bits and `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(path, FILE | mode, 1, &mut &data[..], data.len() as u64)
    }

    /// The file at `from` on this machine, as `path` in the archive, executable.
    pub fn executable_from(&mut self, path: &str, from: &Path) -> Result<()> {
        let mut file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading the size of {}", from.display()))?
            .len();
        self.entry(path, FILE | 0o755, 1, &mut file, size)
            .with_context(|| format!("copying {} into the initramfs", from.display()))
    }

    /// Writes the trailer and hands back the output.
    pub fn finish(mut self) -> Result<W> {
        self.header(TRAILER, 0, 0, 0)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        nlink: u32,
        data: &mut dyn Read,
        size: u64,
    ) -> Result<()> {
        if path.is_empty() || path.starts_with('/') || path.contains('\0') || path == TRAILER {
            bail!("{path:?} cannot be a path in a cpio archive");
        }
        let Ok(size32) = u32::try_from(size) else {
            bail!("{path}: {size} bytes do not fit a newc entry (4 GiB at most)");
        };
        self.header(path, mode, nlink, size32)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            bail!("{path}: {copied} bytes read where {size} were expected (did it change?)");
        }
        self.written += copied;
        self.pad()
    }

    fn header(&mut self, path: &str, mode: u32, nlink: u32, size: u32) -> Result<()> {
        let ino = if path == TRAILER { 0 } else { self.ino };
        self.ino += 1;
        let name_size = path.len() as u32 + 1;
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
        // rdevminor, namesize, check
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, name_size, 0];
        let mut header = String::with_capacity(110 + path.len());
        header.push_str(MAGIC);
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        header.push_str(path);
        header.push('\0');
        self.out.write_all(header.as_bytes())?;
        self.written += header.len() as u64;
        self.pad()
    }

    /// Zeros up to the next multiple of 4 bytes.
    fn pad(&mut self) -> Result<()> {
        let gap = (4 - self.written % 4) % 4;
        self.out.write_all(&[0; 3][..gap as usize])?;
        self.written += gap;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut Newc<Vec<u8>>) -> Result<()>) -> Vec<u8> {
        let mut newc = Newc::new(Vec::new());
        build(&mut newc).unwrap();
        newc.finish().unwrap()
    }

    /// (path, mode, size, data) of each entry, read back the way the kernel reads them.
    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut at = 0;
        let mut found = Vec::new();
        loop {
            assert_eq!(&bytes[at..at + 6], MAGIC.as_bytes(), "magic at {at}");
            let field = |i: usize| {
                let text = std::str::from_utf8(&bytes[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
                u32::from_str_radix(text, 16).unwrap() as usize
            };
            let (mode, size, name_size) = (field(1), field(6), field(11));
            let name = &bytes[at + 110..at + 110 + name_size - 1];
            assert_eq!(bytes[at + 110 + name_size - 1], 0, "the name ends in NUL");
            let name = String::from_utf8(name.to_vec()).unwrap();
            let data_at = (at + 110 + name_size).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(data_at, bytes.len(), "nothing after the trailer");
                return found;
            }
            found.push((name, mode as u32, bytes[data_at..data_at + size].to_vec()));
            at = (data_at + size).next_multiple_of(4);
        }
    }

    #[test]
    fn entries_read_back_with_their_modes_and_data() {
        let bytes = archive(|a| {
            a.dir("bin")?;
            a.file("init", 0o755, b"#!/bin/busybox sh\n")?;
            a.file("empty", 0o644, b"")
        });
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            entries(&bytes),
            [
                ("bin".to_owned(), 0o040_755, vec![]),
                (
                    "init".to_owned(),
                    0o100_755,
                    b"#!/bin/busybox sh\n".to_vec()
                ),
                ("empty".to_owned(), 0o100_644, vec![]),
            ]
        );
    }

    #[test]
    fn every_entry_has_its_own_inode_and_the_trailer_none() {
        let bytes = archive(|a| {
            a.file("a", 0o644, b"x")?;
            a.file("b", 0o644, b"x")
        });
        let text = String::from_utf8_lossy(&bytes);
        let inodes: Vec<&str> = text
            .match_indices(MAGIC)
            .map(|(i, _)| &text[i + 6..i + 14])
            .collect();
        assert_eq!(inodes, ["00000001", "00000002", "00000000"]);
    }

    #[test]
    fn a_file_is_copied_from_disk() {
        let dir = std::env::temp_dir().join(format!("xtask-newc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let from = dir.join("program");
        std::fs::write(&from, b"\x7fELF and the rest").unwrap();
        let bytes = archive(|a| a.executable_from("bin/program", &from));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            entries(&bytes),
            [(
                "bin/program".to_owned(),
                0o100_755,
                b"\x7fELF and the rest".to_vec()
            )]
        );
    }

    #[test]
    fn paths_the_kernel_would_misread_are_refused() {
        let mut newc = Newc::new(Vec::new());
        assert!(newc.file("/init", 0o755, b"").is_err());
        assert!(newc.file("TRAILER!!!", 0o644, b"").is_err());
        assert!(newc.dir("").is_err());
    }
}
