//! The assessment stage: match an image inventory against the advisory database, then
//! classify what was found.
//!
//! 1. matching (`bulkhead_advisories::matcher`): each package in the ecosystem of the
//!    detected distribution release, through its source package where the feed keys
//!    advisories that way, one finding per vulnerability and package;
//! 2. severity ([`severity`]): vendor rating, else CVSS from the vector, else unknown;
//! 3. filters the user asked for (`--severity`, `--ignore-unfixed`), then suppressions
//!    ([`suppress`]: `.bulkheadignore`, OpenVEX), which are counted, never dropped;
//! 4. summary, health against the threshold, recommendations (per package, the smallest
//!    version that fixes all its fixable findings), end-of-life ([`eol`]).
//!
//! Health is `healthy` only when every package was checked against advisory data and the
//! inventory is complete; a package that could not be checked (its type or release has no
//! data, OS packages without a recognised OS) or an incomplete inventory makes it
//! `unknown` unless a finding already makes it `unhealthy` ([`Health::decide`]).
//!
//! Advisory data is untrusted input too: a version that does not parse skips that entry
//! with a diagnostic, never the scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use anyhow::{Context, Result};
use bulkhead_advisories::{self as adv, Store};

use bulkhead_model::{
    Assessment, DbSource, Diagnostic, Finding, Health, Inventory, Package, Recommendation,
    Severity, Summary,
};

pub mod eol;
pub mod severity;
pub mod suppress;

pub use suppress::{ImageIdentity, Suppressions};

/// What the user decided about findings.
#[derive(Debug)]
pub struct Policy {
    /// A finding at or above it makes the image unhealthy.
    pub health_threshold: Severity,
    /// Report only these severities (empty: all).
    pub severities: Vec<Severity>,
    /// Drop findings that have no fixed version.
    pub ignore_unfixed: bool,
    pub suppressions: Suppressions,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            health_threshold: Severity::High,
            severities: Vec::new(),
            ignore_unfixed: false,
            suppressions: Suppressions::default(),
        }
    }
}

/// How the pipeline runs this stage.
#[derive(Debug)]
pub struct AssessOptions {
    /// The advisory database file.
    pub db: PathBuf,
    pub policy: Policy,
    /// Fail (instead of warning and reporting the inventory only) when there is no
    /// database: a CI gate (`--fail-on`) must never pass because nothing was matched.
    pub require_db: bool,
}

/// The public page of an advisory id, for reports. Ids are feed data (untrusted): only
/// their prefix is looked at, never sliced by position.
pub fn advisory_url(id: &str) -> Option<String> {
    let prefix = |p: &str| id.starts_with(p);
    if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    Some(if prefix("CVE-") {
        format!("https://nvd.nist.gov/vuln/detail/{id}")
    } else if prefix("GHSA-") {
        format!("https://github.com/advisories/{id}")
    } else if prefix("DSA-") || prefix("DLA-") || prefix("DTSA-") {
        format!("https://security-tracker.debian.org/tracker/{id}")
    } else if prefix("RHSA-") || prefix("RHBA-") || prefix("RHEA-") {
        format!("https://access.redhat.com/errata/{id}")
    } else if prefix("USN-") {
        format!("https://ubuntu.com/security/notices/{id}")
    } else if prefix("RUSTSEC-") {
        format!("https://rustsec.org/advisories/{id}.html")
    } else if prefix("GO-") {
        format!("https://pkg.go.dev/vuln/{id}")
    } else if id.contains('-') {
        // ALSA, RLSA, PYSEC, ALPINE-…: osv.dev serves every id it imports.
        format!("https://osv.dev/vulnerability/{id}")
    } else {
        return None;
    })
}

/// Diagnostic code of a version compared by the reference tool's fallback for versions it
/// calls invalid (apk-tools orders any string; the matcher does the same and says so).
pub const VERSION_FALLBACK_CODE: &str = "version-fallback";

/// Turns the `(found, total)` list of skipped packages into a few readable diagnostics.
fn summarise_warnings(warnings: Vec<String>, out: &mut Vec<Diagnostic>) {
    summarise("match-skipped", "skipped", warnings, out);
}

