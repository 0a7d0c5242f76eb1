//! The JSON report: Bulkhead's one machine-readable result shape. Its fields are a
//! contract (`docs/report.schema.json`, [`SCHEMA_VERSION`]); the other formats and the
//! service are built from it.

use serde::{Deserialize, Serialize};

use crate::merge::InventoryPackage;
use crate::model::{
    Assessment, DbSource, Diagnostic, Eol, Finding, Health, OsInfo, Recommendation, Severity,
    Summary, Suppressed,
};
use crate::scan::ScanResult;

/// The version of the JSON report's shape. Minor: fields added; major: fields changed.
pub const SCHEMA_VERSION: &str = "0.2.0";

/// A whole scan, as `--format json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: String,
    pub image: ImageInfo,
    /// `null` when no distribution was detected (scratch, distroless without os-release).
    pub os: Option<Os>,
    /// False when part of the inventory is missing (see `diagnostics`).
    pub complete: bool,
    /// `name@version` of every analyzer that ran.
    pub analyzers: Vec<String>,
    pub packages: Vec<Package>,
    /// The advisory sources matched against; `null` when the scan was not matched
    /// (no advisory database): then `summary`, `health` and `health_threshold` are `null`.
    pub database: Option<Vec<DbSource>>,
    /// Sorted worst first, then by package and id.
    pub findings: Vec<Finding>,
    pub summary: Option<Summary>,
    pub health: Option<Health>,
    /// The severity at or above which a finding makes the image unhealthy.
    pub health_threshold: Option<Severity>,
    pub recommendations: Vec<Recommendation>,
    /// Findings hidden by `.bulkheadignore` or a VEX document, with why.
    pub suppressed: Vec<Suppressed>,
    pub diagnostics: Vec<Diagnostic>,
    pub stats: Stats,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub reference: String,
    /// The manifest digest (`sha256:…`); `null` for a directory.
    pub digest: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
    pub created_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Os {
    pub id: String,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub id_like: Vec<String>,
    /// `PRETTY_NAME`.
    pub name: Option<String>,
    /// The file the OS was recognised from.
    pub source_file: String,
    /// End of security support of the release, when known.
    pub eol: Option<Eol>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The package format (`deb`, `apk`, `rpm`).
    pub ecosystem: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub purl: String,
    /// `name@version` of the analyzer that reported it.
    pub analyzer: String,
    pub db_path: String,
    pub layer_digest: Option<String>,
    pub layer_diff_id: Option<String>,
    pub layer_created_by: Option<String>,
    /// Facts an analyzer reported beyond the fixed fields, as `[key, value]` pairs (rpm:
    /// `modularity-label`). Matching uses them, so a stored report can be matched again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, String)>,
}

/// Where the time and bytes went: what a rescan saved shows here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub duration_ms: u64,
    pub layers: usize,
    pub layers_downloaded: usize,
    pub layers_from_cache: usize,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

fn package(p: &InventoryPackage, os: Option<&OsInfo>) -> Package {
    Package {
        name: p.package.name.clone(),
        version: p.package.version.clone(),
        ecosystem: p.ecosystem.clone(),
        source_name: p.package.source_name.clone(),
        source_version: p.package.source_version.clone(),
        arch: p.package.arch.clone(),
        license: p.package.license.clone(),
        purl: crate::purl::package(p, os),
        analyzer: p.analyzer.clone(),
        db_path: p.package.db_path.clone(),
        // A directory is one layer with no digest.
        layer_digest: p.layer_digest.clone(),
        layer_diff_id: p.layer_digest.as_ref().map(|_| p.layer.clone()),
        layer_created_by: p.created_by.clone(),
        properties: p.package.properties.clone(),
    }
}

impl Report {
    pub fn from_result(result: &ScanResult) -> Report {
        let assessment: Option<&Assessment> = result.assessment.as_ref();
        let os = result.inventory.os.as_ref();
        Report {
            schema_version: SCHEMA_VERSION.to_string(),
            image: ImageInfo {
                reference: result.reference.clone(),
                digest: result
                    .image
                    .as_ref()
                    .and_then(|i| i.manifest_digest.clone()),
                platform: result
                    .image
                    .as_ref()
                    .and_then(|i| i.platform.as_ref())
                    .map(|p| p.to_string()),
                layers: result
                    .image
                    .iter()
                    .flat_map(|i| &i.layers)
                    .map(|l| Layer {
                        digest: l.digest.clone(),
                        diff_id: l.diff_id.clone(),
                        media_type: l.media_type.clone(),
                        size: l.size,
                        created_by: l.created_by.clone(),
                    })
                    .collect(),
            },
            os: os.map(|o| Os {
                id: o.id.clone(),
                version_id: o.version_id.clone(),
                version_codename: o.version_codename.clone(),
                id_like: o.id_like.clone(),
                name: o.pretty_name.clone(),
                source_file: o.source_file.clone(),
                eol: assessment.and_then(|a| a.eol.clone()),
            }),
            complete: result.complete(),
            analyzers: result.analyzers.clone(),
            packages: result
                .inventory
                .packages
                .iter()
                .map(|p| package(p, os))
                .collect(),
            database: assessment.map(|a| a.db.clone()),
            findings: assessment.map(|a| a.findings.clone()).unwrap_or_default(),
            summary: assessment.map(|a| a.summary.clone()),
            health: assessment.map(|a| a.health),
            health_threshold: assessment.map(|a| a.health_threshold),
            suppressed: assessment.map(|a| a.suppressed.clone()).unwrap_or_default(),
            recommendations: assessment
                .map(|a| a.recommendations.clone())
                .unwrap_or_default(),
            diagnostics: result.diagnostics.clone(),
            stats: Stats {
                duration_ms: result.stats.total.as_millis() as u64,
                layers: result.stats.layers,
                layers_downloaded: result.stats.layers_downloaded,
                layers_from_cache: result.stats.layers_from_cache,
                compressed_bytes: result.stats.compressed_bytes,
                uncompressed_bytes: result.stats.uncompressed_bytes,
            },
        }
    }
}
