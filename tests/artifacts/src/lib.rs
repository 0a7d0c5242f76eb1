//! What the tests share: the test guests (hostile analyzers) compiled to components, fixture
//! paths, OCI image builders ([`images`]), and a harness that runs a real registry
//! ([`registry`]) and pushes to it with skopeo ([`skopeo`]).
//!
//! Everything here is test code: helpers panic with a message that says what failed, and
//! the fallible building blocks return `io::Result` for tests that want to look at errors.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

pub mod apk_tools;
pub mod hostile_registry;
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

/// `len` bytes of xorshift noise from `seed` (not zero): incompressible enough for bombs
/// and garbage inputs, and the same on every run.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Copies the tree `from` into `to` (created), files made writable: fixtures are copied
/// before a test edits them, and a registry's storage before a bench multiplies it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
            let mut perm = std::fs::metadata(&target).expect("meta").permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perm.set_readonly(false);
            std::fs::set_permissions(&target, perm).expect("chmod");
        }
    }
}

/// True when `CI` is set to a non-empty value (`.ci/run` exports `CI=1`).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------
// The skip policy: one for every test of the workspace that needs something outside Rust
// (an oracle such as dpkg-query, rpm, python3-rpm or node-semver; a real registry,
// skopeo, htpasswd; PostgreSQL).
// ---------------------------------------------------------------------------------------

/// The test cannot run here because of `reason`. Outside CI: prints
/// `skipping <test>: <reason>` and returns false, so that `cargo test` on a machine without
/// the tools still runs everything else. With `CI` set: panics with the reason, because
/// `.ci/run` installs every tool and a silently skipped test would hide a broken setup.
///
/// Always returns false, so a test can write `if !available { return skip("..."); }` or
/// `require(available, "...")`.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) -> bool {
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    };
    assert!(
        !in_ci(),
        "CI is set, so {test} may not skip: {reason} (.ci/run installs what the tests need)"
    );
    eprintln!("skipping {test}: {reason}");
    false
}

/// `available`, or [`skip`] with `reason`.
#[track_caller]
pub fn require(available: bool, reason: impl std::fmt::Display) -> bool {
    available || skip(reason)
}

/// The Debian package that provides a test tool, for the skip message.
fn package_of(tool: &str) -> &str {
    match tool.rsplit('/').next().unwrap_or(tool) {
        "dpkg-query" | "dpkg" => "dpkg",
        "rpm" | "rpmkeys" => "rpm",
        "rpmbuild" => "rpm",
        "docker-registry" => "docker-registry",
        "htpasswd" => "apache2-utils",
        "semver" | "node" => "node-semver",
        "python3" => "python3",
        "pg_ctl" | "initdb" | "postgres" => "postgresql",
        other => other,
    }
}

/// Whether every program in `tools` (a name looked up in `PATH`, or an absolute path) is
/// installed; else [`skip`] naming the missing ones and their Debian packages.
#[track_caller]
pub fn require_tools(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_program(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| package_of(t)).collect();
    packages.dedup();
    skip(format_args!(
        "missing {} (apt-get install {})",
        missing.join(", "),
        packages.join(" ")
    ))
}

/// Debian's own python3 (`/usr/bin/python3`, else `python3` on `PATH`): python3-rpm,
/// python3-packaging and python3-jsonschema install into it, and a pyenv or venv `python3`
/// earlier on `PATH` would not see them.
pub fn debian_python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// [`debian_python`] if it imports every module in `modules` (`rpm`, `packaging`,
/// `jsonschema`); else [`skip`] naming the missing ones and their Debian packages.
#[track_caller]
pub fn require_python_modules(modules: &[&str]) -> Option<&'static str> {
    let python = debian_python();
    let missing: Vec<&str> = modules
        .iter()
        .copied()
        .filter(|m| {
            !std::process::Command::new(python)
                .args(["-c", &format!("import {m}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return Some(python);
    }
    let packages: Vec<String> = missing.iter().map(|m| format!("python3-{m}")).collect();
    skip(format_args!(
        "{python} lacks the module(s) {} (apt-get install {})",
        missing.join(", "),
        packages.join(" ")
    ));
    None
}

// ---------------------------------------------------------------------------------------
// Running a Bulkhead binary hermetically.
// ---------------------------------------------------------------------------------------

/// Makes `cmd` (a `bulkhead` binary, or a wrapper such as `setpriv … bulkhead`) independent
/// of the developer's environment: every `BULKHEAD_*` variable removed (a developer's
/// exported `BULKHEAD_DB` must never be the database a test writes), `BULKHEAD_HOME` set to
/// `home`, the working directory `home` (no `./.bulkheadignore` of a checkout applies),
/// `NO_COLOR` set, no proxy, and the registry credential files (`DOCKER_CONFIG`,
/// `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR`/`$XDG_CONFIG_HOME` `containers/auth.json`)
/// pointed at places under `home` that do not exist. `home` is created if missing.
pub fn hermetic<'c>(
    cmd: &'c mut std::process::Command,
    home: &Path,
) -> &'c mut std::process::Command {
    std::fs::create_dir_all(home)
        .unwrap_or_else(|e| panic!("creating the test home {}: {e}", home.display()));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BULKHEAD_") {
            cmd.env_remove(&key);
        }
    }
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env_remove(var).env_remove(var.to_lowercase());
    }
    cmd.env("BULKHEAD_HOME", home)
        .env("NO_COLOR", "1")
        .env("DOCKER_CONFIG", home.join("no-docker-config"))
        .env("XDG_RUNTIME_DIR", home.join("no-runtime-dir"))
        .env("XDG_CONFIG_HOME", home.join("no-config-home"))
        .env_remove("REGISTRY_AUTH_FILE")
        .current_dir(home)
}

// ---------------------------------------------------------------------------------------
// The two stores.
// ---------------------------------------------------------------------------------------

/// The two stores every store and service test runs on (see [`both!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// One test per store: for each named function `f(kind: StoreKind)`, a module `f` with the
/// tests `f::sqlite` and `f::postgres`. The function skips (returns early) when its store
/// is unavailable, through the skip policy ([`skip`]: a failure in CI).
///
/// `both!(a, b)` makes plain `#[test]`s; `both!(async a, b)` makes multi-threaded
/// `#[tokio::test]`s of `async fn f(kind: StoreKind)` (the calling crate depends on tokio).
#[macro_export]
macro_rules! both {
    (async $($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::StoreKind::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name($crate::StoreKind::Postgres).await
            }
        }
    )* };
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::StoreKind::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::StoreKind::Postgres)
            }
        }
    )* };
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

/// Feeds `requests` (one per line) to a process and returns its stdout lines, checking
/// that there is exactly one per request: one oracle process for thousands of questions.
pub fn pipe_oracle(program: &str, args: &[&str], requests: &[String]) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin piped");
    let input: String = requests.iter().map(|r| format!("{r}\n")).collect();
    // Write from a thread: the child answers while it reads, and a full stdout pipe
    // would otherwise deadlock both.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("oracle output");
    let written = writer.join().expect("writer thread");
    assert!(
        out.status.success() && written.is_ok(),
        "{program} failed ({}, writing: {written:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<String> = String::from_utf8(out.stdout)
        .expect("oracle prints UTF-8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        answers.len(),
        requests.len(),
        "{program} answered {} of {} requests",
        answers.len(),
        requests.len()
    );
    answers
}
