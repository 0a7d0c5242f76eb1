//! Alpine secdb parser on real secdb documents (YAML and JSON).

mod common;

use bulkhead_advisories::sources::alpine;
use bulkhead_advisories::{Advisory, Event, FixState};
use common::{data, split};

/// (package, fixed version, id text) for every secfixes entry of a raw YAML document.
fn raw_entries(rel: &str) -> Vec<(String, String, String)> {
    let raw: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&std::fs::read(data(rel)).expect("read")).expect("yaml");
    let mut out = Vec::new();
    for p in raw["packages"].as_sequence().expect("packages") {
        let name = p["pkg"]["name"].as_str().expect("name");
        let Some(fixes) = p["pkg"]["secfixes"].as_mapping() else {
            continue;
        };
        for (version, ids) in fixes {
            let version = version.as_str().expect("version key");
            for id in ids.as_sequence().into_iter().flatten() {
                out.push((
                    name.to_owned(),
                    version.to_owned(),
                    id.as_str().expect("id").to_owned(),
                ));
            }
        }
    }
    out
}

fn find<'a>(records: &'a [Advisory], id: &str) -> &'a Advisory {
    records
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("{id} missing"))
}

#[test]
fn v3_11_main() {
    let (records, errors) =
        split(alpine::read_file(&data("alpine/v3.11-main.yaml")).expect("parse"));
    assert!(errors.is_empty(), "{errors:?}");
    let raw = raw_entries("alpine/v3.11-main.yaml");
    // Every secfixes entry is one affected entry of the advisory named by its first id.
    assert_eq!(
        records.iter().map(|a| a.affected.len()).sum::<usize>(),
        raw.len()
    );
    let mut first_ids: Vec<&str> = raw
        .iter()
        .map(|(_, _, id)| id.split_whitespace().next().expect("id"))
        .collect();
    first_ids.sort();
    first_ids.dedup();
    assert_eq!(records.len(), first_ids.len());
    assert!(
        records
            .iter()
            .all(|a| a.affected.iter().all(|f| f.ecosystem == "Alpine:v3.11"))
    );

    // From the file: openssl 1.1.1d-r1 fixes CVE-2019-1547, CVE-2019-1549, CVE-2019-1563.
    for cve in ["CVE-2019-1547", "CVE-2019-1549", "CVE-2019-1563"] {
        let a = find(&records, cve);
        let f = a
            .affected
            .iter()
            .find(|f| f.package == "openssl")
            .expect("openssl");
        assert_eq!(
            f.ranges[0].events,
            [
                Event::Introduced("0".into()),
                Event::Fixed("1.1.1d-r1".into())
            ]
        );
        assert_eq!(f.fix_state, Some(FixState::Fixed));
    }
    // "CVE-2017-12122 TALOS-2017-0488" (sdl2_image): the second id is an alias.
    assert_eq!(
        find(&records, "CVE-2017-12122").aliases,
        ["TALOS-2017-0488"]
    );
    // "CVE-2017-16808 (AoE)" (tcpdump): the remark is no alias.
    assert!(find(&records, "CVE-2017-16808").aliases.is_empty());
}

#[test]
fn zero_means_not_affected() {
    let (records, errors) =
        split(alpine::read_file(&data("alpine/v3.8-main.yaml")).expect("parse"));
    assert!(errors.is_empty(), "{errors:?}");
    // v3.8 main.yaml: db, "0": CVE-2016-0682 … (Oracle Berkeley DB issues whitelisted).
    let a = find(&records, "CVE-2016-0682");
    let f = a.affected.iter().find(|f| f.package == "db").expect("db");
    assert_eq!(f.ecosystem, "Alpine:v3.8");
    assert_eq!(f.fix_state, Some(FixState::NotAffected));
    assert!(f.ranges.is_empty());
}

#[test]
fn json_forms() {
    // vuln-list-update's 3.12 sample: ansible 2.7.9-r0 → CVE-2018-16876, and "2.8.0-r0": {}.
    let (records, errors) =
        split(alpine::read_file(&data("alpine/v3.12-main.json")).expect("parse"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(records.len(), 1);
    let f = &records[0].affected[0];
    assert_eq!(
        (
            records[0].id.as_str(),
            f.ecosystem.as_str(),
            f.package.as_str()
        ),
        ("CVE-2018-16876", "Alpine:v3.12", "ansible")
    );
    assert_eq!(f.ranges[0].events[1], Event::Fixed("2.7.9-r0".into()));

    // claircore's 3.10 community sample: botan 2.9.0-r0 → CVE-2018-20187.
    let (records, errors) =
        split(alpine::read_file(&data("alpine/v3.10-community.json")).expect("parse"));
    assert!(errors.is_empty(), "{errors:?}");
    let f = &find(&records, "CVE-2018-20187").affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("Alpine:v3.10", "botan")
    );
    assert_eq!(f.ranges[0].events[1], Event::Fixed("2.9.0-r0".into()));
}

#[test]
fn directory_and_broken_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(data("alpine/v3.12-main.json"), dir.path().join("main.json")).expect("copy");
    // One package entry without a name, one good: the good one is kept, the bad one named.
    std::fs::write(
        dir.path().join("community.yaml"),
        "distroversion: v3.12\nreponame: community\npackages:\n  - pkg:\n      secfixes:\n        1.0-r0:\n          - CVE-2020-0001\n  - pkg:\n      name: good\n      secfixes:\n        1.0-r0:\n          - CVE-2020-0002\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("broken.yaml"), "distroversion: [unclosed\n").expect("write");
    let (records, errors) = split(alpine::read_path(dir.path()).expect("open"));
    let mut ids: Vec<&str> = records.iter().map(|a| a.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["CVE-2018-16876", "CVE-2020-0002"]);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.path() == dir.path().join("broken.yaml"))
    );
    let entry = errors
        .iter()
        .find(|e| e.path() == dir.path().join("community.yaml"))
        .expect("entry error");
    assert_eq!(entry.location(), Some("packages[0]"));
}
