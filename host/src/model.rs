//! Types the pipeline stages share. Stages exchange these, never each other's internals.

use serde::{Deserialize, Serialize};

/// How an analyzer names the files it wants (see `wit/analyzer.wit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum PathPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(String),
}

impl std::fmt::Display for PathPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathPattern::Exact(p) => write!(f, "{p}"),
            PathPattern::Prefix(p) => write!(f, "{p}**"),
            PathPattern::Suffix(s) => write!(f, "**/*{s}"),
            PathPattern::Glob(g) => write!(f, "{g}"),
        }
    }
}

/// A pattern with the largest file accepted for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileRequest {
    pub pattern: PathPattern,
    pub max_size: u64,
}

/// What an analyzer says about itself, validated by the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AnalyzerMeta {
    pub name: String,
    pub version: String,
    pub ecosystem: String,
    pub requests: Vec<FileRequest>,
}

/// Where an analyzer's module came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    BuiltIn,
    Path(std::path::PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in"),
            Origin::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The OS an analyzer recognised in a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub pretty_name: Option<String>,
    pub source_file: String,
}

/// One installed package, as an analyzer reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub db_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<(String, String)>,
}

/// A warning an analyzer returned alongside its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerWarning {
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// One analyzer's successful result for one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    pub warnings: Vec<AnalyzerWarning>,
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    /// Part of the inventory is missing: the scan is incomplete.
    Error,
}

/// Something the user should know about a scan: an analyzer that failed or was stopped,
/// a file that was too large to extract, a warning from an analyzer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub level: Level,
    /// A stable machine-readable code: `analyzer-timeout`, `analyzer-memory`,
    /// `file-too-large`, …
    pub code: String,
    /// The analyzer concerned, as `name@version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<String>,
    /// The layer concerned (its diff_id), or the source for a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    pub message: String,
}