/// A few diagnostics of `code` for `messages`, the rest counted in one more.
fn summarise(code: &str, done: &str, messages: Vec<String>, out: &mut Vec<Diagnostic>) {
    const SHOWN: usize = 5;
    let total = messages.len();
    for m in messages.iter().take(SHOWN) {
        out.push(Diagnostic::warning(code, m.clone()));
    }
    if total > SHOWN {
        out.push(Diagnostic::warning(
            code,
            format!(
                "{} more packages or advisory entries were {done} the same way",
                total - SHOWN
            ),
        ));
    }
}

/// Match and classify, against one consistent state of the database. `now` decides
/// expiries and end of life. `complete` says whether the inventory is whole (no analyzer
/// failed): an incomplete one cannot be `healthy`.
pub fn assess(
    store: &Store,
    inventory: &Inventory,
    complete: bool,
    image: &ImageIdentity,
    policy: &Policy,
    now: jiff::Timestamp,
) -> Result<(Assessment, Vec<Diagnostic>)> {
    store
        .snapshot(|| assess_in_snapshot(store, inventory, complete, image, policy, now))
        .with_context(|| {
            format!(
                "cannot read the advisory database {}",
                store.path().display()
            )
        })?
}

fn assess_in_snapshot(
    store: &Store,
    inventory: &Inventory,
    complete: bool,
    image: &ImageIdentity,
    policy: &Policy,
    now: jiff::Timestamp,
) -> Result<(Assessment, Vec<Diagnostic>)> {
    let mut diagnostics = Vec::new();
    let os = inventory.os.as_ref();
    // Packages that could not be checked against any advisory data: any makes the
    // verdict `unknown` rather than `healthy`.
    let mut unchecked = 0usize;

    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
    for p in &inventory.packages {
        if adv::PackageKind::of(&p.ecosystem).is_none() {
            *unsupported.entry(p.ecosystem.clone()).or_default() += 1;
        }
    }
    for (ecosystem, n) in unsupported {
        unchecked += n;
        diagnostics.push(Diagnostic::warning("match-unsupported", format!(
                "{n} packages of type {ecosystem:?} were not matched: no advisory ecosystem is known for it"
            )));
    }

    // An ecosystem the database does not cover would silently look clean: say so.
    let ecosystem_of =
        |p: &Package| adv::PackageKind::of(&p.ecosystem).and_then(|k| adv::ecosystem_for(os, k));
    // A known package type with no advisory ecosystem: distribution packages in an image
    // whose release was not recognised (or that no feed format names).
    let no_ecosystem = inventory
        .packages
        .iter()
        .filter(|p| adv::PackageKind::of(&p.ecosystem).is_some() && ecosystem_of(p).is_none())
        .count();
    if no_ecosystem > 0 {
        unchecked += no_ecosystem;
        diagnostics.push(Diagnostic::warning(
            "os-missing",
            format!(
                "{no_ecosystem} distribution packages could not be checked: {}; the image's health is unknown",
                match os {
                    None => "no release file (os-release, lsb-release, alpine-release, debian_version, redhat-release) was found".to_string(),
                    Some(o) => format!(
                        "no advisory ecosystem is known for {} {}",
                        o.id,
                        o.version_id.as_deref().unwrap_or("(no version)")
                    ),
                }
            ),
        ));
    }
    let ecosystems: BTreeSet<String> = inventory.packages.iter().filter_map(ecosystem_of).collect();
    for e in &ecosystems {
        if !store.has_ecosystem(e).with_context(|| {
            format!(
                "cannot read the advisory database {}",
                store.path().display()
            )
        })? {
            let n = inventory
                .packages
                .iter()
                .filter(|p| ecosystem_of(p).as_deref() == Some(e))
                .count();
            unchecked += n;
            diagnostics.push(Diagnostic::warning("db-missing-ecosystem", format!(
                    "the advisory database has no advisories for {e}: {n} packages could not be checked; import or update a feed that covers {e} (`bulkhead db update`)"
                )));
        }
    }

    let report = adv::match_packages_report(store, os, &inventory.packages).with_context(|| {
        format!(
            "cannot match packages against the advisory database {}",
            store.path().display()
        )
    })?;
    summarise_warnings(report.warnings, &mut diagnostics);
    summarise(
        VERSION_FALLBACK_CODE,
        "compared",
        report.notes,
        &mut diagnostics,
    );

    let mut findings = Vec::with_capacity(report.findings.len());
    // One CVE is often found in several packages (every binary of a source package):
    // look its fallback ratings up once.
    let mut ratings = HashMap::new();
    for f in report.findings {
        findings.push(finding(store, &mut ratings, f)?);
    }

    // Filters the user asked for, then suppressions.
    if policy.ignore_unfixed {
        findings.retain(|f| f.fixed_version.is_some());
    }
    if !policy.severities.is_empty() {
        findings.retain(|f| policy.severities.contains(&f.severity));
    }
    let applied = policy.suppressions.apply(findings, image, now);
    diagnostics.extend(applied.diagnostics);
    let mut findings = applied.kept;
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.id.cmp(&b.id))
    });

    let mut summary = Summary {
        suppressed: applied.suppressed.len(),
        ..Summary::default()
    };
    for f in &findings {
        match f.severity {
            Severity::Critical => summary.critical += 1,
            Severity::High => summary.high += 1,
            Severity::Medium => summary.medium += 1,
            Severity::Low => summary.low += 1,
            Severity::Negligible => summary.negligible += 1,
            Severity::Unknown => summary.unknown += 1,
        }
    }
    // `Unknown` is the lowest severity: it decides health only with threshold `unknown`.
    let health = Health::decide(
        findings
            .iter()
            .any(|f| f.severity >= policy.health_threshold),
        complete && unchecked == 0,
    );

    let today = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    let eol = inventory.os.as_ref().and_then(|o| eol::lookup(o, &today));
    if let (Some(e), Some(o)) = (&eol, &inventory.os)
        && e.reached
    {
        diagnostics.push(Diagnostic::warning("os-eol", format!(
                    "{} {} reached its end of life on {}: it receives no security fixes and its advisories are no longer maintained; move to a supported release",
                    o.id,
                    o.version_id.as_deref().unwrap_or(""),
                    e.date
                )));
    }

    if let Some(o) = inventory.os.as_ref().filter(|o| o.is_alpine_edge()) {
        diagnostics.push(Diagnostic::warning(
            "os-moving-target",
            format!(
                "{} (VERSION_ID {}) is Alpine's development branch or a pre-release: a moving \
                 target, matched against the secdb's edge data (Alpine:edge), whose packages \
                 and fixes change daily; rescan it often, and prefer a stable release in \
                 production",
                o.pretty_name.as_deref().unwrap_or("Alpine Linux edge"),
                o.version_id.as_deref().unwrap_or("unknown")
            ),
        ));
    }

    let db = store
        .status()
        .with_context(|| {
            format!(
                "cannot read the advisory database {}",
                store.path().display()
            )
        })?
        .into_iter()
        .map(|s| DbSource {
            name: s.name,
            records: s.records,
            upstream_date: s.upstream_date.map(|t| t.to_string()),
            imported_at: s.imported_at.to_string(),
        })
        .collect();

    let recommendations = recommendations(&findings);
    Ok((
        Assessment {
            findings,
            suppressed: applied.suppressed,
            recommendations,
            summary,
            health,
            health_threshold: policy.health_threshold,
            eol,
            db,
        },
        diagnostics,
    ))
}

