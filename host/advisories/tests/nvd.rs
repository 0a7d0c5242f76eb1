//! NVD API 2.0 parser on real pages (vunnel, vuln-list-update, osv.dev samples).

mod common;

use bulkhead_advisories::SeverityKind;
use bulkhead_advisories::sources::nvd;
use common::{data, split, ts};

fn raw(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data(rel)).expect("read")).expect("json")
}

#[test]
fn full_page() {
    let (records, errors) = split(nvd::read_path(&data("nvd/full-page.json")).expect("open"));
    assert!(errors.is_empty(), "{errors:?}");
    let page = raw("nvd/full-page.json");
    let vulns = page["vulnerabilities"].as_array().expect("vulnerabilities");
    assert_eq!(
        records.len() as u64,
        page["totalResults"].as_u64().expect("total")
    );
    // Every metric of every CVE is kept, with its vector and score.
    for (ours, theirs) in records.iter().zip(vulns) {
        assert_eq!(ours.cve, theirs["cve"]["id"].as_str().expect("id"));
        let metrics = theirs["cve"]["metrics"].as_object().expect("metrics");
        let all: Vec<&serde_json::Value> = metrics
            .values()
            .flat_map(|m| m.as_array().expect("list"))
            .collect();
        assert_eq!(ours.severity.len(), all.len(), "{}", ours.cve);
        for m in all {
            let vector = m["cvssData"]["vectorString"].as_str().expect("vector");
            let s = ours
                .severity
                .iter()
                .find(|s| s.value == vector && s.source == m["source"].as_str().expect("source"));
            assert_eq!(
                s.and_then(|s| s.score),
                m["cvssData"]["baseScore"].as_f64(),
                "{} {vector}",
                ours.cve
            );
        }
    }
    // Quoted from the file.
    let first = &records[0];
    assert_eq!(first.cve, "CVE-2023-27314");
    assert_eq!(first.modified, Some(ts("2023-10-18T18:00:24.900Z")));
    let primary = first
        .severity
        .iter()
        .find(|s| s.source == "nvd@nist.gov")
        .expect("NVD's own rating");
    assert_eq!(primary.kind, SeverityKind::CvssV3);
    assert_eq!(
        primary.value,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
    );
    assert_eq!(primary.score, Some(7.5));
}

#[test]
fn cvss_v4_and_v2() {
    let (records, errors) = split(nvd::read_path(&data("nvd/respPage2.json")).expect("open"));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.cve, "CVE-2024-5732");
    let kinds: Vec<SeverityKind> = r.severity.iter().map(|s| s.kind).collect();
    assert!(
        kinds.contains(&SeverityKind::CvssV4)
            && kinds.contains(&SeverityKind::CvssV3)
            && kinds.contains(&SeverityKind::CvssV2)
    );
    let v4 = r
        .severity
        .iter()
        .find(|s| s.kind == SeverityKind::CvssV4)
        .expect("v4");
    assert_eq!(v4.source, "cna@vuldb.com");
    assert!(
        v4.value
            .starts_with("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N")
    );
    let v2 = r
        .severity
        .iter()
        .find(|s| s.kind == SeverityKind::CvssV2)
        .expect("v2");
    assert_eq!(v2.value, "AV:N/AC:L/Au:N/C:P/I:P/A:P");
}

#[test]
fn directory_of_pages_and_a_broken_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(data("nvd/CVE-2024-3094.json"), dir.path().join("a.json")).expect("copy");
    std::fs::copy(data("nvd/respPage2.json"), dir.path().join("b.json")).expect("copy");
    std::fs::write(dir.path().join("c.json"), r#"{"vulnerabilities": [{"cve": {"id": "CVE-2024-0001", "metrics": {"cvssMetricV31": [{"source": "x", "cvssData": {"vectorString": "CVSS:3.1/AV:N", "baseScore": 99}}]}}}]}"#).expect("write");
    let (records, errors) = split(nvd::read_path(dir.path()).expect("open"));
    let ids: Vec<&str> = records.iter().map(|r| r.cve.as_str()).collect();
    assert_eq!(ids, ["CVE-2024-3094", "CVE-2024-5732"]);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path(), dir.path().join("c.json"));
    assert!(
        errors[0].to_string().contains("out of range"),
        "{}",
        errors[0]
    );
    let xz = &records[0];
    assert!(
        xz.severity
            .iter()
            .any(|s| s.source == "secalert@redhat.com" && s.score == Some(10.0))
    );
}
