//! Sandbox overhead on a real dpkg database, measured side by side in one run:
//!
//! - native: the dpkg analyzer's own Rust code (read + parse + convert) on the host;
//! - sandboxed: the same code as the embedded component, end to end (new store,
//!   instantiate, analyze, lift and validate the result);
//! - instantiation alone, and loading a component from the warm `.cwasm` cache.
//!
//! Targets (issue 2): sandboxed / native ≤ 3, instantiation ≤ 1 ms.
//!
//! Input: `BENCH_DPKG_STATUS` or this machine's `/var/lib/dpkg/status` (700+ packages on
//! the project's Debian machines). Run: `cargo bench -p bulkhead --bench sandbox`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bulkhead::analyzers::{Registry, Sources};
use bulkhead::sandbox::{Limits, Sandbox, Verdict};

const ROUNDS: usize = 300;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let status = std::env::var_os("BENCH_DPKG_STATUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/dpkg/status"));
    let Ok(bytes) = std::fs::read(&status) else {
        eprintln!(
            "no dpkg status file at {}; set BENCH_DPKG_STATUS",
            status.display()
        );
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).expect("mkdir");
    std::fs::write(root.path().join("var/lib/dpkg/status"), &bytes).expect("write");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let home = tempfile::tempdir().expect("tempdir");
    let cache = home.path().join("components");
    let sandbox = Sandbox::new(&cache, Limits::default()).expect("sandbox");
    let sources = Sources {
        builtin: true,
        paths: vec![],
        dirs: vec![],
    };

    // Cold: compile every built-in component; warm: load them again from the .cwasm cache.
    let t = Instant::now();
    let registry = rt
        .block_on(Registry::load(&sandbox, &sources))
        .expect("load");
    let cold_load = t.elapsed();
    let mut warm = Vec::new();
    for _ in 0..20 {
        let sandbox = Sandbox::new(&cache, Limits::default()).expect("sandbox");
        let t = Instant::now();
        rt.block_on(Registry::load(&sandbox, &sources))
            .expect("load");
        warm.push(t.elapsed());
    }
    let dpkg = registry
        .analyzers()
        .iter()
        .find(|a| a.meta.name == "dpkg")
        .expect("dpkg")
        .clone();

    let (native, sandboxed, packages) = compare(&rt, &sandbox, &dpkg, root.path(), |r| {
        bulkhead_analyzer_dpkg::analyze(r)
            .map(|a| a.packages.len())
            .map_err(|e| format!("{e:?}"))
    });
    // The fixed cost of a call: an empty layer (the analyzer finds nothing).
    let empty = tempfile::tempdir().expect("tempdir");
    let mut fixed = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let _ = rt.block_on(sandbox.analyze(&dpkg, empty.path()));
        fixed.push(t.elapsed());
    }
    let fixed = median(fixed);
    let mut inst = Vec::new();
    for _ in 0..ROUNDS {
        inst.push(
            rt.block_on(sandbox.instantiate_only(&dpkg, root.path()))
                .expect("instantiate"),
        );
    }
    let (inst, warm) = (median(inst), median(warm));
    println!(
        "dpkg status: {} ({} bytes, {packages} packages), medians of {ROUNDS} runs",
        status.display(),
        bytes.len()
    );
    println!(
        "  native analyze (read+parse+convert)      {:8.3} ms",
        ms(native)
    );
    println!(
        "  sandboxed analyze (store+inst+call+lift) {:8.3} ms",
        ms(sandboxed)
    );
    println!(
        "  ratio sandboxed / native                 {:8.2}   (target <= 3)",
        ms(sandboxed) / ms(native)
    );
    println!(
        "  sandboxed call on an empty layer         {:8.3} ms",
        ms(fixed)
    );
    println!(
        "  instantiate, warm cache                  {:8.3} ms (target <= 1)",
        ms(inst)
    );
    println!(
        "  load all built-in analyzers, cold        {:8.3} ms (compile)",
        ms(cold_load)
    );
    println!(
        "  load all built-in analyzers, warm        {:8.3} ms (.cwasm cache)",
        ms(warm)
    );

    // Issue 4: every analyzer on the largest real fixture of its format (target <= 2).
    println!();
    println!("per analyzer, largest real fixture (medians of {ROUNDS} runs):");
    println!(
        "  {:<32} {:>9} {:>10} {:>7}",
        "database", "native ms", "sandbox ms", "ratio"
    );
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let cases: [(&str, &str, &str, &str); 4] = [
        (
            "apk (alpine 3.18, 14 KB)",
            "apk",
            "apk/alpine-3.18/lib/apk/db/installed",
            "lib/apk/db/installed",
        ),
        (
            "rpm sqlite (mariner, 3.6 MB)",
            "rpm",
            "rpm/sqlite/cbl-mariner-2.0/var/lib/rpm/rpmdb.sqlite",
            "var/lib/rpm/rpmdb.sqlite",
        ),
        (
            "rpm ndb (sle15, 1.3 MB)",
            "rpm",
            "rpm/ndb/sle15-bci/Packages.db",
            "usr/lib/sysimage/rpm/Packages.db",
        ),
        (
            "rpm bdb (105 KB)",
            "rpm",
            "rpm/bdb/generated-le-1024/Packages",
            "var/lib/rpm/Packages",
        ),
    ];
    println!(
        "  {:<32} {:>9.3} {:>10.3} {:>7.2}",
        format!("dpkg ({packages} packages)"),
        ms(native),
        ms(sandboxed),
        ms(sandboxed) / ms(native)
    );
    for (label, name, from, to) in cases {
        let root = tempfile::tempdir().expect("tempdir");
        let dest = root.path().join(to);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(fixtures.join(from), &dest).expect("copy fixture");
        let analyzer = registry
            .analyzers()
            .iter()
            .find(|a| a.meta.name == name)
            .expect("analyzer")
            .clone();
        let (n, s, _) = compare(&rt, &sandbox, &analyzer, root.path(), |r| {
            let result = if name == "apk" {
                bulkhead_analyzer_apk::analyze(r).map(|a| a.packages.len())
            } else {
                bulkhead_analyzer_rpm::analyze(r).map(|a| a.packages.len())
            };
            result.map_err(|e| format!("{e:?}"))
        });
        println!(
            "  {label:<32} {:>9.3} {:>10.3} {:>7.2}",
            ms(n),
            ms(s),
            ms(s) / ms(n)
        );
    }
}

/// Median native and sandboxed times of one analyzer over `root`, and the package count
/// (which both must agree on).
fn compare(
    rt: &tokio::runtime::Runtime,
    sandbox: &Sandbox,
    analyzer: &bulkhead::sandbox::Loaded,
    root: &std::path::Path,
    native: impl Fn(&std::path::Path) -> Result<usize, String>,
) -> (Duration, Duration, usize) {
    let mut n = Vec::new();
    let mut packages = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        packages = native(root).expect("native analysis");
        n.push(t.elapsed());
    }
    let mut s = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let o = rt.block_on(sandbox.analyze(analyzer, root));
        s.push(t.elapsed());
        match o.result {
            Ok(Verdict::Analysis(a)) => assert_eq!(a.packages.len(), packages),
            other => panic!("sandboxed analysis failed: {other:?}"),
        }
    }
    (median(n), median(s), packages)
}
