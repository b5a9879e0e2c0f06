//! Builds the eBPF programs (probe-ebpf) for the bpf target with aya-build, so a plain
//! `cargo build` produces a hupwatch with its programs embedded. Needs the nightly
//! toolchain with rust-src and bpf-linker: `cargo xtask setup` installs them.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
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
