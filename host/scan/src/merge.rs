//! Layer inventories → the image inventory.
//!
//! Layers are applied in order, as the container runtime stacks them. For each layer,
//! first its whiteouts: a database file of an earlier layer that the layer deletes
//! (`.wh.status`) or hides (an opaque directory above it) disappears with its packages.
//! Then its databases: one found again (same analyzer, same file) replaces the earlier one
//! entirely, because the later file is what the running container sees. Each package keeps
//! the layer that introduced it.
//!
//! The OS is decided by the host, not by analyzers: the release files the host read from
//! each layer are stacked by the same rules (a whiteout removes an earlier file, a later
//! file replaces an earlier one) and parsed ([`crate::release`]). An analyzer's own OS
//! claim is compared with the host's OS as of the same layer; one that disagrees is a
//! diagnostic naming the analyzer and changes nothing.
//!
//! Packages cannot shadow packages: databases are keyed by analyzer, so a third-party
//! analyzer that reports from a file a built-in analyzer reads adds its reading next to
//! the built-in's, never in its place. When the two disagree on a package's version both
//! are kept (each is matched, so the vulnerable reading yields its findings) and a
//! diagnostic names both analyzers.

use bulkhead_model::{Analysis, Diagnostic, Inventory, Level, Os, Package};

use crate::layers::Whiteouts;
use crate::release::ReleaseFiles;

/// Everything one layer contributes, in layer order.
#[derive(Debug, Clone, Default)]
pub struct LayerInput {
    pub whiteouts: Whiteouts,
    /// The release files the host read from this layer.
    pub release: ReleaseFiles,
    pub results: Vec<LayerResult>,
}

/// The image inventory and what merging had to say (OS claims that were ignored).
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub inventory: Inventory,
    pub diagnostics: Vec<Diagnostic>,
}

/// One analyzer's result for one layer.
#[derive(Debug, Clone)]
pub struct LayerResult {
    /// The layer's diff_id, or the source name for a directory.
    pub layer: String,
    /// The layer blob's digest, for images.
    pub layer_digest: Option<String>,
    /// The config history entry that created the layer.
    pub created_by: Option<String>,
    /// The analyzer's name (the merge key) and `name@version` (for the report).
    pub analyzer: String,
    pub analyzer_id: String,
    /// Built into the binary (trusted to read the databases it declares) rather than
    /// loaded from a third party.
    pub builtin: bool,
    pub ecosystem: String,
    pub analysis: Analysis,
}

fn same_package(a: &Package, b: &Package) -> bool {
    a.name == b.name && a.version == b.version && a.arch == b.arch
}

/// Merge layers given in order (within a layer, results in any order).
pub fn merge(layers: impl IntoIterator<Item = LayerInput>) -> Merged {
    // (analyzer, db_path) → packages currently visible from that database.
    let mut dbs: Databases = Vec::new();
    let mut files = ReleaseFiles::new();
    let mut os: Option<Os> = None;
    let mut diagnostics = Vec::new();
    let mut builtin: std::collections::BTreeSet<String> = Default::default();
    for layer in layers {
        if layer.whiteouts != Whiteouts::default() {
            dbs.retain(|((_, db), _)| !layer.whiteouts.hides(db));
            files.retain(|path, _| !layer.whiteouts.hides(path));
        }
        files.extend(layer.release);
        os = crate::release::detect(&files);
        for r in layer.results {
            if let Some(claim) = &r.analysis.os
                && !crate::release::agrees(claim, os.as_ref())
            {
                diagnostics.push(Diagnostic {
                    level: Level::Warning,
                    code: "analyzer-os-ignored".into(),
                    analyzer: Some(r.analyzer_id.clone()),
                    layer: Some(r.layer.clone()),
                    message: format!(
                        "{} claims the OS is {} ({}), but the image's release files say {}; the claim was ignored: the host decides the OS",
                        r.analyzer_id,
                        crate::release::describe(Some(claim)),
                        claim.source_file,
                        crate::release::describe(os.as_ref()),
                    ),
                });
            }
            if r.builtin {
                builtin.insert(r.analyzer_id.clone());
            }
            apply(&mut dbs, r);
        }
    }
    let mut packages: Vec<Package> = dbs.into_iter().flat_map(|(_, v)| v).collect();
    packages.sort_by(|a, b| {
        (&a.ecosystem, &a.name, &a.arch, &a.version, &a.db_path).cmp(&(
            &b.ecosystem,
            &b.name,
            &b.arch,
            &b.version,
            &b.db_path,
        ))
    });
    // The purl names the distribution, which is known only once every layer is applied.
    for p in &mut packages {
        p.purl = crate::purl::package(p, os.as_ref());
    }
    conflicts(&packages, &builtin, &mut diagnostics);
    Merged {
        inventory: Inventory { os, packages },
        diagnostics,
    }
}

