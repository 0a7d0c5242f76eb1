//! A hostile analyzer for the sandbox tests. Never shipped.
//!
//! Each scan of a layer runs one attack, chosen by the layer itself: the file
//! `<root>/hostile.mode` holds `MODE[:ARG[:ARG2]]`. A layer without that file is
//! `not-applicable`, so the component can sit next to honest analyzers.
//!
//! Attacks that should trap (`loop`, `oom`, `stack`, `panic`, …) never return. Probes that
//! do not trap are returned as `warnings`: `file` names the probe, `message` is the
//! outcome. Every probe that the sandbox should block reports `denied: <error>` when it
//! is blocked and a message containing `OK` when it got through, so a test can assert on
//! the prefix alone.

// `unsafe` is allowed in this crate only, and only where marked: the leaking allocator and
// the `alias` mode need it (see their SAFETY comments). Analyzer crates forbid it.
#![deny(unsafe_code)]
// Natively only the unit tests call in: the exports exist on wasm32 only.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{ErrorKind, Write as _};
use std::path::Path;

use bulkhead_analyzer_sdk::{
    Analysis, AnalyzeError, FileRequest, InstalledPackage, Metadata, PathPattern, Warning,
};

/// The file, relative to the layer root, that selects the attack.
const MODE_FILE: &str = "hostile.mode";
/// A file the read and write attacks aim at; requested so that it is mounted.
const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// The `oom` mode allocates in chunks of this size, up to `OOM_LIMIT`.
const OOM_CHUNK: usize = 64 << 20;
/// All of a wasm32 address space: the `oom` mode must be stopped before this.
const OOM_LIMIT: u64 = 4 << 30;

/// An allocator that never frees.
///
/// The `alias` mode hands the host many `String`s that share one buffer. The generated
/// bindings free every returned string after the host has copied it (post-return), so with
/// a real allocator the same buffer would be freed N times. Never freeing also makes the
/// `oom` mode reach the memory limit without reuse muddying the numbers.
struct Leak;

// SAFETY: `alloc` and `alloc_zeroed` delegate to `System`, which meets `GlobalAlloc`'s
// contract; `dealloc` does nothing, which is always allowed (the memory is merely leaked).
// The default `realloc` allocates anew and copies, so it is correct too.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Leak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller guarantees a non-zero size, as `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Leak = Leak;

fn metadata() -> Metadata {
    Metadata {
        name: "hostile".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ecosystem: "none".to_string(),
        requests: vec![
            FileRequest {
                pattern: PathPattern::Exact(MODE_FILE.to_string()),
                max_size: 4096,
            },
            FileRequest {
                pattern: PathPattern::Exact(DPKG_STATUS.to_string()),
                max_size: 64 << 20,
            },
        ],
    }
}

