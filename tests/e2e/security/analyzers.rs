//! Lying analyzers: a third-party analyzer runs within every sandbox limit and returns
//! well-formed lies (the guest `tests/guests/liar`, built by `tests/artifacts/build.rs`
//! like the hostile one and loaded with `--analyzer`). What it says must not decide the
//! verdict: each test scans a real image with a real finding and asserts on the health,
//! the findings and the exit code, not only on the diagnostic.
//!
//! The image is the official `alpine:3.12` layer (`tests/fixtures/images/
//! alpine-minirootfs-3.12.12-x86_64.tar.gz`), plus a small layer holding the liar's
//! `liar.mode` where a test needs one. The advisories are Alpine's real secdb for v3.12
//! (`tests/fixtures/advisories/`), in which the image's `zlib 1.2.12-r0` is affected by
//! CVE-2022-37434. The secdb has no severities and no NVD data is carried offline, so the
//! finding's severity is `unknown`: the scans run with `--health-threshold unknown
//! --fail-on unknown`, under which that finding alone makes the image unhealthy and fails
//! the gate. The expected verdict comes from the same scan without the liar.

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::Path;
use std::process::Output;

use bulkhead_test_artifacts::images::{Compression, Image, LayerTar, Platform, sha256_digest};
use bulkhead_test_artifacts::{LIAR, LIAR_OWN_ECOSYSTEM, fixture};
use serde_json::Value;

use crate::harness::{bulkhead, stderr};

const MINIROOTFS: &str = "alpine-minirootfs-3.12.12-x86_64.tar.gz";
const CVE: &str = "CVE-2022-37434";

/// `alpine:3.12` (its upstream layer byte for byte), then one layer per entry of `extra`,
/// each holding the given files.
fn image(extra: &[&[(&str, &str)]]) -> Image {
    let (image, layout) = Image::new_layout("attack");
    let path = fixture(&format!("images/{MINIROOTFS}"));
    let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut tar)
        .expect("gunzip the minirootfs");
    let mut layers = vec![
        layout
            .add_compressed_layer(
                &gz,
                Compression::Gzip.media_type(),
                &sha256_digest(&tar),
                &format!("ADD {MINIROOTFS} /"),
            )
            .expect("base layer"),
    ];
    for (i, files) in extra.iter().enumerate() {
        let mut t = LayerTar::new();
        for (name, text) in *files {
            t.parents(name).file(name, text.as_bytes(), 0o644);
        }
        layers.push(
            layout
                .add_layer(&t.into_bytes(), Compression::Gzip, &format!("RUN step {i}"))
                .expect("extra layer"),
        );
    }
    let manifest = layout
        .add_image(&layers, &Platform::linux_amd64())
        .expect("manifest");
    layout.tag(&manifest, "attack").expect("tag");
    image
}

/// A home whose database holds Alpine's v3.12 secdb.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let out = bulkhead(home.path())
        .args(["--quiet", "db", "import"])
        .arg(fixture("advisories/alpine-secdb-2024/v3.12/main.json"))
        .output()
        .expect("run bulkhead");
    assert!(out.status.success(), "db import: {}", stderr(&out));
    home
}

/// `bulkhead scan -f json` of `image` with the gate at `unknown`, plus `extra` flags.
fn scan(home: &Path, image: &Image, extra: &[&str]) -> Output {
    bulkhead(home)
        .args([
            "--quiet",
            "scan",
            "-f",
            "json",
            "--health-threshold",
            "unknown",
            "--fail-on",
            "unknown",
        ])
        .args(extra)
        .arg(image.oci_ref())
        .output()
        .expect("run bulkhead")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); exit {:?}; stderr: {}",
            out.status.code(),
            stderr(out)
        )
    })
}

/// (id, package, installed version) of every finding.
fn findings(report: &Value) -> BTreeSet<(String, String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().expect("id").to_string(),
                f["package"].as_str().expect("package").to_string(),
                f["installed_version"]
                    .as_str()
                    .expect("version")
                    .to_string(),
            )
        })
        .collect()
}

