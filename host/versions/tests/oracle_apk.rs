//! apk ordering against apk-tools itself, live: the Alpine minirootfs tarballs of the
//! repository (tests/fixtures/images/) ship `/sbin/apk`, which runs under `chroot` (so this
//! needs root; without it the test skips, and fails under `CI`).
//!
//! Versions: every version string of every apk installed database in the fixtures (the
//! Alpine 3.6-3.20 minirootfs databases, the one inside the alpine:3.11 image, trivy's and
//! syft's) and every fixed version of every Alpine secdb feed (v3.3-v3.21 and edge), plus
//! the real versions issue 13 names and corrupted variants of real versions (apk-tools'
//! fallback for invalid versions). Pairs:
//! - each installed version against each fixed version of its origin (what matching does);
//! - per origin, its fixed and installed versions sorted by this crate: apk-tools must agree
//!   on every neighbouring pair, which checks the whole sorted chain;
//! - a seeded random sample of all other pairs, real and corrupted.
//!
//! `BULKHEAD_RECORD_APK_ORACLE=1` writes the answers of apk-tools 2.14.4 to
//! testdata/apk-fixtures-oracle.tsv and apk-fixtures-valid.tsv, which apk_reference.rs
//! checks without root.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bulkhead_test_artifacts::apk_tools::ApkTools;
use bulkhead_versions::apk::{ApkVersion, Syntax};
use common::apk_fixtures::{self, ApkFixtures};
use common::{Mismatches, Rng};

/// Real apk versions from issue 13 that no fixture holds (libretls in Alpine 3.14), with
/// neighbours of their package.
const ISSUE_VERSIONS: [&str; 6] = [
    "3.3.3p1-r3",
    "3.3.3p1-r2",
    "3.3.3-r0",
    "3.3.4-r0",
    "3.3.3p2-r0",
    "3.3.3_p1-r0",
];

/// The installed database inside the alpine:3.11 image (a `docker save` archive whose
/// layer is a tar inside the gzipped tar).
fn alpine_311_database() -> String {
    let image = bulkhead_test_artifacts::fixture("images/alpine-311.tar.gz");
    let list = Command::new("tar")
        .arg("-tzf")
        .arg(&image)
        .output()
        .expect("tar -t");
    let names = String::from_utf8(list.stdout).expect("UTF-8 names");
    let layer = names
        .lines()
        .find(|n| n.ends_with("/layer.tar"))
        .expect("the image has a layer");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"tar -xzf "$1" -O "$2" | tar -xO lib/apk/db/installed"#)
        .arg("sh")
        .arg(&image)
        .arg(layer)
        .output()
        .expect("extracting the 3.11 database");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 database")
}

fn apk_available(rootfs: &Option<ApkTools>) -> bool {
    ApkTools::required(rootfs)
}

fn parse(v: &str) -> ApkVersion {
    v.parse()
        .unwrap_or_else(|e| panic!("{v:?} must be orderable: {e}"))
}

fn ours(a: &str, b: &str) -> &'static str {
    match parse(a).cmp(&parse(b)) {
        std::cmp::Ordering::Less => "<",
        std::cmp::Ordering::Equal => "=",
        std::cmp::Ordering::Greater => ">",
    }
}

/// A small corruption of a real version, as typos in feeds look: most are invalid for
/// apk-tools, some stay valid. No `~` (apk-tools 3's hash, which this crate reads as apk-tools
/// 3 does) and no whitespace (not a version for anyone).
fn mangle(rng: &mut Rng, v: &str) -> String {
    const EDITS: [&str; 18] = [
        "", ".", "_", "-", "-r", "A", "a", "z", "_p", "__", "..", "+", "0", "p1", "_foo", "-r-r",
        "_rc", "-1",
    ];
    let chars: Vec<char> = v.chars().collect();
    let at = rng.below(chars.len() + 1);
    let cut = (at + rng.below(3)).min(chars.len());
    let mut out: String = chars[..at].iter().collect();
    out.push_str(rng.pick(&EDITS));
    out.extend(&chars[cut..]);
    out
}

/// Everything the test compares.
struct Sample {
    versions: Vec<String>,
    /// (pair, why it is there)
    pairs: Vec<((String, String), &'static str)>,
    fixtures: ApkFixtures,
}

fn sample(random_real: usize, corrupted: usize, random_corrupted: usize) -> Sample {
    let mut fixtures = apk_fixtures::collect();
    apk_fixtures::add_installed(&mut fixtures, &alpine_311_database());
    let real: Vec<String> = fixtures
        .versions()
        .into_iter()
        .chain(ISSUE_VERSIONS.map(str::to_owned))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rng = Rng::new(13);
    let broken: Vec<String> = (0..corrupted)
        .map(|_| {
            let v = rng.pick(&real);
            mangle(&mut rng, &v)
        })
        .filter(|m| !m.is_empty() && !real.contains(m))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    let mut seen = BTreeSet::new();
    let mut pairs = Vec::new();
    let mut add = |a: &str, b: &str, why: &'static str| {
        if a != b && seen.insert((a.to_owned(), b.to_owned())) {
            pairs.push(((a.to_owned(), b.to_owned()), why));
        }
    };
    for (origin, v) in &fixtures.installed {
        for f in fixtures.fixed.get(origin).into_iter().flatten() {
            add(v, f, "installed vs fixed of its origin");
        }
    }
    let mut by_origin: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (origin, versions) in &fixtures.fixed {
        by_origin
            .entry(origin)
            .or_default()
            .extend(versions.iter().map(String::as_str));
    }
    for (origin, v) in &fixtures.installed {
        by_origin.entry(origin).or_default().insert(v);
    }
    by_origin
        .entry("libretls")
        .or_default()
        .extend(ISSUE_VERSIONS);
    for versions in by_origin.values() {
        let mut sorted: Vec<&str> = versions.iter().copied().collect();
        sorted.sort_by(|a, b| parse(a).cmp(&parse(b)).then(a.cmp(b)));
        for w in sorted.windows(2) {
            add(w[0], w[1], "neighbours in one origin's sorted versions");
        }
    }
    for _ in 0..random_real {
        add(&rng.pick(&real), &rng.pick(&real), "random real pair");
    }
    for m in &broken {
        // Against what it was corrupted from is unknown here; against a real version of
        // similar shape (the same first character) is where fallbacks decide.
        let similar: Vec<&String> = real.iter().filter(|r| r.get(..1) == m.get(..1)).collect();
        let other = if similar.is_empty() {
            rng.pick(&real)
        } else {
            rng.pick(&similar).clone()
        };
        add(m, &other, "corrupted vs real");
    }
    for _ in 0..random_corrupted {
        add(&rng.pick(&broken), &rng.pick(&broken), "corrupted pair");
    }
    let versions = real.into_iter().chain(broken).collect();
    Sample {
        versions,
        pairs,
        fixtures,
    }
}

