//! Checks that the arm64 code signature in the universal binary still matches the code:
//! llvm-objdump shows that an LC_CODE_SIGNATURE is there, not that it is valid, and a
//! signature made stale by anything that rewrites the file after linking (a strip, an
//! edit) has macOS kill the process at its first page ("Killed: 9"). The signature's
//! CodeDirectory holds a SHA-256 of every page up to the signature; each is recomputed.
use std::{fs, path::Path};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

const FAT_MAGIC: u32 = 0xcafe_babe;
const MH_MAGIC_64: u32 = 0xfeed_facf;
const CPU_TYPE_ARM64: u32 = 0x0100_000c;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const SUPERBLOB_MAGIC: u32 = 0xfade_0cc0;
const CODEDIRECTORY_MAGIC: u32 = 0xfade_0c02;
/// The CodeDirectory's slot in the SuperBlob's index.
const CODEDIRECTORY_SLOT: u32 = 0;
const HASH_SHA256: u8 = 2;
/// CodeDirectory flags: signed ad hoc (no identity), and by the linker.
const CS_ADHOC: u32 = 0x2;
const CS_LINKER_SIGNED: u32 = 0x2_0000;

/// What the arm64 signature says, once every page's hash has been checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Signature {
    pub pages: usize,
    pub page_size: usize,
    pub ad_hoc: bool,
    pub linker_signed: bool,
}

pub fn check(binary: &Path) -> Result<Signature> {
    let bytes = fs::read(binary).with_context(|| format!("could not read {}", binary.display()))?;
    verify_arm64(&bytes).with_context(|| {
        format!(
            "the arm64 code signature of {} does not hold",
            binary.display()
        )
    })
}

/// Finds the arm64 slice of a universal Mach-O and verifies its signature.
pub fn verify_arm64(file: &[u8]) -> Result<Signature> {
    let (offset, size) = arm64_slice(file)?;
    let slice = file
        .get(offset..offset + size)
        .context("the arm64 slice runs past the end of the file")?;
    verify_slice(slice)
}

/// The arm64 slice's offset and size, from the fat header.
fn arm64_slice(file: &[u8]) -> Result<(usize, usize)> {
    if be32(file, 0)? != FAT_MAGIC {
        bail!("not a universal (fat) Mach-O");
    }
    for i in 0..be32(file, 4)? as usize {
        // fat_arch: cputype, cpusubtype, offset, size, align; big-endian.
        let entry = 8 + i * 20;
        if be32(file, entry)? == CPU_TYPE_ARM64 {
            return Ok((
                be32(file, entry + 8)? as usize,
                be32(file, entry + 12)? as usize,
            ));
        }
    }
    bail!("no arm64 slice")
}

