//! The hostile-analyzer suite: a real component (`tests/guests/hostile`) attacks the
//! sandbox in every way we know; each attack must be stopped by the limit meant for it,
//! the host must stay bounded, and nothing outside the mount may be read or changed.

use std::path::PathBuf;

use bulkhead_model::Origin;
use bulkhead_scan::sandbox::{Limits, LoadError, Loaded, Outcome, RunError, Sandbox, Verdict};
use bulkhead_test_artifacts::{HOSTILE, HOSTILE_SOCKET};

/// Small limits so that every attack ends quickly.
fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        time_ms: 1_000,
        hostcall_fuel: 8 << 20,
        max_packages: 1_000,
        max_handles: 64,
        stderr_bytes: 4 << 10,
        ..Limits::default()
    }
}

struct Fixture {
    _home: tempfile::TempDir,
    sandbox: Sandbox,
    hostile: Loaded,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let home = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(&home.path().join("components"), limits()).expect("sandbox");
    let bytes = std::fs::read(HOSTILE).expect("hostile guest built by tests/artifacts");
    let hostile = rt
        .block_on(sandbox.load(&bytes, Origin::Path(PathBuf::from(HOSTILE))))
        .expect("the hostile guest itself imports nothing forbidden");
    Fixture {
        _home: home,
        sandbox,
        hostile,
    }
}

/// A layer tree with the mode file and a status file to attack.
fn layer(mode: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::write(t.path().join("hostile.mode"), mode).expect("write mode");
    std::fs::create_dir_all(t.path().join("var/lib/dpkg")).expect("mkdir");
    std::fs::write(t.path().join("var/lib/dpkg/status"), STATUS).expect("write status");
    t
}

const STATUS: &str = "Package: a\nStatus: install ok installed\nVersion: 1\n";

fn run(f: &Fixture, rt: &tokio::runtime::Runtime, mode: &str) -> Outcome {
    let l = layer(mode);
    rt.block_on(f.sandbox.analyze(&f.hostile, l.path()))
}

fn warnings(o: &Outcome) -> Vec<(String, String)> {
    match &o.result {
        Ok(Verdict::Analysis(a)) => a
            .warnings
            .iter()
            .map(|w| (w.file.clone(), w.message.clone()))
            .collect(),
        other => panic!("expected an analysis, got {other:?}"),
    }
}

/// Peak resident memory of this test process, from /proc.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmHWM")
}

#[test]
fn infinite_loop_is_stopped_by_the_time_limit() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "loop");
    assert!(
        matches!(o.result, Err(RunError::TimedOut { limit_ms: 1_000 })),
        "{:?}",
        o.result
    );
}

#[test]
fn sleeping_in_a_host_call_is_stopped_by_the_timeout() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "sleep:30");
    assert!(
        matches!(o.result, Err(RunError::TimedOut { .. })),
        "{:?}",
        o.result
    );
}

#[test]
fn memory_bomb_and_grow_are_stopped_by_the_memory_limit() {
    let rt = runtime();
    let f = fixture(&rt);
    for mode in ["oom", "grow"] {
        let o = run(&f, &rt, mode);
        assert!(
            matches!(o.result, Err(RunError::OutOfMemory { limit_bytes }) if limit_bytes == 64 << 20),
            "{mode}: {:?}",
            o.result
        );
    }
    assert!(
        peak_rss_bytes() < 1 << 30,
        "host peak RSS {} bytes",
        peak_rss_bytes()
    );
}

#[test]
fn stack_overflow_is_a_trap_not_a_crash() {
    let rt = runtime();
    let f = fixture(&rt);
    for mode in ["stack", "stack:native"] {
        let o = run(&f, &rt, mode);
        assert!(
            matches!(
                o.result,
                Err(RunError::StackOverflow { .. })
                    | Err(RunError::OutOfMemory { .. })
                    | Err(RunError::Trapped { .. })
            ),
            "{mode}: {:?}",
            o.result
        );
    }
    // The native-stack variant must hit wasmtime's stack limit exactly.
    let o = run(&f, &rt, "stack:native");
    assert!(
        matches!(o.result, Err(RunError::StackOverflow { .. })),
        "{:?}",
        o.result
    );
}

#[test]
fn panic_is_reported_with_its_message() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "panic");
    assert!(
        matches!(o.result, Err(RunError::Trapped { .. })),
        "{:?}",
        o.result
    );
    assert!(
        o.stderr.contains("panicked on purpose"),
        "stderr: {:?}",
        o.stderr
    );
}

#[test]
fn nothing_outside_the_mount_is_readable() {
    let rt = runtime();
    let f = fixture(&rt);
    let l = layer("escape");
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("passwd"), "SECRET-HOST-FILE").expect("write");
    std::os::unix::fs::symlink(outside.path().join("passwd"), l.path().join("link-abs"))
        .expect("symlink");
    std::os::unix::fs::symlink(
        "../../../../../../../../etc/passwd",
        l.path().join("link-rel"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), l.path().join("dir-link")).expect("symlink");
    let o = rt.block_on(f.sandbox.analyze(&f.hostile, l.path()));
    let w = warnings(&o);
    let reads: Vec<_> = w
        .iter()
        .filter(|(probe, _)| probe.starts_with("read "))
        .collect();
    assert_eq!(reads.len(), 8, "{w:?}");
    for (probe, outcome) in &reads {
        assert!(
            outcome.starts_with("denied"),
            "{probe} was not denied: {outcome}"
        );
    }
    assert!(!format!("{w:?}").contains("SECRET-HOST-FILE"));
    assert!(!format!("{w:?}").contains("root:x:0"));
    let get = |p: &str| {
        w.iter()
            .find(|(probe, _)| probe == p)
            .map(|(_, m)| m.clone())
    };
    assert_eq!(get("env").as_deref(), Some("env: 0 vars"));
    assert_eq!(get("args").as_deref(), Some("args: 0"));
}

