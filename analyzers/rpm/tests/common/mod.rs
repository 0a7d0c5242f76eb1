//! Helpers shared by the rpm analyzer's integration tests: fixture paths, scratch
//! directories and the reference tool, Debian's `rpm`.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use bulkhead_analyzer_sdk::{Analysis, InstalledPackage};

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/rpm")
}

/// A scratch directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("bulkhead-rpm-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether the reference tool can run; else the test skips, through the workspace's skip
/// policy ([`bulkhead_test_artifacts::skip`]: a failure in CI, where a missing `rpm` must
/// fail the test).
pub(crate) fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    bulkhead_test_artifacts::require(
        ok,
        format_args!("`{tool}` does not run (apt-get install rpm)"),
    )
}

pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// What `rpm -qa` prints about one package, from the database in `dbdir`.
#[derive(Debug)]
pub(crate) struct RpmQa {
    pub(crate) name: String,
    pub(crate) evr: String,
    pub(crate) epoch: Option<String>,
    pub(crate) arch: Option<String>,
    pub(crate) source_rpm: Option<String>,
    pub(crate) license: Option<String>,
    pub(crate) modularity_label: Option<String>,
    pub(crate) files: Vec<String>,
}

/// `rpm -qa` on the SQLite database in `dbdir`. rpm writes `-shm`/`-wal` files and a lock
/// next to the database even to read it, so callers pass a scratch copy.
pub(crate) fn rpm_qa(dbdir: &Path) -> Vec<RpmQa> {
    let text = run(Command::new("rpm")
        .arg("-qa")
        .arg("--dbpath")
        .arg(dbdir)
        .args(["--define", "_db_backend sqlite"])
        .arg("--qf")
        .arg("@@\t%{NAME}\t%{EVR}\t%{EPOCH}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\t%{MODULARITYLABEL}\n[%{FILENAMES}\n]"));
    let none = |s: &str| (s != "(none)").then(|| s.to_string());
    let mut out: Vec<RpmQa> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("@@\t") {
            let f: Vec<&str> = rest.split('\t').collect();
            assert_eq!(f.len(), 7, "rpm output line {line:?}");
            out.push(RpmQa {
                name: f[0].to_string(),
                evr: f[1].to_string(),
                epoch: none(f[2]),
                arch: none(f[3]),
                source_rpm: none(f[4]),
                license: none(f[5]),
                modularity_label: none(f[6]),
                files: Vec::new(),
            });
        } else {
            let last = out.last_mut().expect("file line before any package");
            last.files.push(line.to_string());
        }
    }
    out
}

pub(crate) fn property<'a>(p: &'a InstalledPackage, key: &str) -> Option<&'a str> {
    p.properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The source rpm file name our fields describe: `name-version-release.src.rpm`, with
/// the epoch that our source version carries (and the file name never does) removed.
pub(crate) fn source_rpm_of(p: &InstalledPackage) -> Option<String> {
    let name = p.source_name.as_ref()?;
    let version = p.source_version.as_ref()?;
    let vr = version
        .split_once(':')
        .map_or(version.as_str(), |(_, vr)| vr);
    Some(format!("{name}-{vr}.src.rpm"))
}

/// Every field of every package against `rpm -qa`, in order.
pub(crate) fn assert_matches_rpm(a: &Analysis, expected: &[RpmQa]) {
    let names = |v: Vec<&str>| v.join(" ");
    assert_eq!(
        names(a.packages.iter().map(|p| p.name.as_str()).collect()),
        names(expected.iter().map(|p| p.name.as_str()).collect()),
        "package order"
    );
    for (p, e) in a.packages.iter().zip(expected) {
        let ctx = &e.name;
        assert_eq!(p.version, e.evr, "{ctx}: version");
        assert_eq!(p.arch, e.arch, "{ctx}: arch");
        assert_eq!(p.license, e.license, "{ctx}: license");
        assert_eq!(source_rpm_of(p), e.source_rpm, "{ctx}: source rpm");
        assert_eq!(property(p, "epoch"), e.epoch.as_deref(), "{ctx}: epoch");
        // The source version carries the binary's epoch, which the file name cannot show.
        if let Some(sv) = &p.source_version {
            match &e.epoch {
                Some(epoch) => assert!(sv.starts_with(&format!("{epoch}:")), "{ctx}: {sv}"),
                None => assert!(!sv.contains(':'), "{ctx}: {sv}"),
            }
        }
        assert_eq!(
            property(p, "modularity-label"),
            e.modularity_label.as_deref(),
            "{ctx}: modularity label"
        );
        let want: Vec<&str> = e.files.iter().map(|f| f.trim_start_matches('/')).collect();
        assert_eq!(p.files, want, "{ctx}: files");
    }
}
