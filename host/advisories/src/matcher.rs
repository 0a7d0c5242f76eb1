//! Matching installed packages against the advisory store ([`match_packages`]).
//!
//! [`match_packages`] is pure over a [`Store`]: it looks every installed package up in the
//! ecosystem of its distribution ([`ecosystem_for`]), evaluates each advisory entry's
//! ranges with that ecosystem's version ordering, and merges what several feeds say about
//! one vulnerability into one [`Finding`] per installed package.
//!
//! # What is looked up, and which version is compared
//!
//! | packages | name looked up | version compared |
//! |---|---|---|
//! | Debian, Ubuntu (dpkg) | source package (fallback: binary name) | source version (fallback: binary version) |
//! | Alpine (apk) | origin (fallback: name) | the package version (apk origins have no version of their own) |
//! | AlmaLinux, Rocky, RHEL (rpm) | binary rpm; also the source rpm, for *unfixed* entries only | binary `[epoch:]version-release`; the source rpm's for source lookups |
//! | PyPI, npm, Go, crates.io | name (PEP 503 for PyPI, by the store) | version |
//!
//! Distribution feeds key their advisories that way: Debian's tracker and DSA lists and
//! Alpine's secdb name source packages, AlmaLinux OSV and Red Hat's *fixed* CSAF entries
//! name binary rpms, and Red Hat's *unfixed* entries name the component (the source rpm).
//! Source-rpm lookups are limited to entries without a fixed version because a fixed
//! version of a source rpm may not be the version of every binary built from it.
//!
//! # rpm epochs
//!
//! An advisory version without an epoch is compared as epoch 0, which is rpm's own rule
//! (`labelCompare`). The feeds write non-zero epochs explicitly: AlmaLinux's OSV files say
//! `"fixed": "1:2.06-27.el9_0.7.alma"` for grub2, Red Hat's CSAF purls carry `epoch=`. So
//! an installed `1:2.0-1` is *not* affected by a `fixed: 2.5-1` entry, as rpm would order
//! them; this is deliberate, a feed that drops epochs would be a bug of that feed.
//!
//! # OSV range semantics
//!
//! Per the OSV specification: within one range the events are sorted by version
//! (`introduced: 0` first), a version is affected after an `introduced` at or below it until
//! a `fixed` at or below it (or a `last_affected` below it); no version at or above a
//! `limit` is affected. An entry also affects the versions its `versions` list names. `Git`
//! ranges cannot be evaluated without the repository and are ignored (osv.dev lists the
//! affected versions of such records in `versions`). Withdrawn advisories and entries
//! stating [`FixState::NotAffected`] are never reported.
//!
//! # Merging
//!
//! One vulnerability is reported once per installed package. An advisory that names CVEs
//! (its id or its `aliases`; for rpm distributions also `related`, where AlmaLinux lists
//! the CVEs an erratum fixes) contributes one finding per CVE, keyed by the CVE, with the
//! advisory's own id among the finding's aliases. An advisory without any CVE is keyed by its
//! id, joined with other CVE-less advisories that share an id or alias with it (GHSA and
//! PYSEC records of one issue), or with the CVE finding that already carries one of its ids.
//!
//! Merged fields: `fixed_version` is the smallest fixing version among the entries that
//! found the installed version affected (what an upgrade needs at least); `fix_state` is
//! `Fixed` when there is one, otherwise `EndOfLife` over `WontFix` over `NotFixed` (the
//! release being unsupported is the strongest statement); `vendor_severity` and `title` come
//! from the first entry that has one in (source, advisory id) order; severities are the
//! union of the advisories' CVSS vectors and vendor ratings.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use bulkhead_model::{Finding, Os, Package};
use bulkhead_versions::{Ecosystem as Scheme, Validity, compare};

use crate::error::Result;
use crate::model::{Affected, Event, FixState, Range, RangeKind, Severity, version_scheme};
use crate::store::{AdvisoryHeader, Entry, Match, Store};

/// The package format an installed package came from, in the matcher's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageKind {
    Deb,
    Apk,
    Rpm,
    PyPI,
    Npm,
    Go,
    Cargo,
}

impl PackageKind {
    /// The kind of a package whose analyzer declares `ecosystem` (`deb`, `apk`, `rpm`,
    /// `pypi`, …); `None` for a format no feed covers.
    pub fn of(ecosystem: &str) -> Option<PackageKind> {
        Some(match ecosystem.to_ascii_lowercase().as_str() {
            "deb" | "dpkg" => PackageKind::Deb,
            "apk" => PackageKind::Apk,
            "rpm" => PackageKind::Rpm,
            "pypi" | "python" => PackageKind::PyPI,
            "npm" => PackageKind::Npm,
            "go" | "golang" => PackageKind::Go,
            "cargo" | "crates.io" | "rust" => PackageKind::Cargo,
            _ => return None,
        })
    }
}

/// rpm `MODULARITYLABEL` (`name:stream:version:context`) of a package built for a RHEL 8
/// module stream, as the rpm analyzer reports it.
fn modularity_label(p: &Package) -> Option<&str> {
    p.property("modularity-label")
        .or_else(|| p.property("modularitylabel"))
}

