//! Accuracy of a whole scan, end to end: the real `bulkhead` binary imports the AlmaLinux 9
//! errata the demo carries (`demo/advisories/almalinux9/`, real OSV files) and scans the demo
//! image (`demo/almalinux9-demo.tar.gz`, an rpm database of 30 real AlmaLinux 9 package
//! identities, see `demo/README.md`). Its JSON report is compared with an expectation
//! computed here without any of Bulkhead's code:
//!
//! * the installed packages are what Debian's `rpm -qa` reads from the rpmdb extracted from
//!   the image's layer (name, `EPOCHNUM:VERSION-RELEASE`, modularity label);
//! * the errata are read as raw JSON (`id`, the summary's severity word, the CVEs in
//!   `aliases`/`related`, `affected[].package.name` and the `introduced`/`fixed` events);
//! * every version comparison is rpm's own `labelCompare` (python3-rpm), in one python3
//!   process for the whole test.
//!
//! An installed package is affected by an erratum entry naming it when its EVR is lower than
//! the entry's `fixed` EVR, except that a build of a module stream (release `.module_el…`)
//! is never an update for a package that is not in that stream: dnf only offers module
//! builds to packages carrying the stream's `MODULARITYLABEL` (none of the demo's do), and
//! such an entry says nothing about the non-modular package of the same name.
//!
//! How findings are keyed (`host/advisories/src/matcher.rs`, "Merging"): one finding per
//! (installed package, vulnerability). An erratum that names CVEs (AlmaLinux lists them in
//! `related`) contributes one finding per CVE, whose `id` is the CVE and whose `aliases`
//! carry the ALSA ids of every erratum that found the package affected for that CVE; an
//! erratum without any CVE would be keyed by its own id. The finding's `fixed_version` is
//! the lowest (by labelCompare) `fixed` among those errata: the first upgrade that fixes
//! it. So the expectation is built per (package, CVE) the same way and the sets of
//! (package, id, fixed_version) must be equal, and each finding's ALSA aliases must be
//! exactly the errata that decided it.
//!
//! Severity: AlmaLinux rates each erratum in its summary ("Important: openssl security
//! update"). A finding decided by errata that all say the same word must have that
//! severity (Critical → critical, Important → high, Moderate → medium, Low → low); when
//! they disagree it must be one of their words. Recommendations: one per vulnerable
//! package, whose `fixed_version` is the labelCompare maximum of the fixed versions of that
//! package's findings (the upgrade that fixes them all) and whose `fixes` are their ids.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use bulkhead_test_artifacts::{debian_python, require_python_modules, require_tools};
use serde_json::Value;

use crate::harness::{demo, run_ok};

/// rpm and python3-rpm are the oracles: without them the test skips (the skip policy: a
/// failure in CI).
fn oracles_present() -> bool {
    require_tools(&["rpm"]) && require_python_modules(&["rpm"]).is_some()
}

/// The members of a (gzipped) tar, by path. The demo archive is 20 KB: reading it whole
/// keeps this simple.
fn tar_members(bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("entry data");
        out.insert(path, (kind, data));
    }
    out
}

/// The image's single layer, read the way `docker load` does: manifest.json's `Layers`.
fn demo_layer() -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
    let gz = std::fs::read(demo("almalinux9-demo.tar.gz")).expect("demo archive");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut raw)
        .expect("gunzip the demo archive");
    let outer = tar_members(&raw);
    let manifest: Value = serde_json::from_slice(&outer["manifest.json"].1).expect("manifest");
    let layers = manifest[0]["Layers"].as_array().expect("Layers");
    assert_eq!(layers.len(), 1, "the demo image has one layer");
    let layer = layers[0].as_str().expect("layer path");
    tar_members(&outer[layer].1)
}

/// An installed package as `rpm -qa` prints it.
struct Installed {
    evr: String,
    modularity_label: Option<String>,
}

fn rpm_qa(dbpath: &Path) -> BTreeMap<String, Installed> {
    let out = Command::new("rpm")
        .arg("-qa")
        .arg("--dbpath")
        .arg(dbpath)
        .args(["--define", "_db_backend sqlite", "--qf"])
        .arg("%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\t%|MODULARITYLABEL?{%{MODULARITYLABEL}}:{}|\\n")
        .output()
        .expect("rpm");
    assert!(
        out.status.success(),
        "rpm -qa failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages = BTreeMap::new();
    for line in String::from_utf8(out.stdout).expect("utf8").lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "rpm -qa line {line:?}");
        let previous = packages.insert(
            cols[0].to_owned(),
            Installed {
                evr: cols[1].to_owned(),
                modularity_label: (!cols[2].is_empty()).then(|| cols[2].to_owned()),
            },
        );
        assert!(previous.is_none(), "{} installed twice", cols[0]);
    }
    packages
}

