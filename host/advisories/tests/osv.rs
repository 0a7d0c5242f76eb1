//! OSV parser on real records from golang/vulndb, RustSec, PyPA (YAML), AlmaLinux and
//! osv.dev `all.zip` archives. Expected values are read from the raw files, either
//! literally (quoted from the file) or through serde_json/serde_yaml_ng `Value`s.

mod common;

use std::io::Write;

use bulkhead_advisories::sources::osv;
use bulkhead_advisories::{Event, FixState, RangeKind, SeverityKind};
use common::{data, split, ts};

fn raw_json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data(rel)).expect("read")).expect("raw json")
}

#[test]
fn go_record() {
    let a = osv::read_file(&data("osv/go/GO-2020-0001.json")).expect("parse");
    assert_eq!(a.id, "GO-2020-0001");
    assert_eq!(a.aliases, ["CVE-2020-36567", "GHSA-6vm3-jj99-7229"]);
    assert_eq!(
        a.summary,
        "Arbitrary log line injection in github.com/gin-gonic/gin"
    );
    assert_eq!(a.published, Some(ts("2021-04-14T20:04:52Z")));
    // golang/vulndb writes the zero time for "never modified".
    assert_eq!(a.modified, Some(ts("0001-01-01T00:00:00Z")));
    assert_eq!(a.withdrawn, None);
    assert_eq!(a.affected.len(), 1);
    let f = &a.affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("Go", "github.com/gin-gonic/gin")
    );
    assert_eq!(f.ranges[0].kind, RangeKind::Semver);
    assert_eq!(
        f.ranges[0].events,
        [Event::Introduced("0".into()), Event::Fixed("1.6.0".into())]
    );
    assert_eq!(f.fix_state, Some(FixState::Fixed));
    let raw = raw_json("osv/go/GO-2020-0001.json");
    let refs = raw["references"].as_array().expect("references");
    assert_eq!(a.references.len(), refs.len());
    for (ours, theirs) in a.references.iter().zip(refs) {
        assert_eq!(ours.url, theirs["url"].as_str().expect("url"));
        assert_eq!(ours.kind, theirs["type"].as_str().expect("type"));
    }
}

#[test]
fn withdrawn_go_record() {
    let a = osv::read_file(&data("osv/go/GO-2024-2730.json")).expect("parse");
    assert_eq!(a.withdrawn, Some(ts("2024-04-17T18:06:23Z")));
    assert_eq!(a.related, ["CVE-2024-3400"]);
    // Only "introduced: 0": affected, no fix.
    assert_eq!(a.affected[0].fix_state, Some(FixState::NotFixed));
    assert_eq!(a.affected[0].package, "github.com/gorilla/sessions");
}

#[test]
fn rustsec_record_with_cvss() {
    let a = osv::read_file(&data("osv/crates/RUSTSEC-2016-0001.json")).expect("parse");
    assert_eq!(a.aliases, ["CVE-2016-10931", "GHSA-34p9-f4q3-c4r7"]);
    assert_eq!(a.severity.len(), 1);
    assert_eq!(a.severity[0].kind, SeverityKind::CvssV3);
    assert_eq!(
        a.severity[0].value,
        "CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
    );
    let f = &a.affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("crates.io", "openssl")
    );
    assert_eq!(
        f.ranges[0].events,
        [
            Event::Introduced("0.0.0-0".into()),
            Event::Fixed("0.9.0".into())
        ]
    );
}

