//! Builds the eBPF programs (probe-ebpf) for the bpf target with aya-build, so a plain
//! `cargo build` produces a hupwatch with its programs embedded. Needs the nightly
//! toolchain with rust-src and bpf-linker: `cargo xtask setup` installs them.
use std::{env, fs, path::PathBuf, process::Command};

fn main() -> anyhow::Result<()> {
    commit();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("hupwatch-probes");
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if target_os != "linux" || skip {
        // hupwatch refuses to load an empty object with a message saying how to rebuild.
        if !object.exists() {
            fs::write(&object, [])?;
        }
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ebpf_dir = manifest_dir.join("../probe-ebpf");
    let root_dir = ebpf_dir.to_str().expect("a UTF-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "probe-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Nightly,
    )
}

/// HUPWATCH_COMMIT for `hupwatch --version`: the commit being built, from the caller's
/// HUPWATCH_COMMIT (a build from an exported tree) or git, else "unknown".
fn commit() {
    println!("cargo:rerun-if-env-changed=HUPWATCH_COMMIT");
    let commit = env::var("HUPWATCH_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HUPWATCH_COMMIT={commit}");
    // A new commit moves HEAD's branch (or HEAD itself when detached). Only files that
    // exist are named: cargo reruns a script whose named file is missing on every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_owned)
        .chain(branch);
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", &name])
            && fs::metadata(&path).is_ok()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
