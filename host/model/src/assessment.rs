//! Vulnerability assessment: what matching an inventory against the advisory database
//! produces, and what every report format renders.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Named;

/// The severity words of every report, worst first in [`Ord`] terms reversed: `Critical`
/// is the greatest, so `max()` gives the worst.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
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

impl Severity {
    /// 0 for unknown … 5 for critical: the `severity_rank` the service's tables sort by.
    pub fn rank(self) -> i64 {
        self as i64
    }

    /// Inverse of [`Severity::rank`].
    pub fn from_rank(rank: i64) -> Option<Severity> {
        Severity::ALL.iter().copied().find(|s| s.rank() == rank)
    }
}

impl Named for Severity {
    const ALL: &'static [Self] = &Severity::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl std::str::FromStr for Severity {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, UnknownWord> {
        Severity::from_name(s).ok_or_else(|| UnknownWord::new::<Severity>("severity", s))
    }
}

/// A word that names no value of an enum; says which words would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub expected: Vec<&'static str>,
}

impl UnknownWord {
    pub fn new<T: Named>(what: &'static str, word: &str) -> UnknownWord {
        UnknownWord {
            what,
            word: word.to_string(),
            expected: T::ALL.iter().map(|v| v.name()).collect(),
        }
    }
}

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected one of: {})",
            self.what,
            self.word,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CVSS base score computed from its vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cvss {
    /// `3.0`, `3.1` or `4.0`.
    pub version: String,
    pub vector: String,
    pub score: f64,
    /// Who published the vector (`nvd@nist.gov`, the feed's name).
    pub source: String,
}

/// Whether and how a vulnerability is fixed in the package's distribution: the vendor's
/// statement in an advisory, and the merged state of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FixState {
    /// A fixed version exists.
    Fixed,
    /// Affected, no fix yet (Debian "open", Red Hat "affected"/"deferred").
    NotFixed,
    /// Affected and the vendor will not fix it (Red Hat "will not fix", Debian "ignored").
    WontFix,
    /// Affected, but the release is out of support.
    EndOfLife,
    /// The vendor states the package is not affected (never reported as a finding).
    NotAffected,
    /// No statement.
    Unknown,
}

impl Named for FixState {
    const ALL: &'static [Self] = &[
        FixState::Fixed,
        FixState::NotFixed,
        FixState::WontFix,
        FixState::EndOfLife,
        FixState::NotAffected,
        FixState::Unknown,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl FixState {
    /// The word of reports, the advisory database and the service's tables.
    pub fn as_str(self) -> &'static str {
        match self {
            FixState::Fixed => "fixed",
            FixState::NotFixed => "not-fixed",
            FixState::WontFix => "wont-fix",
            FixState::EndOfLife => "end-of-life",
            FixState::NotAffected => "not-affected",
            FixState::Unknown => "unknown",
        }
    }

    /// Inverse of [`FixState::as_str`].
    pub fn parse(word: &str) -> Option<FixState> {
        FixState::from_name(word)
    }
}

/// One vulnerability of one installed package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Suppressed {
    #[serde(flatten)]
    pub finding: Finding,
    /// `.bulkheadignore`, or the VEX document's path.
    pub suppressed_by: String,
    pub reason: String,
}

/// Per package: the smallest upgrade that fixes all its fixable findings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The verdict on an image. `healthy` only when every package was checked against
/// advisory data and no finding is at or above the health threshold; `unknown` when part
/// of the image could not be assessed (a release or a package type no advisory data
/// covers, OS packages without a recognised OS, an analyzer that failed) and nothing that
/// was assessed reaches the threshold: a scan that could not look is not a clean one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    /// Not everything was assessed, and nothing assessed reaches the threshold.
    Unknown,
}

impl Health {
    /// The one rule: a finding at or above the threshold makes the image unhealthy
    /// whatever else is missing; else an image not fully assessed is unknown; else healthy.
    pub fn decide(over_threshold: bool, fully_assessed: bool) -> Health {
        match (over_threshold, fully_assessed) {
            (true, _) => Health::Unhealthy,
            (false, false) => Health::Unknown,
            (false, true) => Health::Healthy,
        }
    }

    /// The word of reports, the service's tables and notifications.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Unknown => "unknown",
        }
    }
}

impl Named for Health {
    const ALL: &'static [Self] = &[Health::Healthy, Health::Unhealthy, Health::Unknown];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The distribution release's support status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Eol {
    /// `YYYY-MM-DD`: when the release stopped (or stops) receiving security updates.
    pub date: String,
    /// True when `date` is in the past at scan time.
    pub reached: bool,
}

/// The advisory database a scan was matched against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DbSource {
    pub name: String,
    pub records: u64,
    /// The newest upstream modification time the feed carried (RFC 3339).
    pub upstream_date: Option<String>,
    pub imported_at: String,
}

/// What matching an inventory against the advisory database produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