fn analyze(root: &Path) -> Result<Analysis, AnalyzeError> {
    let mode_path = root.join(MODE_FILE);
    let text = match std::fs::read_to_string(&mode_path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(AnalyzeError::NotApplicable),
        Err(e) => return Err(AnalyzeError::Io(format!("{}: {e}", mode_path.display()))),
    };
    let spec = text.trim();
    let mut parts = spec.splitn(3, ':');
    let mode = parts.next().unwrap_or_default();
    let args: Vec<&str> = parts.collect();
    let arg = |i: usize| -> Result<usize, AnalyzeError> {
        let raw = args.get(i).copied().unwrap_or_default();
        raw.parse().map_err(|e| {
            AnalyzeError::Io(format!(
                "{}: mode {spec:?}: argument {} {raw:?}: {e}",
                mode_path.display(),
                i + 1
            ))
        })
    };

    let mut out = Out::default();
    match mode {
        "loop" => spin(),
        "oom" => oom(&mut out),
        #[cfg(target_arch = "wasm32")]
        "grow" => {
            // One raw request for 65535 pages (4 GiB - 64 KiB), bypassing the allocator:
            // the host's memory limiter must refuse it (-1, i.e. usize::MAX) or trap.
            let old = core::arch::wasm32::memory_grow(0, 65535);
            let result = if old == usize::MAX {
                "denied: memory.grow returned -1".to_string()
            } else {
                format!("GROW OK: memory.grow returned {old} (old size in pages)")
            };
            out.probe("memory.grow 65535 pages", result);
        }
        "stack" => match args.first().copied() {
            Some("native") => out.probe("stack", recurse_native(0).to_string()),
            _ => out.probe("stack", recurse_shadow(0).to_string()),
        },
        "panic" => panic!("hostile analyzer panicked on purpose"),
        "escape" => escape(&mut out),
        "write" => write(&mut out),
        "bigout" => {
            for i in 0..arg(0)? {
                out.packages.push(package(format!("pkg-{i}")));
            }
        }
        "alias" => alias(&mut out, arg(0)?, arg(1)?),
        "fds" => fds(&mut out, &mode_path, arg(0)?),
        "spam" => {
            let mib = arg(0)?;
            let chunk = vec![b'E'; 1 << 20];
            let mut stderr = std::io::stderr();
            let mut written = 0;
            for _ in 0..mib {
                // Errors are ignored on purpose: the attack is to keep writing whatever the
                // host does with the stream.
                if stderr.write_all(&chunk).is_ok() {
                    written += 1;
                }
            }
            out.probe("spam", format!("wrote {written} of {mib} MiB to stderr"));
        }
        "sleep" => {
            let secs = arg(0)?;
            std::thread::sleep(std::time::Duration::from_secs(secs as u64));
            out.probe("sleep", format!("SLEEP OK: slept {secs} s"));
        }
        #[cfg(feature = "socket")]
        "socket" => socket(&mut out),
        _ => {
            return Err(AnalyzeError::Io(format!("unknown mode {mode}")));
        }
    }
    Ok(Analysis {
        os: None,
        packages: out.packages,
        warnings: out.warnings,
    })
}

/// What an attack returns.
#[derive(Default)]
struct Out {
    packages: Vec<InstalledPackage>,
    warnings: Vec<Warning>,
}

impl Out {
    fn probe(&mut self, probe: &str, message: String) {
        self.warnings.push(Warning {
            file: probe.to_string(),
            line: 0,
            message,
        });
    }

    /// Report an operation that the sandbox should refuse: `ok` on success, `denied: …`
    /// with the error otherwise.
    fn attempt<T>(&mut self, probe: &str, result: std::io::Result<T>, ok: &str) {
        let message = match result {
            Ok(_) => ok.to_string(),
            Err(e) => format!("denied: {e}"),
        };
        self.probe(probe, message);
    }
}

fn package(name: String) -> InstalledPackage {
    InstalledPackage {
        name,
        version: "1.0".to_string(),
        source_name: None,
        source_version: None,
        arch: None,
        license: None,
        db_path: MODE_FILE.to_string(),
        files: Vec::new(),
        properties: Vec::new(),
    }
}

/// Burn CPU forever; only the host's epoch or fuel limit can stop it.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        // black_box keeps the optimizer from proving the loop side-effect free.
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Allocate and touch 64 MiB chunks until the allocator fails or 4 GiB are held.
fn oom(out: &mut Out) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut held: u64 = 0;
    while held < OOM_LIMIT {
        let mut chunk = Vec::new();
        if let Err(e) = chunk.try_reserve_exact(OOM_CHUNK) {
            out.probe(
                "oom",
                format!("denied: allocation failed after {held} bytes: {e}"),
            );
            return;
        }
        // Touch every byte so that the memory is really committed.
        chunk.resize(OOM_CHUNK, 0xAA);
        chunks.push(black_box(chunk));
        held += OOM_CHUNK as u64;
    }
    out.probe("oom", format!("OOM OK: allocated {held} bytes"));
}

/// Recurse with a 1 KiB array per frame: exhausts the linear-memory ("shadow") stack
/// that wasm32 keeps for addressable locals.
///
/// The stop condition is hidden behind black_box (so the recursion is not provably
/// infinite) and the array is read after the recursive call (so it cannot become a loop).
#[inline(never)]
fn recurse_shadow(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse_shadow(depth + 1);
    below.wrapping_add(u64::from(frame[(depth % 1024) as usize]))
}

/// Recurse with no addressable locals: exhausts the engine's native call stack.
#[inline(never)]
fn recurse_native(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse_native(black_box(depth + 1));
    below.wrapping_add(black_box(depth))
}

