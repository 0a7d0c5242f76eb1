//! The advisory model, shaped after OSV (<https://ossf.github.io/osv-schema/>) because every
//! feed this crate reads maps onto it: an advisory names the packages it affects, per
//! ecosystem, with version ranges made of ordered events.
//!
//! Two things are added to OSV because distribution feeds carry them and the matcher needs
//! them: a per-package [`FixState`] (Debian's "open", Red Hat's "will not fix", Alpine's
//! "not affected") and the distribution's own severity word ([`Affected::vendor_severity`]).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One advisory as one feed published it.
///
/// Identity: `(source, id)` is not unique for distribution feeds. The Debian tracker has one
/// entry per (source package, CVE) and Alpine's secdb one per (release, CVE), so the same CVE
/// id appears several times within one source; each occurrence is its own record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Advisory {
    /// The feed's id: `GHSA-…`, `GO-2024-…`, `DSA-5380-1`, `ALSA-2024:1234`, or a CVE id for
    /// feeds keyed by CVE (Debian tracker, Alpine secdb, Red Hat VEX).
    pub id: String,
    /// Other ids of the same vulnerability (CVE ids, vendor ids): OSV `aliases`.
    pub aliases: Vec<String>,
    /// Ids of related but not identical vulnerabilities: OSV `related`. AlmaLinux lists the
    /// CVEs an erratum fixes here, not in `aliases`.
    pub related: Vec<String>,
    /// Name of the feed the advisory was imported from (set by the store on import).
    pub source: String,
    pub published: Option<Timestamp>,
    pub modified: Option<Timestamp>,
    /// Set when the feed withdrew the advisory; the matcher must not report it.
    pub withdrawn: Option<Timestamp>,
    pub summary: String,
    pub details: String,
    pub severity: Vec<Severity>,
    pub references: Vec<Reference>,
    pub affected: Vec<Affected>,
}

/// A severity rating: a CVSS vector or a vendor's word.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Severity {
    /// Who rated: `nvd@nist.gov`, a CNA's address, `Red Hat`, or the feed name.
    pub source: String,
    pub kind: SeverityKind,
    /// A CVSS vector (`CVSS:3.1/AV:N/…`) or the vendor's word (`Important`, `high`).
    pub value: String,
    /// The base score when the feed states it (NVD, Red Hat); OSV gives only vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// What [`Severity::value`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeverityKind {
    CvssV2,
    CvssV3,
    CvssV4,
    /// A vendor's own scale (Ubuntu priority, Red Hat impact, Debian urgency, GHSA level).
    Vendor,
}

impl SeverityKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SeverityKind::CvssV2 => "cvss_v2",
            SeverityKind::CvssV3 => "cvss_v3",
            SeverityKind::CvssV4 => "cvss_v4",
            SeverityKind::Vendor => "vendor",
        }
    }

    /// Inverse of [`SeverityKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cvss_v2" => SeverityKind::CvssV2,
            "cvss_v3" => SeverityKind::CvssV3,
            "cvss_v4" => SeverityKind::CvssV4,
            "vendor" => SeverityKind::Vendor,
            _ => return None,
        })
    }
}

/// A link from an advisory (OSV `references`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// OSV reference type (`ADVISORY`, `FIX`, `WEB`, …), `WEB` when the feed gives none.
    pub kind: String,
    pub url: String,
}

/// The packages of one ecosystem an advisory is about, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    /// OSV ecosystem with release: `Debian:12`, `Alpine:v3.19`, `AlmaLinux:9`, `RHEL:9`,
    /// `PyPI`, `Go`, `crates.io`.
    pub ecosystem: String,
    /// The package name as the feed keys it: the *source* package for Debian and Alpine, the
    /// binary rpm for AlmaLinux and for fixed Red Hat packages, the name otherwise.
    pub package: String,
    pub ranges: Vec<Range>,
    /// Explicitly listed affected versions (OSV `versions`).
    pub versions: Vec<String>,
    /// What the vendor says about a fix; `None` when the feed does not say.
    pub fix_state: Option<FixState>,
    /// The distribution's severity for this package (`Important`, `low`, `negligible`).
    pub vendor_severity: Option<String>,
    /// The modularity stream (`ruby:2.7`) a Red Hat package entry belongs to: RHEL 8 ships
    /// several streams of one package, each fixed at its own version, so an entry with a
    /// module applies only to installed packages built for that stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// An OSV range: ordered events over one ordering.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub kind: RangeKind,
    /// The repository of a `Git` range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    pub events: Vec<Event>,
}

