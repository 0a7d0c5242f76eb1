//! Compiles the built-in analyzers to WebAssembly components and embeds them: one
//! `cargo build --release` yields a `bulkhead` binary that needs nothing else.

use std::fmt::Write as _;
use std::path::PathBuf;

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

    let mut code = String::from(
        "/// Built-in analyzer components, compiled by build.rs.\n\
         pub(crate) static BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for c in &components {
        let _ = writeln!(code, "    ({:?}, include_bytes!({:?})),", c.package, c.path);
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("builtin.rs"), code).expect("write builtin.rs");
}
