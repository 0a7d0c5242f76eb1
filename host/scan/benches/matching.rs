//! Advisory database benchmark (issue 5): import throughput, size on disk per 10,000
//! records, and the assessment stage (matching, severity, recommendations) for 1,000
//! installed packages against every advisory feed of the fixture pool.
//!
//! ```text
//! cargo bench -p bulkhead-scan --bench matching            # pool at ../shared/fixtures
//! BENCH_FIXTURES=/path/to/fixtures cargo bench -p bulkhead-scan --bench matching
//! ```
//!
//! Without the pool it falls back to the repo's own feed samples and says so: the target
//! (≤ 20 ms for 1,000 packages against more than 20,000 records) is only meaningful with
//! the pool. No timing is asserted; the run prints measured values and their ratio to the
//! targets.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_advisories::sources::debian::Releases;
use bulkhead_advisories::{Builder, Store};
use bulkhead_model::{Inventory, Os, Package};
use bulkhead_scan::assess::{ImageIdentity, Policy, assess};
use bulkhead_scan::db::detect::Input;
use bulkhead_scan::db::import::import_source;

/// Feeds of the fixture pool (see its README), as `bulkhead db import` would take them.
const POOL_FEEDS: &[&str] = &[
    "golang-vulndb/data/osv",
    "rustsec-advisory-db/osv-branch/crates",
    "pypa-advisory-database/vulns",
    "almalinux-osv-database/advisories",
    "alpine-secdb/v3.3/main.yaml",
    "alpine-secdb/v3.4/main.yaml",
    "alpine-secdb/v3.5/main.yaml",
    "alpine-secdb/v3.6/main.yaml",
    "alpine-secdb/v3.6/community.yaml",
    "alpine-secdb/v3.7/main.yaml",
    "alpine-secdb/v3.7/community.yaml",
    "alpine-secdb/v3.8/main.yaml",
    "alpine-secdb/v3.8/community.yaml",
    "alpine-secdb/v3.9/main.yaml",
    "alpine-secdb/v3.9/community.yaml",
    "alpine-secdb/v3.10/main.yaml",
    "alpine-secdb/v3.10/community.yaml",
    "alpine-secdb/v3.11/main.yaml",
    "alpine-secdb/v3.11/community.yaml",
    "debian-security-tracker/data/DSA/list",
    "debian-security-tracker/data/DLA/list",
];

