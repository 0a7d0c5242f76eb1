//! Matcher semantics on small hand-built feeds: merging across feeds, withdrawn records,
//! fix states, source-rpm lookups and module streams.

use bulkhead_advisories::{
    Advisory, Affected, Builder, Event, FixState, Range, RangeKind, Severity, SeverityKind, Store,
    match_packages, match_packages_report,
};
use bulkhead_model::{Os, Package};

fn affected(eco: &str, pkg: &str, events: Vec<Event>, state: Option<FixState>) -> Affected {
    Affected {
        ecosystem: eco.into(),
        package: pkg.into(),
        ranges: vec![Range {
            kind: RangeKind::Ecosystem,
            repo: None,
            events,
        }],
        versions: vec![],
        fix_state: state,
        vendor_severity: None,
        module: None,
    }
}

fn fixed(eco: &str, pkg: &str, v: &str) -> Affected {
    affected(
        eco,
        pkg,
        vec![Event::Introduced("0".into()), Event::Fixed(v.into())],
        Some(FixState::Fixed),
    )
}

fn open(eco: &str, pkg: &str, state: FixState) -> Affected {
    affected(eco, pkg, vec![Event::Introduced("0".into())], Some(state))
}

fn advisory(id: &str, aliases: &[&str], affected: Vec<Affected>) -> Advisory {
    Advisory {
        id: id.into(),
        aliases: aliases.iter().map(|s| (*s).to_owned()).collect(),
        summary: format!("{id} summary"),
        affected,
        ..Advisory::default()
    }
}

fn store(dir: &std::path::Path, feeds: Vec<(&str, Vec<Advisory>)>) -> Store {
    let db = dir.join("a.db");
    let mut b = Builder::empty(&db).expect("builder");
    for (name, records) in feeds {
        b.import(name, records.into_iter().map(Ok)).expect("import");
    }
    b.commit().expect("commit");
    Store::open(&db).expect("open")
}

fn deb(name: &str, source: &str, version: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        source_name: Some(source.into()),
        source_version: Some(version.into()),
        ecosystem: "deb".into(),
        ..Default::default()
    }
}

fn debian12() -> Os {
    Os {
        id: "debian".into(),
        version_id: Some("12".into()),
        ..Default::default()
    }
}

#[test]
fn one_finding_per_cve_across_debian_feeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tracker = advisory(
        "CVE-2023-0001",
        &[],
        vec![fixed("Debian:12", "openssl", "3.0.9-1")],
    );
    tracker.affected[0].vendor_severity = Some("negligible".into());
    tracker.severity = vec![Severity {
        source: "nvd@nist.gov".into(),
        kind: SeverityKind::CvssV3,
        value: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into(),
        score: None,
    }];
    let s = store(
        dir.path(),
        vec![
            (
                "debian-dsa",
                vec![
                    // One DSA fixing two CVEs, one of which the tracker also has.
                    advisory(
                        "DSA-5400-1",
                        &["CVE-2023-0001", "CVE-2023-0002"],
                        vec![fixed("Debian:12", "openssl", "3.0.9-1")],
                    ),
                    // A later, larger fix of the same CVE (an incomplete first fix).
                    advisory(
                        "DSA-5401-1",
                        &["CVE-2023-0001"],
                        vec![fixed("Debian:12", "openssl", "3.0.10-1")],
                    ),
                    // A regression update without CVE.
                    advisory(
                        "DSA-5402-1",
                        &[],
                        vec![fixed("Debian:12", "openssl", "3.0.10-2")],
                    ),
                ],
            ),
            ("debian-tracker", vec![tracker]),
        ],
    );
    let pkgs = [deb("libssl3", "openssl", "3.0.8-1")];
    let findings = match_packages(&s, Some(&debian12()), &pkgs).expect("match");
    let ids: Vec<&str> = findings.iter().map(|f| f.finding.id.as_str()).collect();
    assert_eq!(ids, ["CVE-2023-0001", "CVE-2023-0002", "DSA-5402-1"]);
    let f = &findings[0];
    assert_eq!(f.finding.package, "libssl3");
    assert_eq!(f.finding.source_name.as_deref(), Some("openssl"));
    // The smallest fixing version of the three records.
    assert_eq!(f.finding.fixed_version.as_deref(), Some("3.0.9-1"));
    assert_eq!(f.finding.fix_state, FixState::Fixed);
    assert_eq!(f.finding.aliases, ["DSA-5400-1", "DSA-5401-1"]);
    assert_eq!(f.advisories.len(), 3);
    assert_eq!(f.vendor_severity.as_deref(), Some("negligible"));
    assert_eq!(f.severities.len(), 1);
    assert_eq!(findings[1].finding.aliases, ["DSA-5400-1"]);

    // Past the first fix, only the later one applies.
    let pkgs = [deb("libssl3", "openssl", "3.0.9-1")];
    let findings = match_packages(&s, Some(&debian12()), &pkgs).expect("match");
    let got: Vec<(&str, Option<&str>)> = findings
        .iter()
        .map(|f| (f.finding.id.as_str(), f.finding.fixed_version.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2023-0001", Some("3.0.10-1")),
            ("DSA-5402-1", Some("3.0.10-2"))
        ]
    );
}

