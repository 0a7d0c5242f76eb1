//! The apk analyzer against real databases (`tests/fixtures/apk/`, see its SOURCES.md).
//!
//! - `alpine-<ver>/`: the `lib/apk/db/installed` and release files of the official Alpine
//!   minirootfs (the single layer of `alpine:<ver>`), with the package list derived for the
//!   fixture pool (`expected-packages.tsv`: name, version, arch, origin).
//! - `trivy/`: trivy's apk test database, with trivy's own expected result transcribed
//!   from its Go test (`expected-packages.tsv`, `expected-files.tsv`).
//! - `syft/<case>/`: syft's apk test databases; no expected list, so only invariants that
//!   a trivial, independent reading of the text can check.

use std::fs;
use std::path::{Path, PathBuf};

use bulkhead_analyzer_apk::{INSTALLED, MAX_DB_SIZE, USR_INSTALLED, analyze, installed, metadata};
use bulkhead_analyzer_sdk::{Analysis, AnalyzeError, InstalledPackage, PathPattern};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/apk")
}

fn read_tsv(path: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn quad(p: &InstalledPackage) -> Vec<String> {
    vec![
        p.name.clone(),
        p.version.clone(),
        p.arch.clone().unwrap_or_default(),
        p.source_name.clone().unwrap_or_default(),
    ]
}

fn run(root: &Path) -> Analysis {
    match analyze(root) {
        Ok(a) => a,
        Err(e) => panic!("{}: {e:?}", root.display()),
    }
}

/// Lines of `text` that start with `prefix`: the independent count the invariants use.
fn count_lines(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

/// `(name, version)` of every blank-line separated record that has both a `P:` and a
/// `V:` line: the simplest possible reading of the format, for cross-checking.
fn naive_records(text: &str) -> Vec<(String, String)> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|rec| {
            let field = |k: &str| {
                rec.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_string)
            };
            Some((field("P:")?, field("V:")?))
        })
        .collect()
}

fn check_files(a: &Analysis) {
    for p in &a.packages {
        for f in &p.files {
            assert!(
                !f.is_empty() && !f.starts_with('/') && !f.contains("//") && !f.ends_with('/'),
                "{}: bad file path {f:?}",
                p.name
            );
        }
    }
}

#[test]
fn alpine_minirootfs_match_expected_lists() {
    let mut dirs: Vec<PathBuf> = fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("alpine-"))
        })
        .collect();
    dirs.sort();
    // v3.6, 3.12, 3.15, 3.17, 3.18, 3.20: a lost fixture must fail, not shrink the test.
    assert_eq!(dirs.len(), 6, "{dirs:?}");

    for dir in dirs {
        let ver = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("alpine-"))
            .expect("alpine-<ver>")
            .to_string();
        let db = fs::read_to_string(dir.join(INSTALLED)).expect("db");
        let expected = read_tsv(&dir.join("expected-packages.tsv"));
        let a = run(&dir);

        assert!(a.warnings.is_empty(), "{ver}: {:?}", a.warnings);
        let got: Vec<Vec<String>> = a.packages.iter().map(quad).collect();
        assert_eq!(got, expected, "alpine {ver}");
        assert_eq!(a.packages.len(), count_lines(&db, "P:"), "alpine {ver}");

        for p in &a.packages {
            assert_eq!(p.db_path, INSTALLED);
            assert_eq!(p.source_version.as_deref(), Some(p.version.as_str()));
            assert!(p.license.is_some(), "{ver} {}: no licence", p.name);
            assert!(
                p.properties.iter().any(|(k, _)| k == "checksum"),
                "{ver} {}",
                p.name
            );
        }
        // Every R: line is one owned file, attributed to exactly one package.
        let files: usize = a.packages.iter().map(|p| p.files.len()).sum();
        assert_eq!(files, count_lines(&db, "R:"), "alpine {ver}");
        check_files(&a);
        let busybox = a
            .packages
            .iter()
            .find(|p| p.name == "busybox")
            .expect("busybox");
        assert!(
            busybox.files.iter().any(|f| f == "bin/busybox"),
            "{ver}: {:?}",
            busybox.files
        );

        let os = a.os.as_ref().unwrap_or_else(|| panic!("{ver}: no OS"));
        assert_eq!(os.id, "alpine");
        assert_eq!(os.source_file, "etc/os-release");
        let release = fs::read_to_string(dir.join("etc/alpine-release")).expect("alpine-release");
        assert_eq!(os.version_id.as_deref(), Some(release.trim()), "{ver}");
        assert!(
            release.trim().starts_with(&format!("{ver}.")),
            "{ver}: {release}"
        );
    }
}