type Databases = Vec<((String, String), Vec<Package>)>;

/// A third-party analyzer's package that a built-in analyzer read from the same database
/// file with another version: both stay in the inventory (the caller keeps them); say so,
/// naming both analyzers.
fn conflicts(
    packages: &[Package],
    builtin: &std::collections::BTreeSet<String>,
    out: &mut Vec<Diagnostic>,
) {
    for theirs in packages.iter().filter(|p| !builtin.contains(&p.analyzer)) {
        let ours = packages.iter().filter(|p| {
            builtin.contains(&p.analyzer)
                && p.db_path == theirs.db_path
                && p.name == theirs.name
                && (p.arch == theirs.arch || p.arch.is_none() || theirs.arch.is_none())
        });
        let versions: Vec<&str> = ours.clone().map(|p| p.version.as_str()).collect();
        if versions.is_empty() || versions.contains(&theirs.version.as_str()) {
            continue;
        }
        let names: std::collections::BTreeSet<&str> = ours.map(|p| p.analyzer.as_str()).collect();
        out.push(Diagnostic {
            level: Level::Warning,
            code: "analyzer-package-conflict".into(),
            analyzer: Some(theirs.analyzer.clone()),
            layer: theirs.layer_diff_id.clone(),
            message: format!(
                "{} reports {} {} from {}, where the built-in {} read version {}; both readings are kept and matched",
                theirs.analyzer,
                theirs.name,
                theirs.version,
                theirs.db_path,
                names.into_iter().collect::<Vec<_>>().join(", "),
                versions.join(", "),
            ),
        });
    }
}

