//! Imports every advisory feed of the shared fixture pool into one database and measures
//! import throughput, size on disk and lookup latency.
//!
//! ```text
//! cargo run --release -p bulkhead-advisories --example import_fixtures -- /work/shared/fixtures /tmp/advisories.db
//! ```
//!
//! It is an example, not a test: the pool is not part of the repository.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_advisories::sources::{alpine, csaf, debian, nvd, osv};
use bulkhead_advisories::{Builder, Error, Record, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: import_fixtures FIXTURES DB";
    let pool = PathBuf::from(args.next().ok_or(usage)?);
    let db = PathBuf::from(args.next().ok_or(usage)?);
    let p = |s: &str| pool.join(s);
    let releases = debian::Releases::from_config(&p("debian-security-tracker/data/config.json"))?;

    let _ = std::fs::remove_file(&db);
    let mut builder = Builder::empty(&db)?;
    let mut total = 0u64;
    let started = Instant::now();
    let mut run = |name: &str,
                   records: Box<dyn Iterator<Item = Result<Record, Error>>>|
     -> Result<(), Error> {
        let t = Instant::now();
        let report = builder.import(name, records)?;
        let secs = t.elapsed().as_secs_f64();
        total += report.records;
        println!(
            "{name:16} {:6} records {:5} skipped {:5} dropped entries {:5} fallback versions {:8.0} records/s",
            report.records,
            report.skipped,
            report.dropped_affected,
            report.fallback_versions,
            report.records as f64 / secs
        );
        for e in report.errors.iter().take(3) {
            println!("    {e}");
        }
        Ok(())
    };
    fn feed<R: Into<Record> + 'static>(
        it: impl IntoIterator<Item = Result<R, Error>, IntoIter: 'static>,
    ) -> Box<dyn Iterator<Item = Result<Record, Error>>> {
        Box::new(it.into_iter().map(|r| r.map(Into::into)))
    }
    run(
        "osv-go",
        feed(osv::read_path(&p("golang-vulndb/data/osv"))?),
    )?;
    run(
        "osv-crates.io",
        feed(osv::read_path(&p("rustsec-advisory-db/osv-branch/crates"))?),
    )?;
    run(
        "osv-pypi",
        feed(osv::read_path(&p("pypa-advisory-database/vulns"))?),
    )?;
    run(
        "osv-almalinux",
        feed(osv::read_path(&p("almalinux-osv-database/advisories"))?),
    )?;
    run(
        "osv-zip-python",
        feed(osv::read_path(&p(
            "vuln-list-update/osvdev/testdata/python/all.zip",
        ))?),
    )?;
    run("alpine-secdb", feed(alpine::read_path(&p("alpine-secdb"))?))?;
    run(
        "debian-dsa",
        feed(debian::read_list(
            &p("debian-security-tracker/data/DSA/list"),
            &releases,
        )?),
    )?;
    run(
        "debian-dla",
        feed(debian::read_list(
            &p("debian-security-tracker/data/DLA/list"),
            &releases,
        )?),
    )?;
    run(
        "debian-tracker",
        feed(debian::read_tracker_json(
            &p("vunnel/tests/unit/providers/debian/test-fixtures/input/debian.json"),
            &releases,
        )?),
    )?;
    run(
        "nvd",
        feed(nvd::read_path(&p(
            "osv.dev/vulnfeeds/test_data/nvdcve-2.0",
        ))?),
    )?;
    run(
        "redhat-csaf",
        feed(csaf::read_path(&p(
            "vunnel/tests/unit/providers/rhel/test-fixtures/csaf/advisories",
        ))?),
    )?;
    let import_secs = started.elapsed().as_secs_f64();
    let t = Instant::now();
    builder.commit()?;
    let commit_secs = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&db)?.len();
    println!(
        "total {total} records: import {import_secs:.2} s ({:.0} records/s, parsing included), commit (VACUUM, fsync, rename) {commit_secs:.2} s",
        total as f64 / import_secs,
    );
    println!(
        "size {:.1} MB on disk, {:.2} MB per 10,000 records",
        size as f64 / 1e6,
        size as f64 / 1e6 / (total as f64 / 10_000.0)
    );
    lookup_bench(&db)?;
    Ok(())
}

/// 1,000 lookups of (ecosystem, package) pairs spread over the whole database (every
/// ecosystem represented), timed after a warm-up as in a long-running scanner.
fn lookup_bench(db: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(db)?;
    let all = store.packages()?;
    let step = (all.len() / 1000).max(1);
    let pairs: Vec<(String, String)> = all.into_iter().step_by(step).take(1000).collect();
    for (e, p) in &pairs {
        store.lookup(e, p)?;
    }
    let mut best = Duration::MAX;
    let mut hits = 0;
    for _ in 0..5 {
        let t = Instant::now();
        hits = 0;
        for (e, p) in &pairs {
            hits += store.lookup(e, p)?.len();
        }
        best = best.min(t.elapsed());
    }
    let mut best_many = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        store.lookup_many(&pairs)?;
        best_many = best_many.min(t.elapsed());
    }
    let cold = {
        // A fresh connection: statements not yet prepared, pages from the OS cache.
        let store = Store::open(db)?;
        let t = Instant::now();
        for (e, p) in &pairs {
            store.lookup(e, p)?;
        }
        t.elapsed()
    };
    println!(
        "lookup: {} packages, {hits} entries returned; best of 5: {:.2} ms one by one, {:.2} ms with lookup_many; {:.2} ms one by one on a fresh connection",
        pairs.len(),
        best.as_secs_f64() * 1e3,
        best_many.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
    );
    Ok(())
}
