//! Debian security tracker parsers on real data: the JSON export (vunnel's and osv.dev's
//! samples), the DSA list (full, up to 2023-04) and DLA samples.

mod common;

use bulkhead_advisories::sources::debian::{self, Releases};
use bulkhead_advisories::{Advisory, Event, FixState};
use common::{data, split, ts};

fn find<'a>(records: &'a [Advisory], id: &str) -> &'a Advisory {
    records
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("{id} missing"))
}

#[test]
fn config_codenames() {
    let releases = Releases::from_config(&data("debian/config.json")).expect("config");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("debian/config.json")).expect("read"))
            .expect("json");
    for name in raw["distributions"]
        .as_object()
        .expect("distributions")
        .keys()
    {
        assert!(releases.knows(name), "{name}");
    }
    assert_eq!(releases.ecosystem("bookworm"), "Debian:12");
    assert_eq!(releases.ecosystem("bullseye"), "Debian:11");
    assert_eq!(releases.ecosystem("sid"), "Debian:unstable");

    // A release newer than the built-in table is numbered after its predecessor.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"distributions": {"trixie": {}, "forky": {}, "duke": {}, "zzfuture": {}, "sid": {}}}"#,
    )
    .expect("write");
    let releases = Releases::from_config(&cfg).expect("config");
    assert_eq!(releases.ecosystem("zzfuture"), "Debian:16");
}

