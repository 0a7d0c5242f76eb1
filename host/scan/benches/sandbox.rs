//! Sandbox overhead, every built-in analyzer on the largest real database of its format,
//! measured side by side in one run. Per database:
//!
//! - native: the analyzer crate's own `analyze(root)` on the host (read + parse + convert);
//! - call: one `analyze` call on an already instantiated component (the guest reads,
//!   parses and converts; the host lifts and validates the result). This is the
//!   like-for-like comparison with native, and the issue 4 target: call / native ≤ 2;
//! - instantiate: what every call pays besides the guest's work (store, WASI context with
//!   the tree mounted, instantiation, and tearing the store down afterwards);
//! - end to end: `Sandbox::analyze`, both of the above, as a scan runs it.
//!
//! Rounds interleave the four measurements so that machine noise hits them alike. Also
//! printed: a call on an empty layer (the fixed cost of a scan per analyzer) and loading
//! the components on a first run (the artifacts build.rs compiled ahead of time), compiling
//! (the same components loaded from `target/`, as every first run did before) and warm
//! (`.cwasm` cache).
//!
//! Inputs: dpkg reads `BENCH_DPKG_STATUS` or this machine's `/var/lib/dpkg/status` (700+
//! packages on the project's Debian machines), once alone and once with the `info/*.list`
//! files beside it; the others read `tests/fixtures/`.
//! Run: `cargo bench -p bulkhead-scan --bench sandbox`. Knobs: `BENCH_ROUNDS` (default 300),
//! `BENCH_ONLY=<label substring>` to run one database (for profiling),
//! `BENCH_COMPONENTS=<dir>` to load the analyzers from `<dir>/*.wasm` instead of the
//! embedded ones (to compare guest builds), `BENCH_PROFILE=native|sandbox` to run only
//! that side after the first round (for `perf record`; the printed times are then
//! meaningless).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_scan::analyzers::{Registry, Sources};
use bulkhead_scan::sandbox::{Limits, Loaded, Sandbox, Verdict};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One database: where the analyzer finds it, and which native analyzer to compare with.
struct Case {
    label: String,
    analyzer: &'static str,
    /// The files to copy, and where each goes under the layer root.
    files: Vec<(PathBuf, String)>,
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let only = std::env::var("BENCH_ONLY").ok();
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");

