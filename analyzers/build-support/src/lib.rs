//! Compiles workspace crates to `wasm32-wasip2` components from a build script.
//!
//! The host embeds the built-in analyzers and the tests need hostile guests; both are
//! workspace crates built for another target. A build script runs a nested
//! `cargo build --target wasm32-wasip2 --profile analyzer` with its own target directory
//! (sharing the outer one would deadlock on cargo's build lock), the way wasmtime's
//! `test-programs/artifacts` does. No `.wasm` file is ever checked in.

#![forbid(unsafe_code)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target every component is built for.
pub const TARGET: &str = "wasm32-wasip2";
/// The cargo profile in the workspace `Cargo.toml` (LTO, strip, `panic = "abort"`).
pub const PROFILE: &str = "analyzer";
/// A rustup toolchain to build the components with instead of the one building the host,
/// e.g. `BULKHEAD_WASM_TOOLCHAIN=1.95.0` when fuzzing with a nightly that has no
/// [`TARGET`] (`fuzz/`).
pub const TOOLCHAIN_VAR: &str = "BULKHEAD_WASM_TOOLCHAIN";

/// One built component.
#[derive(Debug, Clone)]
pub struct Component {
    /// The cargo package name, e.g. `bulkhead-analyzer-dpkg`.
    pub package: String,
    /// The `.wasm` file.
    pub path: PathBuf,
}

/// Build `packages` (cargo package names of `cdylib` crates in the workspace at
/// `workspace`) and return their components in the same order.
///
/// Panics with an actionable message when the build fails: this only runs inside build
/// scripts, where a panic is how a failure is reported.
pub fn build(workspace: &Path, packages: &[&str]) -> Vec<Component> {
    build_with_features(workspace, packages, &[], "default")
}

/// Like [`build`], with cargo features enabled; `variant` names this set of features.
///
/// Every variant is built in the one target directory `target/wasm-components`, so that
/// the guests' dependencies (wit-bindgen and its macro stack) are compiled once, not once
/// per variant; each build's components are then copied to
/// `target/wasm-components/built/<variant>/`, since the next variant's build replaces the
/// file cargo wrote.
pub fn build_with_features(
    workspace: &Path,
    packages: &[&str],
    features: &[&str],
    variant: &str,
) -> Vec<Component> {
    println!("cargo:rerun-if-env-changed={TOOLCHAIN_VAR}");
    let toolchain = env::var(TOOLCHAIN_VAR).ok().filter(|t| !t.is_empty());
    if toolchain.is_none() {
        ensure_target();
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace.join(d)
            }
        })
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-components");

    // Re-run when any guest source, the contract or the lock file changes.
    for dir in ["wit", "analyzers", "tests/guests"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in ["Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }

    let mut cmd = match &toolchain {
        Some(t) => {
            let mut cmd = Command::new("rustup");
            cmd.args(["run", t, "cargo"]);
            // The outer build's compiler and cargo would win over the toolchain's.
            for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN"] {
                cmd.env_remove(var);
            }
            cmd
        }
        None => Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into())),
    };
    cmd.current_dir(workspace)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    // What the outer build sets for the host target must not leak into the guest build:
    // flags for x86_64, clippy's wrapper, the outer target directory.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run cargo to build the wasm components: {e}"),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            "\n\nThe wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`."
        } else {
            ""
        };
        panic!("building the wasm components {packages:?} failed:\n{stderr}{hint}");
    }

    let kept = target_dir.join("built").join(variant);
    if let Err(e) = std::fs::create_dir_all(&kept) {
        panic!("cannot create {}: {e}", kept.display());
    }
    packages
        .iter()
        .map(|p| {
            let file = format!("{}.wasm", p.replace('-', "_"));
            let built = target_dir.join(TARGET).join(PROFILE).join(&file);
            let bytes = std::fs::read(&built).unwrap_or_else(|e| {
                panic!("cargo built {p} but {} is unreadable: {e}", built.display())
            });
            let path = kept.join(&file);
            // Rewritten only when it changed: its time stamp is what cargo compares when
            // deciding whether a crate that embeds it must be rebuilt.
            if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice())
                && let Err(e) = std::fs::write(&path, &bytes)
            {
                panic!("cannot write {}: {e}", path.display());
            }
            Component {
                package: (*p).to_string(),
                path,
            }
        })
        .collect()
}

/// Makes sure the toolchain building us can build for [`TARGET`], before anything is
/// compiled for it: a toolchain without the target used to fail only after the nested
/// build, minutes later, with a message about `core`. With rustup the target is added
/// (and said, as a cargo warning); without it the build stops at once with the command.
fn ensure_target() {
    if target_installed() {
        return;
    }
    let rustup = env::var_os("RUSTUP_HOME").is_some() || which("rustup");
    if rustup {
        println!(
            "cargo:warning=the {TARGET} target is missing from this toolchain; adding it with `rustup target add {TARGET}` (the built-in analyzers are compiled for it)"
        );
        // RUSTUP_TOOLCHAIN, set by rustup's cargo proxy, selects the toolchain building us.
        let added = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status()
            .is_ok_and(|s| s.success());
        if added && target_installed() {
            return;
        }
    }
    panic!(
        "the Rust target {TARGET} is not installed for this toolchain, and it could not be added: run `rustup target add {TARGET}` (or install your distribution's rust-std for {TARGET}) and build again"
    );
}

/// Whether the sysroot of the compiler building us has the standard library for [`TARGET`].
fn target_installed() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        // No way to ask: let the nested build say what is wrong.
        return true;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

fn which(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The workspace root, two levels above a crate at `<root>/<group>/<crate>`.
pub fn workspace_root_from(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .unwrap_or(manifest_dir)
        .to_path_buf()
}