#[test]
fn tracker_json_osvdev_sample() {
    let releases = Releases::builtin();
    let (records, errors) = split(
        debian::read_tracker_json(&data("debian/tracker-osvdev.json"), &releases).expect("parse"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(records.len(), 3);
    let state = |id: &str, eco: &str| {
        let a = find(&records, id);
        let f = a
            .affected
            .iter()
            .find(|f| f.ecosystem == eco)
            .unwrap_or_else(|| panic!("{id} {eco}"));
        assert_eq!(f.package, "apparmor");
        (
            f.fix_state,
            f.ranges.first().map(|r| r.events.clone()),
            f.vendor_severity.clone(),
        )
    };
    // CVE-2014-1424, bookworm: resolved, fixed_version "0", urgency unimportant.
    assert_eq!(
        state("CVE-2014-1424", "Debian:12"),
        (Some(FixState::NotAffected), None, Some("negligible".into()))
    );
    // CVE-2016-1585: bookworm open; sid and trixie resolved in 3.0.12-1.
    assert_eq!(
        state("CVE-2016-1585", "Debian:12"),
        (
            Some(FixState::NotFixed),
            Some(vec![Event::Introduced("0".into())]),
            Some("negligible".into())
        )
    );
    assert_eq!(
        state("CVE-2016-1585", "Debian:unstable").1,
        Some(vec![
            Event::Introduced("0".into()),
            Event::Fixed("3.0.12-1".into())
        ])
    );
    assert_eq!(state("CVE-2016-1585", "Debian:13").0, Some(FixState::Fixed));
    // CVE-2017-6507: urgency "not yet assigned".
    assert_eq!(state("CVE-2017-6507", "Debian:11").2, None);
    assert!(
        find(&records, "CVE-2016-1585")
            .details
            .starts_with("In all versions of AppArmor mount rules")
    );
}

#[test]
fn tracker_json_vunnel_sample() {
    let releases = Releases::builtin();
    let (records, errors) = split(
        debian::read_tracker_json(&data("debian/tracker-vunnel.json"), &releases).expect("parse"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("debian/tracker-vunnel.json")).expect("read"))
            .expect("json");
    let issues: usize = raw
        .as_object()
        .expect("object")
        .values()
        .map(|v| v.as_object().expect("issues").len())
        .sum();
    assert_eq!(records.len(), issues);
    // prototypejs CVE-2008-7220: stretch resolved in 1.6.0.2-1, urgency "high**".
    let a = find(&records, "CVE-2008-7220");
    let f = a
        .affected
        .iter()
        .find(|f| f.ecosystem == "Debian:9")
        .expect("stretch");
    assert_eq!(f.package, "prototypejs");
    assert_eq!(f.ranges[0].events[1], Event::Fixed("1.6.0.2-1".into()));
    assert_eq!(f.vendor_severity.as_deref(), Some("high"));
    // chromium-browser CVE-2022-0358 has "releases": [] in the export.
    assert!(find(&records, "CVE-2022-0358").affected.is_empty());
}

#[test]
fn broken_tracker_entry_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tracker.json");
    std::fs::write(&path, r#"{"pkg": {"CVE-2020-1": {"releases": {"bookworm": {"status": "weird"}}}, "CVE-2020-2": {"releases": {}}}}"#)
        .expect("write");
    let (records, errors) =
        split(debian::read_tracker_json(&path, &Releases::builtin()).expect("parse"));
    assert_eq!(records.len(), 1);
    assert_eq!(errors[0].location(), Some("package pkg, CVE-2020-1"));
    std::fs::write(&path, "{\"pkg\": ").expect("write");
    let err = debian::read_tracker_json(&path, &Releases::builtin()).expect_err("truncated");
    assert_eq!(err.path(), path);
}

#[test]
fn dsa_list_full() {
    let releases = Releases::from_config(&data("debian/config.json")).expect("config");
    let text = std::fs::read_to_string(data("debian/DSA-list")).expect("read");
    let (records, errors) =
        split(debian::read_list(&data("debian/DSA-list"), &releases).expect("parse"));
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    // One record per header line.
    assert_eq!(
        records.len(),
        text.lines().filter(|l| l.starts_with('[')).count()
    );
    // Every `[release] - package …` line is one affected entry, and every <not-affected> one is NotAffected.
    let fix_lines = text
        .lines()
        .filter(|l| l.trim_start().starts_with('[') && !l.starts_with('['))
        .count();
    assert_eq!(
        records.iter().map(|a| a.affected.len()).sum::<usize>(),
        fix_lines
    );
    let not_affected = text.matches("<not-affected>").count();
    let ours = records
        .iter()
        .flat_map(|a| &a.affected)
        .filter(|f| f.fix_state == Some(FixState::NotAffected))
        .count();
    assert_eq!(ours, not_affected);
    // The CVE ids in braces are the aliases.
    let cves = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .flat_map(|l| {
            l.trim()
                .trim_start_matches('{')
                .trim_end_matches('}')
                .split_whitespace()
        })
        .count();
    assert_eq!(records.iter().map(|a| a.aliases.len()).sum::<usize>(), cves);

    // The first entry of the file.
    let a = find(&records, "DSA-5380-1");
    assert_eq!(a.published, Some(ts("2023-03-29T00:00:00Z")));
    assert_eq!(a.summary, "xorg-server - security update");
    assert_eq!(a.aliases, ["CVE-2023-1393"]);
    let f = &a.affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("Debian:11", "xorg-server")
    );
    assert_eq!(
        f.ranges[0].events[1],
        Event::Fixed("2:1.20.11-1+deb11u6".into())
    );
    // Line 10473: "[lenny] - openoffice.org <not-affected> (Vulnerable code not present)".
    let oo = records.iter().flat_map(|a| &a.affected).find(|f| {
        f.package == "openoffice.org"
            && f.ecosystem == "Debian:5.0"
            && f.fix_state == Some(FixState::NotAffected)
    });
    assert!(oo.is_some());
}

#[test]
fn dsa_sample_with_space_indentation() {
    let (records, errors) =
        split(debian::read_list(&data("debian/DSA-vunnel"), &Releases::builtin()).expect("parse"));
    assert!(errors.is_empty(), "{errors:?}");
    // DSA-140 libpng: two woody packages, indented with spaces in this file.
    let a = find(&records, "DSA-140");
    assert_eq!(a.aliases, ["CVE-2002-0660", "CVE-2002-0728"]);
    let pkgs: Vec<(&str, &str)> = a
        .affected
        .iter()
        .map(|f| (f.ecosystem.as_str(), f.package.as_str()))
        .collect();
    assert_eq!(pkgs, [("Debian:3.0", "libpng"), ("Debian:3.0", "libpng3")]);
    // DSA-4205-1 "jessie end-of-life" is an announcement: no packages.
    assert!(find(&records, "DSA-4205-1").affected.is_empty());
}

#[test]
fn malformed_dla_header_is_skipped_and_named() {
    let (records, errors) = split(
        debian::read_list(&data("debian/DLA-malformed"), &Releases::builtin()).expect("parse"),
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, "DLA-2711-1");
    assert_eq!(
        records[0].affected[0].ranges[0].events[1],
        Event::Fixed("1:78.12.0-1~deb9u1".into())
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path(), data("debian/DLA-malformed"));
    assert_eq!(errors[0].location(), Some("line 4"));
}