/// (name, version, analyzer) of every package.
fn packages(report: &Value) -> BTreeSet<(String, String, String)> {
    report["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_string(),
                p["version"].as_str().expect("version").to_string(),
                p["analyzer"].as_str().expect("analyzer").to_string(),
            )
        })
        .collect()
}

/// An owned `(a, b, c)`, for set lookups.
fn row(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

fn diagnostics<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["code"] == code)
        .collect()
}

/// The verdict without any third-party analyzer: the reference every attack is held to.
struct Baseline {
    findings: BTreeSet<(String, String, String)>,
    packages: BTreeSet<(String, String, String)>,
}

fn baseline(home: &Path) -> Baseline {
    let out = scan(home, &image(&[]), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["health"], "unhealthy", "{report:#}");
    assert_eq!(report["os"]["id"], "alpine");
    assert_eq!(report["os"]["version_id"], "3.12.12");
    let findings = findings(&report);
    assert!(
        findings.contains(&row(CVE, "zlib", "1.2.12-r0")),
        "the real finding: {findings:?}"
    );
    Baseline {
        findings,
        packages: packages(&report),
    }
}

/// The verdict of `out` is the baseline's: exit 1 (the gate fails), unhealthy, the same
/// findings.
#[track_caller]
fn same_verdict(out: &Output, base: &Baseline) -> Value {
    assert_eq!(
        out.status.code(),
        Some(1),
        "the gate must still fail: {}",
        stderr(out)
    );
    let report = json(out);
    assert_eq!(report["health"], "unhealthy", "{report:#}");
    assert_eq!(findings(&report), base.findings, "{report:#}");
    assert_eq!(report["os"]["version_id"], "3.12.12", "{report:#}");
    report
}

#[test]
fn a_spoofed_os_changes_nothing_but_a_diagnostic() {
    let home = home();
    let base = baseline(home.path());
    let img = image(&[&[("liar.mode", "os:alpine:3.99.0")]]);
    let report = same_verdict(&scan(home.path(), &img, &["--analyzer", LIAR]), &base);
    assert!(
        diagnostics(&report, "db-missing-ecosystem").is_empty(),
        "the OS was not taken from the analyzer: {report:#}"
    );
    let d = diagnostics(&report, "analyzer-os-ignored");
    assert_eq!(d.len(), 1, "{report:#}");
    assert_eq!(d[0]["analyzer"], "liar@1.0.0");
    let message = d[0]["message"].as_str().expect("message");
    assert!(
        message.contains("alpine 3.99.0") && message.contains("alpine 3.12.12"),
        "{message}"
    );
}

#[test]
fn a_spoofed_version_of_a_builtin_package_is_kept_beside_the_real_one() {
    let home = home();
    let base = baseline(home.path());
    let img = image(&[&[("liar.mode", "version:zlib:9.9.9-r0")]]);
    let report = same_verdict(&scan(home.path(), &img, &["--analyzer", LIAR]), &base);
    // Both readings are in the inventory, each with the analyzer that produced it.
    let pkgs = packages(&report);
    let zlib: Vec<_> = pkgs.iter().filter(|(n, _, _)| n == "zlib").collect();
    assert_eq!(zlib.len(), 2, "{zlib:?}");
    assert!(
        zlib.iter()
            .any(|(_, v, a)| v == "1.2.12-r0" && a.starts_with("apk@"))
    );
    assert!(
        zlib.iter()
            .any(|(_, v, a)| v == "9.9.9-r0" && a == "liar@1.0.0")
    );
    let d = diagnostics(&report, "analyzer-package-conflict");
    assert_eq!(d.len(), 1, "{report:#}");
    let message = d[0]["message"].as_str().expect("message");
    assert!(
        message.contains("liar@1.0.0") && message.contains("apk@") && message.contains("zlib"),
        "{message}"
    );
}