#[test]
fn the_mount_is_read_only() {
    let rt = runtime();
    let f = fixture(&rt);
    let l = layer("write");
    let o = rt.block_on(f.sandbox.analyze(&f.hostile, l.path()));
    let w = warnings(&o);
    assert_eq!(w.len(), 7, "{w:?}");
    for (probe, outcome) in &w {
        assert!(
            outcome.starts_with("denied"),
            "{probe} was not denied: {outcome}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(l.path().join("var/lib/dpkg/status")).expect("status"),
        STATUS
    );
    for created in ["pwned", "newdir", "hl", "renamed"] {
        assert!(!l.path().join(created).exists(), "{created} was created");
    }
}

#[test]
fn output_amplification_is_stopped_by_hostcall_fuel() {
    let rt = runtime();
    let f = fixture(&rt);
    // 900 package names aliasing one 1 MiB buffer: 900 MiB once lifted.
    let o = run(&f, &rt, "alias:900:1048576");
    assert!(
        matches!(o.result, Err(RunError::OutputTooLarge { .. })),
        "{:?}",
        o.result
    );
    assert!(
        peak_rss_bytes() < 1 << 30,
        "host peak RSS {} bytes",
        peak_rss_bytes()
    );
}

#[test]
fn too_many_packages_are_refused_and_a_fair_number_accepted() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "bigout:5000");
    assert!(
        matches!(
            o.result,
            Err(RunError::TooManyPackages {
                count: 5000,
                limit: 1000
            })
        ),
        "{:?}",
        o.result
    );
    let o = run(&f, &rt, "bigout:1000");
    match o.result {
        Ok(Verdict::Analysis(a)) => assert_eq!(a.packages.len(), 1000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn handle_exhaustion_is_stopped_by_the_table_cap() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "fds:100000");
    match &o.result {
        Err(RunError::TooManyHandles { limit: 64 }) => {}
        // If WASI returns an error to the guest instead of trapping, it must have been
        // refused before opening anywhere near 100,000 host files.
        Ok(Verdict::Analysis(a)) => {
            let msg = &a.warnings[0].message;
            let opened: usize = msg
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect("count");
            assert!(opened <= 64, "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stderr_flood_is_capped() {
    let rt = runtime();
    let f = fixture(&rt);
    let o = run(&f, &rt, "spam:10");
    assert!(o.stderr_truncated);
    assert!(o.stderr.len() <= 4 << 10);
}

#[test]
fn a_socket_import_is_refused_at_load() {
    let rt = runtime();
    let home = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(&home.path().join("c"), limits()).expect("sandbox");
    let bytes = std::fs::read(HOSTILE_SOCKET).expect("socket variant");
    let err = rt
        .block_on(sandbox.load(&bytes, Origin::Path(HOSTILE_SOCKET.into())))
        .expect_err("refused");
    match &err {
        LoadError::ForbiddenImport { import, .. } => {
            assert!(import.starts_with("wasi:sockets/"), "{import}")
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("wasi:sockets"), "{err}");
}

#[test]
fn modules_that_are_not_analyzers_are_refused_with_a_reason() {
    let rt = runtime();
    let home = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::new(&home.path().join("c"), limits()).expect("sandbox");
    let origin = || Origin::Path(PathBuf::from("x.wasm"));
    // A core module (wasm32-unknown-unknown output) is not a component.
    let core = b"\0asm\x01\0\0\0";
    assert!(matches!(
        rt.block_on(sandbox.load(core, origin())),
        Err(LoadError::NotAComponent { .. })
    ));
    assert!(matches!(
        rt.block_on(sandbox.load(b"MZ not wasm", origin())),
        Err(LoadError::NotAComponent { .. })
    ));
    // An empty component is valid wasm but exports nothing of the world.
    let empty = b"\0asm\x0d\0\x01\0";
    let err = rt
        .block_on(sandbox.load(empty, origin()))
        .expect_err("refused");
    assert!(matches!(err, LoadError::BadWorld { .. }), "{err}");
    assert!(
        err.to_string().contains("metadata") || err.to_string().contains("export"),
        "{err}"
    );
}

#[test]
fn compiled_components_are_cached_privately() {
    let rt = runtime();
    let f = fixture(&rt);
    let dir = f._home.path().join("components");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&dir).expect("dir").permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(entries.len(), 1, "one .cwasm for the hostile guest");
    // Loading again uses the cached artifact and gives the same analyzer.
    let bytes = std::fs::read(HOSTILE).expect("read");
    let again = rt
        .block_on(f.sandbox.load(&bytes, Origin::BuiltIn))
        .expect("load");
    assert_eq!(again.sha256, f.hostile.sha256);
    assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 1);
}
