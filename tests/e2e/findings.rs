//! `bulkhead scan` with an advisory database: what a CI pipeline relies on. Exit codes
//! (`--fail-on`), filters (`--severity`, `--ignore-unfixed`), suppressions (counted, not
//! dropped), health, the missing-database cases, and a database that does not cover the
//! image's distribution.
//!
//! The image and advisories are the repo's demo (`demo/`): an AlmaLinux 9 rpm database
//! and the real AlmaLinux OSV errata that name its packages. Which findings are *correct*
//! is `accuracy.rs`'s job; here every expectation is derived from an unfiltered run of the
//! same scan, so that each flag is checked against what it must remove or keep.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{bulkhead, demo_advisories, demo_image, repo, stderr};

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run bulkhead")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A home whose database holds the demo advisories.
fn home_with_db() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(bulkhead(home.path())
        .args(["--quiet", "db", "import"])
        .arg(demo_advisories()));
    assert!(out.status.success(), "db import: {}", stderr(&out));
    home
}

fn scan(home: &Path, extra: &[&str]) -> Output {
    run(bulkhead(home)
        .args(["--quiet", "scan", "-f", "json"])
        .args(extra)
        .arg(demo_image()))
}

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings array")
}

fn severities(report: &Value) -> Vec<String> {
    findings(report)
        .iter()
        .map(|f| f["severity"].as_str().expect("severity").to_string())
        .collect()
}

