//! Accuracy of whole scans on Alpine, end to end, as a user scans: for every release whose
//! installed database and secdb are both in the fixtures, the real `bulkhead` binary
//! imports that release's secdb (`main` and `community`: the late-2024 JSON of
//! `tests/fixtures/advisories/alpine-secdb-2024/` for 3.12-3.20, the final YAML of
//! `alpine-secdb/` for 3.6 and 3.11), scans the release's image pulled from a real
//! registry (the minirootfs files of `tests/fixtures/apk/alpine-<release>/`, byte for byte
//! from the official tarball, as a one-layer image; for 3.11 the real `alpine:3.11` image,
//! `tests/fixtures/images/alpine-311.tar.gz`), and its JSON report is compared with an
//! expectation computed here without any of Bulkhead's code:
//!
//! * the installed packages are the `P:`, `V:` and `o:` (origin) lines of the database;
//! * the secdb is read as raw JSON: per origin package (`pkg.name`), fixed version → the
//!   ids it fixed; an entry's first word is its id (`CVE-2017-12122 TALOS-2017-0488` is
//!   CVE-2017-12122); fixed version `0` means "never affected in this release";
//! * every version comparison is apk-tools' own: `apk version -t` of the Alpine 3.20.3
//!   minirootfs (apk-tools 2.14.4) under chroot.
//!
//! A package is affected by an id when an entry of its origin lists the id with a fixed
//! version above the installed one; the finding's fixed version is the lowest such. The
//! sets of (package, id, fixed version) must be equal: no finding missing, none extra, every
//! fixed version right. The numbers are in docs/accuracy.md.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_test_artifacts::apk_tools::{ApkTools, installed_packages};
use bulkhead_test_artifacts::registry::{self, Auth, Registry};
use bulkhead_test_artifacts::{fixture, require_tools};
use serde_json::Value;

use crate::harness::run_ok;

