//! Accuracy of the matcher on real installed-package databases and real feeds.
//!
//! Each test computes its expectation independently of the crate's feed parsers and of the
//! matcher: the raw feed is read with a few lines of code here, and versions are compared
//! with the distribution's own tool where one exists (`dpkg --compare-versions`, python3-rpm's
//! `labelCompare`). For apk the expectation uses `bulkhead_versions`' apk ordering, whose
//! agreement with apk-tools is proven in `host/versions` (`tests/oracle_apk.rs` runs the
//! minirootfs' own apk-tools under chroot on every version of these fixtures); what is
//! tested here is the parsing, lookup and merging around it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_advisories::sources::{alpine, debian, osv};
use bulkhead_advisories::{Builder, FixState, Store, match_packages};
use bulkhead_model::{Os, Package};
use bulkhead_test_artifacts::{require_python_modules, require_tools};
use common::data;

/// (package, vulnerability id, fixed version, fix state) of the findings or expectations.
type Row = (String, String, Option<String>, &'static str);

fn store_with(
    dir: &Path,
    feeds: Vec<(
        &str,
        Vec<bulkhead_advisories::Result<bulkhead_advisories::Advisory>>,
    )>,
) -> Store {
    let db = dir.join("advisories.db");
    let mut builder = Builder::empty(&db).expect("builder");
    for (name, records) in feeds {
        let report = builder.import(name, records).expect("import");
        assert_eq!(report.skipped, 0, "{name}: {:?}", report.errors);
    }
    builder.commit().expect("commit");
    Store::open(&db).expect("open")
}

fn repo_fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel)
}

fn rows(findings: &[bulkhead_advisories::AdvisoryMatch]) -> BTreeSet<Row> {
    findings
        .iter()
        .map(|f| {
            (
                f.finding.package.clone(),
                f.finding.id.clone(),
                f.finding.fixed_version.clone(),
                f.finding.fix_state.as_str(),
            )
        })
        .collect()
}

/// Every vulnerability must appear once per package.
fn assert_unique(findings: &[bulkhead_advisories::AdvisoryMatch]) {
    let mut seen = BTreeSet::new();
    for f in findings {
        assert!(
            seen.insert((
                &f.finding.package,
                &f.finding.installed_version,
                &f.finding.id
            )),
            "duplicate {f:?}"
        );
    }
}

fn diff(expected: &BTreeSet<Row>, actual: &BTreeSet<Row>) {
    let missing: Vec<_> = expected.difference(actual).collect();
    let extra: Vec<_> = actual.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} (first {:?}), unexpected {} (first {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(5).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// Alpine

fn os_release(path: &Path) -> Os {
    let text = std::fs::read_to_string(path).expect("os-release");
    let mut os = Os::default();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim_matches('"').to_owned();
            match k {
                "ID" => os.id = v,
                "VERSION_ID" => os.version_id = Some(v),
                "VERSION_CODENAME" => os.version_codename = Some(v),
                "ID_LIKE" => os.id_like = v.split_whitespace().map(str::to_owned).collect(),
                _ => {}
            }
        }
    }
    os
}

/// origin → [(fixed version, ids of one secfixes line)], read from the raw secdb YAML.
type Secfixes = BTreeMap<String, Vec<(String, Vec<String>)>>;

fn read_secdb(path: &Path) -> Secfixes {
    let raw: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&std::fs::read(path).expect("read")).expect("yaml");
    assert_eq!(raw["distroversion"].as_str(), Some("v3.6"));
    let mut fixes = Secfixes::new();
    for p in raw["packages"].as_sequence().expect("packages") {
        let name = p["pkg"]["name"].as_str().expect("name");
        for (version, ids) in p["pkg"]["secfixes"].as_mapping().into_iter().flatten() {
            let version = version.as_str().expect("version").to_owned();
            let ids = ids
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str())
                .map(|i| i.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .filter(|tokens| !tokens.is_empty());
            for tokens in ids {
                fixes
                    .entry(name.to_owned())
                    .or_default()
                    .push((version.clone(), tokens));
            }
        }
    }
    fixes
}

fn valid_apk(v: &str) -> bool {
    bulkhead_versions::Ecosystem::Apk.validate(v).is_ok()
}