/// One matcher finding, classified and tied back to its inventory entry.
/// One match classified: its severity (vendor, then CVSS, then unknown), links and title.
fn finding(
    store: &Store,
    fallback_cache: &mut HashMap<String, Vec<adv::Severity>>,
    m: adv::AdvisoryMatch,
) -> Result<Finding> {
    let f = m.finding;
    let feed = m
        .advisories
        .first()
        .map(|a| a.source.clone())
        .unwrap_or_default();
    let cves: Vec<String> = std::iter::once(&f.id)
        .chain(&f.aliases)
        .filter(|id| id.starts_with("CVE-"))
        .cloned()
        .collect();
    // NVD enrichment first, then what other feeds' records of the same CVE say (a CVSS
    // vector describes the vulnerability, not the package).
    let mut fallback = |cve: &String| -> Result<Vec<adv::Severity>> {
        if let Some(r) = fallback_cache.get(cve) {
            return Ok(r.clone());
        }
        let mut r = store
            .enrichment(cve)
            .context("cannot read CVSS enrichment from the advisory database")?;
        if r.is_empty() {
            r = store
                .severities_of(cve)
                .context("cannot read severity ratings from the advisory database")?;
        }
        fallback_cache.insert(cve.clone(), r.clone());
        Ok(r)
    };
    // Only consulted when the finding's own advisories carry no CVSS vector (the vector
    // is shown next to a vendor's rating too).
    let needs_fallback = severity::best_cvss(&m.severities).is_none();
    let mut extra = Vec::new();
    if needs_fallback {
        for cve in &cves {
            extra.extend(fallback(cve)?);
        }
    }
    let decision = severity::decide(
        m.vendor_severity.as_deref().map(|w| (w, feed.as_str())),
        &m.severities,
        || extra,
    );
    let urls = std::iter::once(&f.id)
        .chain(&f.aliases)
        .filter_map(|id| advisory_url(id))
        .collect();
    let title = if f.title.trim().is_empty() {
        f.id.clone()
    } else {
        f.title.clone()
    };
    Ok(Finding {
        severity: decision.severity,
        severity_source: decision.source,
        cvss: decision.cvss,
        title,
        urls,
        ..f
    })
}

