//! The analyzer's contract: metadata, which database it picks, how failures are reported,
//! and the BerkeleyDB and NDB readers end to end through `analyze` (their fixtures and
//! expected lists are under `tests/fixtures/rpm/{bdb,ndb}/`).

mod common;

use std::fs;
use std::path::Path;

use bulkhead_analyzer_rpm::{DIRS, MAX_DB_SIZE, analyze, metadata};
use bulkhead_analyzer_sdk::{AnalyzeError, PathPattern};
use common::{TempDir, fixtures, source_rpm_of};

fn small_db() -> Vec<u8> {
    fs::read(fixtures().join("sqlite/small-1k/var/lib/rpm/rpmdb.sqlite")).expect("fixture")
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
}

fn parse_error(root: &Path) -> (String, u32, String) {
    match analyze(root) {
        Err(AnalyzeError::Parse(e)) => (e.file, e.line, e.message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn metadata_requests_every_database_location() {
    let m = metadata();
    assert_eq!((m.name.as_str(), m.ecosystem.as_str()), ("rpm", "rpm"));
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    let exact: Vec<(String, u64)> = m
        .requests
        .iter()
        .filter_map(|r| match &r.pattern {
            PathPattern::Exact(p) if p.contains("rpm/") => Some((p.clone(), r.max_size)),
            _ => None,
        })
        .collect();
    // SQLite's write-ahead log too: committed transactions may be only there.
    for dir in ["var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/"] {
        for file in [
            "Packages",
            "Packages.db",
            "rpmdb.sqlite",
            "rpmdb.sqlite-wal",
        ] {
            let want = (format!("{dir}{file}"), 256 << 20);
            assert!(exact.contains(&want), "missing {want:?}");
        }
    }
    assert_eq!(exact.len(), 12);
    assert_eq!(MAX_DB_SIZE, 256 << 20);
    let os = bulkhead_analyzer_sdk::os::requests();
    assert_eq!(m.requests.len(), 12 + os.len());
}

#[test]
fn nothing_to_read_is_not_applicable() {
    let tmp = TempDir::new("empty");
    assert!(matches!(
        analyze(tmp.path()),
        Err(AnalyzeError::NotApplicable)
    ));
    // Empty files are what image builds leave behind; they are no database.
    for dir in DIRS {
        put(tmp.path(), &format!("{dir}rpmdb.sqlite"), b"");
        put(tmp.path(), &format!("{dir}Packages"), b"");
    }
    assert!(matches!(
        analyze(tmp.path()),
        Err(AnalyzeError::NotApplicable)
    ));
}

#[test]
fn sqlite_is_preferred_and_all_directories_are_searched() {
    let tmp = TempDir::new("prefer");
    // A garbage BerkeleyDB and NDB in the first directory, an empty SQLite file there too,
    // the real SQLite database in the last directory: SQLite wins over directory order.
    put(tmp.path(), "var/lib/rpm/Packages", b"not a database");
    put(tmp.path(), "var/lib/rpm/Packages.db", b"not a database");
    put(tmp.path(), "var/lib/rpm/rpmdb.sqlite", b"");
    put(tmp.path(), "usr/share/rpm/rpmdb.sqlite", &small_db());
    let a = analyze(tmp.path()).expect("reads");
    assert_eq!(a.packages.len(), 5);
    assert!(
        a.packages
            .iter()
            .all(|p| p.db_path == "usr/share/rpm/rpmdb.sqlite")
    );
    // With two SQLite databases the directory order decides.
    put(tmp.path(), "usr/lib/sysimage/rpm/rpmdb.sqlite", b"garbage");
    let (file, line, message) = parse_error(tmp.path());
    assert_eq!(
        (file.as_str(), line),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", 0)
    );
    assert!(message.contains("offset"), "{message}");
}

#[test]
fn corrupt_database_names_file_and_offset() {
    let tmp = TempDir::new("corrupt");
    let mut db = small_db();
    // Page 2, the Packages root: right-most child → itself.
    db[1024 + 8..1024 + 12].copy_from_slice(&2u32.to_be_bytes());
    put(tmp.path(), "var/lib/rpm/rpmdb.sqlite", &db);
    let (file, line, message) = parse_error(tmp.path());
    assert_eq!((file.as_str(), line), ("var/lib/rpm/rpmdb.sqlite", 0));
    assert!(
        message.contains("at offset 1032") && message.contains("page 2"),
        "{message}"
    );
}

#[test]
fn corrupt_header_names_the_record() {
    let tmp = TempDir::new("header");
    let mut db = small_db();
    // First row: the left child of the root's first cell, its first cell. The record is
    // [header length, NULL, blob] with a 1-byte header length; the blob starts with `il`.
    let cell0 = u16::from_be_bytes([db[1024 + 12], db[1024 + 13]]) as usize;
    let leaf =
        u32::from_be_bytes(db[1024 + cell0..1024 + cell0 + 4].try_into().expect("4")) as usize;
    let base = (leaf - 1) * 1024;
    assert_eq!(db[base], 0x0D);
    let cell = base + u16::from_be_bytes([db[base + 8], db[base + 9]]) as usize;
    // Payload size (2 bytes for a ~1.4 KB header) and rowid (1 byte) precede the record.
    let record = cell + 3;
    assert_eq!(db[record + 1], 0, "hnum is stored as NULL");
    let blob = record + db[record] as usize;
    db[blob..blob + 4].copy_from_slice(&[0xff; 4]);
    put(tmp.path(), "var/lib/rpm/rpmdb.sqlite", &db);
    let (file, line, message) = parse_error(tmp.path());
    assert_eq!((file.as_str(), line), ("var/lib/rpm/rpmdb.sqlite", 1));
    assert!(
        message.contains("record 1") && message.contains("absurd"),
        "{message}"
    );
}

/// `(name, EVR, arch, source rpm)` from the expected TSVs of the other formats: name,
/// epoch, version, release, arch, source rpm, vendor[, modularity label].
fn expected(tsv: &Path) -> Vec<[String; 4]> {
    let text = fs::read_to_string(tsv).unwrap_or_else(|e| panic!("{}: {e}", tsv.display()));
    let mut out: Vec<[String; 4]> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let evr = match f[1] {
                "" | "(none)" => format!("{}-{}", f[2], f[3]),
                e => format!("{e}:{}-{}", f[2], f[3]),
            };
            [f[0].into(), evr, f[4].into(), f[5].into()]
        })
        .collect();
    out.sort();
    out
}

fn end_to_end(fixture: &str, as_file: &str, tsv: &str) {
    let tmp = TempDir::new("e2e");
    let data = fs::read(fixtures().join(fixture)).expect("fixture");
    let rel = format!("var/lib/rpm/{as_file}");
    put(tmp.path(), &rel, &data);
    let a = analyze(tmp.path()).unwrap_or_else(|e| panic!("{fixture}: {e:?}"));
    let mut got: Vec<[String; 4]> = a
        .packages
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.version.clone(),
                p.arch.clone().unwrap_or_default(),
                source_rpm_of(p).unwrap_or_default(),
            ]
        })
        .collect();
    got.sort();
    assert_eq!(got, expected(&fixtures().join(tsv)), "{fixture}");
    assert!(a.packages.iter().all(|p| p.db_path == rel));
}

#[test]
fn berkeleydb_end_to_end() {
    end_to_end("bdb/libuuid/Packages", "Packages", "bdb/libuuid.rpm-qa.tsv");
    end_to_end(
        "bdb/Packages_epoch",
        "Packages",
        "bdb/Packages_epoch.rpm-qa.tsv",
    );
    end_to_end(
        "bdb/generated-be-512/Packages",
        "Packages",
        "bdb/generated-be-512.rpm-qa.tsv",
    );
    end_to_end(
        "bdb/generated-le-1024/Packages",
        "Packages",
        "bdb/generated-le-1024.rpm-qa.tsv",
    );
}

#[test]
fn ndb_end_to_end() {
    end_to_end(
        "ndb/sle15-bci/Packages.db",
        "Packages.db",
        "ndb/sle15-bci.expected.tsv",
    );
}