/// Where a release's image comes from.
enum Image {
    /// A one-layer image of the files under `tests/fixtures/apk/alpine-<release>/`.
    Files,
    /// A `docker save` archive of the real image, under `tests/fixtures/images/`.
    Archive(&'static str),
}

/// The releases with both an installed database and a secdb feed in the fixtures: (release,
/// secdb directory under tests/fixtures/advisories/, the image).
const RELEASES: [(&str, &str, Image); 7] = [
    ("3.6", "alpine-secdb/v3.6", Image::Files),
    (
        "3.11",
        "alpine-secdb/v3.11",
        Image::Archive("alpine-311.tar.gz"),
    ),
    ("3.12", "alpine-secdb-2024/v3.12", Image::Files),
    ("3.15", "alpine-secdb-2024/v3.15", Image::Files),
    ("3.17", "alpine-secdb-2024/v3.17", Image::Files),
    ("3.18", "alpine-secdb-2024/v3.18", Image::Files),
    ("3.20", "alpine-secdb-2024/v3.20", Image::Files),
];

/// An installed package: (name, version, origin).
type Installed = (String, String, String);

/// The `lib/apk/db/installed` of a release's image.
fn database(release: &str, image: &Image) -> String {
    match image {
        Image::Files => {
            let path = fixture(&format!("apk/alpine-{release}/lib/apk/db/installed"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
        }
        // The archive's layer (`<id>/layer.tar` in the gzipped `docker save`), then the
        // database inside it: read with the tar crate, which Bulkhead's reader is not.
        Image::Archive(file) => {
            let gz = std::fs::read(fixture(&format!("images/{file}"))).expect("archive");
            let mut outer = tar::Archive::new(flate2::read::GzDecoder::new(gz.as_slice()));
            for entry in outer.entries().expect("tar") {
                let entry = entry.expect("tar entry");
                if !entry.path().expect("path").ends_with("layer.tar") {
                    continue;
                }
                let mut layer = tar::Archive::new(entry);
                for inner in layer.entries().expect("layer tar") {
                    let mut inner = inner.expect("layer entry");
                    let path = inner.path().expect("path").to_string_lossy().into_owned();
                    if path.trim_start_matches("./") == "lib/apk/db/installed" {
                        let mut text = String::new();
                        std::io::Read::read_to_string(&mut inner, &mut text).expect("database");
                        return text;
                    }
                }
            }
            panic!("{file}: no lib/apk/db/installed in its layer")
        }
    }
}

/// origin → id → fixed versions (without `0`), from the raw secdb documents in `dir`
/// (JSON, or YAML whose keys may read as numbers: each is taken as written).
fn secfixes(dir: &str) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for repo in ["main", "community"] {
        let json = fixture(&format!("advisories/{dir}/{repo}.json"));
        let doc: serde_yaml_ng::Value = if json.exists() {
            serde_json::from_slice(&std::fs::read(&json).expect("secdb")).expect("secdb JSON")
        } else {
            let yaml = fixture(&format!("advisories/{dir}/{repo}.yaml"));
            serde_yaml_ng::from_slice(&std::fs::read(&yaml).expect("secdb")).expect("secdb YAML")
        };
        let text = |v: &serde_yaml_ng::Value| match v {
            serde_yaml_ng::Value::String(s) => s.trim().to_owned(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            other => panic!("{dir}: a secdb key that is neither text nor a number: {other:?}"),
        };
        for p in doc["packages"].as_sequence().expect("packages") {
            let origin = text(&p["pkg"]["name"]);
            let Some(fixes) = p["pkg"]["secfixes"].as_mapping() else {
                continue;
            };
            for (version, ids) in fixes {
                let version = text(version);
                if version == "0" {
                    continue;
                }
                for id in ids.as_sequence().into_iter().flatten() {
                    let Some(id) = id.as_str().and_then(|s| s.split_whitespace().next()) else {
                        continue;
                    };
                    out.entry(origin.clone())
                        .or_default()
                        .entry(id.to_owned())
                        .or_default()
                        .insert(version.clone());
                }
            }
        }
    }
    out
}

/// A finding as compared: (package, id, fixed version).
type Row = (String, String, String);

#[test]
fn alpine_scans_equal_apk_tools_over_the_raw_secdb() {
    let apk = ApkTools::open("alpine-minirootfs-3.20.3-x86_64.tar.gz");
    if !ApkTools::required(&apk) || !require_tools(registry::TOOLS) {
        return;
    }
    let Some(apk) = apk else { return };
    let reg = Registry::start(Auth::None);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut totals = Vec::new();
    for (release, secdb, source) in &RELEASES {
        let release = *release;
        let installed: Vec<Installed> = installed_packages(&database(release, source));
        let fixes = secfixes(secdb);

        // The expectation, ordered by apk-tools: every installed version against every
        // fixed version of its origin, and the fixed versions of one id among themselves.
        let mut pairs = Vec::new();
        for (_, version, origin) in &installed {
            for versions in fixes.get(origin).into_iter().flat_map(|ids| ids.values()) {
                for (i, fixed) in versions.iter().enumerate() {
                    pairs.push((version.clone(), fixed.clone()));
                    pairs.extend(
                        versions
                            .iter()
                            .skip(i + 1)
                            .map(|g| (fixed.clone(), g.clone())),
                    );
                }
            }
        }
        pairs.sort();
        pairs.dedup();
        let answers: BTreeMap<(String, String), String> =
            pairs.iter().cloned().zip(apk.compare(&pairs)).collect();
        let below = |a: &str, b: &str| -> bool {
            let answer = answers
                .get(&(a.to_owned(), b.to_owned()))
                .map(|r| r.as_str())
                .or_else(|| {
                    answers
                        .get(&(b.to_owned(), a.to_owned()))
                        .map(|r| match r.as_str() {
                            "<" => ">",
                            ">" => "<",
                            other => other,
                        })
                });
            match answer {
                Some("<") => true,
                Some(">" | "=") => false,
                other => panic!("apk-tools did not order {a} and {b}: {other:?}"),
            }
        };
        let mut expected: BTreeSet<Row> = BTreeSet::new();
        for (name, version, origin) in &installed {
            for (id, versions) in fixes.get(origin).into_iter().flatten() {
                // The lowest fixed version above the installed one: the first upgrade that
                // fixes it.
                let lowest = versions.iter().filter(|f| below(version, f)).fold(
                    None::<&String>,
                    |low, f| match low {
                        Some(l) if below(l, f) => Some(l),
                        _ => Some(f),
                    },
                );
                if let Some(fixed) = lowest {
                    expected.insert((name.clone(), id.clone(), fixed.clone()));
                }
            }
        }

        // The scan, as a user runs it.
        match source {
            Image::Files => {
                let image = tmp.path().join(format!("layout-{release}"));
                bulkhead_test_artifacts::images::single_layer_from_dir(
                    &fixture(&format!("apk/alpine-{release}")),
                    &image,
                    release,
                )
                .expect("build the image");
                bulkhead_test_artifacts::skopeo::push_with(
                    &image,
                    release,
                    reg.addr(),
                    None,
                    &format!("alpine:{release}"),
                    &bulkhead_test_artifacts::skopeo::PushOptions::default(),
                )
                .unwrap_or_else(|e| panic!("push {release}: {e}\n{}", reg.log()));
            }
            Image::Archive(file) => {
                let plain = crate::harness::gunzip(&fixture(&format!("images/{file}")), tmp.path());
                crate::harness::push_archive(&reg, &plain, &format!("alpine:{release}"));
            }
        }
        let home = tmp.path().join(format!("home-{release}"));
        let feed = fixture(&format!("advisories/{secdb}"));
        run_ok(&home, &["db", "import", &feed.to_string_lossy()]);
        let scan = run_ok(
            &home,
            &[
                "scan",
                &format!("{}/alpine:{release}", reg.addr()),
                "--insecure-registry",
                reg.addr(),
                "--format",
                "json",
            ],
        );
        let report: Value = serde_json::from_slice(&scan.stdout).expect("JSON report");
        assert_eq!(
            report["os"]["version_id"]
                .as_str()
                .map(|v| v.starts_with(release)),
            Some(true),
            "{release}: {}",
            report["os"]
        );
        let got: BTreeSet<Row> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
                (s("package"), s("id"), s("fixed_version"))
            })
            .collect();
        let missing: Vec<&Row> = expected.difference(&got).collect();
        let extra: Vec<&Row> = got.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "Alpine {release}: {} expected, {} reported\nmissing: {missing:#?}\nextra: {extra:#?}",
            expected.len(),
            got.len()
        );
        let diagnostics: Vec<String> = report["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["code"].as_str().map(str::to_owned))
            .collect();
        assert!(
            !diagnostics
                .iter()
                .any(|c| c == "match-skipped" || c == "db-missing-ecosystem"),
            "Alpine {release}: every package checked: {diagnostics:?}"
        );
        totals.push(format!(
            "Alpine {release}: {} packages, {} (origin, id) entries, {} apk-tools comparisons, {} findings, 0 missing, 0 extra",
            installed.len(),
            installed
                .iter()
                .map(|(_, _, o)| o)
                .collect::<BTreeSet<_>>()
                .iter()
                .map(|o| fixes.get(*o).map_or(0, BTreeMap::len))
                .sum::<usize>(),
            pairs.len(),
            expected.len()
        ));
    }
    // The fixtures must keep exercising what this test is about.
    println!("{}", totals.join("\n"));
    assert!(
        totals.iter().filter(|t| !t.contains(" 0 findings")).count() >= 3,
        "most releases must have findings: {totals:#?}"
    );
}