#[test]
fn withdrawn_not_affected_and_fix_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut withdrawn = advisory("CVE-2023-0010", &[], vec![fixed("Debian:12", "zlib", "9")]);
    withdrawn.withdrawn = Some("2024-01-01T00:00:00Z".parse().expect("ts"));
    let s = store(
        dir.path(),
        vec![(
            "debian-tracker",
            vec![
                withdrawn,
                advisory(
                    "CVE-2023-0011",
                    &[],
                    vec![affected(
                        "Debian:12",
                        "zlib",
                        vec![],
                        Some(FixState::NotAffected),
                    )],
                ),
                advisory(
                    "CVE-2023-0012",
                    &[],
                    vec![open("Debian:12", "zlib", FixState::NotFixed)],
                ),
                advisory(
                    "CVE-2023-0013",
                    &[],
                    vec![open("Debian:12", "zlib", FixState::WontFix)],
                ),
                advisory(
                    "CVE-2023-0014",
                    &[],
                    vec![open("Debian:12", "zlib", FixState::EndOfLife)],
                ),
                // Another release's entry must not match.
                advisory("CVE-2023-0015", &[], vec![fixed("Debian:11", "zlib", "9")]),
            ],
        )],
    );
    let findings = match_packages(
        &s,
        Some(&debian12()),
        &[deb("zlib1g", "zlib", "1:1.2.13.dfsg-1")],
    )
    .expect("match");
    let got: Vec<(&str, FixState, Option<&str>)> = findings
        .iter()
        .map(|f| {
            (
                f.finding.id.as_str(),
                f.finding.fix_state,
                f.finding.fixed_version.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2023-0012", FixState::NotFixed, None),
            ("CVE-2023-0013", FixState::WontFix, None),
            ("CVE-2023-0014", FixState::EndOfLife, None),
        ]
    );
}

#[test]
fn pypi_records_merge_by_cve_and_by_shared_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let range = |v: &str| fixed("PyPI", "Django", v);
    let s = store(
        dir.path(),
        vec![
            (
                "pypa",
                vec![
                    advisory(
                        "PYSEC-2024-1",
                        &["CVE-2024-1", "GHSA-aaaa"],
                        vec![range("4.2.1")],
                    ),
                    advisory("PYSEC-2024-2", &["GHSA-bbbb"], vec![range("4.2.2")]),
                ],
            ),
            (
                "ghsa",
                vec![
                    advisory("GHSA-aaaa", &["CVE-2024-1"], vec![range("4.2.1")]),
                    // No CVE on either side: joined by the shared GHSA id.
                    advisory("GHSA-bbbb", &[], vec![range("4.2.2")]),
                ],
            ),
        ],
    );
    let pkg = Package {
        name: "django".into(),
        version: "4.2".into(),
        ecosystem: "pypi".into(),
        ..Default::default()
    };
    let findings = match_packages(&s, None, &[pkg]).expect("match");
    let got: Vec<(&str, Vec<&str>)> = findings
        .iter()
        .map(|f| {
            (
                f.finding.id.as_str(),
                f.finding.aliases.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2024-1", vec!["GHSA-aaaa", "PYSEC-2024-1"]),
            ("GHSA-bbbb", vec!["PYSEC-2024-2"]),
        ]
    );
}

