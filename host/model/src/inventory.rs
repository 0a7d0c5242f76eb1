//! The inventory: the OS and the packages of an image, each package with where it came
//! from. Analyzers fill in what they read; the host adds the provenance (analyzer,
//! layer, purl) as the inventory is merged.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Eol;

/// The distribution release of an image (from `os-release` and friends).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Os {
    pub id: String,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub id_like: Vec<String>,
    /// `PRETTY_NAME`.
    #[serde(rename = "name")]
    pub pretty_name: Option<String>,
    /// The file the OS was recognised from.
    pub source_file: String,
    /// End of security support of the release, when known (set by the assessment).
    pub eol: Option<Eol>,
}

impl Os {
    /// Alpine's development branch, edge, or a pre-release of the next release: `VERSION_ID`
    /// such as `3.21.0_alpha20240923` (edge's os-release carries the next release's number
    /// with a snapshot date and `PRETTY_NAME="Alpine Linux edge"`), `_beta…`, `_rc…`. Its
    /// packages follow the `edge` branch, not the release its number names: it is matched
    /// against the secdb's `edge` data and has no end of life.
    pub fn is_alpine_edge(&self) -> bool {
        if !self.id.trim().eq_ignore_ascii_case("alpine") {
            return false;
        }
        let version = self.version_id.as_deref().unwrap_or("").trim();
        version.eq_ignore_ascii_case("edge")
            || ["_alpha", "_beta", "_rc"]
                .iter()
                .any(|pre| version.contains(pre))
            || self
                .pretty_name
                .as_deref()
                .is_some_and(|n| n.trim().to_ascii_lowercase().ends_with(" edge"))
    }
}

/// One installed package: what its analyzer read, and where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The package format (`deb`, `apk`, `rpm`): the ecosystem its analyzer declares.
    pub ecosystem: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    /// The package URL; set when the inventory is merged (it needs the OS).
    pub purl: String,
    /// `name@version` of the analyzer that reported it.
    pub analyzer: String,
    /// The database file it was read from, relative to the image root.
    pub db_path: String,
    /// The layer that introduced it (images only).
    pub layer_digest: Option<String>,
    pub layer_diff_id: Option<String>,
    pub layer_created_by: Option<String>,
    /// The files the package owns, as its analyzer listed them: evidence for the
    /// inventory, not report content (reports leave it out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Facts an analyzer reported beyond the fixed fields, as `[key, value]` pairs (rpm:
    /// `modularity-label`). Matching uses them, so a stored inventory can be matched again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, String)>,
}

impl Package {
    /// The value of property `key`, when the analyzer reported one.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The image's inventory: its OS, when one was recognised, and its packages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Inventory {
    pub os: Option<Os>,
    pub packages: Vec<Package>,
}