/// Verifies the signature of one 64-bit Mach-O (little-endian header, big-endian blobs).
pub fn verify_slice(slice: &[u8]) -> Result<Signature> {
    if le32(slice, 0)? != MH_MAGIC_64 {
        bail!("the slice is not a 64-bit Mach-O");
    }
    let commands = le32(slice, 16)? as usize;
    let mut at = 32;
    let mut signature = None;
    for _ in 0..commands {
        let (cmd, size) = (le32(slice, at)?, le32(slice, at + 4)? as usize);
        if cmd == LC_CODE_SIGNATURE {
            signature = Some((
                le32(slice, at + 8)? as usize,
                le32(slice, at + 12)? as usize,
            ));
        }
        if size < 8 {
            bail!("a load command of {size} bytes");
        }
        at += size;
    }
    let (offset, size) = signature.context("no LC_CODE_SIGNATURE")?;
    let blob = slice
        .get(offset..offset + size)
        .context("the signature runs past the end of the slice")?;
    if be32(blob, 0)? != SUPERBLOB_MAGIC {
        bail!("the signature is not a SuperBlob");
    }
    let mut directory = None;
    for i in 0..be32(blob, 8)? as usize {
        let (slot, at) = (be32(blob, 12 + i * 8)?, be32(blob, 16 + i * 8)? as usize);
        if slot == CODEDIRECTORY_SLOT {
            directory = Some(
                blob.get(at..)
                    .context("the CodeDirectory is past the blob")?,
            );
        }
    }
    let cd = directory.context("the signature has no CodeDirectory")?;
    if be32(cd, 0)? != CODEDIRECTORY_MAGIC {
        bail!("slot 0 is not a CodeDirectory");
    }
    let flags = be32(cd, 12)?;
    let hash_offset = be32(cd, 16)? as usize;
    let code_slots = be32(cd, 28)? as usize;
    let code_limit = be32(cd, 32)? as usize;
    let (hash_size, hash_type, page_shift) = (byte(cd, 36)?, byte(cd, 37)?, byte(cd, 39)?);
    if hash_type != HASH_SHA256 || hash_size != 32 {
        bail!("hash type {hash_type} of {hash_size} bytes, not SHA-256");
    }
    if code_limit != offset {
        bail!("the signature covers {code_limit} bytes, but the code runs to {offset}");
    }
    // A page size of 0 means one hash over everything up to the limit.
    let page_size = if page_shift == 0 {
        code_limit
    } else {
        1usize << page_shift
    };
    if code_slots != code_limit.div_ceil(page_size) {
        bail!("{code_slots} page hashes for {code_limit} bytes in pages of {page_size}");
    }
    for (page, code) in slice[..code_limit].chunks(page_size).enumerate() {
        let at = hash_offset + page * 32;
        let stored = cd
            .get(at..at + 32)
            .context("a page hash lies past the CodeDirectory")?;
        if Sha256::digest(code).as_slice() != stored {
            bail!(
                "page {page} (bytes {}..) does not match its hash: the file changed after signing",
                page * page_size
            );
        }
    }
    Ok(Signature {
        pages: code_slots,
        page_size,
        ad_hoc: flags & CS_ADHOC != 0,
        linker_signed: flags & CS_LINKER_SIGNED != 0,
    })
}

fn be32(bytes: &[u8], at: usize) -> Result<u32> {
    word(bytes, at).map(u32::from_be_bytes)
}

fn le32(bytes: &[u8], at: usize) -> Result<u32> {
    word(bytes, at).map(u32::from_le_bytes)
}

fn word(bytes: &[u8], at: usize) -> Result<[u8; 4]> {
    bytes
        .get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .with_context(|| format!("cut off at byte {at}"))
}

fn byte(bytes: &[u8], at: usize) -> Result<u8> {
    bytes
        .get(at)
        .copied()
        .with_context(|| format!("cut off at byte {at}"))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// `int main(void){return 0;}` linked by Zig 0.17.0 (`zig cc -Os -s -target
    /// aarch64-macos.13.0`, and x86_64), merged by `llvm-lipo-22 -create`: a real universal
    /// binary signed the way dist's is, gzipped (it is mostly padding).
    fn universal() -> Vec<u8> {
        let gz = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/dist/fixtures/zig-hello-universal.gz"
        );
        let out = Command::new("gzip").args(["-dc", gz]).output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[test]
    fn the_real_linker_signature_holds() {
        assert_eq!(
            verify_arm64(&universal()).unwrap(),
            Signature {
                pages: 4,
                page_size: 16384,
                ad_hoc: true,
                linker_signed: true,
            }
        );
    }

    #[test]
    fn a_byte_changed_after_signing_is_caught() {
        let mut file = universal();
        let (arm64, _) = arm64_slice(&file).unwrap();
        file[arm64 + 16384 + 10] ^= 1;
        let err = verify_arm64(&file).unwrap_err().to_string();
        assert_eq!(
            err,
            "page 1 (bytes 16384..) does not match its hash: the file changed after signing"
        );
    }

    #[test]
    fn a_thin_or_truncated_file_is_refused() {
        let file = universal();
        let (arm64, _) = arm64_slice(&file).unwrap();
        assert_eq!(
            verify_arm64(&file[arm64..]).unwrap_err().to_string(),
            "not a universal (fat) Mach-O"
        );
        assert!(verify_arm64(&file[..arm64 + 100]).is_err());
    }
}