/// One erratum, read from its raw OSV JSON.
struct Erratum {
    id: String,
    /// The vendor's rating: the summary's first word ("Important").
    word: String,
    /// What a finding is keyed by: the CVEs it names, else its own id.
    keys: Vec<String>,
    /// (binary rpm, fixed EVR) of each `affected` entry.
    fixes: Vec<(String, String)>,
}

fn read_errata(dir: &Path) -> Vec<Erratum> {
    let mut errata = Vec::new();
    for file in std::fs::read_dir(dir).expect("advisories dir") {
        let path = file.expect("entry").path();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let id = doc["id"].as_str().expect("id").to_owned();
        let word = doc["summary"]
            .as_str()
            .and_then(|s| s.split_once(':'))
            .map(|(w, _)| w.to_owned())
            .unwrap_or_else(|| panic!("{id}: no \"Severity: …\" summary"));
        let cves: BTreeSet<String> = std::iter::once(&doc["id"])
            .chain(doc["aliases"].as_array().into_iter().flatten())
            .chain(doc["related"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .filter(|s| s.starts_with("CVE-"))
            .map(str::to_owned)
            .collect();
        let keys = if cves.is_empty() {
            vec![id.clone()]
        } else {
            cves.into_iter().collect()
        };
        let mut fixes = Vec::new();
        for a in doc["affected"].as_array().expect("affected") {
            assert_eq!(
                a["package"]["ecosystem"].as_str(),
                Some("AlmaLinux:9"),
                "{id}"
            );
            let name = a["package"]["name"].as_str().expect("name").to_owned();
            // AlmaLinux writes one ECOSYSTEM range per entry, `introduced: 0` then `fixed`.
            // Anything else would need more of OSV's range rules than this test implements:
            // fail rather than misjudge it.
            let ranges = a["ranges"].as_array().expect("ranges");
            assert_eq!(ranges.len(), 1, "{id} {name}: ranges");
            assert_eq!(ranges[0]["type"].as_str(), Some("ECOSYSTEM"), "{id} {name}");
            let events = ranges[0]["events"].as_array().expect("events");
            assert!(
                events.len() == 2 && events[0]["introduced"].as_str() == Some("0"),
                "{id} {name}: events {events:?}"
            );
            let fixed = events[1]["fixed"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} {name}: no fixed event"));
            assert!(a.get("versions").is_none(), "{id} {name}: versions list");
            fixes.push((name, fixed.to_owned()));
        }
        errata.push(Erratum {
            id,
            word,
            keys,
            fixes,
        });
    }
    errata.sort_by(|a, b| a.id.cmp(&b.id));
    errata
}

/// The order of rpm EVRs per package, from python3-rpm's `labelCompare`: for each group
/// (a package name), every EVR given gets a rank such that rank(a) < rank(b) exactly when
/// labelCompare(a, b) < 0 (equal EVRs, like `0:1.0-1` and `1.0-1`, share a rank).
struct RpmOrder(BTreeMap<(String, String), usize>);

impl RpmOrder {
    fn new(evrs: &BTreeSet<(String, String)>) -> RpmOrder {
        const SCRIPT: &str = r#"
import functools, sys, rpm
def evr(s):
    e, _, vr = s.rpartition(':')
    v, _, r = vr.rpartition('-')
    return (e or '0', v, r)
def cmp(a, b):
    return rpm.labelCompare(evr(a), evr(b))
groups = {}
for line in sys.stdin:
    g, s = line.rstrip('\n').split('\t')
    groups.setdefault(g, []).append(s)
for g, vs in groups.items():
    order = sorted(vs, key=functools.cmp_to_key(cmp))
    rank = 0
    for i, s in enumerate(order):
        if i and cmp(order[i - 1], s) != 0:
            rank += 1
        print('%s\t%s\t%d' % (g, s, rank))
"#;
        let mut child = Command::new(debian_python())
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut input = String::new();
        for (group, evr) in evrs {
            input.push_str(&format!("{group}\t{evr}\n"));
        }
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("python3");
        writer.join().expect("writer").expect("write to python3");
        assert!(
            out.status.success(),
            "python3-rpm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ranks = BTreeMap::new();
        for line in String::from_utf8(out.stdout).expect("utf8").lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "python3 printed {line:?}");
            ranks.insert(
                (cols[0].to_owned(), cols[1].to_owned()),
                cols[2].parse().expect("rank"),
            );
        }
        assert_eq!(ranks.len(), evrs.len(), "python3 ranked every EVR once");
        RpmOrder(ranks)
    }

    fn cmp(&self, package: &str, a: &str, b: &str) -> std::cmp::Ordering {
        let rank = |v: &str| {
            *self
                .0
                .get(&(package.to_owned(), v.to_owned()))
                .unwrap_or_else(|| panic!("{package} {v} was not ranked"))
        };
        rank(a).cmp(&rank(b))
    }
}

/// A build of a module stream: its release carries the module dist tag (`.module_el9…`,
/// `.module+el8…` on RHEL 8).
fn is_module_build(evr: &str) -> bool {
    evr.rsplit_once('-').is_some_and(|(_, release)| {
        release.contains(".module_el") || release.contains(".module+el")
    })
}

fn severity_of(word: &str) -> &'static str {
    match word {
        "Critical" => "critical",
        "Important" => "high",
        "Moderate" => "medium",
        "Low" => "low",
        other => panic!("unknown AlmaLinux severity word {other:?}"),
    }
}

