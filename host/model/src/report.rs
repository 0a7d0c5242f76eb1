//! The JSON report: Bulkhead's one machine-readable result shape. Its fields are a
//! contract: `docs/report.schema.json` is generated from these types ([`schema`]) and
//! [`SCHEMA_VERSION`] says which shape a document has. The other formats, the service's
//! store and its API are built from it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    DbSource, Diagnostic, Finding, Health, Inventory, Os, Package, Recommendation, Severity,
    Summary, Suppressed,
};

/// The version of the JSON report's shape. Minor: fields added; major: fields changed.
pub const SCHEMA_VERSION: &str = "0.2.0";

/// A whole scan, as `--format json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "Bulkhead scan report")]
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
    /// `healthy`, `unhealthy`, or `unknown` when part of the image was not assessed
    /// (see `diagnostics`: `db-missing-ecosystem`, `match-unsupported`, `os-missing`, an
    /// analyzer that failed).
    pub health: Option<Health>,
    /// The severity at or above which a finding makes the image unhealthy.
    pub health_threshold: Option<Severity>,
    pub recommendations: Vec<Recommendation>,
    /// Findings hidden by `.bulkheadignore` or a VEX document, with why.
    pub suppressed: Vec<Suppressed>,
    pub diagnostics: Vec<Diagnostic>,
    pub stats: Stats,
}

impl Report {
    /// The inventory the report was made from (OS and packages), to be matched again
    /// without pulling the image (the service's rescans).
    pub fn inventory(&self) -> Inventory {
        Inventory {
            os: self.os.clone().map(|os| Os { eol: None, ..os }),
            packages: self.packages.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageInfo {
    pub reference: String,
    /// The manifest digest (`sha256:…`); `null` for a directory.
    pub digest: Option<String>,
    /// `os/arch[/variant]`.
    pub platform: Option<String>,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Layer {
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
    pub created_by: Option<String>,
}

/// Where the time and bytes went: what a rescan saved shows here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    pub duration_ms: u64,
    pub layers: usize,
    pub layers_downloaded: usize,
    pub layers_from_cache: usize,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
}

/// The JSON Schema of [`Report`] (draft 2020-12), as `docs/report.schema.json` holds it.
///
/// It describes what Bulkhead writes (schemars' serialisation mode): every property is
/// required unless serde may skip it, so nullable fields are present as `null`. Every object
/// is closed (`additionalProperties: false`), so a consumer notices a field it does not
/// know. `schema_version` is the constant [`SCHEMA_VERSION`].
pub fn schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut value = serde_json::to_value(generator.into_root_schema_for::<Report>())
        .unwrap_or(serde_json::Value::Null);
    close_objects(&mut value);
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "$id".into(),
            "https://bulkhead.invalid/report.schema.json".into(),
        );
        if let Some(version) = map
            .get_mut("properties")
            .and_then(|p| p.get_mut("schema_version"))
            .and_then(serde_json::Value::as_object_mut)
        {
            version.insert("const".into(), SCHEMA_VERSION.into());
        }
    }
    value
}

/// Closes every object of a JSON schema (`additionalProperties: false` wherever there are
/// `properties`): what Bulkhead writes has exactly the fields it documents.
pub fn close_objects(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.contains_key("properties") {
                map.insert("additionalProperties".into(), false.into());
            }
            for child in map.values_mut() {
                close_objects(child);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}
