//! Compiles the test guests so that `cargo test` just works, as wasmtime's
//! `test-programs/artifacts` does.

use std::fmt::Write as _;
use std::path::PathBuf;

const GUESTS: &[&str] = &["bulkhead-guest-hostile", "bulkhead-guest-liar"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = bulkhead_wasm_build::workspace_root_from(&manifest);
    let components = bulkhead_wasm_build::build(&workspace, GUESTS);
    let mut code = String::new();
    for c in &components {
        let konst = c
            .package
            .trim_start_matches("bulkhead-guest-")
            .replace('-', "_")
            .to_uppercase();
        let _ = writeln!(code, "/// `{}` compiled to a component.", c.package);
        let _ = writeln!(code, "pub const {konst}: &str = {:?};", c.path);
    }
    // The same hostile guest with code that needs wasi:sockets: the host must refuse it.
    let socket = bulkhead_wasm_build::build_with_features(
        &workspace,
        &["bulkhead-guest-hostile"],
        &["bulkhead-guest-hostile/socket"],
        "socket",
    );
    let _ = writeln!(
        code,
        "/// The hostile guest built with its `socket` feature: imports wasi:sockets."
    );
    let _ = writeln!(
        code,
        "pub const HOSTILE_SOCKET: &str = {:?};",
        socket[0].path
    );
    // The lying guest declaring its own ecosystem instead of the built-in apk analyzer's.
    let own = bulkhead_wasm_build::build_with_features(
        &workspace,
        &["bulkhead-guest-liar"],
        &["bulkhead-guest-liar/own-ecosystem"],
        "liar-own",
    );
    let _ = writeln!(
        code,
        "/// The lying guest built with its `own-ecosystem` feature: declares ecosystem `liar`."
    );
    let _ = writeln!(
        code,
        "pub const LIAR_OWN_ECOSYSTEM: &str = {:?};",
        own[0].path
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("guests.rs"), code).expect("write guests.rs");
}