#[test]
fn trivy_database_matches_trivys_own_expectations() {
    let dir = fixtures().join("trivy");
    let a = run(&dir);

    let expected = read_tsv(&dir.join("expected-packages.tsv"));
    let got: Vec<Vec<String>> = a.packages.iter().map(quad).collect();
    assert_eq!(got, expected);

    let mut expected_files: Vec<(String, Vec<String>)> = Vec::new();
    for row in read_tsv(&dir.join("expected-files.tsv")) {
        match expected_files.last_mut() {
            Some((name, files)) if *name == row[0] => files.push(row[1].clone()),
            _ => expected_files.push((row[0].clone(), vec![row[1].clone()])),
        }
    }
    for (name, files) in &expected_files {
        let p = a.packages.iter().find(|p| &p.name == name).expect(name);
        assert_eq!(&p.files, files, "{name}");
    }
    // libc-utils owns no file; every other package has its list above.
    let libc_utils = a
        .packages
        .iter()
        .find(|p| p.name == "libc-utils")
        .expect("libc-utils");
    assert!(libc_utils.files.is_empty());
    assert_eq!(expected_files.len() + 1, a.packages.len());

    // `P:invalidPackageWithoutAVersion` (line 23) has no V: and is reported, not listed.
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert_eq!(a.warnings[0].file, INSTALLED);
    assert_eq!(a.warnings[0].line, 23);
    assert!(
        a.warnings[0]
            .message
            .contains("invalidPackageWithoutAVersion")
    );
    assert!(a.os.is_none());
}

#[test]
fn syft_databases_invariants() {
    let base = fixtures().join("syft");
    let cases = [
        "base",
        "single",
        "empty-deps-and-provides",
        "extra-file-attributes",
        "multiple-1",
        "multiple-2",
        "corrupt",
    ];
    for case in cases {
        let dir = base.join(case);
        let db = fs::read_to_string(dir.join(INSTALLED)).expect("db");
        let a = run(&dir);
        let got: Vec<(String, String)> = a
            .packages
            .iter()
            .map(|p| (p.name.clone(), p.version.clone()))
            .collect();
        let naive = naive_records(&db);
        assert!(!naive.is_empty(), "{case}");
        assert_eq!(got, naive, "{case}");
        // These databases have no incomplete records: one package per P: line.
        assert_eq!(a.packages.len(), count_lines(&db, "P:"), "{case}");
        let files: usize = a.packages.iter().map(|p| p.files.len()).sum();
        assert_eq!(files, count_lines(&db, "R:"), "{case}");
        check_files(&a);
        if case == "corrupt" {
            // "this is a corrupt db" on line 1, then a good record.
            assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
            assert_eq!(
                (a.warnings[0].file.as_str(), a.warnings[0].line),
                (INSTALLED, 1)
            );
        } else {
            assert!(a.warnings.is_empty(), "{case}: {:?}", a.warnings);
        }
    }

    // "bogus db contents", no newline: nothing of the format in it.
    match analyze(&base.join("glob-paths")) {
        Err(AnalyzeError::Parse(e)) => {
            assert_eq!(e.file, INSTALLED);
            assert_eq!(e.line, 1);
        }
        other => panic!("glob-paths: {other:?}"),
    }
}

#[test]
fn extra_file_attributes_are_not_files() {
    // `a:` (ACL) lines follow `R:` lines; only the R: lines are files.
    let a = run(&fixtures().join("syft/extra-file-attributes"));
    assert_eq!(a.packages.len(), 1);
    assert_eq!(
        a.packages[0].files,
        ["usr/lib/jvm/java-1.8-openjdk/bin/policytool"],
        "{:?}",
        a.packages[0].files
    );
    assert_eq!(a.packages[0].source_name.as_deref(), Some("openjdk8"));
}

fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (rel, content) in files {
        let path = dir.path().join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }
    dir
}

fn alpine_db(ver: &str) -> Vec<u8> {
    fs::read(fixtures().join(format!("alpine-{ver}")).join(INSTALLED)).expect("db")
}

#[test]
fn usr_lib_location_alone() {
    let db = alpine_db("3.20");
    let t = tree(&[(USR_INSTALLED, &db)]);
    let a = run(t.path());
    let reference = run(&fixtures().join("alpine-3.20"));
    assert!(a.warnings.is_empty());
    assert_eq!(
        a.packages.iter().map(quad).collect::<Vec<_>>(),
        reference.packages.iter().map(quad).collect::<Vec<_>>()
    );
    assert!(a.packages.iter().all(|p| p.db_path == USR_INSTALLED));
    assert!(a.os.is_none(), "no release file in this tree");
}

#[test]
fn both_locations_prefer_lib_and_warn() {
    let lib = alpine_db("3.20");
    let usr = alpine_db("3.6");
    let t = tree(&[(INSTALLED, &lib), (USR_INSTALLED, &usr)]);
    let a = run(t.path());
    let expected = read_tsv(&fixtures().join("alpine-3.20/expected-packages.tsv"));
    assert_eq!(a.packages.iter().map(quad).collect::<Vec<_>>(), expected);
    assert!(a.packages.iter().all(|p| p.db_path == INSTALLED));
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert_eq!(a.warnings[0].file, USR_INSTALLED);
    assert!(a.warnings[0].message.contains("different"));
}

