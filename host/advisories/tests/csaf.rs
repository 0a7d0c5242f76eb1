//! Red Hat CSAF parser on real documents: a VEX file (trivy-db's copy) and two security
//! advisories (vunnel's copies), one of them for a module stream.

mod common;

use bulkhead_advisories::sources::csaf;
use bulkhead_advisories::{Event, FixState, SeverityKind};
use common::{data, ts};

#[test]
fn vex_file() {
    let a = csaf::read_file(&data("csaf/cve-2024-10041.json")).expect("parse");
    assert_eq!(a.id, "CVE-2024-10041");
    assert_eq!(
        a.summary,
        "pam: libpam: Libpam vulnerable to read hashed password"
    );
    assert_eq!(a.published, Some(ts("2024-10-18T00:00:00Z")));
    assert_eq!(a.modified, Some(ts("2024-12-18T09:14:23Z")));
    // The vendor_fix remediation's URL names the erratum.
    assert_eq!(a.aliases, ["RHSA-2024:9941"]);
    assert_eq!(a.severity.len(), 1);
    assert_eq!(
        (a.severity[0].kind, a.severity[0].value.as_str()),
        (
            SeverityKind::CvssV3,
            "CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:H/I:N/A:N"
        )
    );
    assert_eq!(a.severity[0].score, Some(4.7));
    // pam-0:1.5.1-21.el9_5 for x86_64 and aarch64 in BaseOS (cpe:/o:redhat:enterprise_linux:9::baseos):
    // one entry; red_hat_enterprise_linux_7:pam is not in this copy's product tree.
    assert_eq!(a.affected.len(), 1);
    let f = &a.affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("RHEL:9", "pam")
    );
    assert_eq!(
        f.ranges[0].events,
        [
            Event::Introduced("0".into()),
            Event::Fixed("1.5.1-21.el9_5".into())
        ]
    );
    assert_eq!(f.vendor_severity.as_deref(), Some("Moderate"));
}

#[test]
fn els_advisory_with_not_affected_packages() {
    let a = csaf::read_file(&data("csaf/rhsa-2025_23414.json")).expect("parse");
    assert_eq!(a.id, "RHSA-2025:23414");
    assert_eq!(a.aliases, ["CVE-2021-25220", "CVE-2025-40778"]);
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("csaf/rhsa-2025_23414.json")).expect("read"))
            .expect("json");
    // Binary names in the "fixed" lists (source rpms aside), from the raw product ids
    // "6Server-ELS.EXTENSION:<name>-32:<version>-<release>.<arch>".
    let mut fixed: Vec<String> = raw["vulnerabilities"][0]["product_status"]["fixed"]
        .as_array()
        .expect("fixed")
        .iter()
        .map(|id| {
            id.as_str()
                .expect("id")
                .split_once(':')
                .expect("platform")
                .1
        })
        .filter(|nevra| !nevra.ends_with(".src"))
        .map(|nevra| nevra.split("-32:").next().expect("name").to_owned())
        .collect();
    fixed.sort();
    fixed.dedup();
    let ours: Vec<&str> = a
        .affected
        .iter()
        .filter(|f| f.fix_state == Some(FixState::Fixed))
        .map(|f| f.package.as_str())
        .collect();
    assert_eq!(ours, fixed);
    for f in a
        .affected
        .iter()
        .filter(|f| f.fix_state == Some(FixState::Fixed))
    {
        assert_eq!(f.ecosystem, "RHEL:6+els");
        // Epoch 32 from the purl's `epoch=32`.
        assert_eq!(
            f.ranges[0].events[1],
            Event::Fixed("32:9.8.2-0.68.rc1.el6_10.17".into())
        );
    }
    // bind-chroot is known_not_affected for both CVEs.
    let chroot = a
        .affected
        .iter()
        .find(|f| f.package == "bind-chroot")
        .expect("bind-chroot");
    assert_eq!(chroot.fix_state, Some(FixState::NotAffected));
    assert!(chroot.ranges.is_empty());
}

#[test]
fn module_stream_advisory() {
    let a = csaf::read_file(&data("csaf/rhsa-2023_3821.json")).expect("parse");
    assert_eq!(a.id, "RHSA-2023:3821");
    assert_eq!(
        a.aliases,
        ["CVE-2021-33621", "CVE-2023-28755", "CVE-2023-28756"]
    );
    // Product id "AppStream-8.8.0.Z.MAIN.EUS:ruby-libs-2.7.8-139.module+el8.8.0+18745+f1bef313.x86_64.rpm-ruby:2.7",
    // platform cpe:/a:redhat:enterprise_linux:8::appstream, purl rpmmod=ruby:2.7:….
    let f = a
        .affected
        .iter()
        .find(|f| f.package == "ruby-libs")
        .expect("ruby-libs");
    assert_eq!(f.ecosystem, "RHEL:8");
    assert_eq!(f.module.as_deref(), Some("ruby:2.7"));
    // The purl's percent-encoded '+' is decoded.
    assert_eq!(
        f.ranges[0].events[1],
        Event::Fixed("2.7.8-139.module+el8.8.0+18745+f1bef313".into())
    );
    assert!(
        a.affected
            .iter()
            .all(|f| f.module.as_deref() == Some("ruby:2.7"))
    );
}

#[test]
fn broken_documents() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        data("csaf/cve-2024-10041.json"),
        dir.path().join("good.json"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"document": {"category": "csaf_base", "tracking": {"id": "X"}}}"#,
    )
    .expect("write");
    let (records, errors) = common::split(csaf::read_path(dir.path()).expect("open"));
    assert_eq!(records.len(), 1);
    assert_eq!(errors[0].path(), dir.path().join("bad.json"));
    assert!(
        errors[0].to_string().contains("unsupported CSAF category"),
        "{}",
        errors[0]
    );
}
