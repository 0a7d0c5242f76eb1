//! Which severity a finding gets, and who decided it.
//!
//! Order of authority (what Trivy and Grype users expect, and what the distributions ask
//! for — a Debian "unimportant" CVE must not be reported as NVD's "critical"):
//! 1. the distribution's or vendor's own rating of this package's vulnerability
//!    (`severity_source = vendor:<feed>`);
//! 2. a CVSS base score computed from a vector (v4.0 before v3.x; v2 is not used: its
//!    scale is different and every v2-only CVE predates the feeds we import), taken from
//!    the finding's own advisories, else from NVD enrichment, else from another feed's
//!    record of the same CVE (`cvss:<rater>`);
//! 3. `unknown`.
//!
//! The score is always recomputed from the vector (the `cvss` crate) rather than trusted
//! from a feed: a feed's stated score and its vector disagree more often than one expects.

use bulkhead_advisories::{Severity as Rating, SeverityKind};

use bulkhead_model::{Cvss, Severity};

/// A vendor's word on our scale. `None` for words that are not a rating ("not yet
/// assigned", "untriaged", "unknown").
pub fn vendor_word(word: &str) -> Option<Severity> {
    // Debian appends `**` to urgencies set without triage ("low**").
    let w = word
        .trim()
        .trim_end_matches('*')
        .trim()
        .to_ascii_lowercase();
    Some(match w.as_str() {
        "critical" => Severity::Critical,
        // Red Hat / AlmaLinux "Important"; Debian, Ubuntu, GHSA "high".
        "important" | "high" => Severity::High,
        "moderate" | "medium" => Severity::Medium,
        "low" => Severity::Low,
        // Debian "unimportant", Ubuntu "negligible".
        "negligible" | "unimportant" => Severity::Negligible,
        _ => return None,
    })
}

/// A CVSS rating's base score and severity, computed from its vector.
pub fn cvss(rating: &Rating) -> Option<Cvss> {
    use std::str::FromStr;
    let vector = rating.value.trim();
    let (version, score) = match rating.kind {
        SeverityKind::CvssV3 => {
            let v = cvss::v3::Vector::from_str(vector).ok()?;
            let version = if vector.starts_with("CVSS:3.0") {
                "3.0"
            } else {
                "3.1"
            };
            (version, v.score().value())
        }
        SeverityKind::CvssV4 => {
            let v = cvss::v4::Vector::from_str(vector).ok()?;
            ("4.0", v.score().value())
        }
        SeverityKind::CvssV2 | SeverityKind::Vendor => return None,
    };
    Some(Cvss {
        version: version.to_string(),
        vector: vector.to_string(),
        score,
        source: rating.source.clone(),
    })
}

/// The CVSS v3.x / v4.0 qualitative scale (FIRST): 0 none, 0.1–3.9 low, 4–6.9 medium,
/// 7–8.9 high, 9–10 critical. A 0.0 score ("none") maps to negligible.
pub fn from_score(score: f64) -> Severity {
    if score >= 9.0 {
        Severity::Critical
    } else if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Negligible
    }
}

/// The best CVSS among `ratings`: v4.0 first, then v3.1/v3.0; within one version, the
/// first that parses (feeds list the primary rater first; NVD first for enrichment).
pub fn best_cvss<'a>(ratings: impl IntoIterator<Item = &'a Rating>) -> Option<Cvss> {
    let mut best: Option<Cvss> = None;
    for r in ratings {
        let Some(c) = cvss(r) else { continue };
        let better = match &best {
            None => true,
            Some(b) => b.version != "4.0" && c.version == "4.0",
        };
        if better {
            best = Some(c);
        }
    }
    best
}

/// The severity decision for one finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub severity: Severity,
    pub source: String,
    pub cvss: Option<Cvss>,
}

