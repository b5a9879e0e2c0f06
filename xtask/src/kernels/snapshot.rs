//! Copies of the test binaries and of hupwatch, which the guests run instead of cargo's.
//!
//! A guest reads the host's files as they are at each moment, and a build during the
//! matrix (a developer's, while it takes minutes) changes them under it: a guest once
//! executed a half-replaced hupwatch ("trap invalid opcode") and a dozen tests failed for
//! nothing. Copied once, right after the build, every guest also tests the same build.
//! The tests start hupwatch from the path compiled into them (`CARGO_BIN_EXE_hupwatch`),
//! so each guest mounts the copies' folder over the folder cargo put it in.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use super::binaries::{Built, TestBinary};

pub struct Snapshot {
    pub(super) dir: PathBuf,
    /// The copies of the test binaries, `dir/tests/TARGET`.
    pub tests: Vec<TestBinary>,
    /// The copy of the guard guest's binary.
    pub guard: TestBinary,
    /// (folder of copies, the folder of cargo's it stands for) for the programs.
    pub program_dirs: Vec<(PathBuf, PathBuf)>,
}

impl Snapshot {
    /// Copies what `built` names into `dir`, emptied first.
    pub fn take(built: Built, dir: &Path) -> Result<Snapshot> {
        let _ = fs::remove_dir_all(dir);
        let tests_dir = dir.join("tests");
        fs::create_dir_all(&tests_dir)
            .with_context(|| format!("creating {}", tests_dir.display()))?;
        let mut tests = Vec::new();
        for binary in built.tests {
            let path = tests_dir.join(binary.tests.target);
            copy(&binary.path, &path)?;
            tests.push(TestBinary { path, ..binary });
        }
        let path = tests_dir.join(built.guard.tests.target);
        copy(&built.guard.path, &path)?;
        let guard = TestBinary {
            path,
            ..built.guard
        };
        let mut program_dirs: Vec<(PathBuf, PathBuf)> = Vec::new();
        for program in &built.programs {
            let (Some(cargos), Some(file)) = (program.parent(), program.file_name()) else {
                continue;
            };
            let copies = match program_dirs.iter().find(|(_, of)| of == cargos) {
                Some((copies, _)) => copies.clone(),
                None => {
                    let copies = dir.join(format!("programs{}", program_dirs.len()));
                    fs::create_dir_all(&copies)
                        .with_context(|| format!("creating {}", copies.display()))?;
                    program_dirs.push((copies.clone(), cargos.to_owned()));
                    copies
                }
            };
            copy(program, &copies.join(file))?;
        }
        Ok(Snapshot {
            dir: dir.to_owned(),
            tests,
            guard,
            program_dirs,
        })
    }

    /// The copies are 100-odd MB: gone once the guests are.
    pub fn remove(self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(drop)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))
}