/// The advisory ecosystem (`Debian:12`, `Alpine:v3.19`, `AlmaLinux:9`, `PyPI`) that holds
/// advisories for packages of `kind` on `os`; `None` when no feed covers that pair (an
/// unknown distribution, or a dpkg database on an rpm distribution).
///
/// Derivatives named only in `ID_LIKE` get `None`: their versions and fixes are their own,
/// and matching them against the parent's advisories would report wrong fixes.
pub fn ecosystem_for(os: Option<&Os>, kind: PackageKind) -> Option<String> {
    match kind {
        PackageKind::PyPI => return Some("PyPI".into()),
        PackageKind::Npm => return Some("npm".into()),
        PackageKind::Go => return Some("Go".into()),
        PackageKind::Cargo => return Some("crates.io".into()),
        PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm => {}
    }
    let os = os?;
    let id = os.id.trim().to_ascii_lowercase();
    let version = os
        .version_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    // The leading run of `n` dot-separated numbers: `9.4` → `9`, `3.19.1` → `3.19`.
    let numeric = |n: usize| -> Option<String> {
        let parts: Vec<&str> = version?.split('.').take(n).collect();
        (parts.len() == n
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| parts.join("."))
    };
    match (kind, id.as_str()) {
        (PackageKind::Deb, "debian") => match numeric(1) {
            Some(major) => Some(format!("Debian:{major}")),
            // Testing and unstable have no VERSION_ID, only a codename.
            None => {
                let codename = os.version_codename.as_deref()?.trim();
                let releases = crate::sources::debian::Releases::builtin();
                releases
                    .knows(codename)
                    .then(|| releases.ecosystem(codename))
            }
        },
        (PackageKind::Deb, "ubuntu") => numeric(2).map(|v| format!("Ubuntu:{v}")),
        // Edge and pre-releases follow the edge branch (the secdb's `edge` feed), whatever
        // release number their VERSION_ID carries.
        (PackageKind::Apk, "alpine") if os.is_alpine_edge() => Some("Alpine:edge".into()),
        (PackageKind::Apk, "alpine") => numeric(2).map(|v| format!("Alpine:v{v}")),
        (PackageKind::Rpm, "almalinux") => numeric(1).map(|v| format!("AlmaLinux:{v}")),
        (PackageKind::Rpm, "rocky") => numeric(1).map(|v| format!("Rocky Linux:{v}")),
        (PackageKind::Rpm, "rhel") => numeric(1).map(|v| format!("RHEL:{v}")),
        _ => None,
    }
}

/// One advisory record that contributed to an [`AdvisoryMatch`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AdvisoryRef {
    /// The feed (store source name).
    pub source: String,
    pub id: String,
}

/// One vulnerability of one installed package, as the advisories state it: the model's
/// [`Finding`] with everything the advisories and the package decide, and the evidence the
/// classifier decides the severity from. Until classified, `severity` is `unknown`,
/// `severity_source` is `none` and `cvss` and `urls` are empty.
#[derive(Debug, Clone, PartialEq)]
pub struct AdvisoryMatch {
    pub finding: Finding,
    /// The version compared with the advisories (the source version for dpkg), in whose
    /// terms `finding.fixed_version` is.
    pub compared_version: String,
    /// The advisory records that reported it, sorted.
    pub advisories: Vec<AdvisoryRef>,
    /// The distribution's own severity word (`negligible`, `Important`), when given.
    pub vendor_severity: Option<String>,
    /// CVSS vectors and vendor ratings of the advisories.
    pub severities: Vec<Severity>,
}

/// The result of [`match_packages_report`]: findings, and what could not be evaluated.
#[derive(Debug, Clone, Default)]
pub struct MatchReport {
    /// Sorted by package, then id.
    pub findings: Vec<AdvisoryMatch>,
    /// Packages or advisory entries skipped because a version did not parse in the
    /// ecosystem's ordering, or no feed covers the package's ecosystem.
    pub warnings: Vec<String>,
    /// Versions that were compared although the ecosystem's reference tool calls them
    /// invalid, because that tool orders them anyway with a fallback and this matcher
    /// does the same (apk-tools: `2021-03-27-r5`); one line per installed package or
    /// advisory entry, saying what was done. Sorted, without repeats.
    pub notes: Vec<String>,
}

/// Matches `packages` (of an image whose distribution is `os`) against `store`.
pub fn match_packages(
    store: &Store,
    os: Option<&Os>,
    packages: &[Package],
) -> Result<Vec<AdvisoryMatch>> {
    Ok(match_packages_report(store, os, packages)?.findings)
}

/// Which entries a lookup may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    All,
    /// Source-rpm lookups: only entries without a fixed version (see the module docs).
    UnfixedOnly,
}

struct Query<'a> {
    package: usize,
    ecosystem: String,
    scheme: Scheme,
    name: &'a str,
    version: &'a str,
    usage: Use,
}

