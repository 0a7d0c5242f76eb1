//! Layer inventories → the image inventory.
//!
//! Layers are applied in order, as the container runtime stacks them. For each layer,
//! first its whiteouts: a database file of an earlier layer that the layer deletes
//! (`.wh.status`) or hides (an opaque directory above it) disappears with its packages.
//! Then its databases: one found again (same analyzer, same file) replaces the earlier one
//! entirely, because the later file is what the running container sees. Each package keeps
//! the layer that introduced it. The OS is the one declared by the last layer that declares
//! one (and whose release file was not deleted since).

use serde::Serialize;

use crate::layers::Whiteouts;
use crate::model::{Analysis, OsInfo, Package};

/// Everything one layer contributes, in layer order.
#[derive(Debug, Clone, Default)]
pub struct LayerInput {
    pub whiteouts: Whiteouts,
    pub results: Vec<LayerResult>,
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
    pub ecosystem: String,
    pub analysis: Analysis,
}

/// A package of the merged inventory, with where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryPackage {
    #[serde(flatten)]
    pub package: Package,
    pub ecosystem: String,
    pub analyzer: String,
    /// The diff_id of the layer that introduced the package (the source for a directory).
    pub layer: String,
    pub layer_digest: Option<String>,
    pub created_by: Option<String>,
}

/// The image's inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub os: Option<OsInfo>,
    pub packages: Vec<InventoryPackage>,
}

fn same_package(a: &Package, b: &Package) -> bool {
    a.name == b.name && a.version == b.version && a.arch == b.arch
}

/// Merge layers given in order (within a layer, results in any order).
pub fn merge(layers: impl IntoIterator<Item = LayerInput>) -> Inventory {
    // (analyzer, db_path) → packages currently visible from that database.
    let mut dbs: Databases = Vec::new();
    let mut os: Option<OsInfo> = None;
    for layer in layers {
        if layer.whiteouts != Whiteouts::default() {
            dbs.retain(|((_, db), _)| !layer.whiteouts.hides(db));
            if os
                .as_ref()
                .is_some_and(|o| layer.whiteouts.hides(&o.source_file))
            {
                os = None;
            }
        }
        for r in layer.results {
            apply(&mut dbs, &mut os, r);
        }
    }
    let mut packages: Vec<InventoryPackage> = dbs.into_iter().flat_map(|(_, v)| v).collect();
    packages.sort_by(|a, b| {
        (
            &a.ecosystem,
            &a.package.name,
            &a.package.arch,
            &a.package.version,
            &a.package.db_path,
        )
            .cmp(&(
                &b.ecosystem,
                &b.package.name,
                &b.package.arch,
                &b.package.version,
                &b.package.db_path,
            ))
    });
    Inventory { os, packages }
}

type Databases = Vec<((String, String), Vec<InventoryPackage>)>;

/// Apply one analyzer's result for one layer.
fn apply(dbs: &mut Databases, os: &mut Option<OsInfo>, r: LayerResult) {
    if r.analysis.os.is_some() {
        *os = r.analysis.os.clone();
    }
    let mut by_db: Vec<(String, Vec<InventoryPackage>)> = Vec::new();
    for p in r.analysis.packages {
        let item = InventoryPackage {
            ecosystem: r.ecosystem.clone(),
            analyzer: r.analyzer_id.clone(),
            layer: r.layer.clone(),
            layer_digest: r.layer_digest.clone(),
            created_by: r.created_by.clone(),
            package: p,
        };
        match by_db.iter_mut().find(|(db, _)| *db == item.package.db_path) {
            Some((_, v)) => v.push(item),
            None => by_db.push((item.package.db_path.clone(), vec![item])),
        }
    }
    for (db, mut packages) in by_db {
        let key = (r.analyzer.clone(), db);
        match dbs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => {
                // A package that was already there, unchanged, was introduced by the
                // earlier layer, not by the one that rewrote the database.
                for p in &mut packages {
                    if let Some(prev) = old.iter().find(|o| same_package(&o.package, &p.package)) {
                        p.layer = prev.layer.clone();
                        p.layer_digest = prev.layer_digest.clone();
                        p.created_by = prev.created_by.clone();
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
            source_name: None,
            source_version: None,
            arch: None,
            license: None,
            db_path: db.into(),
            files: vec![],
            properties: vec![],
        }
    }

    fn layer(layer: &str, packages: Vec<Package>) -> LayerInput {
        LayerInput {
            whiteouts: Whiteouts::default(),
            results: vec![result(layer, packages)],
        }
    }

    fn result(layer: &str, packages: Vec<Package>) -> LayerResult {
        LayerResult {
            layer: layer.into(),
            layer_digest: None,
            created_by: None,
            analyzer: "dpkg".into(),
            analyzer_id: "dpkg@0.1.0".into(),
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
        ]);
        let got: Vec<_> = inv
            .packages
            .iter()
            .map(|p| {
                (
                    p.package.name.as_str(),
                    p.package.version.as_str(),
                    p.layer.as_str(),
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
        ]);
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
                results: vec![],
            },
        ]);
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.package.name.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        // An opaque directory hides the earlier database; the same layer's own new one counts.
        let inv = merge([
            layer("l1", vec![pkg("a", "1", "var/lib/dpkg/status")]),
            LayerInput {
                whiteouts: wh(&[], &["var/lib/dpkg"]),
                results: vec![result("l2", vec![pkg("z", "1", "var/lib/dpkg/status")])],
            },
        ]);
        assert_eq!(
            inv.packages
                .iter()
                .map(|p| p.package.name.as_str())
                .collect::<Vec<_>>(),
            ["z"]
        );
        // A whiteout of a parent directory removes everything below it.
        let inv = merge([
            layer("l1", vec![pkg("a", "1", "var/lib/dpkg/status")]),
            LayerInput {
                whiteouts: wh(&["var/lib"], &[]),
                results: vec![],
            },
        ]);
        assert!(inv.packages.is_empty());
    }
}