/// What the scan must find for one (package, key).
struct Expected {
    fixed: String,
    errata: BTreeSet<String>,
    words: BTreeSet<String>,
}

#[test]
fn demo_scan_matches_rpm_and_the_raw_almalinux_errata() {
    if !oracles_present() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");

    // The installed packages, by rpm itself, from the rpmdb inside the image.
    let layer = demo_layer();
    let dbdir = tmp.path().join("rpmdb");
    std::fs::create_dir(&dbdir).expect("mkdir");
    std::fs::write(
        dbdir.join("rpmdb.sqlite"),
        &layer["var/lib/rpm/rpmdb.sqlite"].1,
    )
    .expect("write rpmdb");
    let installed = rpm_qa(&dbdir);
    assert_eq!(installed.len(), 30, "{:?}", installed.keys());
    // The module rule below reduces to "module builds never apply" only because no package
    // of the demo is in a module stream.
    for (name, p) in &installed {
        assert!(p.modularity_label.is_none(), "{name} is modular");
    }
    let os_release = String::from_utf8(layer["usr/lib/os-release"].1.clone()).expect("utf8");
    let os_field = |key: &str| {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_owned())
    };

    let errata = read_errata(&demo("advisories/almalinux9"));
    assert!(errata.len() > 100, "{} errata", errata.len());

    // Run the scan first: its versions are ranked in the same python3 batch.
    let home = tmp.path().join("home");
    let advisories = demo("advisories/almalinux9");
    let image = format!(
        "docker-archive:{}",
        demo("almalinux9-demo.tar.gz").display()
    );
    run_ok(
        &home,
        &["db", "import", advisories.to_str().expect("utf8 path")],
    );
    let scan = run_ok(&home, &["scan", &image, "-f", "json"]);
    let report: Value = serde_json::from_slice(&scan.stdout).expect("JSON report");
    let findings = report["findings"].as_array().expect("findings");
    let recommendations = report["recommendations"]
        .as_array()
        .expect("recommendations");

    // Every EVR that will be compared, per package.
    let mut evrs = BTreeSet::new();
    for (name, p) in &installed {
        evrs.insert((name.clone(), p.evr.clone()));
    }
    for e in &errata {
        for (name, fixed) in &e.fixes {
            evrs.insert((name.clone(), fixed.clone()));
        }
    }
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or("").to_owned();
    for f in findings {
        for k in ["installed_version", "fixed_version"] {
            evrs.insert((field(f, "package"), field(f, k)));
        }
    }
    for r in recommendations {
        for k in ["installed_version", "fixed_version"] {
            evrs.insert((field(r, "package"), field(r, k)));
        }
    }
    let order = RpmOrder::new(&evrs);

    // The expectation.
    let mut expected: BTreeMap<(String, String), Expected> = BTreeMap::new();
    let (mut not_affected, mut module_builds) = (0, 0);
    for e in &errata {
        for (name, fixed) in &e.fixes {
            let Some(p) = installed.get(name) else {
                continue;
            };
            if is_module_build(fixed) {
                module_builds += 1;
                continue;
            }
            if order.cmp(name, &p.evr, fixed).is_ge() {
                not_affected += 1;
                continue;
            }
            for key in &e.keys {
                let slot = expected
                    .entry((name.clone(), key.clone()))
                    .or_insert_with(|| Expected {
                        fixed: fixed.clone(),
                        errata: BTreeSet::new(),
                        words: BTreeSet::new(),
                    });
                if order.cmp(name, fixed, &slot.fixed).is_lt() {
                    slot.fixed = fixed.clone();
                }
                slot.errata.insert(e.id.clone());
                slot.words.insert(e.word.clone());
            }
        }
    }
    // The demo must keep exercising what this test is about.
    let vulnerable: BTreeSet<&String> = expected.keys().map(|(p, _)| p).collect();
    assert!(expected.len() > 100, "{} expected findings", expected.len());
    assert!(not_affected > 50, "{not_affected} not-affected decisions");
    assert!(module_builds > 10, "{module_builds} module-build entries");
    assert!(
        installed.len() - vulnerable.len() >= 5,
        "packages without findings: {}",
        installed.len() - vulnerable.len()
    );
    for word in ["Critical", "Important", "Moderate", "Low"] {
        assert!(
            expected
                .values()
                .any(|x| x.words == BTreeSet::from([word.to_owned()])),
            "no finding decided by {word} errata only"
        );
    }

    // Compare. Problems are collected so that one run shows all of them.
    let mut problems: Vec<String> = Vec::new();
    assert_eq!(field(&report["os"], "id"), "almalinux");
    assert_eq!(
        Some(field(&report["os"], "version_id")),
        os_field("VERSION_ID")
    );

    let mut actual: BTreeMap<(String, String), &Value> = BTreeMap::new();
    for f in findings {
        let key = (field(f, "package"), field(f, "id"));
        if actual.insert(key.clone(), f).is_some() {
            problems.push(format!("{key:?} reported twice"));
        }
    }
    let want: BTreeSet<(String, String, String)> = expected
        .iter()
        .map(|((p, id), x)| (p.clone(), id.clone(), x.fixed.clone()))
        .collect();
    let got: BTreeSet<(String, String, String)> = actual
        .iter()
        .map(|((p, id), f)| (p.clone(), id.clone(), field(f, "fixed_version")))
        .collect();
    for row in want.difference(&got) {
        problems.push(format!("missing (package, id, fixed_version) {row:?}"));
    }
    for row in got.difference(&want) {
        problems.push(format!("unexpected (package, id, fixed_version) {row:?}"));
    }

    for (key, x) in &expected {
        let Some(f) = actual.get(key) else { continue };
        let (package, id) = key;
        if field(f, "fix_state") != "fixed" {
            problems.push(format!("{key:?}: fix_state {}", f["fix_state"]));
        }
        let rpm_evr = &installed[package].evr;
        if order
            .cmp(package, &field(f, "installed_version"), rpm_evr)
            .is_ne()
        {
            problems.push(format!(
                "{key:?}: installed_version {} but rpm says {rpm_evr}",
                f["installed_version"]
            ));
        }
        let mut alsa: BTreeSet<String> = f["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| s.starts_with("ALSA-"))
            .map(str::to_owned)
            .collect();
        if id.starts_with("ALSA-") {
            alsa.insert(id.clone());
        }
        if alsa != x.errata {
            problems.push(format!(
                "{key:?}: errata {alsa:?}, expected those that found it affected: {:?}",
                x.errata
            ));
        }
        let severity = field(f, "severity");
        let allowed: BTreeSet<&str> = x.words.iter().map(|w| severity_of(w)).collect();
        if !allowed.contains(severity.as_str()) {
            problems.push(format!(
                "{key:?}: severity {severity:?}, the errata say {:?}",
                x.words
            ));
        }
    }

    // Summary counts are the findings' severities.
    for severity in ["critical", "high", "medium", "low", "negligible", "unknown"] {
        let n = findings
            .iter()
            .filter(|f| field(f, "severity") == severity)
            .count() as u64;
        if report["summary"][severity].as_u64() != Some(n) {
            problems.push(format!(
                "summary.{severity} = {}, findings: {n}",
                report["summary"][severity]
            ));
        }
    }

    // Recommendations: one per vulnerable package, the highest fixed version of its findings.
    let mut recommended = BTreeSet::new();
    for r in recommendations {
        let package = field(r, "package");
        if !recommended.insert(package.clone()) {
            problems.push(format!("two recommendations for {package}"));
        }
        let mine: Vec<(&String, &Expected)> = expected
            .iter()
            .filter(|((p, _), _)| *p == package)
            .map(|((_, id), x)| (id, x))
            .collect();
        let Some(highest) = mine
            .iter()
            .map(|(_, x)| &x.fixed)
            .max_by(|a, b| order.cmp(&package, a, b))
        else {
            problems.push(format!(
                "recommendation for {package}, which has no finding"
            ));
            continue;
        };
        let fixed = field(r, "fixed_version");
        if order.cmp(&package, &fixed, highest).is_ne() {
            problems.push(format!(
                "recommendation for {package}: {fixed}, but its findings need {highest}"
            ));
        }
        let fixes: BTreeSet<String> = r["fixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let ids: BTreeSet<String> = mine.iter().map(|(id, _)| (*id).clone()).collect();
        if fixes != ids {
            problems.push(format!(
                "recommendation for {package} fixes {fixes:?}, its findings are {ids:?}"
            ));
        }
    }
    for package in &vulnerable {
        if !recommended.contains(*package) {
            problems.push(format!("no recommendation for {package}"));
        }
    }

    assert!(
        problems.is_empty(),
        "{} problems ({} findings expected, {} reported):\n{}",
        problems.len(),
        expected.len(),
        findings.len(),
        problems.join("\n")
    );
}