/// Apply one analyzer's result for one layer (its OS claim was checked by the caller).
fn apply(dbs: &mut Databases, r: LayerResult) {
    let mut by_db: Vec<(String, Vec<Package>)> = Vec::new();
    for p in r.analysis.packages {
        let item = Package {
            ecosystem: r.ecosystem.clone(),
            analyzer: r.analyzer_id.clone(),
            // A directory is one layer with no digest, and so no diff_id either.
            layer_diff_id: r.layer_digest.as_ref().map(|_| r.layer.clone()),
            layer_digest: r.layer_digest.clone(),
            layer_created_by: r.created_by.clone(),
            ..p
        };
        match by_db.iter_mut().find(|(db, _)| *db == item.db_path) {
            Some((_, v)) => v.push(item),
            None => by_db.push((item.db_path.clone(), vec![item])),
        }
    }
    for (db, mut packages) in by_db {
        let key = (r.analyzer.clone(), db);
        match dbs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => {
                // A package that was already there, unchanged, was introduced by the
                // earlier layer, not by the one that rewrote the database.
                for p in &mut packages {
                    if let Some(prev) = old.iter().find(|o| same_package(o, p)) {
                        p.layer_diff_id = prev.layer_diff_id.clone();
                        p.layer_digest = prev.layer_digest.clone();
                        p.layer_created_by = prev.layer_created_by.clone();
                    }
                }
                *old = packages;
            }
            None => dbs.push((key, packages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, db: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            db_path: db.into(),
            ..Package::default()
        }
    }

    fn layer(layer: &str, packages: Vec<Package>) -> LayerInput {
        LayerInput {
            whiteouts: Whiteouts::default(),
            release: ReleaseFiles::new(),
            results: vec![result(layer, packages)],
        }
    }

    fn result(layer: &str, packages: Vec<Package>) -> LayerResult {
        LayerResult {
            layer: layer.into(),
            layer_digest: Some(format!("sha256:blob-of-{layer}")),
            created_by: None,
            analyzer: "dpkg".into(),
            analyzer_id: "dpkg@0.1.0".into(),
            builtin: true,
            ecosystem: "deb".into(),
            analysis: Analysis {
                os: None,
                packages,
                warnings: vec![],
            },
        }
    }

    #[test]
    fn a_later_database_replaces_the_earlier_one() {
        let s = "var/lib/dpkg/status";
        let inv = merge([
            layer("l1", vec![pkg("a", "1", s), pkg("b", "1", s)]),
            layer("l2", vec![pkg("a", "2", s), pkg("c", "1", s)]),
            layer(
                "l3",
                vec![pkg("a", "2", s), pkg("c", "1", s), pkg("d", "1", s)],
            ),
        ])
        .inventory;
        let got: Vec<_> = inv
            .packages
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.layer_diff_id.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(got, [("a", "2", "l2"), ("c", "1", "l2"), ("d", "1", "l3")]);
    }

    #[test]
    fn other_databases_are_kept() {
        let inv = merge([
            layer("l1", vec![pkg("a", "1", "var/lib/dpkg/status")]),
            layer("l2", vec![pkg("b", "1", "var/lib/dpkg/status.d/b")]),
        ])
        .inventory;
        assert_eq!(inv.packages.len(), 2);
    }

    #[test]
    fn whiteouts_remove_databases_of_earlier_layers() {
        let wh = |removed: &[&str], opaque: &[&str]| Whiteouts {
            removed: removed.iter().map(|s| s.to_string()).collect(),
            opaque: opaque.iter().map(|s| s.to_string()).collect(),
        };
        let inv = merge([
            layer(
                "l1",
                vec![
                    pkg("a", "1", "var/lib/dpkg/status"),
                    pkg("b", "1", "var/lib/dpkg/status.d/b"),
                ],
            ),
            LayerInput {
                whiteouts: wh(&["var/lib/dpkg/status.d/b"], &[]),
                release: ReleaseFiles::new(),
                results: vec![],
            },
        ])
        .inventory;
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        // An opaque directory hides the earlier database; the same layer's own new one counts.
        let inv = merge([
            layer("l1", vec![pkg("a", "1", "var/lib/dpkg/status")]),
            LayerInput {
                whiteouts: wh(&[], &["var/lib/dpkg"]),
                release: ReleaseFiles::new(),
                results: vec![result("l2", vec![pkg("z", "1", "var/lib/dpkg/status")])],
            },
        ])
        .inventory;
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["z"]
        );
        // A whiteout of a parent directory removes everything below it.
        let inv = merge([
            layer("l1", vec![pkg("a", "1", "var/lib/dpkg/status")]),
            LayerInput {
                whiteouts: wh(&["var/lib"], &[]),
                release: ReleaseFiles::new(),
                results: vec![],
            },
        ])
        .inventory;
        assert!(inv.packages.is_empty());
    }

    fn release(files: &[(&str, &str)]) -> ReleaseFiles {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    fn claiming(layer_name: &str, id: &str, version: &str) -> LayerResult {
        let mut r = result(layer_name, vec![]);
        r.analyzer = "liar".into();
        r.analyzer_id = "liar@1.0.0".into();
        r.builtin = false;
        r.analysis.os = Some(Os {
            id: id.into(),
            version_id: Some(version.into()),
            source_file: "etc/os-release".into(),
            ..Os::default()
        });
        r
    }

    #[test]
    fn the_host_decides_the_os_and_an_analyzer_claim_is_only_a_diagnostic() {
        let merged = merge([LayerInput {
            whiteouts: Whiteouts::default(),
            release: release(&[("etc/os-release", "ID=alpine\nVERSION_ID=3.12.12\n")]),
            results: vec![claiming("l1", "alpine", "3.99.0")],
        }]);
        let os = merged.inventory.os.expect("the host found an OS");
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("alpine", Some("3.12.12"))
        );
        assert_eq!(merged.diagnostics.len(), 1, "{:?}", merged.diagnostics);
        let d = &merged.diagnostics[0];
        assert_eq!(d.code, "analyzer-os-ignored");
        assert_eq!(d.analyzer.as_deref(), Some("liar@1.0.0"));
        assert!(d.message.contains("alpine 3.99.0") && d.message.contains("alpine 3.12.12"));

        // A claim without any release file is no OS at all.
        let merged = merge([LayerInput {
            whiteouts: Whiteouts::default(),
            release: ReleaseFiles::new(),
            results: vec![claiming("l1", "alpine", "3.19.1")],
        }]);
        assert_eq!(merged.inventory.os, None);
        assert_eq!(merged.diagnostics.len(), 1);
    }

    #[test]
    fn release_files_follow_the_layer_rules() {
        let wh = |removed: &[&str]| Whiteouts {
            removed: removed.iter().map(|s| s.to_string()).collect(),
            opaque: Default::default(),
        };
        let base = LayerInput {
            whiteouts: Whiteouts::default(),
            release: release(&[
                ("etc/os-release", "ID=debian\nVERSION_ID=\"11\"\n"),
                ("etc/debian_version", "11.9\n"),
            ]),
            results: vec![],
        };
        // A later layer's os-release replaces the earlier one.
        let upgrade = LayerInput {
            whiteouts: Whiteouts::default(),
            release: release(&[("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n")]),
            results: vec![],
        };
        let os = merge([base.clone(), upgrade]).inventory.os.expect("os");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        // A whiteout removes os-release; the older file still standing decides.
        let deleted = LayerInput {
            whiteouts: wh(&["etc/os-release"]),
            release: ReleaseFiles::new(),
            results: vec![],
        };
        let os = merge([base.clone(), deleted]).inventory.os.expect("os");
        assert_eq!(
            (os.source_file.as_str(), os.version_id.as_deref()),
            ("etc/debian_version", Some("11"))
        );
        // Deleting `etc` leaves no OS.
        let gone = LayerInput {
            whiteouts: wh(&["etc"]),
            release: ReleaseFiles::new(),
            results: vec![],
        };
        assert_eq!(merge([base, gone]).inventory.os, None);
    }

    #[test]
    fn a_third_party_reading_is_added_next_to_the_builtin_one_never_in_its_place() {
        let db = "lib/apk/db/installed";
        let mut liar = result("l1", vec![pkg("busybox", "9.9.9-r0", db)]);
        liar.analyzer = "liar".into();
        liar.analyzer_id = "liar@1.0.0".into();
        liar.builtin = false;
        let merged = merge([LayerInput {
            whiteouts: Whiteouts::default(),
            release: ReleaseFiles::new(),
            results: vec![liar, result("l1", vec![pkg("busybox", "1.36.1-r15", db)])],
        }]);
        let got: Vec<_> = merged
            .inventory
            .packages
            .iter()
            .map(|p| (p.version.as_str(), p.analyzer.as_str()))
            .collect();
        assert_eq!(
            got,
            [("1.36.1-r15", "dpkg@0.1.0"), ("9.9.9-r0", "liar@1.0.0")]
        );
        let d: Vec<_> = merged
            .diagnostics
            .iter()
            .filter(|d| d.code == "analyzer-package-conflict")
            .collect();
        assert_eq!(d.len(), 1, "{:?}", merged.diagnostics);
        assert!(
            d[0].message.contains("liar@1.0.0") && d[0].message.contains("dpkg@0.1.0"),
            "{}",
            d[0].message
        );
    }
}