/// [`match_packages`], also returning what was skipped.
pub fn match_packages_report(
    store: &Store,
    os: Option<&Os>,
    packages: &[Package],
) -> Result<MatchReport> {
    let mut report = MatchReport::default();
    let mut queries = Vec::new();
    for (index, p) in packages.iter().enumerate() {
        // A format no feed covers at all is the caller's to report (once per format).
        let Some(kind) = PackageKind::of(&p.ecosystem) else {
            continue;
        };
        let Some(ecosystem) = ecosystem_for(os, kind) else {
            report.warnings.push(format!(
                "{} {}: no advisory feed covers {:?} packages on {}",
                p.name,
                p.version,
                kind,
                os.map_or("an unknown distribution", |o| o.id.as_str())
            ));
            continue;
        };
        let Some(scheme) = version_scheme(&ecosystem) else {
            continue;
        };
        match kind {
            PackageKind::Deb | PackageKind::Apk => queries.push(Query {
                package: index,
                ecosystem,
                scheme,
                name: p.source_name.as_deref().unwrap_or(&p.name),
                version: p.source_version.as_deref().unwrap_or(&p.version),
                usage: Use::All,
            }),
            PackageKind::Rpm => {
                if let Some(source) = p.source_name.as_deref().filter(|s| *s != p.name) {
                    queries.push(Query {
                        package: index,
                        ecosystem: ecosystem.clone(),
                        scheme,
                        name: source,
                        version: p.source_version.as_deref().unwrap_or(&p.version),
                        usage: Use::UnfixedOnly,
                    });
                }
                queries.push(Query {
                    package: index,
                    ecosystem,
                    scheme,
                    name: &p.name,
                    version: &p.version,
                    usage: Use::All,
                });
            }
            PackageKind::PyPI | PackageKind::Npm | PackageKind::Go | PackageKind::Cargo => queries
                .push(Query {
                    package: index,
                    ecosystem,
                    scheme,
                    name: &p.name,
                    version: &p.version,
                    usage: Use::All,
                }),
        }
    }
    let keys: Vec<(&str, &str)> = queries
        .iter()
        .map(|q| (q.ecosystem.as_str(), q.name))
        .collect();
    let answers = store.entries_many(&keys)?;

    // Which entries affect which package; headers are read for those only.
    let mut affecting: Vec<(usize, &Entry, Option<String>)> = Vec::new();
    let mut notes = BTreeSet::new();
    for (qi, (query, entries)) in queries.iter().zip(&answers).enumerate() {
        let p = &packages[query.package];
        match query.scheme.validate(query.version) {
            Ok(Validity::Valid) => {}
            Ok(Validity::Fallback(e)) => {
                notes.insert(format!("{} {}: {e}", p.name, p.version));
            }
            Err(e) => {
                report
                    .warnings
                    .push(format!("{} {}: {e}", p.name, p.version));
                continue;
            }
        }
        for m in entries {
            if m.affected.fix_state == Some(FixState::NotAffected)
                || !module_applies(m.affected.module.as_deref(), modularity_label(p))
                || (query.scheme == Scheme::Rpm
                    && m.affected.module.is_none()
                    && !same_modularity(&m.affected, query.version))
            {
                continue;
            }
            match evaluate(query.scheme, &m.affected, query.version) {
                Ok(None) => {}
                Ok(Some(fixed)) => {
                    if query.usage == Use::UnfixedOnly
                        && (fixed.is_some() || has_fixed(&m.affected))
                    {
                        continue;
                    }
                    // Only entries that produce a finding are worth a note: an invalid
                    // version in an entry that does not apply changed nothing.
                    for e in fallbacks(query.scheme, &m.affected) {
                        let h = store.header(m.advisory)?;
                        notes.insert(format!(
                            "{} {}: advisory {} ({}): {e}",
                            p.name, p.version, h.id, h.source
                        ));
                    }
                    affecting.push((qi, m, fixed));
                }
                Err(e) => {
                    let h = store.header(m.advisory)?;
                    report.warnings.push(format!(
                        "{} {}: advisory {} ({}) skipped: {e}",
                        p.name, p.version, h.id, h.source
                    ));
                }
            }
        }
    }
    // Headers of the affecting entries only; withdrawn advisories are dropped here.
    let mut headers: BTreeMap<i64, AdvisoryHeader> = BTreeMap::new();
    let mut kept: Vec<(usize, Match, Option<String>, i64, i64)> =
        store.snapshot(|| -> Result<_> {
            let mut out = Vec::with_capacity(affecting.len());
            for (qi, m, fixed) in affecting {
                let advisory = match headers.get(&m.advisory) {
                    Some(h) => h.clone(),
                    None => {
                        let h = store.header(m.advisory)?;
                        headers.insert(m.advisory, h.clone());
                        h
                    }
                };
                if advisory.withdrawn.is_some() {
                    continue;
                }
                out.push((
                    qi,
                    Match {
                        advisory,
                        affected: m.affected.clone(),
                    },
                    fixed,
                    m.advisory,
                    m.seq,
                ));
            }
            Ok(out)
        })??;
    // Merging takes titles and vendor ratings from the first entry in (source, advisory
    // id) order: the order of the lookups, then of the advisories.
    kept.sort_by(|a, b| {
        (a.0, &a.1.advisory.source, &a.1.advisory.id, a.3, a.4).cmp(&(
            b.0,
            &b.1.advisory.source,
            &b.1.advisory.id,
            b.3,
            b.4,
        ))
    });

    // Per installed package: the affecting entries, in lookup order.
    let mut hits: BTreeMap<usize, Vec<Hit<'_>>> = BTreeMap::new();
    for (qi, m, fixed, _, _) in &kept {
        let (m, fixed) = (m, fixed.clone());
        let query = &queries[*qi];
        hits.entry(query.package)
            .or_default()
            .push(Hit { query, m, fixed });
    }

    for (index, hits) in hits {
        report.findings.extend(merge(&packages[index], hits));
    }
    report.notes = notes.into_iter().collect();
    report.findings.sort_by(|a, b| {
        let (a, b) = (&a.finding, &b.finding);
        (&a.package, &a.id, &a.installed_version).cmp(&(&b.package, &b.id, &b.installed_version))
    });
    Ok(report)
}

