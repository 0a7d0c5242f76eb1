//! The compiling half of the engine's configuration, for the two places that compile
//! analyzers: the sandbox at run time and `build.rs` ahead of time (which includes this
//! file with `#[path]`, having no crate to depend on). An artifact is loadable only by an
//! engine with the settings that compiled it, so both take them from here.

use std::hash::Hasher;

use sha2::{Digest, Sha256};

/// The default wasm stack bound (`sandbox.max_wasm_stack`). The bound is checked at run
/// time against a value in the instance, so artifacts fit any bound the user sets.
pub const DEFAULT_MAX_WASM_STACK: usize = 1 << 20;

/// The engine's settings: the component model, epoch interruption (how a call's time
/// limit stops a guest; it shapes the compiled code) and the wasm stack bound.
pub fn config(max_wasm_stack: usize) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(max_wasm_stack);
    config
}

/// Feeds `Hash` output into sha256, to turn `precompile_compatibility_hash` into a key
/// that is stable across runs and processes (std's hashers are randomly seeded).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The name of the compiled artifact of the component whose sha256 is `sha256`, for
/// `engine`: it changes with anything that makes an artifact incompatible (wasmtime's
/// version, the settings above, the CPU features compiled for).
pub fn artifact_key(engine: &wasmtime::Engine, sha256: &str) -> String {
    let mut h = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut h);
    h.0.update(sha256.as_bytes());
    hex::encode(h.0.finalize())[..32].to_string()
}