#[test]
fn rpm_source_lookups_only_for_unfixed_entries_and_modules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut module_entry = fixed("RHEL:8", "ruby-libs", "2.7.9-1.module+el8");
    module_entry.module = Some("ruby:2.7".into());
    let s = store(
        dir.path(),
        vec![(
            "redhat",
            vec![
                // Unfixed, named by component (source rpm): applies to its binaries.
                advisory(
                    "CVE-2024-10",
                    &[],
                    vec![open("RHEL:8", "ruby", FixState::WontFix)],
                ),
                // Fixed, named by the source rpm: not applied to a differently named binary.
                advisory(
                    "CVE-2024-11",
                    &[],
                    vec![fixed("RHEL:8", "ruby", "9.9-1.el8")],
                ),
                // Fixed for the module stream 2.7 only.
                advisory("CVE-2024-12", &[], vec![module_entry]),
            ],
        )],
    );
    let os = Os {
        id: "rhel".into(),
        version_id: Some("8.10".into()),
        ..Default::default()
    };
    let pkg = |label: Option<&str>| Package {
        name: "ruby-libs".into(),
        version: "2.7.8-1.module+el8".into(),
        source_name: Some("ruby".into()),
        source_version: Some("2.7.8-1.module+el8".into()),
        ecosystem: "rpm".into(),
        properties: label
            .map(|l| ("modularity-label".to_string(), l.to_string()))
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let ids = |p: Package| -> Vec<String> {
        match_packages(&s, Some(&os), &[p])
            .expect("match")
            .into_iter()
            .map(|f| f.finding.id)
            .collect()
    };
    assert_eq!(
        ids(pkg(Some("ruby:2.7:8100020240101:abcd"))),
        ["CVE-2024-10", "CVE-2024-12"]
    );
    assert_eq!(
        ids(pkg(Some("ruby:3.1:8100020240101:abcd"))),
        ["CVE-2024-10"]
    );
    assert_eq!(ids(pkg(None)), ["CVE-2024-10"]);
}

#[test]
fn unparsable_installed_version_is_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(
        dir.path(),
        vec![(
            "t",
            vec![advisory(
                "CVE-1",
                &[],
                vec![fixed("Debian:12", "zlib", "9")],
            )],
        )],
    );
    let report = match_packages_report(
        &s,
        Some(&debian12()),
        &[deb("zlib1g", "zlib", "not a version"), deb("x", "x", "1")],
    )
    .expect("match");
    assert!(report.findings.is_empty());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    // No feed for this distribution: a warning, not an error.
    let os = Os {
        id: "gentoo".into(),
        ..Default::default()
    };
    let report = match_packages_report(&s, Some(&os), &[deb("x", "x", "1")]).expect("match");
    assert_eq!(report.warnings.len(), 1);
}

/// Issue 13: real apk versions that apk-tools 2 accepts (`3.3.3p1-r3`, libretls in Alpine
/// 3.14) are matched, and versions no apk-tools accepts (secdb's `2021-03-27-r5`) are
/// compared by apk-tools' fallback, with a note saying so.
#[test]
fn apk_versions_are_matched_as_apk_tools_orders_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alpine = "Alpine:v3.14";
    let s = store(
        dir.path(),
        vec![(
            "secdb",
            vec![
                advisory("CVE-1", &[], vec![fixed(alpine, "libretls", "3.3.3p1-r3")]),
                advisory(
                    "CVE-2",
                    &[],
                    vec![fixed(alpine, "quickjs", "2021-03-27-r5")],
                ),
                advisory("CVE-3", &[], vec![fixed(alpine, "sudo", "1.9.5p2-r0")]),
            ],
        )],
    );
    let apk = |name: &str, version: &str| Package {
        name: name.into(),
        version: version.into(),
        source_name: Some(name.into()),
        ecosystem: "apk".into(),
        ..Default::default()
    };
    let os = Os {
        id: "alpine".into(),
        version_id: Some("3.14.3".into()),
        ..Default::default()
    };
    let report = match_packages_report(
        &s,
        Some(&os),
        &[
            apk("libretls", "3.3.3p1-r2"),
            // apk-tools: 2021.03.27-r4 < 2021-03-27-r5 (an unreadable rest is greater).
            apk("quickjs", "2021.03.27-r4"),
            apk("sudo", "1.9.5p2-r0"),
        ],
    )
    .expect("match");
    let found: Vec<(&str, &str, Option<&str>)> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.finding.package.as_str(),
                f.finding.id.as_str(),
                f.finding.fixed_version.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("libretls", "CVE-1", Some("3.3.3p1-r3")),
            ("quickjs", "CVE-2", Some("2021-03-27-r5")),
        ]
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].contains("quickjs 2021.03.27-r4: advisory CVE-2 (secdb)")
            && report.notes[0].contains("2021-03-27-r5"),
        "{:?}",
        report.notes
    );

    // An installed version apk-tools calls invalid is compared the same way (up to where
    // apk-tools stops reading it), and noted.
    let report =
        match_packages_report(&s, Some(&os), &[apk("libretls", "3.2.0-1")]).expect("match");
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
    assert!(
        report.notes[0].starts_with("libretls 3.2.0-1: "),
        "{:?}",
        report.notes
    );
}
