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

impl Diagnostic {
    /// A warning about the whole scan (no analyzer or layer concerned).
    pub fn warning(code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            level: Level::Warning,
            code: code.to_string(),
            analyzer: None,
            layer: None,
            message: message.into(),
        }
    }
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

// ---------------------------------------------------------------------------------------
// Vulnerability assessment: what `assess` derives from an inventory and the advisory
// database, and what every report format renders.
// ---------------------------------------------------------------------------------------

/// The severity words of every report, worst first in [`Ord`] terms reversed: `Critical`
/// is the greatest, so `max()` gives the worst.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Worst first, the order reports list them in.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Negligible,
        Severity::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Negligible => "negligible",
            Severity::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CVSS base score computed from its vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cvss {
    /// `3.0`, `3.1` or `4.0`.
    pub version: String,
    pub vector: String,
    pub score: f64,
    /// Who published the vector (`nvd@nist.gov`, the feed's name).
    pub source: String,
}

/// Whether and how a vulnerability is fixed in the package's distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    Fixed,
    NotFixed,
    WontFix,
    EndOfLife,
    Unknown,
}

impl FixState {
    pub fn as_str(self) -> &'static str {
        match self {
            FixState::Fixed => "fixed",
            FixState::NotFixed => "not-fixed",
            FixState::WontFix => "wont-fix",
            FixState::EndOfLife => "end-of-life",
            FixState::Unknown => "unknown",
        }
    }
}

/// One vulnerability of one installed package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The CVE when there is one, else the advisory id (`GHSA-…`, `ALSA-…`).
    pub id: String,
    /// Every other id of the vulnerability (vendor advisories, GHSA, …), sorted.
    pub aliases: Vec<String>,
    /// The installed (binary) package.
    pub package: String,
    pub installed_version: String,
    /// The package the advisories name when it is not `package` (the source package).
    pub source_name: Option<String>,
    /// The smallest version that fixes it, in the terms of the advisory's package (the
    /// source version for Debian and Ubuntu); `None` when no fix exists.
    pub fixed_version: Option<String>,
    pub fix_state: FixState,
    pub severity: Severity,
    /// What decided `severity`: `vendor:<feed>`, `cvss:<rater>`, or `none`.
    pub severity_source: String,
    pub cvss: Option<Cvss>,
    pub title: String,
    /// The advisory ecosystem matched (`Debian:12`, `Alpine:v3.11`).
    pub ecosystem: String,
    /// The package's `ecosystem` as the analyzer named it (`deb`, `apk`, `rpm`).
    pub package_type: String,
    /// The package's purl (`pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12`).
    pub purl: String,
    pub arch: Option<String>,
    /// The layer that introduced the package.
    pub layer_digest: Option<String>,
    pub layer_diff_id: Option<String>,
    /// The advisory records it came from, as `feed:id`.
    pub sources: Vec<String>,
    /// Links to the advisories (the first is the primary one).
    pub urls: Vec<String>,
}

/// A finding a user chose not to see, with why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    /// `.bulkheadignore`, or the VEX document's path.
    pub suppressed_by: String,
    pub reason: String,
}

/// Per package: the smallest upgrade that fixes all its fixable findings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    pub package: String,
    pub installed_version: String,
    /// The package the fixed version belongs to, when it is a source package.
    pub source_name: Option<String>,
    pub fixed_version: String,
    /// The ids it fixes, worst severity first.
    pub fixes: Vec<String>,
    /// The worst severity among them.
    pub severity: Severity,
}

/// Finding counts by severity, after filters; `suppressed` counts the suppressed ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub negligible: usize,
    pub unknown: usize,
    pub suppressed: usize,
}

impl Summary {
    pub fn count(&self, s: Severity) -> usize {
        match s {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Negligible => self.negligible,
            Severity::Unknown => self.unknown,
        }
    }
}

/// `healthy` when no finding is at or above the health threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
}

/// The distribution release's support status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eol {
    /// `YYYY-MM-DD`: when the release stopped (or stops) receiving security updates.
    pub date: String,
    /// True when `date` is in the past at scan time.
    pub reached: bool,
}

/// The advisory database a scan was matched against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSource {
    pub name: String,
    pub records: u64,
    /// The newest upstream modification time the feed carried (RFC 3339).
    pub upstream_date: Option<String>,
    pub imported_at: String,
}

/// What matching an inventory against the advisory database produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Sorted worst first, then by package and id.
    pub findings: Vec<Finding>,
    pub suppressed: Vec<Suppressed>,
    pub recommendations: Vec<Recommendation>,
    pub summary: Summary,
    pub health: Health,
    /// The threshold `health` was decided with.
    pub health_threshold: Severity,
    pub eol: Option<Eol>,
    pub db: Vec<DbSource>,
}