#[test]
fn without_a_database_the_inventory_is_reported_with_a_warning() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = scan(home.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert!(report["database"].is_null());
    assert!(report["health"].is_null());
    assert!(!report["packages"].as_array().expect("packages").is_empty());
    assert!(
        report["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .any(|d| d["code"] == "no-advisory-db"),
        "{report:#}"
    );
}

#[test]
fn a_gate_without_a_database_is_an_error_not_a_pass() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = scan(home.path(), &["--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no advisory database"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn findings_health_and_the_fail_on_gate() {
    let home = home_with_db();
    let out = scan(home.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "findings alone are a success: {}",
        stderr(&out)
    );
    let report = json(&out);
    let all = severities(&report);
    assert!(!all.is_empty(), "the demo image has findings: {report:#}");
    assert_eq!(report["os"]["id"], "almalinux");

    // The summary counts what `findings` holds.
    for word in ["critical", "high", "medium", "low", "negligible", "unknown"] {
        let n = all.iter().filter(|s| *s == word).count();
        assert_eq!(report["summary"][word], n, "{word}");
    }
    // Health at the default threshold (high).
    let bad = all.iter().any(|s| s == "critical" || s == "high");
    assert_eq!(
        report["health"],
        if bad { "unhealthy" } else { "healthy" },
        "{:?}",
        all
    );
    assert_eq!(report["health_threshold"], "high");

    // Every finding with a fix is covered by a recommendation for its package whose
    // fixes list names it.
    let recs = report["recommendations"]
        .as_array()
        .expect("recommendations");
    for f in findings(&report) {
        if f["fixed_version"].is_null() {
            continue;
        }
        assert!(
            recs.iter().any(|r| r["package"] == f["package"]
                && r["fixes"]
                    .as_array()
                    .expect("fixes")
                    .iter()
                    .any(|id| *id == f["id"])),
            "no recommendation for {f:#}"
        );
    }

    // --fail-on: exit 1 exactly when a finding is at or above the level.
    let order = ["unknown", "negligible", "low", "medium", "high", "critical"];
    let rank = |s: &str| order.iter().position(|o| *o == s).expect("severity word");
    let worst = all.iter().map(|s| rank(s)).max().expect("non-empty");
    for (level, word) in order.iter().enumerate().skip(1) {
        let out = scan(home.path(), &["--fail-on", word]);
        let expected = if worst >= level { 1 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "--fail-on {word} with worst {}: {}",
            order[worst],
            stderr(&out)
        );
        // The report is written either way.
        assert_eq!(findings(&json(&out)).len(), all.len());
    }
}

#[test]
fn filters_remove_exactly_what_they_name() {
    let home = home_with_db();
    let full = json(&scan(home.path(), &[]));
    let all = findings(&full);

    let out = scan(home.path(), &["--severity", "high,critical"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let filtered = json(&out);
    let kept = severities(&filtered);
    assert!(kept.iter().all(|s| s == "high" || s == "critical"));
    assert_eq!(
        kept.len(),
        all.iter()
            .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
            .count()
    );

    let out = scan(home.path(), &["--ignore-unfixed"]);
    let fixed_only = json(&out);
    assert!(
        findings(&fixed_only)
            .iter()
            .all(|f| !f["fixed_version"].is_null())
    );
    assert_eq!(
        findings(&fixed_only).len(),
        all.iter().filter(|f| !f["fixed_version"].is_null()).count()
    );
}

#[test]
fn an_ignore_file_suppresses_and_counts() {
    let home = home_with_db();
    let full = json(&scan(home.path(), &[]));
    let first = &findings(&full)[0];
    let id = first["id"].as_str().expect("id");
    let package = first["package"].as_str().expect("package");
    let same_id = findings(&full)
        .iter()
        .filter(|f| f["id"] == id && f["package"] == package)
        .count();
    std::fs::write(
        home.path().join(".bulkheadignore"),
        format!(
            "ignore:\n  - id: {id}\n    package: {package}\n    reason: accepted risk for the test\n"
        ),
    )
    .expect("write ignore file");
    // Picked up from the working directory.
    let out = scan(home.path(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        findings(&report).len() + same_id,
        findings(&full).len(),
        "{:#}",
        report["suppressed"]
    );
    assert!(
        !findings(&report)
            .iter()
            .any(|f| f["id"] == id && f["package"] == package)
    );
    assert_eq!(report["summary"]["suppressed"], same_id);
    let suppressed = report["suppressed"].as_array().expect("suppressed");
    assert_eq!(suppressed.len(), same_id);
    assert_eq!(suppressed[0]["id"], id);
    assert!(
        suppressed[0]["reason"]
            .as_str()
            .expect("reason")
            .contains("accepted risk")
    );
}

#[test]
fn a_database_without_the_images_distribution_says_so() {
    let home = home_with_db();
    // alpine:3.11 against AlmaLinux advisories: nothing can be checked, and that must
    // not read as a clean image.
    let out = run(bulkhead(home.path())
        .args(["--quiet", "scan", "-f", "json"])
        .arg(format!(
            "docker-archive:{}",
            repo("tests/fixtures/images/alpine-311.tar.gz").display()
        )));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    let diag = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .find(|d| d["code"] == "db-missing-ecosystem")
        .unwrap_or_else(|| panic!("no db-missing-ecosystem diagnostic: {report:#}"));
    assert!(
        diag["message"]
            .as_str()
            .expect("message")
            .contains("Alpine:v3.11")
    );
    // Alpine 3.11 is past its end of life.
    assert_eq!(report["os"]["eol"]["reached"], true);
    // No finding, yet nothing was checked: `unknown`, not `healthy`; a gate fails on it
    // unless the operator accepts unassessed images.
    assert!(findings(&report).is_empty());
    assert_eq!(report["health"], "unknown", "{report:#}");
    let gate = |extra: &[&str]| {
        run(bulkhead(home.path())
            .args(["--quiet", "scan", "-f", "json", "--fail-on", "critical"])
            .args(extra)
            .arg(format!(
                "docker-archive:{}",
                repo("tests/fixtures/images/alpine-311.tar.gz").display()
            )))
    };
    let out = gate(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-unassessed"),
        "{}",
        stderr(&out)
    );
    let out = gate(&["--allow-unassessed"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["health"], "unknown");
    // SARIF and CycloneDX say it, where findings alone would read as a clean image.
    let format = |f: &str| {
        json(&run(bulkhead(home.path())
            .args(["--quiet", "scan", "-f", f])
            .arg(format!(
                "docker-archive:{}",
                repo("tests/fixtures/images/alpine-311.tar.gz").display()
            ))))
    };
    assert_eq!(
        format("sarif")["runs"][0]["properties"]["health"],
        "unknown"
    );
    let bom = format("cyclonedx");
    assert!(
        bom["metadata"]["component"]["properties"]
            .as_array()
            .expect("properties")
            .iter()
            .any(|p| p["name"] == "bulkhead:scan:health" && p["value"] == "unknown"),
        "{bom:#}"
    );
    // The table says it too.
    let out = run(bulkhead(home.path()).args(["--quiet", "scan"]).arg(format!(
        "docker-archive:{}",
        repo("tests/fixtures/images/alpine-311.tar.gz").display()
    )));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("health:   UNKNOWN"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_table_shows_health_findings_and_recommendations() {
    let home = home_with_db();
    let out = run(bulkhead(home.path())
        .args(["--quiet", "scan"])
        .arg(demo_image()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("health:"), "{text}");
    assert!(text.contains("Recommendations"), "{text}");
    assert!(text.contains("upgrade "), "{text}");
    // No colour codes when stdout is not a terminal.
    assert!(!text.contains('\u{1b}'), "{text}");
}