const REPO_FEEDS: &[&str] = &[
    "host/advisories/testdata/osv",
    "host/advisories/testdata/alpine",
    "demo/advisories/almalinux9",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn package(name: &str, version: &str, ecosystem: &str) -> Package {
    Package {
        name: name.to_string(),
        version: version.to_string(),
        ecosystem: ecosystem.to_string(),
        arch: Some("x86_64".into()),
        analyzer: "bench@0".into(),
        db_path: "bench".into(),
        ..Package::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = std::env::var_os("BENCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures"));
    let (base, feeds, from_pool) = if pool.join("MANIFEST.tsv").is_file() {
        (pool, POOL_FEEDS, true)
    } else {
        (workspace(), REPO_FEEDS, false)
    };
    println!(
        "feeds from {} ({})",
        base.display(),
        if from_pool {
            "the fixture pool"
        } else {
            "the repo's samples: the pool is missing, targets do not apply"
        }
    );

    // Import: every feed into one fresh database, as `bulkhead db import` does.
    // (`BENCH_DB=FILE` keeps the database there, for profiling the matching alone.)
    let dir = tempfile::tempdir()?;
    let keep = std::env::var_os("BENCH_DB").map(PathBuf::from);
    let db = keep
        .clone()
        .unwrap_or_else(|| dir.path().join("advisories.db"));
    let reuse = keep.as_ref().is_some_and(|p| p.is_file());
    let releases = Releases::builtin();
    let builder = if reuse {
        None
    } else {
        Some(Builder::empty(&db)?)
    };
    let mut records = 0u64;
    let started = Instant::now();
    let mut inputs: Vec<Input> = Vec::new();
    for feed in feeds {
        let path = base.join(feed);
        if !path.exists() {
            println!("  missing, skipped: {}", path.display());
            continue;
        }
        inputs.push(Input::resolve(&path, None, None)?);
    }
    // Inputs of one source are imported together (the DSA and DLA lists, Alpine's files).
    let mut sources: Vec<&str> = inputs.iter().map(|i| i.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    if let Some(mut builder) = builder {
        for source in sources {
            let group: Vec<&Input> = inputs.iter().filter(|i| i.source == source).collect();
            let report = import_source(&mut builder, source, &group, &releases)
                .map_err(|e| format!("{source}: {e}"))?;
            records += report.records;
        }
        builder.commit()?;
    } else {
        records = Store::open(&db)?.status()?.iter().map(|s| s.records).sum();
    }
    let import = started.elapsed();
    let size = std::fs::metadata(&db)?.len();
    println!(
        "import: {records} records in {:.2} s = {:.0} records/s; {:.1} MB on disk = {:.2} MB per 10,000 records",
        import.as_secs_f64(),
        records as f64 / import.as_secs_f64(),
        size as f64 / 1e6,
        size as f64 / 1e6 / records as f64 * 1e4
    );

    // 1,000 installed packages, drawn evenly from what the database knows (so every one
    // is a real lookup with entries to evaluate), at versions low enough to be affected
    // by nearly every entry: the worst case for evaluation and merging.
    let store = Store::open(&db)?;
    let pairs = store.packages()?;
    let low = |ecosystem: &str| -> Option<(&'static str, &'static str)> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "PyPI" => ("pypi", "0.0.1"),
            "Go" => ("go", "0.0.1"),
            "crates.io" => ("cargo", "0.0.1"),
            "AlmaLinux" if ecosystem == "AlmaLinux:9" => ("rpm", "0:0.1-1.el9"),
            _ => return None,
        })
    };
    let candidates: Vec<(String, &str, &str)> = pairs
        .iter()
        .filter_map(|(e, p)| low(e).map(|(kind, v)| (p.clone(), kind, v)))
        .collect();
    let step = (candidates.len() / 1000).max(1);
    let chosen: Vec<_> = candidates.into_iter().step_by(step).take(1000).collect();
    let mut rpm = Inventory {
        os: Some(Os {
            id: "almalinux".into(),
            id_like: vec!["rhel".into()],
            version_id: Some("9.4".into()),
            version_codename: None,
            pretty_name: None,
            source_file: "etc/os-release".into(),
            eol: None,
        }),
        packages: Vec::new(),
    };
    let mut language = Inventory::default();
    for (name, kind, version) in &chosen {
        let p = package(name, version, kind);
        if *kind == "rpm" {
            rpm.packages.push(p);
        } else {
            language.packages.push(p);
        }
    }
    let policy = Policy::default();
    let image = ImageIdentity {
        reference: "bench",
        digest: None,
    };
    let now = jiff::Timestamp::now();
    let best_of = |f: &mut dyn FnMut() -> Result<usize, Box<dyn std::error::Error>>| -> Result<(f64, usize), Box<dyn std::error::Error>> {
        let mut best = Duration::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let t = Instant::now();
            n = f()?;
            best = best.min(t.elapsed());
        }
        Ok((best.as_secs_f64() * 1e3, n))
    };
    let applicable = from_pool && records > 20_000;
    let verdict = |ms: f64| {
        if applicable {
            format!("target 20 ms: ratio {:.2}", ms / 20.0)
        } else {
            "target not applicable: fewer than 20,000 records".to_string()
        }
    };

    // Worst case: every package at a version below every fix, so nearly every entry is a
    // finding to classify.
    let (ms, found) = best_of(&mut || {
        let (a, _) = assess(&store, &rpm, true, &image, &policy, now)?;
        let (b, _) = assess(&store, &language, true, &image, &policy, now)?;
        Ok(a.findings.len() + b.findings.len())
    })?;
    println!(
        "assess, worst case: {} packages ({} AlmaLinux:9 rpm, {} PyPI/Go/crates.io) against {records} records: {found} findings in {ms:.1} ms (best of 5)",
        chosen.len(),
        rpm.packages.len(),
        language.packages.len(),
    );

    // The same packages above every fix: every entry is still looked up and evaluated,
    // but nothing is affected — the cost of matching itself.
    let high = |inv: &Inventory, v: &str| Inventory {
        os: inv.os.clone(),
        packages: inv
            .packages
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p.version = v.to_string();
                p
            })
            .collect(),
    };
    let rpm_high = high(&rpm, "99:99999-1.el9");
    let language_high = high(&language, "99999.0.0");
    let (ms_clean, found_clean) = best_of(&mut || {
        let (a, _) = assess(&store, &rpm_high, true, &image, &policy, now)?;
        let (b, _) = assess(&store, &language_high, true, &image, &policy, now)?;
        Ok(a.findings.len() + b.findings.len())
    })?;
    println!(
        "assess, up to date: the same {} packages above every fix: {found_clean} findings in {ms_clean:.1} ms (best of 5); {}",
        chosen.len(),
        verdict(ms_clean)
    );
    let keys: Vec<(String, String)> = pairs
        .iter()
        .filter(|(e, _)| low(e).is_some())
        .step_by(step)
        .take(1000)
        .cloned()
        .collect();
    let (ms_lookup, entries) = best_of(&mut || {
        Ok(store
            .entries_many(&keys)?
            .iter()
            .map(Vec::len)
            .sum::<usize>())
    })?;
    println!(
        "of which the database lookups alone: {entries} advisory entries in {ms_lookup:.1} ms"
    );
    println!(
        "per finding classified (worst case minus up to date): {:.1} µs",
        (ms - ms_clean) * 1e3 / (found.max(1) as f64)
    );
    Ok(())
}