/// Try to read outside the mounted layer and to see the host's environment.
fn escape(out: &mut Out) {
    for path in [
        "/etc/passwd",
        "../etc/passwd",
        "/../../../etc/passwd",
        "/var/../../etc/passwd",
        "/proc/self/environ",
        // The tests plant these as symlinks to files outside the layer.
        "/link-abs",
        "/link-rel",
        "/dir-link/passwd",
    ] {
        let message = match std::fs::read(path) {
            Ok(bytes) => format!(
                "READ OK {} bytes: {:?}",
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
            ),
            Err(e) => format!("denied: {e}"),
        };
        out.probe(&format!("read {path}"), message);
    }
    out.probe("env", format!("env: {} vars", std::env::vars_os().count()));
    out.probe("args", format!("args: {}", std::env::args_os().count()));
}

/// Try to change the read-only layer.
fn write(out: &mut Out) {
    let status = format!("/{DPKG_STATUS}");
    out.attempt(
        "create /pwned",
        std::fs::write("/pwned", b"pwned"),
        "CREATE OK",
    );
    out.attempt(
        &format!("append {status}"),
        OpenOptions::new()
            .append(true)
            .open(&status)
            .and_then(|mut f| f.write_all(b"Package: pwned\n")),
        "APPEND OK",
    );
    out.attempt(
        &format!("truncate {status}"),
        OpenOptions::new().write(true).truncate(true).open(&status),
        "TRUNCATE OK",
    );
    out.attempt(
        "create_dir /newdir",
        std::fs::create_dir("/newdir"),
        "MKDIR OK",
    );
    out.attempt(
        &format!("remove_file {status}"),
        std::fs::remove_file(&status),
        "REMOVE OK",
    );
    out.attempt(
        &format!("rename {status}"),
        std::fs::rename(&status, "/renamed"),
        "RENAME OK",
    );
    out.attempt(
        &format!("hard_link {status}"),
        std::fs::hard_link(&status, "/hl"),
        "LINK OK",
    );
}

/// Output amplification: `count` packages whose names all share ONE `bytes`-byte buffer.
/// The guest spends `bytes` plus about 100 bytes per package; a host that lifts the result
/// naively copies `count * bytes`.
fn alias(out: &mut Out, count: usize, bytes: usize) {
    // A boxed slice's allocation is exactly `bytes` long, as `String::from_raw_parts`
    // requires of its capacity. Leaked: the strings below own it from now on.
    let buffer: &'static mut [u8] = Box::leak(vec![b'a'; bytes].into_boxed_slice());
    let ptr = buffer.as_mut_ptr();
    for _ in 0..count {
        // SAFETY: `ptr` comes from the global allocator with exactly `bytes` bytes of
        // align 1 (or is dangling with `bytes == 0`, which a zero-capacity String never
        // touches), and holds ASCII. Several Strings owning one buffer breaks String's
        // unique ownership, which is the point of the attack; it is acceptable here
        // because (1) the global allocator `Leak` never frees, so the buffer can never be
        // double-freed when the bindings drop these strings after the host has read them,
        // (2) nothing writes through any of them, and (3) this crate is a test guest that
        // is never shipped.
        #[allow(unsafe_code)]
        let name = unsafe { String::from_raw_parts(ptr, bytes, bytes) };
        out.packages.push(package(name));
    }
}

/// Descriptor exhaustion: open the mode file `count` times, keeping every handle.
fn fds(out: &mut Out, path: &Path, count: usize) {
    let mut handles: Vec<File> = Vec::new();
    let mut stopped = "no error".to_string();
    for _ in 0..count {
        match File::open(path) {
            Ok(f) => handles.push(f),
            Err(e) => {
                stopped = format!("denied: {e}");
                break;
            }
        }
    }
    out.probe(
        "fds",
        format!("opened {} of {count} handles; {stopped}", handles.len()),
    );
    // Held until here on purpose, so the host sees all of them open at once.
    drop(black_box(handles));
}

