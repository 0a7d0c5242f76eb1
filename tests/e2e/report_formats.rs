//! Report formats against their official schemas: the JSON report against
//! `docs/report.schema.json` (both ways: the schema is closed, so a field the code adds and
//! the schema does not list fails), SARIF against OASIS' SARIF 2.1.0 schema plus what
//! GitHub code scanning requires beyond it, CycloneDX against the CycloneDX 1.6 schema
//! (with its SPDX and JSF subschemas). The official schema files are in
//! `tests/fixtures/schemas/` (see its SOURCES.md); Python `jsonschema` validates
//! (Debian `python3-jsonschema`).
//!
//! Two inputs: a report built here field by field (every optional field both set and
//! unset somewhere, so every field is serialised and checked), realistic Alpine 3.11 data;
//! and real scans of the repo's demo image (`demo/`) matched against the real AlmaLinux
//! errata that name its packages.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use bulkhead_model::report::{ImageInfo, Layer, Stats};
use bulkhead_model::{
    Cvss, DbSource, Diagnostic, Eol, Finding, FixState, Health, Level, Recommendation, Severity,
    Summary, Suppressed,
};
use bulkhead_model::{Os, Package, Report};
use bulkhead_test_artifacts::{fixture, skip};
use serde_json::{Value, json};

use crate::harness::{bulkhead, demo_db, demo_image};

// ---------------------------------------------------------------------------------------
// Validation through python3-jsonschema.
// ---------------------------------------------------------------------------------------

/// A Python that has `jsonschema`: Debian's (what CI installs), else the one on PATH.
/// `None` when there is none: the test skips (the skip policy: a failure in CI).
pub(crate) fn python() -> Option<String> {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(candidate.to_string());
        }
    }
    skip("no python3 with the jsonschema module (apt-get install python3-jsonschema)");
    None
}

pub(crate) fn schemas() -> PathBuf {
    fixture("schemas")
}

fn our_schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/report.schema.json")
}

/// Validate each document; per document, `Ok` or the validator's error lines.
pub(crate) fn validate(
    python: &str,
    schema: &Path,
    refs: &[PathBuf],
    docs: &[&Value],
) -> Vec<Result<(), String>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let p = dir.path().join(format!("doc{i}.json"));
        std::fs::write(&p, serde_json::to_vec_pretty(d).expect("serialise")).expect("write");
        paths.push(p);
    }
    let mut cmd = Command::new(python);
    cmd.arg(schemas().join("validate.py")).arg(schema);
    for r in refs {
        cmd.arg("--ref").arg(r);
    }
    cmd.args(&paths);
    let out = cmd.output().expect("run validate.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "validate.py failed to run ({:?}): {}{}",
        out.status.code(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    paths
        .iter()
        .map(|p| {
            let prefix = format!("{}: ", p.display());
            let lines: Vec<&str> = stdout
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .collect();
            if lines == ["valid"] {
                Ok(())
            } else {
                assert!(
                    !lines.is_empty(),
                    "no verdict for {}: {stdout}",
                    p.display()
                );
                Err(lines.join("\n"))
            }
        })
        .collect()
}

fn assert_valid(python: &str, schema: &Path, refs: &[PathBuf], doc: &Value, what: &str) {
    if let Err(e) = &validate(python, schema, refs, &[doc])[0] {
        panic!(
            "{what} does not validate against {}:\n{e}\n{}",
            schema.display(),
            serde_json::to_string_pretty(doc).unwrap_or_default()
        );
    }
}

fn sarif_schema() -> PathBuf {
    schemas().join("sarif-schema-2.1.0.json")
}

fn cyclonedx_schema() -> (PathBuf, Vec<PathBuf>) {
    (
        schemas().join("bom-1.6.SNAPSHOT.schema.json"),
        vec![
            schemas().join("spdx.SNAPSHOT.schema.json"),
            schemas().join("jsf-0.82.SNAPSHOT.schema.json"),
        ],
    )
}

fn render(report: &Report, format: &str) -> Value {
    let mut out = Vec::new();
    match format {
        "json" => serde_json::to_writer(&mut out, report).expect("json"),
        "sarif" => bulkhead_scan::report::sarif::write(report, &mut out).expect("sarif"),
        "cyclonedx" => {
            bulkhead_scan::report::cyclonedx::write(report, &mut out).expect("cyclonedx")
        }
        other => panic!("no format {other}"),
    }
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{format} output is not JSON: {e}"))
}

// ---------------------------------------------------------------------------------------
// A report built field by field: alpine:3.11 as it was in 2020, with real advisories.
// ---------------------------------------------------------------------------------------

const LAYER: &str = "sha256:beee9f30bc1f711043e78d4a2be0668955d4b761d587d6f60c2c8dc081efb203";
const DIGEST: &str = "sha256:9a839e63dad54c3a6d1834e29692c8492d93f90c59c978c1ed79109ea4fb9a54";

fn pkg(name: &str, version: &str, source: &str, license: Option<&str>) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        ecosystem: "apk".into(),
        source_name: Some(source.into()),
        source_version: Some(version.into()),
        arch: Some("x86_64".into()),
        license: license.map(Into::into),
        purl: format!("pkg:apk/alpine/{name}@{version}?arch=x86_64&distro=3.11.5"),
        analyzer: "apk@0.1.0".into(),
        db_path: "lib/apk/db/installed".into(),
        layer_digest: Some(LAYER.into()),
        layer_diff_id: Some(LAYER.into()),
        layer_created_by: Some(
            "/bin/sh -c #(nop) ADD file:0c4555f363c2672e350001f1293e689875a3760afe7b3f9146886afe67121cba in / ".into(),
        ),
        files: Vec::new(),
        properties: Vec::new(),
    }
}