/// For each installed package (by origin), each secfix whose version is greater than the
/// installed one; one row per (package, CVE) with the smallest such version.
fn alpine_expected(packages: &[Package], fixes: &Secfixes) -> BTreeSet<Row> {
    let apk = |a: &str, b: &str| {
        bulkhead_versions::compare(bulkhead_versions::Ecosystem::Apk, a, b).expect("apk version")
    };
    let mut expected: BTreeMap<(String, String), String> = BTreeMap::new();
    for p in packages {
        let origin = p.source_name.as_deref().unwrap_or(&p.name);
        for (fixed, tokens) in fixes.get(origin).into_iter().flatten() {
            // "0": the release was never affected. Every other version is compared, as
            // apk-tools compares it (the real v3.6 secdb has `1.0.4.-r0`, which apk-tools 2
            // accepts); only what no apk would take (whitespace) is dropped by the store.
            if fixed == "0" || !valid_apk(fixed) || apk(&p.version, fixed).is_ge() {
                continue;
            }
            let key = tokens
                .iter()
                .find(|t| t.starts_with("CVE-"))
                .unwrap_or(&tokens[0])
                .clone();
            let slot = expected
                .entry((p.name.clone(), key))
                .or_insert_with(|| fixed.clone());
            if apk(fixed, slot).is_lt() {
                *slot = fixed.clone();
            }
        }
    }
    expected
        .into_iter()
        .map(|((p, id), fixed)| (p, id, Some(fixed), FixState::Fixed.as_str()))
        .collect()
}

#[test]
fn alpine_3_6_minirootfs_against_secdb() {
    let root = repo_fixture("apk/alpine-3.6");
    let os = os_release(&root.join("etc/os-release"));
    // The installed database, read here with its documented P:/V:/o:/A: fields.
    let installed_text = std::fs::read_to_string(root.join("lib/apk/db/installed")).expect("db");
    let mut packages = Vec::new();
    for stanza in installed_text.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(str::to_owned)
        };
        let (Some(name), Some(version)) = (field("P:"), field("V:")) else {
            continue;
        };
        packages.push(Package {
            name,
            version,
            source_name: field("o:"),
            arch: field("A:"),
            ecosystem: "apk".into(),
            ..Default::default()
        });
    }
    assert!(packages.len() > 10, "{}", packages.len());

    let secdb = data("alpine/v3.6-main.yaml");
    let fixes = read_secdb(&secdb);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(
        dir.path(),
        vec![("alpine", alpine::read_file(&secdb).expect("parse"))],
    );

    // 1. The real 3.6.5 minirootfs is the branch's last release and carries every fix
    //    (musl 1.1.16-r15 against a fix in 1.1.16-r14, busybox r11 against r9): nothing
    //    may be reported.
    let expected = alpine_expected(&packages, &fixes);
    let findings = match_packages(&store, Some(&os), &packages).expect("match");
    assert_unique(&findings);
    diff(&expected, &rows(&findings));

    // 2. The same system rolled back: every origin with secfixes installed at the version
    //    of its middle secfix (a real version of the branch), and once more one package
    //    revision below its first secfix. The minirootfs' own packages keep their real
    //    origins (`libressl2.5-libssl` is built from `libressl`); other origins get a
    //    binary package named differently from the origin.
    let mut by_origin: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &packages {
        let origin = p.source_name.clone().unwrap_or_else(|| p.name.clone());
        by_origin.entry(origin).or_default().push(p.name.clone());
    }
    let mut total = 0;
    for variant in ["middle", "below-first"] {
        let mut rolled = Vec::new();
        for (origin, list) in &fixes {
            let versions: Vec<&String> = list
                .iter()
                .map(|(v, _)| v)
                .filter(|v| *v != "0" && valid_apk(v))
                .collect();
            let Some(first) = versions.first() else {
                continue;
            };
            let version = match variant {
                "middle" => versions[versions.len() / 2].clone(),
                _ => match first.rsplit_once("-r").map(|(h, r)| (h, r.parse::<u32>())) {
                    Some((head, Ok(r))) if r > 0 => format!("{head}-r{}", r - 1),
                    _ => continue,
                },
            };
            let names = by_origin
                .get(origin)
                .cloned()
                .unwrap_or_else(|| vec![format!("{origin}-libs")]);
            for name in names {
                rolled.push(Package {
                    name,
                    version: version.clone(),
                    source_name: Some(origin.clone()),
                    ecosystem: "apk".into(),
                    ..Default::default()
                });
            }
        }
        let expected = alpine_expected(&rolled, &fixes);
        assert!(expected.len() > 50, "{variant}: {}", expected.len());
        total += expected.len();
        let findings = match_packages(&store, Some(&os), &rolled).expect("match");
        assert_unique(&findings);
        diff(&expected, &rows(&findings));
        if variant == "below-first" {
            let ssl = findings
                .iter()
                .find(|f| f.finding.package == "libressl2.5-libssl")
                .expect("libressl finding");
            assert_eq!(ssl.finding.source_name.as_deref(), Some("libressl"));
        }
    }
    assert!(total > 100);
}