#[test]
fn pypa_yaml_records() {
    let a = osv::read_file(&data("osv/pypi/PYSEC-2007-1.yaml")).expect("parse");
    assert_eq!(a.id, "PYSEC-2007-1");
    assert_eq!(a.aliases, ["CVE-2007-5712"]);
    assert_eq!(a.modified, Some(ts("2021-07-15T02:22:07.728618Z")));
    let f = &a.affected[0];
    assert_eq!(
        (f.ecosystem.as_str(), f.package.as_str()),
        ("PyPI", "django")
    );
    assert_eq!(
        f.ranges[0].events,
        [Event::Introduced("0".into()), Event::Fixed("1.1".into())]
    );
    let raw: serde_yaml_ng::Value = serde_yaml_ng::from_slice(
        &std::fs::read(data("osv/pypi/PYSEC-2007-1.yaml")).expect("read"),
    )
    .expect("yaml");
    let versions: Vec<String> = raw["affected"][0]["versions"]
        .as_sequence()
        .expect("versions")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    assert_eq!(f.versions, versions);
    assert!(
        a.details
            .starts_with("The internationalization (i18n) framework in Django 0.91")
    );

    let b = osv::read_file(&data("osv/pypi/PYSEC-2022-42969.yaml")).expect("parse");
    assert_eq!(
        b.affected[0].ranges[0].events,
        [
            Event::Introduced("0".into()),
            Event::LastAffected("1.11.0".into())
        ]
    );
    assert_eq!(b.affected[0].fix_state, Some(FixState::NotFixed));
}

#[test]
fn almalinux_record() {
    let a = osv::read_file(&data("osv/almalinux/ALSA-2024:8914.json")).expect("parse");
    let raw = raw_json("osv/almalinux/ALSA-2024:8914.json");
    assert_eq!(a.summary, "Moderate: libtiff security update");
    assert_eq!(a.related, ["CVE-2024-7006"]);
    assert_eq!(
        a.affected.len(),
        raw["affected"].as_array().expect("affected").len()
    );
    for (f, r) in a
        .affected
        .iter()
        .zip(raw["affected"].as_array().expect("affected"))
    {
        assert_eq!(f.ecosystem, "AlmaLinux:9");
        assert_eq!(f.package, r["package"]["name"].as_str().expect("name"));
        assert_eq!(
            f.ranges[0].events[1],
            Event::Fixed("4.4.0-12.el9_4.1".into())
        );
        // AlmaLinux states the Red Hat impact only in the summary.
        assert_eq!(f.vendor_severity.as_deref(), Some("Moderate"));
    }
    // A bug-fix erratum ("Important: qatzip bug fix…") has no related CVEs.
    let b = osv::read_file(&data("osv/almalinux/ALBA-2022:8256.json")).expect("parse");
    assert!(b.related.is_empty());
    assert_eq!(
        b.affected
            .iter()
            .map(|f| f.package.as_str())
            .collect::<Vec<_>>(),
        ["qatzip", "qatzip-devel", "qatzip-libs"]
    );
}

#[test]
fn directory_import_reads_every_file() {
    let (records, errors) = split(osv::read_path(&data("osv")).expect("open"));
    assert!(errors.is_empty(), "{errors:?}");
    // Every .json and .yaml file under osv/ (zip archives are not walked into).
    let mut expected = Vec::new();
    let mut stack = vec![data("osv")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json" || x == "yaml") {
                expected.push(p.file_stem().expect("stem").to_string_lossy().into_owned());
            }
        }
    }
    expected.sort();
    let mut ids: Vec<String> = records.into_iter().map(|a| a.id).collect();
    ids.sort();
    assert_eq!(ids, expected);
}

fn zip_member_ids(rel: &str) -> Vec<String> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(data(rel)).expect("open")).expect("zip");
    let mut ids = Vec::new();
    for i in 0..archive.len() {
        let member = archive.by_index(i).expect("member");
        let v: serde_json::Value = serde_json::from_reader(member).expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    ids
}

#[test]
fn all_zip_archives() {
    for (rel, ecosystem) in [
        ("osv/zip/python-all.zip", "PyPI"),
        ("osv/zip/go-all.zip", "Go"),
        ("osv/zip/rust-all.zip", "crates.io"),
    ] {
        let (records, errors) = split(osv::read_path(&data(rel)).expect("open"));
        assert!(errors.is_empty(), "{rel}: {errors:?}");
        let ids: Vec<String> = records.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids, zip_member_ids(rel), "{rel}");
        assert!(
            records
                .iter()
                .all(|a| a.affected.iter().all(|f| f.ecosystem == ecosystem)),
            "{rel}"
        );
    }
    let (records, _) = split(osv::read_path(&data("osv/zip/python-all.zip")).expect("open"));
    let trac = records
        .iter()
        .find(|a| a.id == "PYSEC-2005-1")
        .expect("PYSEC-2005-1");
    assert_eq!(trac.aliases, ["CVE-2005-4644"]);
    assert_eq!(trac.published, Some(ts("2005-12-31T05:00:00Z")));
}