/// Compares apk-tools and this crate on the sample; returns the rows to record.
fn check(apk: &ApkTools, sample: &Sample) -> Vec<String> {
    let pairs = &sample.pairs;
    let started = Instant::now();
    // Validity: `apk version -c` against Syntax.
    let invalid = apk.invalid(&sample.versions);
    let mut bad = Mismatches::default();
    let mut apk3_only = 0;
    for v in &sample.versions {
        let syntax = parse(v).syntax();
        if syntax == Syntax::Apk3Only {
            apk3_only += 1;
            continue;
        }
        let ours_valid = syntax != Syntax::Invalid;
        if ours_valid == invalid.contains(v) {
            bad.push(format!(
                "{v:?}: apk-tools {} says invalid={}, ours {syntax:?}",
                apk.version,
                invalid.contains(v)
            ));
        }
    }
    assert!(
        apk3_only < 5,
        "{apk3_only} corrupted versions are apk-tools 3 only"
    );
    bad.check(
        &format!("apk-tools {} syntax", apk.version),
        sample.versions.len(),
    );

    // Order.
    let plain: Vec<(String, String)> = pairs.iter().map(|(p, _)| p.clone()).collect();
    let answers = apk.compare(&plain);
    let mut bad = Mismatches::default();
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for (((a, b), why), theirs) in pairs.iter().zip(&answers) {
        if [a, b].iter().any(|v| parse(v).syntax() == Syntax::Apk3Only) {
            continue;
        }
        *by_reason.entry(why).or_default() += 1;
        rows.push(format!("{a}\t{theirs}\t{b}"));
        let ours = ours(a, b);
        if ours != theirs {
            bad.push(format!(
                "{a} vs {b} ({why}): apk-tools {} {theirs}, ours {ours}",
                apk.version
            ));
        }
    }
    eprintln!(
        "apk-tools {}: {} versions ({} invalid for it), {} pairs {by_reason:?}, {:.1} s",
        apk.version,
        sample.versions.len(),
        invalid.len(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    bad.check(&format!("apk-tools {} orderings", apk.version), rows.len());
    rows
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// apk-tools 2.14.4 (Alpine 3.18-3.22; the repository's 3.20.3 minirootfs) on everything.
#[test]
fn apk_tools_2_14_orders_every_fixture_version_as_we_do() {
    let apk = ApkTools::open("alpine-minirootfs-3.20.3-x86_64.tar.gz");
    if !apk_available(&apk) {
        return;
    }
    let apk = apk.expect("checked");
    assert_eq!(apk.version, "2.14.4");
    let sample = sample(5000, 2500, 1500);
    eprintln!(
        "fixtures: {} installed databases, {} secdb feeds, {} (origin, installed version), \
         {} origins with fixed versions",
        sample.fixtures.databases,
        sample.fixtures.feeds,
        sample.fixtures.installed.len(),
        sample.fixtures.fixed.len()
    );
    let rows = check(&apk, &sample);
    if std::env::var_os("BULKHEAD_RECORD_APK_ORACLE").is_some() {
        let invalid = apk.invalid(&sample.versions);
        let valid: String = sample
            .versions
            .iter()
            .map(|v| {
                let verdict = if invalid.contains(v) {
                    "invalid"
                } else {
                    "valid"
                };
                format!("{v}\t{verdict}\n")
            })
            .collect();
        std::fs::write(testdata("apk-fixtures-valid.tsv"), valid).expect("recording");
        let order: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(testdata("apk-fixtures-oracle.tsv"), order).expect("recording");
        eprintln!("recorded testdata/apk-fixtures-{{oracle,valid}}.tsv");
    }
}

/// apk-tools 2.10.8 (Alpine 3.12) on the pairs matching compares: the real versions only
/// (versions apk-tools 2.10 and 2.14 order differently, `1.0` against `1.`, are not real).
#[test]
fn apk_tools_2_10_agrees_on_real_pairs() {
    let apk = ApkTools::open("alpine-minirootfs-3.12.12-x86_64.tar.gz");
    if !apk_available(&apk) {
        return;
    }
    let apk = apk.expect("checked");
    assert_eq!(apk.version, "2.10.8");
    check(&apk, &sample(500, 0, 0));
}
