//! Every apk version in the repository's fixtures: the `V:` lines of the installed
//! databases under tests/fixtures/apk/ (with their `o:` origin), and the fixed versions
//! (`secfixes` keys) of the Alpine secdb feeds under tests/fixtures/advisories/ and
//! host/advisories/testdata/alpine/ (per `pkg.name`, which is an origin).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Versions by origin package, and where they came from.
#[derive(Default)]
pub struct ApkFixtures {
    /// (origin, installed version), from every installed database.
    pub installed: BTreeSet<(String, String)>,
    /// origin → fixed versions, over every secdb feed.
    pub fixed: BTreeMap<String, BTreeSet<String>>,
    pub databases: usize,
    pub feeds: usize,
}

impl ApkFixtures {
    /// Every distinct version string.
    pub fn versions(&self) -> BTreeSet<String> {
        self.installed
            .iter()
            .map(|(_, v)| v.clone())
            .chain(self.fixed.values().flatten().cloned())
            .collect()
    }
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    packages: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    pkg: Pkg,
}

#[derive(Deserialize)]
struct Pkg {
    name: String,
    // Keys are the fixed versions; the values (CVE lists, `{}` or null) do not matter here.
    #[serde(default)]
    secfixes: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_named(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_named(&path, keep, out);
        } else if keep(&path) {
            out.push(path);
        }
    }
}

/// Adds the packages of one `lib/apk/db/installed` text.
pub fn add_installed(fixtures: &mut ApkFixtures, text: &str) {
    fixtures.databases += 1;
    fixtures.installed.extend(
        bulkhead_test_artifacts::apk_tools::installed_packages(text)
            .into_iter()
            .map(|(_, version, origin)| (origin, version)),
    );
}

/// Reads every fixture of the repository (no tool needed).
pub fn collect() -> ApkFixtures {
    let mut fixtures = ApkFixtures::default();
    let mut databases = Vec::new();
    files_named(
        &repo().join("tests/fixtures/apk"),
        &|p| p.ends_with("lib/apk/db/installed"),
        &mut databases,
    );
    databases.sort();
    for path in databases {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        add_installed(&mut fixtures, &String::from_utf8_lossy(&bytes));
    }
    let mut feeds = Vec::new();
    let secdb = |p: &Path| {
        let name = p.to_string_lossy();
        (name.contains("alpine-secdb") || name.contains("/alpine"))
            && (name.ends_with(".json") || name.ends_with(".yaml"))
    };
    files_named(
        &repo().join("tests/fixtures/advisories"),
        &secdb,
        &mut feeds,
    );
    files_named(
        &repo().join("host/advisories/testdata/alpine"),
        &secdb,
        &mut feeds,
    );
    feeds.sort();
    for path in feeds {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: Doc = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        } else {
            serde_yaml_ng::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        fixtures.feeds += 1;
        for entry in doc.packages {
            let versions = fixtures.fixed.entry(entry.pkg.name).or_default();
            // Trimmed as the importer trims them. `0` ("never affected") stays: it is a
            // version string of the feed like any other.
            versions.extend(
                entry
                    .pkg
                    .secfixes
                    .unwrap_or_default()
                    .into_keys()
                    .map(|k| k.trim().to_owned()),
            );
        }
    }
    assert!(
        fixtures.databases >= 6 && fixtures.feeds >= 30,
        "{} databases, {} feeds",
        fixtures.databases,
        fixtures.feeds
    );
    fixtures
}
