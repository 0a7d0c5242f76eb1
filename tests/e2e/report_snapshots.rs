//! Snapshots of the demo scan (`demo/almalinux9-demo.tar.gz` matched against
//! `demo/advisories/almalinux9`, as the README's first command runs it) in every output
//! format: the table, JSON, SARIF and CycloneDX, in `tests/e2e/snapshots/`.
//!
//! The other tests check what each format must say; these show every change of the output
//! in review. What varies from run to run is normalised before the comparison: the import
//! time, the scan's duration, CycloneDX's serial number and timestamp, and Bulkhead's own
//! version. The image is scanned by a relative path (`docker-archive:almalinux9-demo.tar.gz`
//! in the scan's working directory) so that no checkout path shows.
//!
//! A plain `cargo test` compares; with `CI` set insta never writes a snapshot. After an
//! intended change: `INSTA_UPDATE=always cargo test --release -p bulkhead --test e2e
//! report_snapshots` (or `cargo insta review`), then review the diff of the `.snap` files.

use std::path::Path;

use serde_json::Value;

use crate::harness::{bulkhead, demo, demo_db, stderr};

const IMAGE: &str = "docker-archive:almalinux9-demo.tar.gz";

/// `bulkhead scan IMAGE --db DB -f FORMAT` in `home`, without the layer cache (so that the
/// stats do not depend on the order of the scans); stdout.
fn scan(home: &Path, db: &Path, format: &str) -> String {
    let out = bulkhead(home)
        .args(["scan", IMAGE, "--no-cache", "--format", format, "--db"])
        .arg(db)
        .output()
        .expect("run bulkhead scan");
    assert!(
        out.status.success(),
        "{format}: exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json(text: &str, format: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{format}: not JSON: {e}"))
}

/// Sets `doc[path...]` to `to` when it is there (and fails when it is not: a renamed field
/// must not silently stop being normalised).
fn redact(doc: &mut Value, path: &[&str], to: &str) {
    let mut v = &mut *doc;
    for key in path {
        v = match key.parse::<usize>() {
            Ok(i) => v.get_mut(i),
            Err(_) => v.get_mut(*key),
        }
        .unwrap_or_else(|| panic!("no {path:?} to normalise"));
    }
    *v = Value::String(to.to_string());
}

fn pretty(doc: &Value) -> String {
    serde_json::to_string_pretty(doc).expect("serialise")
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s
}

#[test]
fn demo_scan_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = demo_db(dir.path());
    let home = dir.path().join("scan-home");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::copy(
        demo("almalinux9-demo.tar.gz"),
        home.join("almalinux9-demo.tar.gz"),
    )
    .expect("copy the demo image");
    let version = env!("CARGO_PKG_VERSION");

    settings().bind(|| {
        let table = scan(&home, &db, "table");
        assert!(
            table.starts_with(IMAGE),
            "the table names the image first: {table:.200}"
        );
        insta::assert_snapshot!("demo_table", table);

        let mut report = json(&scan(&home, &db, "json"), "json");
        let sources = report["database"].as_array().map_or(0, Vec::len);
        assert_eq!(sources, 1, "one source: osv:almalinux9");
        redact(
            &mut report,
            &["database", "0", "imported_at"],
            "[imported_at]",
        );
        redact(&mut report, &["stats", "duration_ms"], "[duration_ms]");
        insta::assert_snapshot!("demo_json", pretty(&report));

        let mut sarif = json(&scan(&home, &db, "sarif"), "sarif");
        assert_eq!(sarif["runs"][0]["tool"]["driver"]["version"], version);
        for field in ["version", "semanticVersion"] {
            redact(
                &mut sarif,
                &["runs", "0", "tool", "driver", field],
                "[version]",
            );
        }
        insta::assert_snapshot!("demo_sarif", pretty(&sarif));

        let mut bom = json(&scan(&home, &db, "cyclonedx"), "cyclonedx");
        redact(&mut bom, &["serialNumber"], "urn:uuid:[serial]");
        redact(&mut bom, &["metadata", "timestamp"], "[timestamp]");
        assert_eq!(
            bom["metadata"]["tools"]["components"][0]["name"],
            "bulkhead"
        );
        assert_eq!(
            bom["metadata"]["tools"]["components"][0]["version"],
            version
        );
        redact(
            &mut bom,
            &["metadata", "tools", "components", "0", "version"],
            "[version]",
        );
        insta::assert_snapshot!("demo_cyclonedx", pretty(&bom));
    });
}
