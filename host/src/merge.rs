//! Layer inventories → the image inventory.
//!
//! Layers are applied in order, as the container runtime stacks them: a package database
//! found again in a later layer (same analyzer, same database file) replaces the earlier
//! one entirely, because the later file is what the running container sees. The OS is the
//! one declared by the last layer that declares one.

use serde::Serialize;

use crate::model::{Analysis, OsInfo, Package};

/// One analyzer's result for one layer.
#[derive(Debug, Clone)]
pub struct LayerResult {
    /// The layer's diff_id, or the source name for a directory.
    pub layer: String,
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
    pub layer: String,
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

/// Merge results given in layer order (within a layer, in any order).
pub fn merge(results: impl IntoIterator<Item = LayerResult>) -> Inventory {
    // (analyzer, db_path) → packages currently visible from that database.
    let mut dbs: Vec<((String, String), Vec<InventoryPackage>)> = Vec::new();
    let mut os = None;
    for r in results {
        if r.analysis.os.is_some() {
            os = r.analysis.os.clone();
        }
        let mut by_db: Vec<(String, Vec<InventoryPackage>)> = Vec::new();
        for p in r.analysis.packages {
            let item = InventoryPackage {
                ecosystem: r.ecosystem.clone(),
                analyzer: r.analyzer_id.clone(),
                layer: r.layer.clone(),
                package: p,
            };
            match by_db.iter_mut().find(|(db, _)| *db == item.package.db_path) {
                Some((_, v)) => v.push(item),
                None => by_db.push((item.package.db_path.clone(), vec![item])),
            }
        }
        for (db, packages) in by_db {
            let key = (r.analyzer.clone(), db);
            match dbs.iter_mut().find(|(k, _)| *k == key) {
                Some((_, old)) => {
                    // A package that was already there, unchanged, was introduced by the
                    // earlier layer, not by the one that rewrote the database.
                    let mut packages = packages;
                    for p in &mut packages {
                        if let Some(prev) =
                            old.iter().find(|o| same_package(&o.package, &p.package))
                        {
                            p.layer = prev.layer.clone();
                        }
                    }
                    *old = packages;
                }
                None => dbs.push((key, packages)),
            }
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

    fn layer(layer: &str, packages: Vec<Package>) -> LayerResult {
        LayerResult {
            layer: layer.into(),
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
}