/// Decide from the vendor's word (and the feed that said it), the finding's own ratings,
/// and fallback ratings (enrichment, other feeds), in that order.
pub fn decide(
    vendor: Option<(&str, &str)>,
    own: &[Rating],
    fallback: impl FnOnce() -> Vec<Rating>,
) -> Decision {
    // Vendor words may also sit among the ratings (OSV `database_specific` severities).
    let vendor_rating = vendor
        .and_then(|(word, feed)| vendor_word(word).map(|s| (s, feed.to_string())))
        .or_else(|| {
            own.iter()
                .filter(|r| r.kind == SeverityKind::Vendor)
                .find_map(|r| vendor_word(&r.value).map(|s| (s, r.source.clone())))
        });
    let mut cvss = best_cvss(own);
    if cvss.is_none() {
        cvss = best_cvss(&fallback());
    }
    if let Some((severity, feed)) = vendor_rating {
        return Decision {
            severity,
            source: format!("vendor:{feed}"),
            cvss,
        };
    }
    match cvss {
        Some(c) => Decision {
            severity: from_score(c.score),
            source: format!("cvss:{}", c.source),
            cvss: Some(c),
        },
        None => Decision {
            severity: Severity::Unknown,
            source: "none".to_string(),
            cvss: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(kind: SeverityKind, value: &str) -> Rating {
        Rating {
            source: "nvd@nist.gov".into(),
            kind,
            value: value.into(),
            score: None,
        }
    }

    #[test]
    fn vendor_words() {
        assert_eq!(vendor_word("Important"), Some(Severity::High));
        assert_eq!(vendor_word("unimportant"), Some(Severity::Negligible));
        assert_eq!(vendor_word("low**"), Some(Severity::Low));
        assert_eq!(vendor_word("MODERATE"), Some(Severity::Medium));
        assert_eq!(vendor_word("not yet assigned"), None);
        assert_eq!(vendor_word("untriaged"), None);
    }

    #[test]
    fn scores_follow_the_first_specification() {
        // Examples from the CVSS v3.1 specification document, section 7
        // (CVE-2014-0160 Heartbleed: 7.5; CVE-2014-6271 Shellshock: 9.8).
        let heartbleed = rating(
            SeverityKind::CvssV3,
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        );
        let c = cvss(&heartbleed).expect("valid vector");
        assert_eq!((c.version.as_str(), c.score), ("3.1", 7.5));
        let shellshock = rating(
            SeverityKind::CvssV3,
            "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        );
        assert_eq!(cvss(&shellshock).map(|c| c.score), Some(9.8));
        assert_eq!(from_score(9.8), Severity::Critical);
        assert_eq!(from_score(7.5), Severity::High);
        assert_eq!(from_score(6.9), Severity::Medium);
        assert_eq!(from_score(0.1), Severity::Low);
        // A v4.0 vector (FIRST's calculator: 9.3 for all-high network).
        let v4 = rating(
            SeverityKind::CvssV4,
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        );
        assert_eq!(cvss(&v4).map(|c| c.score), Some(9.3));
        assert!(cvss(&rating(SeverityKind::CvssV3, "CVSS:3.1/AV:X")).is_none());
    }

    #[test]
    fn the_vendor_outranks_cvss_and_cvss_outranks_nothing() {
        let own = vec![rating(
            SeverityKind::CvssV3,
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        )];
        let d = decide(Some(("unimportant", "debian-tracker")), &own, Vec::new);
        assert_eq!(d.severity, Severity::Negligible);
        assert_eq!(d.source, "vendor:debian-tracker");
        assert_eq!(d.cvss.map(|c| c.score), Some(9.8));
        let d = decide(Some(("not yet assigned", "debian")), &own, Vec::new);
        assert_eq!(
            (d.severity, d.source.as_str()),
            (Severity::Critical, "cvss:nvd@nist.gov")
        );
        let d = decide(None, &[], || own.clone());
        assert_eq!(d.severity, Severity::Critical);
        let d = decide(None, &[], Vec::new);
        assert_eq!((d.severity, d.source.as_str()), (Severity::Unknown, "none"));
    }
}