// ---------------------------------------------------------------------------------------
// Debian

fn dpkg_lt(a: &str, b: &str) -> bool {
    let status = Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .expect("run dpkg --compare-versions");
    status.success()
}

/// One `[release] - package version` line of a DSA with the advisory's id and CVEs.
struct ListFix {
    dsa: String,
    ids: Vec<String>,
    package: String,
    version: String,
}

fn read_dsa_list(path: &Path, release: &str) -> Vec<ListFix> {
    let text = std::fs::read_to_string(path).expect("DSA list");
    let mut out = Vec::new();
    let (mut dsa, mut ids) = (String::new(), Vec::new());
    let prefix = format!("[{release}] - ");
    for line in text.lines() {
        if line.starts_with('[') {
            dsa = line.split_whitespace().nth(3).expect("id").to_owned();
            ids.clear();
        } else if let Some(list) = line.trim().strip_prefix('{') {
            ids = list
                .trim_end_matches('}')
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        } else if let Some(rest) = line.trim().strip_prefix(&prefix) {
            let mut words = rest.split_whitespace();
            out.push(ListFix {
                dsa: dsa.clone(),
                ids: ids.clone(),
                package: words.next().expect("package").to_owned(),
                version: words.next().expect("version").to_owned(),
            });
        }
    }
    out
}