#[test]
fn not_applicable_without_database() {
    let t = tree(&[("etc/os-release", b"ID=alpine\n")]);
    assert!(matches!(
        analyze(t.path()),
        Err(AnalyzeError::NotApplicable)
    ));
    // A directory where the database should be is not a database.
    let t = tree(&[("lib/apk/db/installed/x", b"")]);
    assert!(matches!(
        analyze(t.path()),
        Err(AnalyzeError::NotApplicable)
    ));
}

#[test]
fn empty_database_means_nothing_installed() {
    let t = tree(&[(INSTALLED, b""), ("etc/alpine-release", b"3.20.3\n")]);
    let a = run(t.path());
    assert!(a.packages.is_empty() && a.warnings.is_empty());
    assert_eq!(
        a.os.map(|o| (o.id, o.version_id)),
        Some(("alpine".into(), Some("3.20.3".into())))
    );
}

#[test]
fn oversized_database_is_refused() {
    let t = tree(&[]);
    let path = t.path().join(INSTALLED);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    // Sparse: costs no disk.
    fs::File::create(&path)
        .and_then(|f| f.set_len(MAX_DB_SIZE + 1))
        .expect("sparse file");
    match analyze(t.path()) {
        Err(AnalyzeError::Parse(e)) => assert_eq!(e.file, INSTALLED),
        other => panic!("{:?}", other.map(|a| a.packages.len())),
    }
}

#[test]
fn metadata_requests() {
    let m = metadata();
    assert_eq!(m.name, "apk");
    assert_eq!(m.ecosystem, "apk");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    for path in [INSTALLED, USR_INSTALLED] {
        assert!(
            m.requests.iter().any(|r| r.max_size == 64 << 20
                && matches!(&r.pattern, PathPattern::Exact(p) if p == path)),
            "{path}"
        );
    }
    assert!(
        m.requests
            .iter()
            .any(|r| matches!(&r.pattern, PathPattern::Exact(p) if p == "etc/os-release"))
    );
}

/// A small deterministic generator, so that a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("fits")
    }
}

#[test]
fn truncations_never_panic_and_keep_the_prefix() {
    for name in ["alpine-3.20", "alpine-3.6", "trivy"] {
        let bytes = fs::read(fixtures().join(name).join(INSTALLED)).expect("db");
        let full = installed::parse(&String::from_utf8_lossy(&bytes)).expect("full db");
        for len in 0..bytes.len() {
            let text = String::from_utf8_lossy(&bytes[..len]);
            let Ok(parsed) = installed::parse(&text) else {
                continue;
            };
            let n = parsed.packages.len();
            assert!(n <= full.packages.len(), "{name} at {len}");
            // Every package but the last (whose version may be cut) is the full parse's.
            for (a, b) in parsed
                .packages
                .iter()
                .zip(&full.packages)
                .take(n.saturating_sub(1))
            {
                assert_eq!(
                    (&a.name, &a.version),
                    (&b.name, &b.version),
                    "{name} at {len}"
                );
            }
        }
    }
}

#[test]
fn byte_flips_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for name in ["alpine-3.20", "alpine-3.12", "trivy", "syft/multiple-2"] {
        let original = fs::read(fixtures().join(name).join(INSTALLED)).expect("db");
        for _ in 0..1500 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(8) {
                let i = rng.below(bytes.len());
                bytes[i] = match rng.below(4) {
                    0 => b'\n',
                    1 => b':',
                    2 => 0,
                    _ => u8::try_from(rng.below(256)).expect("byte"),
                };
            }
            let text = String::from_utf8_lossy(&bytes);
            if let Ok(p) = installed::parse(&text) {
                assert!(p.warnings.len() <= installed::MAX_WARNINGS + 1);
                for pkg in &p.packages {
                    assert!(!pkg.name.is_empty() && !pkg.version.is_empty());
                }
            }
        }
    }
}

#[test]
fn huge_and_odd_inputs_are_bounded() {
    let huge = "x".repeat(16 << 20);
    // One huge garbage line: an error naming line 1.
    assert_eq!(
        installed::parse(&huge)
            .map(|_| ())
            .expect_err("garbage")
            .line,
        1
    );
    // A huge name and version are kept as they are.
    let p = installed::parse(&format!("P:{huge}\nV:{huge}\n")).expect("parses");
    assert_eq!(p.packages[0].name.len(), huge.len());
    // Millions of blank lines, NULs, lone CRs.
    assert!(
        installed::parse(&"\n".repeat(4 << 20))
            .expect("blank")
            .packages
            .is_empty()
    );
    assert!(installed::parse(&"\0".repeat(1 << 20)).is_err());
    let p = installed::parse(&"\r".repeat(1 << 20)).expect("CRs are one blank line");
    assert!(p.packages.is_empty());
    // Millions of garbage lines: warnings stay bounded.
    let mut db = "?\n".repeat(2 << 20);
    db.push_str("P:a\nV:1-r0\n");
    let p = installed::parse(&db).expect("parses");
    assert_eq!(p.packages.len(), 1);
    assert_eq!(p.warnings.len(), installed::MAX_WARNINGS + 1);
}
