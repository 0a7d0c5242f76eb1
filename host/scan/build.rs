//! Compiles the built-in analyzers to WebAssembly components and embeds them: one
//! `cargo build --release` yields a `bulkhead` binary that needs nothing else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// The sandbox's compiling settings, shared with the run time (no crate to depend on here).
#[cfg(feature = "ahead-of-time")]
#[path = "src/sandbox/compiler.rs"]
#[allow(unreachable_pub)] // public in the library, private in this script
mod compiler;

/// The built-in analyzers, by cargo package name.
const BUILTIN: &[&str] = &[
    "bulkhead-analyzer-dpkg",
    "bulkhead-analyzer-apk",
    "bulkhead-analyzer-rpm",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = bulkhead_wasm_build::workspace_root_from(&manifest);
    let components = bulkhead_wasm_build::build(&workspace, BUILTIN);

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));

    let ahead = ahead_of_time(&components, &out);
    let mut code = String::from(
        "/// Built-in analyzer components, compiled by build.rs: (package, component, the\n\
         /// component compiled ahead of time for this machine when the build could).\n\
         pub(crate) static BUILTIN: &[(&str, &[u8], Option<crate::sandbox::Ahead>)] = &[\n",
    );
    for (i, c) in components.iter().enumerate() {
        let ahead = ahead.get(i).and_then(Option::as_ref).map_or_else(
            || "None".to_string(),
            |(key, path)| {
                format!(
                    "Some(crate::sandbox::Ahead {{ key: {key:?}, artifact: include_bytes!({path:?}) }})"
                )
            },
        );
        let _ = writeln!(
            code,
            "    ({:?}, include_bytes!({:?}), {ahead}),",
            c.package, c.path
        );
    }
    code.push_str("];\n");
    // `bulkhead version` names the sandbox's engine; wasmtime exports no version constant,
    // so it is read from the lock file that chose it.
    let lock = workspace.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let wasmtime = std::fs::read_to_string(&lock)
        .ok()
        .and_then(|text| {
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line == "name = \"wasmtime\"" {
                    return lines.next().and_then(|v| {
                        v.strip_prefix("version = \"")
                            .and_then(|v| v.strip_suffix('"'))
                            .map(str::to_string)
                    });
                }
            }
            None
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BULKHEAD_WASMTIME_VERSION={wasmtime}");
    std::fs::write(out.join("builtin.rs"), code).expect("write builtin.rs");
}

/// Each component compiled ahead of time (its key and the artifact's path), when the
/// `ahead-of-time` feature is on and the build can (see [`ahead_of_time_engine`]).
#[cfg(feature = "ahead-of-time")]
fn ahead_of_time(
    components: &[bulkhead_wasm_build::Component],
    out: &Path,
) -> Vec<Option<(String, PathBuf)>> {
    let engine = ahead_of_time_engine();
    components
        .iter()
        .map(|c| engine.as_ref().map(|e| precompile(e, &c.path, out)))
        .collect()
}

/// Without the `ahead-of-time` feature, the first run compiles (and caches) them.
#[cfg(not(feature = "ahead-of-time"))]
fn ahead_of_time(
    _components: &[bulkhead_wasm_build::Component],
    _out: &Path,
) -> Vec<Option<(String, PathBuf)>> {
    Vec::new()
}

/// The engine that compiles ahead of time, with the sandbox's settings (`compiler.rs`) and
/// the default stack bound. Only when the binary will run where it is built: code compiled
/// here is for this machine's CPU, and a cross build would carry artifacts no target CPU
/// can load. `BULKHEAD_NO_AHEAD_OF_TIME=1` leaves them out (then the first run compiles).
#[cfg(feature = "ahead-of-time")]
fn ahead_of_time_engine() -> Option<wasmtime::Engine> {
    println!("cargo:rerun-if-env-changed=BULKHEAD_NO_AHEAD_OF_TIME");
    if std::env::var_os("BULKHEAD_NO_AHEAD_OF_TIME").is_some_and(|v| v != "0") {
        return None;
    }
    if std::env::var("TARGET").ok() != std::env::var("HOST").ok() {
        return None;
    }
    match wasmtime::Engine::new(&compiler::config(compiler::DEFAULT_MAX_WASM_STACK)) {
        Ok(engine) => Some(engine),
        Err(e) => {
            println!("cargo:warning=no ahead-of-time analyzers (the first run compiles them): {e}");
            None
        }
    }
}

/// Compiles the component at `wasm` into `out`; its key and path.
#[cfg(feature = "ahead-of-time")]
fn precompile(engine: &wasmtime::Engine, wasm: &Path, out: &Path) -> (String, PathBuf) {
    use sha2::Digest as _;
    let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    let key = compiler::artifact_key(engine, &sha256);
    let artifact = engine
        .precompile_component(&bytes)
        .unwrap_or_else(|e| panic!("compiling {} ahead of time: {e:#}", wasm.display()));
    let path = out.join(format!("{key}.cwasm"));
    std::fs::write(&path, artifact).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (key, path)
}