#[test]
fn debian_dsa_list_with_dpkg_ordering() {
    // dpkg is the oracle: without it the test skips (the skip policy: a failure in CI).
    if !require_tools(&["dpkg"]) {
        return;
    }
    let list = data("debian/DSA-list");
    // The real binary → source mapping of a Debian 12 minbase system.
    let status = std::fs::read_to_string(repo_fixture(
        "dpkg/debian-bookworm-minbase/expected-packages.dpkg-query.tsv",
    ))
    .expect("dpkg-query list");
    let mut binaries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in status.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        binaries
            .entry(cols[3].to_owned())
            .or_default()
            .push(cols[0].split(':').next().expect("name").to_owned());
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(
        dir.path(),
        vec![(
            "debian-dsa",
            debian::read_list(&list, &debian::Releases::builtin()).expect("parse"),
        )],
    );

    let mut total = 0;
    // The lists end in April 2023, before bookworm's release: they have no bookworm lines.
    // So the installed systems are bullseye and buster systems last upgraded at one of
    // the DSAs: every source package with a fix in the list is installed at the version of
    // its middle DSA (in list order), and must be found affected by exactly the later ones.
    for (release, version_id) in [("bullseye", "11"), ("buster", "10")] {
        let fixes = read_dsa_list(&list, release);
        let mut by_source: BTreeMap<&str, Vec<&ListFix>> = BTreeMap::new();
        for f in &fixes {
            by_source.entry(&f.package).or_default().push(f);
        }
        let mut packages = Vec::new();
        for (source, entries) in &by_source {
            let real: Vec<&ListFix> = entries
                .iter()
                .copied()
                .filter(|f| !f.version.starts_with('<'))
                .collect();
            let Some(pick) = real.get(real.len() / 2) else {
                continue;
            };
            let names = binaries
                .get(*source)
                .cloned()
                .unwrap_or_else(|| vec![format!("{source}-bin")]);
            for name in names {
                packages.push(Package {
                    name,
                    // The binary version is deliberately not the source's: it must not be
                    // what is compared.
                    version: "0~binary".into(),
                    source_name: Some((*source).to_owned()),
                    source_version: Some(pick.version.clone()),
                    ecosystem: "deb".into(),
                    ..Default::default()
                });
            }
        }

        let mut expected: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
        let mut states: BTreeMap<(String, String), FixState> = BTreeMap::new();
        for p in &packages {
            let source = p.source_name.as_deref().expect("source");
            let installed = p.source_version.as_deref().expect("version");
            for f in &by_source[source] {
                let fixed = match f.version.as_str() {
                    "<not-affected>" => continue,
                    "<unfixed>" | "<end-of-life>" => None,
                    v if dpkg_lt(installed, v) => Some(v.to_owned()),
                    _ => continue,
                };
                let cves: Vec<&String> = f.ids.iter().filter(|i| i.starts_with("CVE-")).collect();
                let keys: Vec<String> = if cves.is_empty() {
                    vec![f.dsa.clone()]
                } else {
                    cves.into_iter().cloned().collect()
                };
                for key in keys {
                    let k = (p.name.clone(), key);
                    let state = match f.version.as_str() {
                        "<end-of-life>" => FixState::EndOfLife,
                        "<unfixed>" => FixState::NotFixed,
                        _ => FixState::Fixed,
                    };
                    states.entry(k.clone()).or_insert(state);
                    let slot = expected.entry(k).or_insert_with(|| fixed.clone());
                    if let (Some(new), Some(cur)) = (&fixed, slot.as_ref())
                        && dpkg_lt(new, cur)
                    {
                        *slot = Some(new.clone());
                    } else if slot.is_none() && fixed.is_some() {
                        *slot = fixed.clone();
                    }
                }
            }
        }
        let expected: BTreeSet<Row> = expected
            .into_iter()
            .map(|(k, fixed)| {
                let state = if fixed.is_some() {
                    FixState::Fixed
                } else {
                    states[&k]
                };
                (k.0, k.1, fixed, state.as_str())
            })
            .collect();
        assert!(expected.len() > 100, "{release}: {}", expected.len());
        total += expected.len();

        let os = Os {
            id: "debian".into(),
            version_id: Some(version_id.into()),
            version_codename: Some(release.into()),
            ..Default::default()
        };
        let findings = match_packages(&store, Some(&os), &packages).expect("match");
        assert_unique(&findings);
        diff(&expected, &rows(&findings));
        // Each CVE finding names the DSAs that fixed it.
        for f in &findings {
            if f.finding.id.starts_with("CVE-") {
                assert!(
                    f.finding.aliases.iter().any(|a| a.starts_with("DSA-")),
                    "{f:?}"
                );
            }
            assert_eq!(
                f.compared_version,
                packages
                    .iter()
                    .find(|p| p.name == f.finding.package)
                    .and_then(|p| p.source_version.clone())
                    .expect("pkg")
            );
        }
    }
    assert!(total > 200);
}

// ---------------------------------------------------------------------------------------
// AlmaLinux

/// rpm's own `labelCompare` of each pair, through `python` with python3-rpm.
fn label_compare(python: &str, pairs: &[(String, String)]) -> Vec<i32> {
    const SCRIPT: &str = r#"
import sys, rpm
def evr(s):
    e, _, vr = s.rpartition(':')
    v, _, r = vr.rpartition('-')
    return (e or '0', v, r)
for line in sys.stdin:
    a, b = line.rstrip('\n').split('\t')
    print(rpm.labelCompare(evr(a), evr(b)))
"#;
    let requests: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}\t{b}")).collect();
    bulkhead_test_artifacts::pipe_oracle(python, &["-c", SCRIPT], &requests)
        .iter()
        .map(|l| l.trim().parse().expect("labelCompare prints a number"))
        .collect()
}