fn nvd(vector: &str, score: f64) -> Option<Cvss> {
    Some(Cvss {
        version: "3.1".into(),
        vector: vector.into(),
        score,
        source: "nvd@nist.gov".into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn finding(
    id: &str,
    package: &str,
    version: &str,
    source: &str,
    fixed: Option<&str>,
    fix_state: FixState,
    severity: Severity,
    cvss: Option<Cvss>,
    title: &str,
) -> Finding {
    Finding {
        id: id.into(),
        aliases: Vec::new(),
        package: package.into(),
        installed_version: version.into(),
        source_name: Some(source.into()),
        fixed_version: fixed.map(Into::into),
        fix_state,
        severity,
        severity_source: match &cvss {
            Some(_) => "cvss:nvd@nist.gov".into(),
            None => "vendor:alpine".into(),
        },
        cvss,
        title: title.into(),
        ecosystem: "Alpine:v3.11".into(),
        package_type: "apk".into(),
        purl: format!("pkg:apk/alpine/{package}@{version}?arch=x86_64&distro=3.11.5"),
        arch: Some("x86_64".into()),
        layer_digest: Some(LAYER.into()),
        layer_diff_id: Some(LAYER.into()),
        sources: vec![format!("alpine-v3.11-main:{id}")],
        urls: vec![format!("https://security.alpinelinux.org/vuln/{id}")],
    }
}

/// The zlib package below has no arch recorded (every optional package field unset).
fn as_zlib_package(f: &mut Finding) {
    f.arch = None;
    f.purl = "pkg:apk/alpine/zlib@1.2.11-r3?distro=3.11.5".into();
}

const NET_DOS: &str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H";

fn alpine_311_report() -> Report {
    let ssl = |package: &str| {
        let mut f = finding(
            "CVE-2020-1967",
            package,
            "1.1.1d-r3",
            "openssl",
            Some("1.1.1g-r0"),
            FixState::Fixed,
            Severity::High,
            nvd(NET_DOS, 7.5),
            "Segmentation fault in SSL_check_chain",
        );
        f.aliases = vec!["GHSA-cx6m-8h5q-4j2x".into()];
        f
    };
    let musl = finding(
        "CVE-2020-28928",
        "musl",
        "1.1.24-r2",
        "musl",
        Some("1.1.24-r3"),
        FixState::Fixed,
        Severity::Medium,
        nvd("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H", 5.5),
        "In musl libc through 1.2.1, wcsnrtombs mishandles particular combinations of destination buffer size and source character limit",
    );
    let mut zlib = finding(
        "CVE-2018-25032",
        "zlib",
        "1.2.11-r3",
        "zlib",
        None,
        FixState::EndOfLife,
        Severity::High,
        nvd(NET_DOS, 7.5),
        "zlib before 1.2.12 allows memory corruption when deflating if the input has many distant matches",
    );
    zlib.source_name = None;
    zlib.layer_digest = None;
    zlib.layer_diff_id = None;
    as_zlib_package(&mut zlib);
    let mut unrated = finding(
        "ALPINE-13661",
        "apk-tools",
        "2.10.4-r3",
        "apk-tools",
        None,
        FixState::NotFixed,
        Severity::Unknown,
        None,
        "ALPINE-13661",
    );
    unrated.severity_source = "none".into();
    unrated.urls.clear();
    let busybox = Suppressed {
        finding: finding(
            "CVE-2021-28831",
            "busybox",
            "1.31.1-r9",
            "busybox",
            Some("1.31.1-r10"),
            FixState::Fixed,
            Severity::High,
            nvd(NET_DOS, 7.5),
            "decompress_gunzip.c in BusyBox through 1.32.1 mishandles the error bit on the huft_build result pointer",
        ),
        suppressed_by: ".bulkheadignore".into(),
        reason: "gunzip is not used in this image (ticket SEC-1234)".into(),
    };
    let mut vex = Suppressed {
        finding: finding(
            "CVE-2022-37434",
            "zlib",
            "1.2.11-r3",
            "zlib",
            None,
            FixState::EndOfLife,
            Severity::Critical,
            nvd("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            "zlib through 1.2.12 has a heap-based buffer over-read or buffer overflow in inflate in inflate.c via a large gzip header extra field",
        ),
        suppressed_by: "vex/alpine.openvex.json".into(),
        reason:
            "not_affected: vulnerable_code_not_in_execute_path (inflateGetHeader is never called)"
                .into(),
    };
    as_zlib_package(&mut vex.finding);
    Report {
        schema_version: bulkhead_model::SCHEMA_VERSION.into(),
        image: ImageInfo {
            reference: "docker.io/library/alpine:3.11.5".into(),
            digest: Some(DIGEST.into()),
            platform: Some("linux/amd64".into()),
            layers: vec![Layer {
                digest: LAYER.into(),
                diff_id: LAYER.into(),
                media_type: "application/vnd.docker.image.rootfs.diff.tar.gzip".into(),
                size: 2_802_957,
                created_by: None,
            }],
        },
        os: Some(Os {
            id: "alpine".into(),
            version_id: Some("3.11.5".into()),
            version_codename: None,
            id_like: vec![],
            pretty_name: Some("Alpine Linux v3.11".into()),
            source_file: "etc/os-release".into(),
            eol: Some(Eol {
                date: "2021-11-01".into(),
                reached: true,
            }),
        }),
        complete: true,
        analyzers: vec!["apk@0.1.0".into(), "dpkg@0.1.0".into(), "rpm@0.1.0".into()],
        packages: vec![
            pkg("apk-tools", "2.10.4-r3", "apk-tools", Some("GPL2")),
            pkg("busybox", "1.31.1-r9", "busybox", Some("GPL-2.0-only")),
            pkg(
                "ca-certificates-cacert",
                "20191127-r1",
                "ca-certificates",
                Some("MPL-2.0 GPL-2.0-or-later"),
            ),
            pkg("libcrypto1.1", "1.1.1d-r3", "openssl", Some("OpenSSL")),
            pkg("libssl1.1", "1.1.1d-r3", "openssl", Some("OpenSSL")),
            pkg("musl", "1.1.24-r2", "musl", Some("MIT")),
            pkg("musl-utils", "1.1.24-r2", "musl", Some("MIT BSD GPL2+")),
            Package {
                source_name: None,
                source_version: None,
                arch: None,
                license: None,
                layer_digest: None,
                layer_diff_id: None,
                layer_created_by: None,
                purl: "pkg:apk/alpine/zlib@1.2.11-r3?distro=3.11.5".into(),
                ..pkg("zlib", "1.2.11-r3", "zlib", None)
            },
        ],
        database: Some(vec![DbSource {
            name: "alpine-v3.11-main".into(),
            records: 1532,
            upstream_date: Some("2021-11-01T00:00:00Z".into()),
            imported_at: "2024-05-02T10:00:00Z".into(),
        }]),
        findings: vec![ssl("libcrypto1.1"), ssl("libssl1.1"), zlib, musl, unrated],
        summary: Some(Summary {
            critical: 0,
            high: 3,
            medium: 1,
            low: 0,
            negligible: 0,
            unknown: 1,
            suppressed: 2,
        }),
        health: Some(Health::Unhealthy),
        health_threshold: Some(Severity::High),
        recommendations: vec![
            Recommendation {
                package: "libcrypto1.1".into(),
                installed_version: "1.1.1d-r3".into(),
                source_name: Some("openssl".into()),
                fixed_version: "1.1.1g-r0".into(),
                fixes: vec!["CVE-2020-1967".into()],
                severity: Severity::High,
            },
            Recommendation {
                package: "musl".into(),
                installed_version: "1.1.24-r2".into(),
                source_name: None,
                fixed_version: "1.1.24-r3".into(),
                fixes: vec!["CVE-2020-28928".into()],
                severity: Severity::Medium,
            },
        ],
        suppressed: vec![busybox, vex],
        diagnostics: vec![
            Diagnostic {
                level: Level::Warning,
                code: "analyzer-warning".into(),
                analyzer: Some("apk@0.1.0".into()),
                layer: Some(LAYER.into()),
                message: "lib/apk/db/installed:412: unknown field 'Z' ignored".into(),
            },
            Diagnostic {
                level: Level::Info,
                code: "eol".into(),
                analyzer: None,
                layer: None,
                message: "Alpine 3.11 reached its end of life on 2021-11-01".into(),
            },
        ],
        stats: Stats {
            duration_ms: 412,
            layers: 1,
            layers_downloaded: 1,
            layers_from_cache: 0,
            compressed_bytes: 2_802_957,
            uncompressed_bytes: 5_861_888,
        },
    }
}

/// The same image, not matched (no database), no OS detected: every nullable field null.
fn unmatched_report() -> Report {
    let mut r = alpine_311_report();
    r.os = None;
    r.image.digest = None;
    r.image.platform = None;
    r.image.reference = "dir:/srv/rootfs".into();
    r.database = None;
    r.findings.clear();
    r.summary = None;
    r.health = None;
    r.health_threshold = None;
    r.recommendations.clear();
    r.suppressed.clear();
    r.complete = false;
    r.diagnostics[0].level = Level::Error;
    r
}

// ---------------------------------------------------------------------------------------
// The JSON report and docs/report.schema.json.
// ---------------------------------------------------------------------------------------

#[test]
fn json_report_matches_its_schema_both_ways() {
    let Some(py) = python() else { return };
    let full = render(&alpine_311_report(), "json");
    let empty = render(&unmatched_report(), "json");
    let schema = our_schema();

    // Every object is closed, so each of these must be rejected: a field the code adds
    // and the schema does not list fails this test.
    let mut wrong: Vec<(String, Value)> = Vec::new();
    let pointers = [
        "",
        "/image",
        "/image/layers/0",
        "/os",
        "/os/eol",
        "/packages/0",
        "/database/0",
        "/findings/0",
        "/findings/0/cvss",
        "/summary",
        "/recommendations/0",
        "/suppressed/0",
        "/diagnostics/0",
        "/stats",
    ];
    for p in pointers {
        let mut doc = full.clone();
        let target = doc
            .pointer_mut(p)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{p} is not an object in the report"));
        target.insert("field_the_schema_lacks".into(), json!(1));
        wrong.push((format!("extra field at {p:?}"), doc));
    }
    // Enumerations as the code writes them, not near misses.
    for (p, v) in [
        ("/findings/0/severity", json!("High")),
        ("/findings/0/fix_state", json!("not_fixed")),
        ("/health", json!("ok")),
        ("/diagnostics/0/level", json!("fatal")),
        ("/schema_version", json!("0.1.0")),
    ] {
        let mut doc = full.clone();
        *doc.pointer_mut(p).expect("pointer") = v.clone();
        wrong.push((format!("{p} = {v}"), doc));
    }
    // A field the schema requires but the code would stop writing.
    for (parent, key) in [
        ("", "stats"),
        ("/findings/0", "purl"),
        ("/suppressed/0", "reason"),
    ] {
        let mut doc = full.clone();
        doc.pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .expect("object")
            .remove(key);
        wrong.push((format!("missing {parent}/{key}"), doc));
    }

    let mut docs: Vec<&Value> = vec![&full, &empty];
    docs.extend(wrong.iter().map(|(_, d)| d));
    let verdicts = validate(&py, &schema, &[], &docs);
    if let Err(e) = &verdicts[0] {
        panic!("the full report does not match docs/report.schema.json:\n{e}");
    }
    if let Err(e) = &verdicts[1] {
        panic!("the unmatched report does not match docs/report.schema.json:\n{e}");
    }
    for ((what, _), verdict) in wrong.iter().zip(&verdicts[2..]) {
        assert!(verdict.is_err(), "the schema accepts a report with {what}");
    }
}

#[test]
fn json_schema_lists_every_field_the_report_has() {
    // The closed schema rejects unknown fields; this checks the other direction for the
    // top level and the finding: every property the schema describes is required, so a
    // field removed from the code cannot linger in the schema.
    let schema: Value = serde_json::from_slice(&std::fs::read(our_schema()).expect("read schema"))
        .expect("schema is JSON");
    let keys = |v: &Value| -> BTreeSet<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let required = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let report = render(&alpine_311_report(), "json");
    assert_eq!(keys(&schema["properties"]), keys(&report));
    assert_eq!(required(&schema["required"]), keys(&report));
    let finding = &schema["$defs"]["Finding"];
    assert_eq!(keys(&finding["properties"]), keys(&report["findings"][0]));
    assert_eq!(required(&finding["required"]), keys(&report["findings"][0]));
    assert_eq!(
        schema["properties"]["schema_version"]["const"],
        json!(bulkhead_model::SCHEMA_VERSION),
        "SCHEMA_VERSION changed: update docs/report.schema.json with it"
    );
}

// ---------------------------------------------------------------------------------------
// SARIF.
// ---------------------------------------------------------------------------------------

/// What GitHub code scanning needs beyond the OASIS schema.
fn check_github_sarif(sarif: &Value, report: &Report) {
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "bulkhead");
    assert!(driver["version"].as_str().is_some_and(|v| !v.is_empty()));
    let rules = driver["rules"].as_array().expect("rules");
    let rule_ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    let distinct: BTreeSet<&str> = rule_ids.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        rule_ids.len(),
        "one rule per id: {rule_ids:?}"
    );
    let expected_ids: BTreeSet<&str> = report
        .findings
        .iter()
        .chain(report.suppressed.iter().map(|s| &s.finding))
        .map(|f| f.id.as_str())
        .collect();
    assert_eq!(distinct, expected_ids);
    for r in rules {
        let id = r["id"].as_str().unwrap_or("");
        assert!(
            r["shortDescription"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{id}: shortDescription"
        );
        assert!(
            r["help"]["text"].is_string() && r["help"]["markdown"].is_string(),
            "{id}: help"
        );
        let score = r["properties"]["security-severity"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: security-severity must be a string"));
        let score: f64 = score.parse().unwrap_or_else(|_| panic!("{id}: {score:?}"));
        assert!((0.0..=10.0).contains(&score), "{id}: {score}");
        let tags: Vec<&str> = r["properties"]["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            tags.contains(&"security") && tags.contains(&"vulnerability"),
            "{id}: {tags:?}"
        );
    }
    let results = runs[0]["results"].as_array().expect("results");
    assert_eq!(
        results.len(),
        report.findings.len() + report.suppressed.len()
    );
    for res in results {
        let id = res["ruleId"].as_str().expect("ruleId");
        let index = res["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rule_ids[index], id, "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap_or("")));
        let loc = &res["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .is_some_and(|u| !u.is_empty())
        );
        assert_eq!(loc["region"]["startLine"], 1, "{id}: GitHub needs a line");
        assert!(
            res["partialFingerprints"]["primaryLocationLineHash"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{id}: fingerprint"
        );
    }
}

fn results_by_key(sarif: &Value) -> BTreeMap<(String, String), Value> {
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                (
                    r["ruleId"].as_str().unwrap_or("").to_string(),
                    r["properties"]["package"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                ),
                r.clone(),
            )
        })
        .collect()
}

#[test]
fn sarif_validates_and_suits_github() {
    let Some(py) = python() else { return };
    let report = alpine_311_report();
    let sarif = render(&report, "sarif");
    let empty = render(&unmatched_report(), "sarif");
    // The validator must be able to say no: a level SARIF does not define.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = json!("critical");
    let verdicts = validate(&py, &sarif_schema(), &[], &[&sarif, &empty, &broken]);
    if let Err(e) = &verdicts[0] {
        panic!("SARIF does not validate:\n{e}");
    }
    if let Err(e) = &verdicts[1] {
        panic!("SARIF of an unmatched scan does not validate:\n{e}");
    }
    assert!(
        verdicts[2].is_err(),
        "the SARIF schema accepts level \"critical\""
    );
    check_github_sarif(&sarif, &report);
    check_github_sarif(&empty, &unmatched_report());

    let results = results_by_key(&sarif);
    let ssl = &results[&("CVE-2020-1967".to_string(), "libssl1.1".to_string())];
    assert_eq!(ssl["level"], "error");
    let text = ssl["message"]["text"].as_str().unwrap_or("");
    assert!(
        text.contains("libssl1.1") && text.contains("1.1.1d-r3"),
        "{text}"
    );
    assert!(text.contains("fixed in 1.1.1g-r0"), "{text}");
    assert_eq!(
        ssl["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "lib/apk/db/installed"
    );
    let eol = &results[&("CVE-2018-25032".to_string(), "zlib".to_string())];
    assert!(
        !eol["message"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("fixed in")
    );
    let musl = &results[&("CVE-2020-28928".to_string(), "musl".to_string())];
    assert_eq!(musl["level"], "warning");

    // Rules: CVSS 7.5 is in GitHub's "high" band (7.0–8.9), where our severity is too.
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    let rule = |id: &str| {
        rules
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id}"))
    };
    assert_eq!(
        rule("CVE-2020-1967")["properties"]["security-severity"],
        "7.5"
    );
    assert_eq!(
        rule("CVE-2020-28928")["properties"]["security-severity"],
        "5.5"
    );
    assert!(
        rule("CVE-2020-1967")["help"]["markdown"]
            .as_str()
            .unwrap_or("")
            .contains("1\\.1\\.1g\\-r0")
    );

    // Suppressed findings are results with an external suppression.
    let busybox = &results[&("CVE-2021-28831".to_string(), "busybox".to_string())];
    assert_eq!(busybox["suppressions"][0]["kind"], "external");
    assert!(
        busybox["suppressions"][0]["justification"]
            .as_str()
            .unwrap_or("")
            .contains("gunzip is not used")
    );
    assert!(ssl.get("suppressions").is_none());

    // Fingerprints: the same package version in another image (other reference, digest,
    // layer) is the same alert; another installed version is another alert.
    let mut rebuilt = report.clone();
    rebuilt.image.reference = "ghcr.io/acme/app:2.0".into();
    rebuilt.image.digest = Some(format!("sha256:{}", "1".repeat(64)));
    for f in &mut rebuilt.findings {
        f.layer_digest = Some(format!("sha256:{}", "2".repeat(64)));
    }
    rebuilt.findings[0].installed_version = "1.1.1d-r4".into();
    let again = results_by_key(&render(&rebuilt, "sarif"));
    let fp = |r: &Value| r["partialFingerprints"]["primaryLocationLineHash"].clone();
    let key = ("CVE-2020-1967".to_string(), "libssl1.1".to_string());
    assert_eq!(fp(&results[&key]), fp(&again[&key]));
    let key0 = (
        report.findings[0].id.clone(),
        report.findings[0].package.clone(),
    );
    assert_ne!(fp(&results[&key0]), fp(&again[&key0]));
}

// ---------------------------------------------------------------------------------------
// CycloneDX.
// ---------------------------------------------------------------------------------------

fn check_cyclonedx_links(bom: &Value) {
    let mut refs = vec![
        bom["metadata"]["component"]["bom-ref"]
            .as_str()
            .expect("subject ref"),
    ];
    refs.extend(
        bom["components"]
            .as_array()
            .expect("components")
            .iter()
            .map(|c| c["bom-ref"].as_str().expect("component bom-ref")),
    );
    let set: BTreeSet<&str> = refs.iter().copied().collect();
    assert_eq!(set.len(), refs.len(), "bom-refs are unique: {refs:?}");
    for v in bom["vulnerabilities"].as_array().expect("vulnerabilities") {
        for a in v["affects"].as_array().expect("affects") {
            let r = a["ref"].as_str().expect("ref");
            assert!(
                set.contains(r),
                "{}: affects {r}, which is no component",
                v["id"]
            );
        }
    }
    for d in bom["dependencies"].as_array().expect("dependencies") {
        for r in d["dependsOn"].as_array().expect("dependsOn") {
            assert!(set.contains(r.as_str().unwrap_or("")), "dependency on {r}");
        }
    }
}

#[test]
fn cyclonedx_validates_and_links() {
    let Some(py) = python() else { return };
    let (schema, refs) = cyclonedx_schema();
    let report = alpine_311_report();
    let bom = render(&report, "cyclonedx");
    let empty = render(&unmatched_report(), "cyclonedx");
    // The validator must be able to say no, also through the SPDX subschema.
    let mut broken = bom.clone();
    broken["components"][1]["licenses"] = json!([{ "license": { "id": "GPLv2+" } }]);
    let verdicts = validate(&py, &schema, &refs, &[&bom, &empty, &broken]);
    if let Err(e) = &verdicts[0] {
        panic!("CycloneDX does not validate:\n{e}");
    }
    if let Err(e) = &verdicts[1] {
        panic!("CycloneDX of an unmatched scan does not validate:\n{e}");
    }
    assert!(
        verdicts[2].is_err(),
        "the CycloneDX schema accepts a licence id not in SPDX"
    );
    check_cyclonedx_links(&bom);
    check_cyclonedx_links(&empty);

    assert_eq!(bom["specVersion"], "1.6");
    assert_ne!(
        bom["serialNumber"],
        render(&report, "cyclonedx")["serialNumber"],
        "each BOM gets its own serial number"
    );
    let subject = &bom["metadata"]["component"];
    assert_eq!(subject["type"], "container");
    assert_eq!(subject["version"], DIGEST);
    // The purl-spec's oci type: name = last repository segment, version = digest,
    // repository_url and tag qualifiers (canonical form: sorted, '/' encoded).
    assert_eq!(
        subject["purl"],
        format!("pkg:oci/alpine@{DIGEST}?repository_url=docker.io%2Flibrary%2Falpine&tag=3.11.5")
    );

    let components = bom["components"].as_array().expect("components");
    assert_eq!(components.len(), report.packages.len() + 1);
    let os = components
        .iter()
        .find(|c| c["type"] == "operating-system")
        .expect("OS component");
    assert_eq!(
        (os["name"].as_str(), os["version"].as_str()),
        (Some("alpine"), Some("3.11.5"))
    );
    let component = |name: &str| {
        components
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no component {name}"))
    };
    assert_eq!(component("musl")["licenses"][0]["expression"], "MIT");
    // Not SPDX: named as written, never reinterpreted.
    assert_eq!(
        component("musl-utils")["licenses"][0]["license"]["name"],
        "MIT BSD GPL2+"
    );
    assert_eq!(component("libssl1.1")["bom-ref"], report.packages[4].purl);

    let vulns = bom["vulnerabilities"].as_array().expect("vulnerabilities");
    assert_eq!(vulns.len(), report.findings.len() + report.suppressed.len());
    let vuln = |id: &str, package: &str| {
        let purl = report
            .packages
            .iter()
            .find(|p| p.name == package)
            .map(|p| p.purl.clone())
            .unwrap_or_default();
        vulns
            .iter()
            .find(|v| v["id"] == id && v["affects"][0]["ref"] == purl)
            .unwrap_or_else(|| panic!("no vulnerability {id} of {package}"))
    };
    let ssl = vuln("CVE-2020-1967", "libssl1.1");
    assert_eq!(ssl["ratings"][0]["method"], "CVSSv31");
    assert_eq!(ssl["ratings"][0]["score"], 7.5);
    assert_eq!(ssl["ratings"][0]["severity"], "high");
    assert_eq!(ssl["ratings"][0]["vector"], NET_DOS);
    assert_eq!(ssl["references"][0]["id"], "GHSA-cx6m-8h5q-4j2x");
    assert!(
        ssl["recommendation"]
            .as_str()
            .unwrap_or("")
            .contains("1.1.1g-r0")
    );
    assert_eq!(ssl["affects"][0]["versions"][0]["version"], "1.1.1d-r3");
    assert_eq!(ssl["affects"][0]["versions"][0]["status"], "affected");
    assert!(ssl.get("analysis").is_none());

    // Nothing rated it: an unknown severity, attributed to no one.
    let unrated = vuln("ALPINE-13661", "apk-tools");
    assert_eq!(unrated["ratings"][0]["severity"], "unknown");
    assert!(unrated["ratings"][0].get("source").is_none());

    let vex = vuln("CVE-2022-37434", "zlib");
    assert_eq!(vex["analysis"]["state"], "not_affected");
    assert_eq!(vex["analysis"]["justification"], "code_not_reachable");
    assert_eq!(vex["affects"][0]["versions"][0]["status"], "unaffected");
    let ignored = vuln("CVE-2021-28831", "busybox");
    assert!(
        ignored["analysis"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("gunzip is not used")
    );
    assert!(
        ignored["analysis"].get("state").is_none(),
        "an ignore entry asserts nothing"
    );
}

// ---------------------------------------------------------------------------------------
// Real scans.
// ---------------------------------------------------------------------------------------

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run bulkhead");
    assert!(
        out.status.success(),
        "{cmd:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The repo's demo (an AlmaLinux 9.4 rpm database and the real AlmaLinux errata that
/// name its packages, `demo/README.md`): a real scan with findings rated by the vendor,
/// rendered in every format and validated against the official schemas. Which findings
/// are right is `accuracy.rs`'s job; here the formats must carry all of them.
#[test]
fn real_scan_of_the_demo_in_every_format() {
    let Some(py) = python() else { return };
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo_db(home.path());
    let image = demo_image();
    let scan = |format: &str| -> Value {
        let out = run(bulkhead(home.path()).args(["scan", "--db"]).arg(&db).args([
            image.as_str(),
            "--format",
            format,
        ]));
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{format}: not JSON: {e}"))
    };

    let json = scan("json");
    assert_valid(
        &py,
        &our_schema(),
        &[],
        &json,
        "the JSON report of the demo",
    );
    let findings = json["findings"].as_array().expect("findings").len();
    assert!(findings > 0, "the demo image has findings");
    let report: Report = serde_json::from_value(json).expect("the report deserialises");

    let sarif = scan("sarif");
    assert_valid(&py, &sarif_schema(), &[], &sarif, "the SARIF of the demo");
    check_github_sarif(&sarif, &report);

    let (schema, refs) = cyclonedx_schema();
    let bom = scan("cyclonedx");
    assert_valid(&py, &schema, &refs, &bom, "the CycloneDX of the demo");
    check_cyclonedx_links(&bom);
    assert_eq!(
        bom["components"].as_array().map(Vec::len),
        Some(report.packages.len() + 1),
        "every package and the OS"
    );
    assert_eq!(
        bom["vulnerabilities"].as_array().map(Vec::len),
        Some(findings)
    );
}

// ---------------------------------------------------------------------------------------
// --format template (issue 14, item 4): the shipped templates over a real scan.
// ---------------------------------------------------------------------------------------

/// The demo scanned against `db` with `args` added; (exit code, stdout, stderr).
fn scan_demo(home: &Path, db: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = bulkhead(home)
        .args(["scan", "--db"])
        .arg(db)
        .arg(demo_image())
        .args(args)
        .output()
        .expect("run bulkhead");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The JUnit template gives one failed test case per finding of the JSON report, as
/// Python's XML parser reads it (a second reader, not ours), with every value escaped
/// (an unescaped `&` or `<` from a title would make the file unreadable); the Markdown
/// one a table row per finding and the summary line; the summary line also reaches
/// stderr for a machine format.
#[test]
fn the_shipped_templates_render_every_finding() {
    if !bulkhead_test_artifacts::require_tools(&["python3"]) {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo_db(home.path());
    let (code, json, json_err) = scan_demo(home.path(), &db, &["--format", "json"]);
    assert_eq!(code, Some(0), "{json_err}");
    let report: Value = serde_json::from_str(&json).expect("json");
    let findings = report["findings"].as_array().expect("findings");
    assert!(findings.len() > 100, "the demo has 186 findings");
    assert!(
        json_err.contains(&format!("{} findings", findings.len())),
        "the summary line on stderr: {json_err}"
    );

    let junit = crate::harness::repo("contrib/templates/junit.xml.jinja");
    let file = home.path().join("junit.xml");
    let (code, _, err) = scan_demo(
        home.path(),
        &db,
        &[
            "--format",
            "template",
            "--template",
            &junit.to_string_lossy(),
            "-o",
            &file.to_string_lossy(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let parsed = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             cases = root.findall('./testsuite/testcase')\n\
             print(len(cases), len([c for c in cases if c.find('failure') is not None]), root.find('testsuite').get('failures'))\n\
             for c in cases: print(c.get('name'))",
        )
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        parsed.status.success(),
        "python3 cannot read the JUnit file: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let text = String::from_utf8_lossy(&parsed.stdout);
    let mut lines = text.lines();
    let n = findings.len().to_string();
    assert_eq!(lines.next(), Some(format!("{n} {n} {n}").as_str()));
    let names: BTreeSet<&str> = lines.collect();
    for f in findings {
        let name = format!(
            "[{}] {} in {} {}",
            f["severity"].as_str().unwrap_or(""),
            f["id"].as_str().unwrap_or(""),
            f["package"].as_str().unwrap_or(""),
            f["installed_version"].as_str().unwrap_or("")
        );
        assert!(names.contains(name.as_str()), "no test case {name}");
    }

    let markdown = crate::harness::repo("contrib/templates/markdown.md.jinja");
    let (code, text, err) = scan_demo(
        home.path(),
        &db,
        &[
            "--format",
            "template",
            "--template",
            &markdown.to_string_lossy(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let rows = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Severity"))
        .count();
    assert_eq!(rows, findings.len(), "{text}");
    assert!(
        text.contains(&format!("{} findings in", findings.len())),
        "{text}"
    );
}

/// A template with a mistake fails before the scan, naming the file and the line; a field
/// that does not exist fails when rendered, naming the template and where the variables
/// are listed; `--format template` needs `--template` and the other way round.
#[test]
fn template_mistakes_are_named() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo_db(home.path());
    let broken = home.path().join("broken.txt.jinja");
    std::fs::write(&broken, "line one\n{% for f in findings %}\n{{ f.id }\n").expect("write");
    let (code, _, err) = scan_demo(
        home.path(),
        &db,
        &[
            "--format",
            "template",
            "--template",
            &broken.to_string_lossy(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("broken.txt.jinja:3"), "{err}");

    let typo = home.path().join("typo.txt");
    std::fs::write(&typo, "{% for f in findings %}{{ f.pakage }}\n{% endfor %}").expect("write");
    let (code, _, err) = scan_demo(
        home.path(),
        &db,
        &[
            "--format",
            "template",
            "--template",
            &typo.to_string_lossy(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("typo.txt") && err.contains("report.schema.json"),
        "{err}"
    );

    let (code, _, err) = scan_demo(home.path(), &db, &["--format", "template"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--template FILE"), "{err}");
    let (code, _, err) = scan_demo(home.path(), &db, &["--template", &typo.to_string_lossy()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--format template"), "{err}");
}

/// The default table folds the binary packages of one source and one fix into one block
/// (checked against the JSON report's findings and packages), `--expand` keeps a row per
/// finding, and both end with the summary line.
#[test]
fn the_table_groups_findings_by_upgrade_and_expand_lists_them_all() {
    let home = tempfile::tempdir().expect("tempdir");
    let db = demo_db(home.path());
    let (_, json, _) = scan_demo(home.path(), &db, &["--format", "json"]);
    let report: Value = serde_json::from_str(&json).expect("json");
    let findings = report["findings"].as_array().expect("findings");
    let source_of: BTreeMap<(String, String), String> = report["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                (p["name"].to_string(), p["version"].to_string()),
                p["source_name"]
                    .as_str()
                    .or(p["name"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    // The blocks the table must have: (source, installed, fixed) → ids.
    let mut blocks: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for f in findings {
        let source = f["source_name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| {
                source_of
                    .get(&(f["package"].to_string(), f["installed_version"].to_string()))
                    .cloned()
                    .unwrap_or_else(|| f["package"].as_str().unwrap_or("").to_string())
            });
        blocks
            .entry((
                source,
                f["installed_version"].as_str().unwrap_or("").to_string(),
                f["fixed_version"].as_str().unwrap_or("").to_string(),
            ))
            .or_default()
            .insert(f["id"].as_str().unwrap_or("").to_string());
    }
    let (code, table, err) = scan_demo(home.path(), &db, &[]);
    assert_eq!(code, Some(0), "{err}");
    let headers: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(" → ") && l.contains(" fixes "))
        .collect();
    assert_eq!(headers.len(), blocks.len(), "{table}");
    for ((source, installed, fixed), ids) in &blocks {
        let head = format!("{source} {installed} → {fixed} fixes {}", ids.len());
        assert!(
            headers.iter().any(|h| h.contains(&head)),
            "no block {head:?}"
        );
    }
    let last = table.lines().last().unwrap_or("");
    assert!(
        last.contains(&format!("{} findings in", findings.len())),
        "{last}"
    );

    let (code, expanded, err) = scan_demo(home.path(), &db, &["--expand"]);
    assert_eq!(code, Some(0), "{err}");
    // A row: PACKAGE INSTALLED FIXED ID …; the recommendations' lines say "upgrade".
    let rows = expanded
        .lines()
        .filter(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields.len() > 3
                && ["CVE-", "ALSA-", "GHSA-"]
                    .iter()
                    .any(|p| fields[3].starts_with(p))
        })
        .count();
    assert_eq!(rows, findings.len(), "{expanded}");
    assert_eq!(expanded.lines().last(), Some(last));
}