#[test]
fn a_spoofed_ecosystem_adds_but_never_hides_and_confinement_refuses_it() {
    let home = home();
    let base = baseline(home.path());
    // The liar declares the built-in apk analyzer's ecosystem and reports the package as
    // up to date from a database of its own.
    let img = image(&[&[("liar.mode", "claim:zlib:9.9.9-r0:usr/lib/liar/installed")]]);
    let report = same_verdict(&scan(home.path(), &img, &["--analyzer", LIAR]), &base);
    assert!(
        packages(&report).contains(&row("zlib", "9.9.9-r0", "liar@1.0.0")),
        "added, with its provenance: {report:#}"
    );
    // Confined, an analyzer that declares a built-in's ecosystem is refused at load: the
    // scan is an error (exit 2) that names it and the built-in, not a pass.
    let out = scan(
        home.path(),
        &img,
        &["--analyzer", LIAR, "--confine-analyzers"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("liar@1.0.0") && err.contains("apk@") && err.contains("\"apk\""),
        "{err}"
    );
}

#[test]
fn a_package_claimed_from_another_analyzers_database_is_dropped_when_confined() {
    let home = home();
    let base = baseline(home.path());
    let img = image(&[&[("liar.mode", "claim:zlib:9.9.9-r0:lib/apk/db/installed")]]);
    // Not confined: added beside the built-in's reading, never in its place.
    let report = same_verdict(
        &scan(home.path(), &img, &["--analyzer", LIAR_OWN_ECOSYSTEM]),
        &base,
    );
    assert!(packages(&report).contains(&row("zlib", "9.9.9-r0", "liar@1.0.0")));
    assert_eq!(
        diagnostics(&report, "analyzer-package-conflict").len(),
        1,
        "{report:#}"
    );
    // Confined: the claim on the built-in's file is dropped; the inventory is the
    // built-in analyzers' alone.
    let report = same_verdict(
        &scan(
            home.path(),
            &img,
            &["--analyzer", LIAR_OWN_ECOSYSTEM, "--confine-analyzers"],
        ),
        &base,
    );
    assert_eq!(packages(&report), base.packages, "{report:#}");
    let d = diagnostics(&report, "analyzer-confined");
    assert_eq!(d.len(), 1, "{report:#}");
    assert_eq!(d[0]["analyzer"], "liar@1.0.0");
    assert!(
        d[0]["message"]
            .as_str()
            .expect("message")
            .contains("lib/apk/db/installed")
    );
}

#[test]
fn the_attack_of_the_issue_leaves_the_image_unhealthy() {
    // One analyzer, two lies: the OS is a release no feed covers, and the vulnerable
    // package is up to date in the built-in's database. Before the host decided the OS,
    // this image was reported healthy with exit 0.
    let home = home();
    let base = baseline(home.path());
    let img = image(&[
        &[("liar.mode", "os:alpine:3.99.0")],
        &[("liar.mode", "version:zlib:9.9.9-r0")],
    ]);
    let report = same_verdict(&scan(home.path(), &img, &["--analyzer", LIAR]), &base);
    assert_eq!(diagnostics(&report, "analyzer-os-ignored").len(), 1);
    assert_eq!(diagnostics(&report, "analyzer-package-conflict").len(), 1);
}

#[test]
fn a_release_no_feed_covers_is_unknown_and_fails_the_gate() {
    // The image's own os-release (a later layer wins) names a release the database has
    // no advisories for: nothing could be checked, and that is not `healthy`.
    let home = home();
    let img = image(&[&[(
        "etc/os-release",
        "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.99.0\n",
    )]]);
    let out = scan(home.path(), &img, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["os"]["version_id"], "3.99.0");
    assert_eq!(report["health"], "unknown", "{report:#}");
    assert!(report["findings"].as_array().expect("findings").is_empty());
    assert_eq!(diagnostics(&report, "db-missing-ecosystem").len(), 1);
    assert!(
        stderr(&out).contains("--allow-unassessed"),
        "{}",
        stderr(&out)
    );
    // The operator may accept it explicitly.
    let out = scan(home.path(), &img, &["--allow-unassessed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["health"], "unknown");
}