/// Which ordering a [`Range`]'s versions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeKind {
    /// The ecosystem's own ordering (dpkg, rpm, apk, PEP 440, …).
    Ecosystem,
    /// SemVer 2.0 precedence.
    Semver,
    /// Commit hashes of [`Range::repo`].
    Git,
}

/// An OSV range event. `Introduced("0")` means "since the first version".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    Limit(String),
}

impl Event {
    /// The version the event is at.
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

/// The vendor's statement about a fix for one package: the model's one definition, whose
/// words (`not-fixed`, …) are also what the database stores.
pub use bulkhead_model::FixState;

/// Severity ratings of one CVE from a feed that describes CVEs without packages (NVD): used
/// to enrich distribution advisories that carry no CVSS of their own.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    pub cve: String,
    pub modified: Option<Timestamp>,
    pub severity: Vec<Severity>,
}

/// What a feed parser yields: an advisory, or an enrichment of a CVE.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Advisory(Box<Advisory>),
    Enrichment(Enrichment),
}

impl From<Advisory> for Record {
    fn from(a: Advisory) -> Self {
        Record::Advisory(Box::new(a))
    }
}

impl From<Enrichment> for Record {
    fn from(e: Enrichment) -> Self {
        Record::Enrichment(e)
    }
}

/// The key a package name is indexed under in `ecosystem`: PyPI names are compared after
/// PEP 503 normalisation (`Django`, `django_x` and `django.x` are the same project as
/// `django`, `django-x`); every other ecosystem compares names exactly.
pub fn package_key(ecosystem: &str, name: &str) -> String {
    if ecosystem == "PyPI" {
        let mut out = String::with_capacity(name.len());
        let mut in_sep = false;
        for c in name.chars() {
            if matches!(c, '-' | '_' | '.') {
                if !in_sep {
                    out.push('-');
                }
                in_sep = true;
            } else {
                out.extend(c.to_lowercase());
                in_sep = false;
            }
        }
        out
    } else {
        name.to_owned()
    }
}

/// The version ordering of an ecosystem string, for validation and by the matcher; `None`
/// for ecosystems whose ordering `bulkhead-versions` does not implement.
pub fn version_scheme(ecosystem: &str) -> Option<bulkhead_versions::Ecosystem> {
    use bulkhead_versions::Ecosystem as V;
    let base = ecosystem.split(':').next().unwrap_or(ecosystem);
    Some(match base {
        "Debian" | "Ubuntu" => V::Deb,
        "Alpine" | "Wolfi" | "Chainguard" => V::Apk,
        "AlmaLinux" | "Rocky Linux" | "RHEL" | "Red Hat" | "openSUSE" | "SUSE" | "Mageia" => V::Rpm,
        "PyPI" => V::Pep440,
        "crates.io" | "npm" => V::Semver,
        "Go" => V::Go,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503_normalisation() {
        // The examples of PEP 503 itself.
        for name in [
            "friendly-bard",
            "Friendly-Bard",
            "FRIENDLY-BARD",
            "friendly.bard",
            "friendly_bard",
            "friendly--bard",
            "FrIeNdLy-._.-bArD",
        ] {
            assert_eq!(package_key("PyPI", name), "friendly-bard", "{name}");
        }
        assert_eq!(package_key("crates.io", "Foo_Bar"), "Foo_Bar");
    }

    #[test]
    fn schemes() {
        use bulkhead_versions::Ecosystem as V;
        assert_eq!(version_scheme("Debian:12"), Some(V::Deb));
        assert_eq!(version_scheme("Alpine:v3.19"), Some(V::Apk));
        assert_eq!(version_scheme("AlmaLinux:9"), Some(V::Rpm));
        assert_eq!(version_scheme("Go"), Some(V::Go));
        assert_eq!(version_scheme("Maven"), None);
    }

    #[test]
    fn events_serialise_like_osv() {
        let json = serde_json::to_string(&vec![
            Event::Introduced("0".into()),
            Event::LastAffected("1.2".into()),
        ])
        .expect("serialise");
        assert_eq!(json, r#"[{"introduced":"0"},{"last_affected":"1.2"}]"#);
    }
}