    let status = std::env::var_os("BENCH_DPKG_STATUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/dpkg/status"));
    let mut cases = Vec::new();
    match std::fs::metadata(&status) {
        Ok(m) => {
            let status_file = (status.clone(), "var/lib/dpkg/status".to_string());
            cases.push(Case {
                label: format!("dpkg ({}, {} KB)", status.display(), m.len() >> 10),
                analyzer: "dpkg",
                files: vec![status_file.clone()],
            });
            // The same database with its owned-file lists, as a Debian image has them:
            // one more file read per package and a string per owned file.
            let info = status.with_file_name("info");
            let mut lists: Vec<(PathBuf, String)> = std::fs::read_dir(&info)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "list"))
                .filter_map(|p| {
                    let name = p.file_name()?.to_str()?.to_string();
                    Some((p, format!("var/lib/dpkg/info/{name}")))
                })
                .collect();
            if !lists.is_empty() {
                let bytes: u64 = lists
                    .iter()
                    .filter_map(|(p, _)| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                let label = format!("dpkg + {} info/*.list, {} KB", lists.len(), bytes >> 10);
                lists.push(status_file);
                cases.push(Case {
                    label,
                    analyzer: "dpkg",
                    files: lists,
                });
            }
        }
        Err(_) => eprintln!(
            "no dpkg status file at {}; set BENCH_DPKG_STATUS",
            status.display()
        ),
    }
    for (label, analyzer, from, to) in [
        (
            "apk (alpine 3.18)",
            "apk",
            "apk/alpine-3.18/lib/apk/db/installed",
            "lib/apk/db/installed",
        ),
        (
            "rpm sqlite (mariner 2.0)",
            "rpm",
            "rpm/sqlite/cbl-mariner-2.0/var/lib/rpm/rpmdb.sqlite",
            "var/lib/rpm/rpmdb.sqlite",
        ),
        (
            "rpm ndb (sle15 bci)",
            "rpm",
            "rpm/ndb/sle15-bci/Packages.db",
            "usr/lib/sysimage/rpm/Packages.db",
        ),
        (
            "rpm bdb (generated)",
            "rpm",
            "rpm/bdb/generated-le-1024/Packages",
            "var/lib/rpm/Packages",
        ),
    ] {
        let from = fixtures.join(from);
        let size = std::fs::metadata(&from).map(|m| m.len()).unwrap_or(0);
        cases.push(Case {
            label: format!("{label}, {} KB", size >> 10),
            analyzer,
            files: vec![(from, to.to_string())],
        });
    }
    if let Some(only) = &only {
        cases.retain(|c| c.label.contains(only.as_str()));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let home = tempfile::tempdir().expect("tempdir");
    let cache = home.path().join("components");
    let sandbox = Sandbox::new(&cache, Limits::default()).expect("sandbox");
    // BENCH_COMPONENTS=<dir>: load the analyzers from `dir/*.wasm` instead of the embedded
    // ones, to compare guest builds without rebuilding the host.
    let sources = match std::env::var_os("BENCH_COMPONENTS") {
        Some(dir) => Sources {
            builtin: false,
            paths: vec![],
            dirs: vec![PathBuf::from(dir)],
            confine: false,
        },
        None => Sources {
            builtin: true,
            paths: vec![],
            dirs: vec![],
            confine: false,
        },
    };

    // First run: a fresh cache, the built-in components as build.rs compiled them ahead of
    // time; then the same with an engine whose settings differ from the build's (one more
    // page of wasm stack), which must compile them, as every first run did before; warm:
    // load them again from the .cwasm cache.
    let t = Instant::now();
    let registry = rt
        .block_on(Registry::load(&sandbox, &sources))
        .expect("load");
    let cold_load = t.elapsed();
    let compiling = {
        // The same three components, from the files build.rs embedded, loaded as
        // third-party analyzers are: compiled with Cranelift into a fresh cache.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        let dir = target.join("wasm-components/built/default");
        let paths: Vec<PathBuf> = ["dpkg", "apk", "rpm"]
            .iter()
            .map(|a| dir.join(format!("bulkhead_analyzer_{a}.wasm")))
            .collect();
        let other = tempfile::tempdir().expect("tempdir");
        let sandbox = Sandbox::new(other.path(), Limits::default()).expect("sandbox");
        let sources = Sources {
            builtin: false,
            paths,
            dirs: vec![],
            confine: false,
        };
        let t = Instant::now();
        rt.block_on(Registry::load(&sandbox, &sources))
            .expect("load the built-in components from the target directory");
        t.elapsed()
    };
    let mut warm = Vec::new();
    for _ in 0..20 {
        let sandbox = Sandbox::new(&cache, Limits::default()).expect("sandbox");
        let t = Instant::now();
        rt.block_on(Registry::load(&sandbox, &sources))
            .expect("load");
        warm.push(t.elapsed());
    }
    let find = |name: &str| {
        registry
            .analyzers()
            .iter()
            .find(|a| a.meta.name == name)
            .expect("built-in analyzer")
            .clone()
    };

    println!(
        "per analyzer, largest real database of its format, medians of {rounds} interleaved rounds (ms)"
    );
    println!(
        "  {:<44} {:>4} {:>6} {:>7} {:>7} {:>6} {:>7} {:>7} {:>6}",
        "database", "pkgs", "files", "native", "call", "ratio", "inst", "e2e", "ratio"
    );
    for case in &cases {
        let root = tempfile::tempdir().expect("tempdir");
        for (from, to) in &case.files {
            let dest = root.path().join(to);
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::copy(from, &dest).expect("copy fixture");
        }
        let analyzer = find(case.analyzer);
        let t = match case.analyzer {
            "dpkg" => measure(&rt, &sandbox, &analyzer, root.path(), rounds, |r| {
                bulkhead_analyzer_dpkg::analyze(r)
                    .map(|a| (counts(&a.packages, |p| p.files.len()), a))
            }),
            "apk" => measure(&rt, &sandbox, &analyzer, root.path(), rounds, |r| {
                bulkhead_analyzer_apk::analyze(r)
                    .map(|a| (counts(&a.packages, |p| p.files.len()), a))
            }),
            _ => measure(&rt, &sandbox, &analyzer, root.path(), rounds, |r| {
                bulkhead_analyzer_rpm::analyze(r)
                    .map(|a| (counts(&a.packages, |p| p.files.len()), a))
            }),
        };
        println!(
            "  {:<44} {:>4} {:>6} {:>7.3} {:>7.3} {:>6.2} {:>7.3} {:>7.3} {:>6.2}",
            case.label,
            t.packages.0,
            t.packages.1,
            ms(t.native),
            ms(t.call),
            ms(t.call) / ms(t.native),
            ms(t.instantiate),
            ms(t.end_to_end),
            ms(t.end_to_end) / ms(t.native),
        );
    }
    println!("  (ratio: call / native, target <= 2; then end to end / native)");
    if only.is_some() {
        return;
    }

    // The fixed cost of a scan per analyzer: a call on an empty layer, where the
    // analyzer finds nothing.
    let empty = tempfile::tempdir().expect("tempdir");
    let dpkg = find("dpkg");
    let mut fixed = Vec::new();
    let mut inst = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let _ = rt.block_on(sandbox.analyze(&dpkg, empty.path()));
        fixed.push(t.elapsed());
        let t = Instant::now();
        let i = rt
            .block_on(sandbox.instantiate(&dpkg, empty.path()))
            .expect("instantiate");
        inst.push(t.elapsed());
        drop(i);
    }
    println!();
    println!(
        "  dpkg on an empty layer, end to end         {:8.3} ms",
        ms(median(fixed))
    );
    println!(
        "  instantiate (store + WASI ctx + instance)  {:8.3} ms (target <= 1)",
        ms(median(inst))
    );
    println!(
        "  load all built-in analyzers, first run     {:8.3} ms (compiled ahead of time by build.rs)",
        ms(cold_load)
    );
    println!(
        "  load all built-in analyzers, compiling     {:8.3} ms (the same components, compiled at load)",
        ms(compiling)
    );
    println!(
        "  load all built-in analyzers, warm          {:8.3} ms (.cwasm cache)",
        ms(median(warm))
    );
}

