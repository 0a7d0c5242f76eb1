//! Layer inventories → the image inventory.
//!
//! Layers are applied in order, as the container runtime stacks them. For each layer,
//! first its whiteouts: a database file of an earlier layer that the layer deletes
//! (`.wh.status`) or hides (an opaque directory above it) disappears with its packages.
//! Then its databases: one found again (same analyzer, same file) replaces the earlier one
//! entirely, because the later file is what the running container sees. Each package keeps
//! the layer that introduced it. The OS is the one declared by the last layer that declares
//! one (and whose release file was not deleted since).

use bulkhead_model::{Analysis, Inventory, Os, Package};

use crate::layers::Whiteouts;

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

fn same_package(a: &Package, b: &Package) -> bool {
    a.name == b.name && a.version == b.version && a.arch == b.arch
}

/// Merge layers given in order (within a layer, results in any order).
pub fn merge(layers: impl IntoIterator<Item = LayerInput>) -> Inventory {
    // (analyzer, db_path) → packages currently visible from that database.
    let mut dbs: Databases = Vec::new();
    let mut os: Option<Os> = None;
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
    Inventory { os, packages }
}

type Databases = Vec<((String, String), Vec<Package>)>;

/// Apply one analyzer's result for one layer.
fn apply(dbs: &mut Databases, os: &mut Option<Os>, r: LayerResult) {
    if r.analysis.os.is_some() {
        *os = r.analysis.os.clone();
    }
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
                .map(|p| p.name.as_str())
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
                .map(|p| p.name.as_str())
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