/// Per installed package, the smallest version that fixes all its fixable findings: the
/// greatest of the findings' fixed versions, in the ecosystem's ordering.
pub fn recommendations(findings: &[Finding]) -> Vec<Recommendation> {
    let mut groups: BTreeMap<(String, String), Vec<&Finding>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.fixed_version.is_some()) {
        groups
            .entry((f.package.clone(), f.installed_version.clone()))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for ((package, installed_version), mut group) in groups {
        let scheme = adv::model::version_scheme(&group[0].ecosystem);
        let mut fixed: Option<&str> = None;
        for f in &group {
            let Some(v) = f.fixed_version.as_deref() else {
                continue;
            };
            fixed = Some(match (fixed, scheme) {
                (None, _) => v,
                (Some(cur), Some(scheme)) => {
                    match bulkhead_versions::compare(scheme, v, cur) {
                        Ok(std::cmp::Ordering::Greater) => v,
                        // Unparseable versions were already dropped at import; keep the
                        // current pick if one slipped through.
                        _ => cur,
                    }
                }
                (Some(cur), None) => cur,
            });
        }
        let Some(fixed) = fixed else { continue };
        group.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
        let severity = group
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Unknown);
        let mut fixes: Vec<String> = Vec::new();
        for f in &group {
            if !fixes.contains(&f.id) {
                fixes.push(f.id.clone());
            }
        }
        out.push(Recommendation {
            source_name: group[0].source_name.clone(),
            package,
            installed_version,
            fixed_version: fixed.to_string(),
            fixes,
            severity,
        });
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| b.fixes.len().cmp(&a.fixes.len()))
            .then_with(|| a.package.cmp(&b.package))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::advisory_url;

    #[test]
    fn advisory_urls_never_slice_untrusted_ids() {
        assert_eq!(
            advisory_url("ALSA-2024:1234").as_deref(),
            Some("https://osv.dev/vulnerability/ALSA-2024:1234")
        );
        for hostile in ["ALSA-é1", "ALSA-", "", "DSA-1 2", "x\u{1b}[31m"] {
            let _ = advisory_url(hostile);
        }
        assert!(advisory_url("DSA-1 2").is_none());
        assert_eq!(
            advisory_url("CVE-2024-3094").as_deref(),
            Some("https://nvd.nist.gov/vuln/detail/CVE-2024-3094")
        );
    }
}
