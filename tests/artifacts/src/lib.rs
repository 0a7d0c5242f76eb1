//! What the tests share: the test guests (hostile analyzers) compiled to components, fixture
//! paths, OCI image builders ([`images`]), and a harness that runs a real registry
//! ([`registry`]) and pushes to it with skopeo ([`skopeo`]).
//!
//! Everything here is test code: helpers panic with a message that says what failed, and
//! the fallible building blocks return `io::Result` for tests that want to look at errors.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub mod http;
pub mod images;
pub mod postgres;
pub mod registry;
pub mod service;
pub mod skopeo;
pub mod token;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// `tests/fixtures/<rel>` in this repository.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

/// True when `CI` is set to a non-empty value (CI runs `.ci/run` with `CI=true`).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Whether every program in `tools` (a name looked up in `PATH`, or an absolute path) is
/// installed, for tests that need external tools (docker-registry, skopeo, htpasswd, ...).
///
/// Missing tools outside CI: prints why the test is skipped and returns false, so a developer
/// without the apt packages still gets a green `cargo test`. Missing tools in CI: panics,
/// because CI installs them and a silently skipped end-to-end test would hide a broken setup.
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_program(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing tools {missing:?} (apt-get install docker-registry skopeo apache2-utils openssl)"
    );
    assert!(!in_ci(), "CI is set but {msg}");
    eprintln!("skipping: {msg}");
    false
}

/// Full path of `program`: itself if it contains a `/` and exists, else the first match in
/// `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