/// Network access. Only in the `socket` build: any use of std::net makes the component
/// import `wasi:sockets`, which the host refuses to load at all.
#[cfg(feature = "socket")]
fn socket(out: &mut Out) {
    out.attempt(
        "tcp connect 127.0.0.1:22",
        std::net::TcpStream::connect("127.0.0.1:22"),
        "CONNECT OK",
    );
    out.attempt(
        "udp bind 0.0.0.0:0",
        std::net::UdpSocket::bind("0.0.0.0:0"),
        "BIND OK",
    );
    out.attempt(
        "resolve localhost",
        std::net::ToSocketAddrs::to_socket_addrs("localhost:80"),
        "RESOLVE OK",
    );
}

#[cfg(target_arch = "wasm32")]
mod component {
    use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, Guest, Metadata, export};

    struct Hostile;

    impl Guest for Hostile {
        fn metadata() -> Metadata {
            super::metadata()
        }

        fn analyze(root: String) -> Result<Analysis, AnalyzeError> {
            super::analyze(std::path::Path::new(&root))
        }
    }

    export!(Hostile);
}

#[cfg(test)]
mod tests {
    //! Only the harmless modes run natively: the others attack the machine they run on.

    use super::*;

    fn layer(mode: &str) -> tempdir::Dir {
        let dir = tempdir::Dir::new();
        std::fs::write(dir.path().join(MODE_FILE), mode).expect("write mode file");
        dir
    }

    /// A throwaway directory, without a dependency for it.
    mod tempdir {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicU32, Ordering};

        pub(super) struct Dir(PathBuf);

        impl Dir {
            pub(super) fn new() -> Self {
                static NEXT: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "bulkhead-hostile-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).expect("create temp dir");
                Self(path)
            }

            pub(super) fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn metadata_requests_mode_file_and_dpkg_status() {
        let m = metadata();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("hostile", "6.6.6"));
        assert_eq!(m.ecosystem, "none");
        let exact: Vec<(String, u64)> = m
            .requests
            .into_iter()
            .map(|r| match r.pattern {
                PathPattern::Exact(p) => (p, r.max_size),
                _ => panic!("only exact requests expected"),
            })
            .collect();
        assert_eq!(
            exact,
            [
                ("hostile.mode".to_string(), 4096),
                ("var/lib/dpkg/status".to_string(), 64 << 20)
            ]
        );
    }

    #[test]
    fn no_mode_file_is_not_applicable() {
        let dir = tempdir::Dir::new();
        assert!(matches!(
            analyze(dir.path()),
            Err(AnalyzeError::NotApplicable)
        ));
    }

    #[test]
    fn unknown_mode_and_bad_arguments_are_io_errors() {
        let dir = layer("frobnicate:1\n");
        match analyze(dir.path()) {
            Err(AnalyzeError::Io(m)) => assert_eq!(m, "unknown mode frobnicate"),
            _ => panic!("expected an io error"),
        }
        let dir = layer("bigout:many");
        match analyze(dir.path()) {
            Err(AnalyzeError::Io(m)) => assert!(m.contains("\"many\""), "{m}"),
            _ => panic!("expected an io error"),
        }
    }

    #[test]
    fn bigout_returns_distinct_packages() {
        let dir = layer(" bigout:3 \n");
        let a = analyze(dir.path()).expect("bigout succeeds");
        let names: Vec<&str> = a.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["pkg-0", "pkg-1", "pkg-2"]);
        assert!(a.packages.iter().all(|p| p.version == "1.0"));
    }

    #[test]
    fn alias_names_share_one_buffer() {
        let dir = layer("alias:4:1000");
        let a = analyze(dir.path()).expect("alias succeeds");
        assert_eq!(a.packages.len(), 4);
        let first = a.packages[0].name.as_ptr();
        for p in &a.packages {
            assert_eq!(p.name.len(), 1000);
            assert!(p.name.bytes().all(|b| b == b'a'));
            assert_eq!(p.name.as_ptr(), first, "every name aliases one allocation");
        }
    }

    #[test]
    fn fds_keeps_every_handle() {
        let dir = layer("fds:5");
        let a = analyze(dir.path()).expect("fds succeeds");
        assert_eq!(a.warnings.len(), 1);
        assert_eq!(a.warnings[0].message, "opened 5 of 5 handles; no error");
    }
}