/// An entry that found an installed package affected, with the version fixing it.
struct Hit<'a> {
    query: &'a Query<'a>,
    m: &'a Match,
    fixed: Option<String>,
}

/// What [`Validity::Fallback`] says of each version of an entry that is ordered only by
/// the reference tool's fallback for invalid versions.
fn fallbacks(scheme: Scheme, affected: &Affected) -> Vec<bulkhead_versions::Error> {
    affected
        .ranges
        .iter()
        .filter(|r| r.kind != RangeKind::Git)
        .flat_map(|r| r.events.iter().map(Event::version))
        .chain(affected.versions.iter().map(String::as_str))
        .filter_map(|v| match scheme.validate(v) {
            Ok(Validity::Fallback(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn has_fixed(affected: &Affected) -> bool {
    affected.fix_state == Some(FixState::Fixed)
        || affected
            .ranges
            .iter()
            .any(|r| r.events.iter().any(|e| matches!(e, Event::Fixed(_))))
}

/// Whether an rpm entry without a module field (AlmaLinux and Rocky OSV name none) and the
/// installed version are both modular builds or both not. A module stream's build has
/// `.module_el9…` (`.module+el8…` on RHEL 8) in its release: an erratum fixing
/// `nginx:1.24`'s `1:1.24.0-4.module_el9.5.0+…` says nothing about the default stream's
/// `1:1.20.1-14.el9`, although the versions compare as if it did (Trivy applies the same
/// rule to these feeds).
fn same_modularity(affected: &Affected, installed: &str) -> bool {
    fn modular(v: &str) -> bool {
        v.contains(".module_el") || v.contains(".module+el")
    }
    let mut fixed = affected
        .ranges
        .iter()
        .flat_map(|r| &r.events)
        .filter_map(|e| match e {
            Event::Fixed(v) | Event::LastAffected(v) => Some(v.as_str()),
            _ => None,
        })
        .chain(affected.versions.iter().map(String::as_str))
        .peekable();
    // An entry with no version of its own (`introduced: 0` only) applies to both.
    if fixed.peek().is_none() {
        return true;
    }
    fixed.any(|v| modular(v) == modular(installed))
}

/// Whether an entry for module stream `module` (`ruby:2.7`) applies to a package with the
/// modularity label `label` (`ruby:2.7:8030020201216…:abcd`). Entries without a module apply
/// to every package; module entries only to packages of the same name and stream.
fn module_applies(module: Option<&str>, label: Option<&str>) -> bool {
    let Some(module) = module else { return true };
    let Some(label) = label else { return false };
    let stream = |s: &str| -> Option<(String, String)> {
        let mut parts = s.split(':');
        Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
    };
    matches!((stream(module), stream(label)), (Some(a), Some(b)) if a == b)
}

/// Whether `version` is affected by one entry: `Ok(None)` if not, `Ok(Some(fixed))` if it
/// is, `fixed` being the version of the range's fix when there is one. `Err` when a version
/// of the entry does not parse in `scheme` (the installed version was validated before).
pub fn evaluate(
    scheme: Scheme,
    affected: &Affected,
    version: &str,
) -> Result<Option<Option<String>>, bulkhead_versions::Error> {
    let mut result: Option<Option<String>> = None;
    let mut evaluable = false;
    for range in &affected.ranges {
        if range.kind == RangeKind::Git {
            continue;
        }
        evaluable = true;
        if let Some(fixed) = evaluate_range(scheme, range, version)? {
            result = Some(smaller(scheme, result.flatten(), fixed)?);
        }
    }
    for listed in &affected.versions {
        evaluable = true;
        let equal = match compare(scheme, listed, version) {
            Ok(o) => o == Ordering::Equal,
            // A listed version that is not valid in the ordering can still be spelled
            // exactly like the installed one.
            Err(_) => listed == version,
        };
        if equal && result.is_none() {
            result = Some(None);
        }
    }
    if !evaluable
        && matches!(
            affected.fix_state,
            Some(FixState::NotFixed | FixState::WontFix | FixState::EndOfLife)
        )
    {
        // A vendor statement "affected, no fix" without ranges covers every version.
        result = Some(None);
    }
    Ok(result)
}

/// The smaller of two optional fixed versions, a known one winning over none.
fn smaller(
    scheme: Scheme,
    a: Option<String>,
    b: Option<String>,
) -> Result<Option<String>, bulkhead_versions::Error> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(if compare(scheme, &b, &a)? == Ordering::Less {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    })
}

/// OSV's evaluation of one range (see the module docs): `Some(fixed)` when affected.
fn evaluate_range(
    scheme: Scheme,
    range: &Range,
    version: &str,
) -> Result<Option<Option<String>>, bulkhead_versions::Error> {
    // `introduced: 0` precedes everything; `limit: *` means no limit.
    fn is_zero(e: &Event) -> bool {
        matches!(e, Event::Introduced(v) if v == "0")
    }
    let cmp_to = |v: &str| compare(scheme, version, v);
    for e in &range.events {
        if let Event::Limit(l) = e
            && l != "*"
            && cmp_to(l)? != Ordering::Less
        {
            return Ok(None);
        }
    }
    let mut events: Vec<&Event> = range
        .events
        .iter()
        .filter(|e| !matches!(e, Event::Limit(_)))
        .collect();
    // Sort by version; at equal versions an `introduced` comes first so that
    // `introduced: X, fixed: X` is an empty range, as in the specification's algorithm.
    let mut error = None;
    events.sort_by(|a, b| {
        let order = match (is_zero(a), is_zero(b)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => match compare(scheme, a.version(), b.version()) {
                Ok(o) => o,
                Err(e) => {
                    error.get_or_insert(e);
                    Ordering::Equal
                }
            },
        };
        order.then_with(|| rank(a).cmp(&rank(b)))
    });
    if let Some(e) = error {
        return Err(e);
    }
    let mut affected = false;
    let mut position = events.len();
    for (i, e) in events.iter().enumerate() {
        let here = if is_zero(e) {
            Ordering::Greater
        } else {
            cmp_to(e.version())?
        };
        match e {
            Event::Introduced(_) if here != Ordering::Less => affected = true,
            Event::Fixed(_) if here != Ordering::Less => affected = false,
            Event::LastAffected(_) if here == Ordering::Greater => affected = false,
            _ => {}
        }
        if here == Ordering::Less {
            position = i;
            break;
        }
    }
    if !affected {
        return Ok(None);
    }
    // The range's end above `version`: the first non-`introduced` event after it.
    let fixed = events[position..].iter().find_map(|e| match e {
        Event::Introduced(_) => None,
        Event::Fixed(v) => Some(Some(v.clone())),
        Event::LastAffected(_) | Event::Limit(_) => Some(None),
    });
    Ok(Some(fixed.flatten()))
}

fn rank(e: &Event) -> u8 {
    match e {
        Event::Introduced(_) => 0,
        Event::LastAffected(_) => 1,
        Event::Fixed(_) => 2,
        Event::Limit(_) => 3,
    }
}

fn is_cve(id: &str) -> bool {
    id.starts_with("CVE-")
}

/// The CVEs an advisory is about (see "Merging" in the module docs).
fn cves(header: &AdvisoryHeader, scheme: Scheme) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = std::iter::once(&header.id)
        .chain(&header.aliases)
        .filter(|i| is_cve(i))
        .cloned()
        .collect();
    if out.is_empty() && scheme == Scheme::Rpm {
        out.extend(header.related.iter().filter(|i| is_cve(i)).cloned());
    }
    out
}

/// One finding being assembled.
struct Draft {
    ids: BTreeSet<String>,
    hits: Vec<usize>,
}

fn merge(package: &Package, hits: Vec<Hit<'_>>) -> Vec<AdvisoryMatch> {
    // Key → draft. CVE-keyed advisories first, then the others joined by shared ids.
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    let mut without_cve = Vec::new();
    for (i, hit) in hits.iter().enumerate() {
        let header = &hit.m.advisory;
        let cves = cves(header, hit.query.scheme);
        if cves.is_empty() {
            without_cve.push(i);
            continue;
        }
        for cve in cves {
            let draft = drafts.entry(cve.clone()).or_insert_with(|| Draft {
                ids: BTreeSet::new(),
                hits: Vec::new(),
            });
            draft.ids.insert(header.id.clone());
            draft
                .ids
                .extend(header.aliases.iter().filter(|a| !is_cve(a)).cloned());
            draft.hits.push(i);
        }
    }
    // A vendor id → the CVE keys carrying it; used only when unambiguous.
    let mut by_vendor_id: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (key, draft) in &drafts {
        for id in &draft.ids {
            by_vendor_id
                .entry(id.clone())
                .or_default()
                .insert(key.clone());
        }
    }
    // CVE-less advisories: groups of advisories sharing an id, then attached to a CVE key
    // when exactly one matches.
    let mut groups: Vec<(BTreeSet<String>, Vec<usize>)> = Vec::new();
    for i in without_cve {
        let header = &hits[i].m.advisory;
        let mut ids: BTreeSet<String> = std::iter::once(&header.id)
            .chain(&header.aliases)
            .cloned()
            .collect();
        let mut members = vec![i];
        // Absorb every existing group sharing an id (transitively, as groups only grow).
        let mut k = 0;
        while k < groups.len() {
            if groups[k].0.iter().any(|id| ids.contains(id)) {
                let (g_ids, g_members) = groups.swap_remove(k);
                ids.extend(g_ids);
                members.extend(g_members);
                k = 0;
            } else {
                k += 1;
            }
        }
        groups.push((ids, members));
    }
    for (ids, members) in groups {
        let keys: BTreeSet<&String> = ids
            .iter()
            .filter_map(|id| by_vendor_id.get(id))
            .flatten()
            .collect();
        let key = match keys.iter().next() {
            Some(k) if keys.len() == 1 => (*k).clone(),
            _ => {
                // The first advisory's id, in (source, id) order, is the finding's id.
                members
                    .iter()
                    .map(|&i| (&hits[i].m.advisory.source, &hits[i].m.advisory.id))
                    .min()
                    .map(|(_, id)| id.clone())
                    .unwrap_or_default()
            }
        };
        let draft = drafts.entry(key).or_insert_with(|| Draft {
            ids: BTreeSet::new(),
            hits: Vec::new(),
        });
        draft.ids.extend(ids);
        draft.hits.extend(members);
    }

    drafts
        .into_iter()
        .map(|(key, mut draft)| {
            draft.hits.sort_by(|&a, &b| {
                let (a, b) = (&hits[a].m.advisory, &hits[b].m.advisory);
                (&a.source, &a.id).cmp(&(&b.source, &b.id))
            });
            draft.hits.dedup();
            finding(package, &key, &draft, &hits)
        })
        .collect()
}

fn finding(package: &Package, key: &str, draft: &Draft, hits: &[Hit<'_>]) -> AdvisoryMatch {
    let first = &hits[draft.hits[0]];
    let query = first.query;
    let mut fixed: Option<String> = None;
    let mut state_rank = 0u8;
    let mut vendor_severity = None;
    let mut title = String::new();
    let mut severities: Vec<Severity> = Vec::new();
    let mut advisories = BTreeSet::new();
    for &i in &draft.hits {
        let hit = &hits[i];
        let header = &hit.m.advisory;
        advisories.insert(AdvisoryRef {
            source: header.source.clone(),
            id: header.id.clone(),
        });
        if let Some(f) = &hit.fixed {
            // Both versions were compared with the installed one already, so they parse.
            fixed = match fixed {
                Some(cur)
                    if compare(hit.query.scheme, f, &cur).unwrap_or(Ordering::Equal)
                        != Ordering::Less =>
                {
                    Some(cur)
                }
                _ => Some(f.clone()),
            };
        }
        state_rank = state_rank.max(match hit.m.affected.fix_state {
            Some(FixState::EndOfLife) => 3,
            Some(FixState::WontFix) => 2,
            _ => 1,
        });
        if vendor_severity.is_none() {
            vendor_severity.clone_from(&hit.m.affected.vendor_severity);
        }
        if title.is_empty() {
            title.clone_from(&header.summary);
        }
        for s in &header.severity {
            if !severities.contains(s) {
                severities.push(s.clone());
            }
        }
    }
    let fix_state = match (&fixed, state_rank) {
        (Some(_), _) => FixState::Fixed,
        (None, 3) => FixState::EndOfLife,
        (None, 2) => FixState::WontFix,
        _ => FixState::NotFixed,
    };
    let looked_up = query.name;
    let advisories: Vec<AdvisoryRef> = advisories.into_iter().collect();
    AdvisoryMatch {
        finding: Finding {
            id: key.to_owned(),
            aliases: draft.ids.iter().filter(|i| *i != key).cloned().collect(),
            package: package.name.clone(),
            installed_version: package.version.clone(),
            source_name: (looked_up != package.name).then(|| looked_up.to_owned()),
            fixed_version: fixed,
            fix_state,
            severity: bulkhead_model::Severity::Unknown,
            severity_source: "none".to_owned(),
            cvss: None,
            title,
            ecosystem: query.ecosystem.clone(),
            package_type: package.ecosystem.clone(),
            purl: package.purl.clone(),
            arch: package.arch.clone(),
            layer_digest: package.layer_digest.clone(),
            layer_diff_id: package.layer_diff_id.clone(),
            sources: advisories
                .iter()
                .map(|a| format!("{}:{}", a.source, a.id))
                .collect(),
            urls: Vec::new(),
        },
        compared_version: query.version.to_owned(),
        advisories,
        vendor_severity,
        severities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ranges: Vec<Vec<Event>>, versions: &[&str]) -> Affected {
        Affected {
            ecosystem: "PyPI".into(),
            package: "p".into(),
            ranges: ranges
                .into_iter()
                .map(|events| Range {
                    kind: RangeKind::Ecosystem,
                    repo: None,
                    events,
                })
                .collect(),
            versions: versions.iter().map(|v| (*v).to_owned()).collect(),
            fix_state: None,
            vendor_severity: None,
            module: None,
        }
    }

    fn i(v: &str) -> Event {
        Event::Introduced(v.into())
    }
    fn f(v: &str) -> Event {
        Event::Fixed(v.into())
    }
    fn la(v: &str) -> Event {
        Event::LastAffected(v.into())
    }
    fn lim(v: &str) -> Event {
        Event::Limit(v.into())
    }

    /// `None`: not affected; `Some(fix)`: affected, fixed by `fix`.
    fn eval(a: &Affected, v: &str) -> Option<Option<String>> {
        evaluate(Scheme::Pep440, a, v).expect("valid versions")
    }
    fn fixed_by(v: &str) -> Option<Option<String>> {
        Some(Some(v.to_owned()))
    }

    #[test]
    fn introduced_fixed() {
        let a = entry(vec![vec![i("0"), f("1.5")]], &[]);
        assert_eq!(eval(&a, "0.1"), fixed_by("1.5"));
        assert_eq!(eval(&a, "1.4.9"), fixed_by("1.5"));
        assert_eq!(eval(&a, "1.5"), None);
        assert_eq!(eval(&a, "2.0"), None);
        let a = entry(vec![vec![i("1.2"), f("1.5")]], &[]);
        assert_eq!(eval(&a, "1.1"), None);
        assert_eq!(eval(&a, "1.2"), fixed_by("1.5"));
    }

    #[test]
    fn events_are_sorted_before_evaluation() {
        // Feeds do not always list events in order (the spec requires sorting).
        let a = entry(vec![vec![f("2.5"), i("2.0"), f("1.0"), i("0")]], &[]);
        assert_eq!(eval(&a, "0.5"), fixed_by("1.0"));
        assert_eq!(eval(&a, "1.5"), None);
        assert_eq!(eval(&a, "2.0"), fixed_by("2.5"));
        assert_eq!(eval(&a, "2.4"), fixed_by("2.5"));
        assert_eq!(eval(&a, "3"), None);
    }

    #[test]
    fn multiple_introduced_in_one_range() {
        // Two vulnerable branches, the older one without fix until 1.4.
        let a = entry(
            vec![vec![i("0"), i("1.0"), f("1.4"), i("2.0"), f("2.1")]],
            &[],
        );
        assert_eq!(eval(&a, "0.9"), fixed_by("1.4"));
        assert_eq!(eval(&a, "1.3"), fixed_by("1.4"));
        assert_eq!(eval(&a, "1.9"), None);
        assert_eq!(eval(&a, "2.0.5"), fixed_by("2.1"));
    }

    #[test]
    fn last_affected_has_no_fix() {
        let a = entry(vec![vec![i("1.0"), la("1.3")]], &[]);
        assert_eq!(eval(&a, "0.9"), None);
        assert_eq!(eval(&a, "1.0"), Some(None));
        assert_eq!(eval(&a, "1.3"), Some(None));
        assert_eq!(eval(&a, "1.3.1"), None);
    }

    #[test]
    fn open_range_and_limit() {
        let a = entry(vec![vec![i("1.0")]], &[]);
        assert_eq!(eval(&a, "99"), Some(None));
        let a = entry(vec![vec![i("1.0"), lim("2.0")]], &[]);
        assert_eq!(eval(&a, "1.9"), Some(None));
        assert_eq!(eval(&a, "2.0"), None);
        let a = entry(vec![vec![i("0"), lim("*")]], &[]);
        assert_eq!(eval(&a, "5"), Some(None));
    }

    #[test]
    fn several_ranges_and_versions_lists() {
        let a = entry(
            vec![vec![i("0"), f("1.0")], vec![i("2.0"), f("2.2")]],
            &["1.5"],
        );
        assert_eq!(eval(&a, "0.5"), fixed_by("1.0"));
        // Listed explicitly, outside every range; PEP 440 equality (`1.5.0` == `1.5`).
        assert_eq!(eval(&a, "1.5.0"), Some(None));
        assert_eq!(eval(&a, "1.6"), None);
        assert_eq!(eval(&a, "2.1"), fixed_by("2.2"));
        // Only a versions list.
        let a = entry(vec![], &["3.0", "3.1"]);
        assert_eq!(eval(&a, "3.1"), Some(None));
        assert_eq!(eval(&a, "3.2"), None);
    }

    #[test]
    fn empty_range_and_git_ranges() {
        // introduced == fixed: nothing is affected.
        let a = entry(vec![vec![i("1.0"), f("1.0")]], &[]);
        assert_eq!(eval(&a, "1.0"), None);
        let mut a = entry(vec![vec![i("abc123"), f("def456")]], &[]);
        a.ranges[0].kind = RangeKind::Git;
        assert_eq!(eval(&a, "1.0"), None);
    }

    #[test]
    fn vendor_statement_without_ranges() {
        let mut a = entry(vec![], &[]);
        assert_eq!(eval(&a, "1.0"), None);
        a.fix_state = Some(FixState::WontFix);
        assert_eq!(eval(&a, "1.0"), Some(None));
    }

    #[test]
    fn invalid_advisory_version_is_an_error() {
        let a = entry(vec![vec![i("0"), f("not a version")]], &[]);
        assert!(evaluate(Scheme::Pep440, &a, "1.0").is_err());
    }

    #[test]
    fn modular_builds_only_match_modular_builds() {
        let entry = |fixed: &str| Affected {
            ecosystem: "AlmaLinux:9".into(),
            package: "nginx".into(),
            ranges: vec![Range {
                kind: RangeKind::Ecosystem,
                repo: None,
                events: vec![Event::Introduced("0".into()), Event::Fixed(fixed.into())],
            }],
            versions: vec![],
            fix_state: None,
            vendor_severity: None,
            module: None,
        };
        let modular = entry("1:1.24.0-4.module_el9.5.0+154+722f94fd.1.alma.1");
        let plain = entry("1:1.20.1-16.el9_4.1.alma.1");
        assert!(!same_modularity(&modular, "1:1.20.1-14.el9_2.1.alma.1"));
        assert!(same_modularity(
            &modular,
            "1:1.24.0-1.module_el9.4.0+100+abc.alma.1"
        ));
        assert!(same_modularity(&plain, "1:1.20.1-14.el9_2.1.alma.1"));
        assert!(!same_modularity(
            &plain,
            "1:1.24.0-1.module_el9.4.0+100+abc.alma.1"
        ));
        assert!(same_modularity(
            &entry("1:1.22.1-3.module+el8.8.0+1+2"),
            "1:1.22.0-1.module+el8.7.0+1+2"
        ));
    }

    #[test]
    fn modules() {
        assert!(module_applies(None, None));
        assert!(module_applies(None, Some("ruby:2.7:1:abc")));
        assert!(module_applies(
            Some("ruby:2.7"),
            Some("ruby:2.7:8030020201216:abcd")
        ));
        assert!(!module_applies(
            Some("ruby:2.7"),
            Some("ruby:3.0:8030020201216:abcd")
        ));
        assert!(!module_applies(Some("ruby:2.7"), None));
    }

    #[test]
    fn ecosystems() {
        let os = |id: &str, v: Option<&str>, c: Option<&str>| Os {
            id: id.into(),
            version_id: v.map(Into::into),
            version_codename: c.map(Into::into),
            id_like: vec![],
            pretty_name: None,
            source_file: "etc/os-release".into(),
            eol: None,
        };
        let e = |o: &Os, k| ecosystem_for(Some(o), k);
        assert_eq!(
            e(&os("debian", Some("12"), None), PackageKind::Deb).as_deref(),
            Some("Debian:12")
        );
        assert_eq!(
            e(&os("debian", None, Some("trixie")), PackageKind::Deb).as_deref(),
            Some("Debian:13")
        );
        assert_eq!(
            e(&os("debian", None, Some("nosuch")), PackageKind::Deb),
            None
        );
        assert_eq!(
            e(&os("ubuntu", Some("22.04"), None), PackageKind::Deb).as_deref(),
            Some("Ubuntu:22.04")
        );
        assert_eq!(
            e(&os("alpine", Some("3.19.1"), None), PackageKind::Apk).as_deref(),
            Some("Alpine:v3.19")
        );
        // Edge carries the next release's number with a snapshot date (a real edge
        // os-release: tests/fixtures/release/alpine-edge/os-release).
        for edge in [
            "3.21.0_alpha20240923",
            "3.18_alpha20230329",
            "3.21.0_rc1",
            "edge",
        ] {
            assert_eq!(
                e(&os("alpine", Some(edge), None), PackageKind::Apk).as_deref(),
                Some("Alpine:edge"),
                "{edge}"
            );
        }
        assert_eq!(
            e(&os("almalinux", Some("9.4"), None), PackageKind::Rpm).as_deref(),
            Some("AlmaLinux:9")
        );
        assert_eq!(
            e(&os("rocky", Some("9"), None), PackageKind::Rpm).as_deref(),
            Some("Rocky Linux:9")
        );
        assert_eq!(
            e(&os("rhel", Some("9.2"), None), PackageKind::Rpm).as_deref(),
            Some("RHEL:9")
        );
        assert_eq!(
            e(&os("alpine", Some("3.19.1"), None), PackageKind::Deb),
            None
        );
        let mint = Os {
            id_like: vec!["ubuntu".into(), "debian".into()],
            ..os("linuxmint", Some("21.3"), None)
        };
        assert_eq!(e(&mint, PackageKind::Deb), None);
        assert_eq!(
            ecosystem_for(None, PackageKind::PyPI).as_deref(),
            Some("PyPI")
        );
        assert_eq!(
            ecosystem_for(None, PackageKind::Cargo).as_deref(),
            Some("crates.io")
        );
        assert_eq!(ecosystem_for(None, PackageKind::Deb), None);
    }
}