#[test]
fn almalinux_9_errata_with_rpm_label_compare() {
    // python3-rpm's labelCompare is the oracle: without it the test skips (the skip
    // policy: a failure in CI).
    let Some(python) = require_python_modules(&["rpm"]) else {
        return;
    };
    let feed = data("osv/almalinux9-matcher");
    // (binary rpm, fixed EVR, erratum id, CVEs) read from the raw OSV JSON.
    let mut entries: Vec<(String, String, String, Vec<String>)> = Vec::new();
    for file in std::fs::read_dir(&feed).expect("dir") {
        let path = file.expect("entry").path();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let id = doc["id"].as_str().expect("id").to_owned();
        let cves: Vec<String> = doc["related"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(doc["aliases"].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str())
            .filter(|v| v.starts_with("CVE-"))
            .map(str::to_owned)
            .collect();
        for a in doc["affected"].as_array().expect("affected") {
            assert_eq!(a["package"]["ecosystem"].as_str(), Some("AlmaLinux:9"));
            let name = a["package"]["name"].as_str().expect("name").to_owned();
            for r in a["ranges"].as_array().into_iter().flatten() {
                for e in r["events"].as_array().into_iter().flatten() {
                    if let Some(fixed) = e["fixed"].as_str() {
                        entries.push((name.clone(), fixed.to_owned(), id.clone(), cves.clone()));
                    }
                }
            }
        }
    }

    // Installed versions: every fixed version of the chosen packages (real EVRs), the same
    // one release step lower, and, for openssl (epoch 1), the EVR without its epoch.
    let chosen = ["openssl", "openssl-libs", "libtiff", "expat"];
    let mut systems: Vec<(String, String)> = Vec::new();
    for (name, fixed, _, _) in &entries {
        if !chosen.contains(&name.as_str()) {
            continue;
        }
        systems.push((name.clone(), fixed.clone()));
        if let Some((head, last)) = fixed.rsplit_once('.')
            && let Ok(n) = last.parse::<u32>()
            && n > 0
        {
            systems.push((name.clone(), format!("{head}.{}", n - 1)));
        }
        if let Some((_, no_epoch)) = fixed.split_once(':') {
            systems.push((name.clone(), no_epoch.to_owned()));
        }
    }
    systems.sort();
    systems.dedup();
    assert!(systems.len() > 60, "{}", systems.len());

    let mut pairs = Vec::new();
    for (name, installed) in &systems {
        for (n, fixed, _, _) in &entries {
            if n == name {
                pairs.push((installed.clone(), fixed.clone()));
            }
        }
        for (n1, f1, _, _) in &entries {
            for (n2, f2, _, _) in &entries {
                if n1 == name && n2 == name {
                    pairs.push((f1.clone(), f2.clone()));
                }
            }
        }
    }
    pairs.sort();
    pairs.dedup();
    let order: BTreeMap<(String, String), i32> = pairs
        .iter()
        .cloned()
        .zip(label_compare(python, &pairs))
        .collect();

    let records: Vec<_> = osv::read_path(&feed).expect("feed").collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_with(dir.path(), vec![("almalinux", records)]);
    let os = Os {
        id: "almalinux".into(),
        version_id: Some("9.4".into()),
        ..Default::default()
    };

    let mut affected_total = 0;
    for (name, installed) in &systems {
        let mut expected: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for (n, fixed, id, cves) in &entries {
            if n != name || order[&(installed.clone(), fixed.clone())] >= 0 {
                continue;
            }
            let keys = if cves.is_empty() {
                vec![id.clone()]
            } else {
                cves.clone()
            };
            for key in keys {
                let slot = expected
                    .entry(key)
                    .or_insert_with(|| (fixed.clone(), BTreeSet::new()));
                if order[&(fixed.clone(), slot.0.clone())] < 0 {
                    slot.0 = fixed.clone();
                }
                slot.1.insert(id.clone());
            }
        }
        affected_total += expected.len();
        let package = Package {
            name: name.clone(),
            version: installed.clone(),
            source_name: Some(if name == "openssl-libs" {
                "openssl".into()
            } else {
                name.clone()
            }),
            source_version: Some(installed.clone()),
            arch: Some("x86_64".into()),
            ecosystem: "rpm".into(),
            ..Default::default()
        };
        let findings =
            match_packages(&store, Some(&os), std::slice::from_ref(&package)).expect("match");
        assert_unique(&findings);
        let want: BTreeSet<Row> = expected
            .iter()
            .map(|(k, (fixed, _))| {
                (
                    name.clone(),
                    k.clone(),
                    Some(fixed.clone()),
                    FixState::Fixed.as_str(),
                )
            })
            .collect();
        diff(&want, &rows(&findings));
        for f in &findings {
            let errata = &expected[&f.finding.id].1;
            for erratum in errata {
                if erratum != &f.finding.id {
                    assert!(
                        f.finding.aliases.contains(erratum),
                        "{name} {installed}: {f:?} lacks {erratum}"
                    );
                }
            }
        }
    }
    assert!(affected_total > 100, "{affected_total}");
}
