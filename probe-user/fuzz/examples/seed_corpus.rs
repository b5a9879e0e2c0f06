//! Seeds the fuzz targets' corpora from the project's own fixtures, so the fuzzers start
//! from real input rather than from nothing: `seed_corpus FIXTURES_DIR CORPUS_DIR` (run by
//! `cargo xtask fuzz`). For each DTrace capture in FIXTURES_DIR it writes, under
//! CORPUS_DIR/dtrace_parser, the capture and each of its records alone after the header,
//! and under CORPUS_DIR/replay_parser, the capture's events as `hupwatch trace --json`
//! writes them (what `--replay` reads) and each event line alone. A `.jsonl` fixture is
//! taken as a recording as it is. Seeds are named by their content, so running it again
//! adds nothing twice.
use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
};

use hupwatch::{output::write_json, source::dtrace::DtraceInput};

const HEADER: &[u8] = b"hupwatch-dtrace 1\n";

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [fixtures, corpus] = args.as_slice() else {
        eprintln!("usage: seed_corpus FIXTURES_DIR CORPUS_DIR");
        return ExitCode::from(2);
    };
    match seed(fixtures, corpus) {
        Ok((dtrace, replay)) => {
            eprintln!(
                "seed_corpus: {dtrace} dtrace_parser and {replay} replay_parser seeds from {}",
                fixtures.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("seed_corpus: {err}");
            ExitCode::FAILURE
        }
    }
}

fn seed(fixtures: &Path, corpus: &Path) -> std::io::Result<(usize, usize)> {
    let mut dtrace_seeds: Vec<Vec<u8>> = Vec::new();
    let mut replay_seeds: Vec<Vec<u8>> = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(fixtures)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries.iter().filter(|p| p.is_file()) {
        let bytes = fs::read(path)?;
        if path.extension().is_some_and(|e| e == "jsonl") {
            replay_seeds.extend(lines(&bytes));
            replay_seeds.push(bytes);
            continue;
        }
        if !bytes.starts_with(HEADER) {
            continue;
        }
        // The capture, and each record alone: short inputs mutate into new ones faster.
        for record in lines(&bytes[HEADER.len()..]) {
            dtrace_seeds.push([HEADER, &record].concat());
        }
        let mut input = DtraceInput::new(&bytes[..]);
        input.header().expect("starts with the header");
        let mut recording = Vec::new();
        for event in input.by_ref() {
            let mut line = Vec::new();
            write_json(&mut line, &event)?;
            recording.extend_from_slice(&line);
            replay_seeds.push(line);
        }
        replay_seeds.push(recording);
        dtrace_seeds.push(bytes);
    }
    Ok((
        write_all(&corpus.join("dtrace_parser"), &dtrace_seeds)?,
        write_all(&corpus.join("replay_parser"), &replay_seeds)?,
    ))
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|line| line.len() > 1)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Writes each seed to a file named by a hash of its content; returns how many it wrote.
fn write_all(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    for seed in seeds {
        fs::write(dir.join(format!("seed-{:016x}", fnv1a(seed))), seed)?;
    }
    Ok(seeds.len())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