struct Times {
    native: Duration,
    call: Duration,
    instantiate: Duration,
    end_to_end: Duration,
    /// Packages and owned files, the strings that cross the boundary.
    packages: (usize, usize),
}

/// Packages and owned files of an analysis (native and host types differ).
fn counts<P>(packages: &[P], files: impl Fn(&P) -> usize) -> (usize, usize) {
    (packages.len(), packages.iter().map(files).sum())
}

/// Median times of one analyzer over `root`, and the package count (which native and
/// sandboxed runs must agree on). Neither side's timing includes dropping its result.
fn measure<T, E: std::fmt::Debug>(
    rt: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    analyzer: &Loaded,
    root: &Path,
    rounds: usize,
    native: impl Fn(&Path) -> Result<((usize, usize), T), E>,
) -> Times {
    let (mut n, mut c, mut i, mut e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut packages = (0, 0);
    let check = |o: bulkhead_scan::sandbox::Outcome, packages: (usize, usize)| match o.result {
        Ok(Verdict::Analysis(a)) => assert_eq!(counts(&a.packages, |p| p.files.len()), packages),
        other => panic!("sandboxed analysis failed: {other:?} {}", o.stderr),
    };
    let side = std::env::var("BENCH_PROFILE").unwrap_or_default();
    for round in 0..rounds {
        if side == "sandbox" && round > 0 {
            let mut instance = rt.block_on(sandbox.instantiate(analyzer, root)).expect("i");
            let o = rt.block_on(sandbox.analyze_instance(&mut instance));
            check(o, packages);
            continue;
        }
        if side == "native" && round > 0 {
            let _ = native(root).expect("native analysis");
            continue;
        }
        let t = Instant::now();
        let result = native(root).expect("native analysis");
        n.push(t.elapsed());
        packages = result.0;
        drop(result);

        let t = Instant::now();
        let mut instance = rt
            .block_on(sandbox.instantiate(analyzer, root))
            .expect("instantiate");
        let before = t.elapsed();
        let t = Instant::now();
        let o = rt.block_on(sandbox.analyze_instance(&mut instance));
        c.push(t.elapsed());
        check(o, packages);
        // Tearing the store down is part of the fixed cost, with instantiation.
        let t = Instant::now();
        drop(instance);
        i.push(before + t.elapsed());

        let t = Instant::now();
        let o = rt.block_on(sandbox.analyze(analyzer, root));
        e.push(t.elapsed());
        check(o, packages);
    }
    Times {
        native: median(n),
        call: median(c),
        instantiate: median(i),
        end_to_end: median(e),
        packages,
    }
}