#[test]
fn truncated_zip_is_an_error_naming_the_file() {
    let bytes = std::fs::read(data("osv/zip/python-all.zip")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.zip");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
    let err = osv::read_path(&path)
        .err()
        .expect("truncated archive must fail");
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("all.zip"), "{err}");
}

fn write_zip(path: &std::path::Path, members: &[(&str, &[u8])]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).expect("create"));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in members {
        w.start_file(*name, opts).expect("start");
        w.write_all(body).expect("write");
    }
    w.finish().expect("finish");
}

#[test]
fn bad_zip_member_is_skipped_and_named() {
    let good = std::fs::read(data("osv/go/GO-2020-0001.json")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.zip");
    write_zip(
        &path,
        &[
            ("GO-2020-0001.json", &good),
            ("BROKEN-1.json", b"{\"id\": \"BROKEN-1\", \"affected\": ["),
        ],
    );
    let (records, errors) = split(osv::read_path(&path).expect("open"));
    assert_eq!(records.len(), 1);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path(), path);
    assert!(
        errors[0]
            .location()
            .is_some_and(|l| l.contains("BROKEN-1.json")),
        "{}",
        errors[0]
    );
}

#[test]
fn zip_bomb_member_is_refused() {
    // 65 MiB of zeros deflate to about 64 KiB: bigger than MAX_RECORD once inflated.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("all.zip");
    let zeros = vec![b' '; (osv_max_record() + 1024) as usize];
    write_zip(&path, &[("BOMB.json", &zeros)]);
    assert!(std::fs::metadata(&path).expect("stat").len() < 1 << 20);
    let (records, errors) = split(osv::read_path(&path).expect("open"));
    assert!(records.is_empty());
    assert!(
        errors[0].to_string().contains("larger than"),
        "{}",
        errors[0]
    );
}

fn osv_max_record() -> u64 {
    bulkhead_advisories::sources::MAX_RECORD
}

#[test]
fn bad_file_in_directory_is_skipped_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        data("osv/go/GO-2020-0001.json"),
        dir.path().join("GO-2020-0001.json"),
    )
    .expect("copy");
    std::fs::copy(
        data("osv/pypi/PYSEC-2007-1.yaml"),
        dir.path().join("PYSEC-2007-1.yaml"),
    )
    .expect("copy");
    // A record with an event that has two keys: invalid OSV.
    std::fs::write(
        dir.path().join("BAD-1.json"),
        r#"{"id":"BAD-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"x"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1.0.0"}]}]}]}"#,
    )
    .expect("write");
    let (records, errors) = split(osv::read_path(dir.path()).expect("open"));
    assert_eq!(records.len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path(), dir.path().join("BAD-1.json"));
    assert!(
        errors[0].to_string().contains("exactly one"),
        "{}",
        errors[0]
    );
}

#[test]
fn hostile_yaml_ends_in_an_error() {
    // Exponential alias expansion ("billion laughs").
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    doc.push_str("id: *a29\n");
    let t = std::time::Instant::now();
    let err =
        osv::parse(doc.as_bytes(), std::path::Path::new("bomb.yaml"), true).expect_err("must fail");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(err.path(), std::path::Path::new("bomb.yaml"));
}

#[test]
fn deeply_nested_input_ends_in_an_error() {
    let t = std::time::Instant::now();
    let deep = format!("id: {}x{}", "[".repeat(100_000), "]".repeat(100_000));
    osv::parse(deep.as_bytes(), std::path::Path::new("deep.yaml"), true).expect_err("must fail");
    let deep = format!("id:\n{}x\n", "- ".repeat(100_000));
    osv::parse(deep.as_bytes(), std::path::Path::new("deep.yaml"), true).expect_err("must fail");
    let deep = format!(
        "{{\"id\": {}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    osv::parse(deep.as_bytes(), std::path::Path::new("deep.json"), false).expect_err("must fail");
    // libyaml's cost grows with the square of the nesting depth: such input is refused
    // before it reaches the parser.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}
