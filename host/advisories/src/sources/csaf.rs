//! Red Hat CSAF 2.0: security advisories (`csaf_security_advisory`, one RHSA each, under
//! `…/csaf/v2/advisories/`) and VEX files (`csaf_vex`, one CVE each, under `…/csaf/v2/vex/`).
//! Both are one [`Advisory`] per document, id = `document.tracking.id` (`RHSA-2024:0010` or
//! `CVE-2024-10041`), aliases = the CVEs (and, for VEX, the RHSAs that fix it).
//!
//! Products: a status list names `platform:component` product ids; the product tree's
//! relationships split them, the platform's CPE gives the ecosystem and the component's
//! purl the package:
//!
//! | platform CPE | ecosystem |
//! |---|---|
//! | `cpe:/o:redhat:enterprise_linux:9::baseos` | `RHEL:9` |
//! | `cpe:/a:redhat:rhel_eus:9.2::appstream` | `RHEL:9.2+eus` (likewise `aus`, `e4s`, `tus`, `els`, `eus_long_life`) |
//! | anything else (OpenShift, middleware, …) | not imported |
//!
//! | status | [`FixState`] |
//! |---|---|
//! | `fixed` | `Fixed`, range introduced 0, fixed `[epoch:]version-release` of the binary rpm |
//! | `known_affected` + remediation `no_fix_planned` | `WontFix` |
//! | `known_affected` otherwise, `under_investigation` | `NotFixed` |
//! | `known_not_affected` | `NotAffected` (dropped for a package the document also lists as affected) |
//!
//! Fixed entries are per binary rpm (source rpms are skipped: the matcher sees binaries),
//! like AlmaLinux's. Unfixed entries name the component, which for Red Hat is the source
//! package: the matcher must look those up by the installed rpm's source name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use super::{MAX_DOCUMENT, opt_time, read_limited, shorten, walk};
use crate::error::{Error, Result};
use crate::model::{
    Advisory, Affected, Event, FixState, Range, RangeKind, Reference, Severity, SeverityKind,
};

/// Feed name given to records before the store renames them after their import.
pub const FEED: &str = "redhat-csaf";

/// Deepest product-tree nesting followed (Red Hat's is 4 deep).
const MAX_BRANCH_DEPTH: usize = 32;

/// Reads one CSAF file or every `.json` file under a directory; each file is one record.
pub fn read_path(path: &Path) -> Result<Box<dyn Iterator<Item = Result<Advisory>>>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::with_source(path, "cannot open CSAF feed", e))?;
    let files = if meta.is_dir() {
        walk(path, &[".json"])?
    } else {
        vec![path.to_path_buf()]
    };
    Ok(Box::new(files.into_iter().map(|f| read_file(&f))))
}

/// Reads one CSAF document.
pub fn read_file(path: &Path) -> Result<Advisory> {
    let bytes = read_limited(path, MAX_DOCUMENT)?;
    parse(&bytes, path)
}

#[derive(Deserialize)]
struct RawDoc {
    document: RawDocument,
    #[serde(default)]
    product_tree: RawProductTree,
    #[serde(default)]
    vulnerabilities: Vec<RawVuln>,
}

#[derive(Deserialize)]
struct RawDocument {
    category: String,
    title: Option<String>,
    tracking: RawTracking,
    aggregate_severity: Option<RawText>,
    #[serde(default)]
    references: Vec<RawReference>,
}

#[derive(Deserialize)]
struct RawTracking {
    id: String,
    initial_release_date: Option<String>,
    current_release_date: Option<String>,
}

#[derive(Deserialize)]
struct RawText {
    text: String,
}

#[derive(Deserialize)]
struct RawReference {
    category: Option<String>,
    url: String,
}

#[derive(Deserialize, Default)]
struct RawProductTree {
    #[serde(default)]
    branches: Vec<RawBranch>,
    #[serde(default)]
    relationships: Vec<RawRelationship>,
}

#[derive(Deserialize)]
struct RawBranch {
    product: Option<RawProduct>,
    #[serde(default)]
    branches: Vec<RawBranch>,
}

#[derive(Deserialize)]
struct RawProduct {
    product_id: String,
    product_identification_helper: Option<RawHelper>,
}

#[derive(Deserialize)]
struct RawHelper {
    cpe: Option<String>,
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawRelationship {
    full_product_name: RawFullName,
    product_reference: String,
    relates_to_product_reference: String,
}

#[derive(Deserialize)]
struct RawFullName {
    product_id: String,
}

#[derive(Deserialize)]
struct RawVuln {
    cve: Option<String>,
    #[serde(default)]
    notes: Vec<RawNote>,
    #[serde(default)]
    product_status: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    remediations: Vec<RawRemediation>,
    #[serde(default)]
    scores: Vec<RawScore>,
    #[serde(default)]
    threats: Vec<RawThreat>,
}

#[derive(Deserialize)]
struct RawNote {
    category: String,
    text: String,
}

#[derive(Deserialize)]
struct RawRemediation {
    category: String,
    #[serde(default)]
    product_ids: Vec<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct RawScore {
    cvss_v3: Option<RawCvss>,
    cvss_v2: Option<RawCvss>,
}

#[derive(Deserialize)]
struct RawCvss {
    #[serde(rename = "vectorString")]
    vector: String,
    #[serde(rename = "baseScore")]
    score: Option<f64>,
}

#[derive(Deserialize)]
struct RawThreat {
    category: String,
    details: String,
    #[serde(default)]
    product_ids: Vec<String>,
}

/// Parses one CSAF document; `path` is only for errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Advisory> {
    let doc: RawDoc = serde_json::from_slice(bytes)
        .map_err(|e| Error::with_source(path, "invalid CSAF JSON", e))?;
    let id = doc.document.tracking.id.clone();
    convert(doc).map_err(|m| Error::new(path, m).at(format!("document {}", shorten(&id))))
}

/// A component: an rpm name, its `[epoch:]version-release` (none for component-level
/// entries such as `red_hat_enterprise_linux_7:pam`), arch and module stream.
struct Component {
    name: String,
    evr: Option<String>,
    arch: Option<String>,
    module: Option<String>,
}

/// (ecosystem, package, module, fixed version): one affected entry per distinct key, so
/// that the arches of one binary rpm collapse into one entry.
type EntryKey = (String, String, Option<String>, Option<String>);

fn convert(doc: RawDoc) -> Result<Advisory, String> {
    let category = doc.document.category.as_str();
    if category != "csaf_vex" && category != "csaf_security_advisory" {
        return Err(format!("unsupported CSAF category {:?}", shorten(category)));
    }
    if doc.document.tracking.id.trim().is_empty() {
        return Err("empty tracking id".into());
    }

    let mut helpers: BTreeMap<&str, &RawHelper> = BTreeMap::new();
    let mut stack: Vec<(&RawBranch, usize)> =
        doc.product_tree.branches.iter().map(|b| (b, 0)).collect();
    while let Some((branch, depth)) = stack.pop() {
        if depth > MAX_BRANCH_DEPTH {
            return Err(format!("product tree deeper than {MAX_BRANCH_DEPTH}"));
        }
        if let Some(p) = &branch.product
            && let Some(h) = &p.product_identification_helper
        {
            helpers.insert(&p.product_id, h);
        }
        stack.extend(branch.branches.iter().map(|b| (b, depth + 1)));
    }
    let relationships: BTreeMap<&str, &RawRelationship> = doc
        .product_tree
        .relationships
        .iter()
        .map(|r| (r.full_product_name.product_id.as_str(), r))
        .collect();

    let mut entries: BTreeMap<EntryKey, (FixState, Option<String>)> = BTreeMap::new();
    let mut aliases: Vec<String> = Vec::new();
    let mut severity: Vec<Severity> = Vec::new();
    let mut details = String::new();
    let aggregate = doc
        .document
        .aggregate_severity
        .as_ref()
        .map(|s| s.text.clone());

    for vuln in &doc.vulnerabilities {
        if let Some(cve) = &vuln.cve
            && *cve != doc.document.tracking.id
            && !aliases.contains(cve)
        {
            aliases.push(cve.clone());
        }
        if details.is_empty()
            && let Some(n) = vuln.notes.iter().find(|n| n.category == "description")
        {
            details = n.text.clone();
        }
        for s in &vuln.scores {
            for (kind, cvss) in [
                (SeverityKind::CvssV3, &s.cvss_v3),
                (SeverityKind::CvssV2, &s.cvss_v2),
            ] {
                if let Some(c) = cvss {
                    let sev = Severity {
                        source: "Red Hat".into(),
                        kind,
                        value: c.vector.clone(),
                        score: c.score,
                    };
                    if !severity.contains(&sev) {
                        severity.push(sev);
                    }
                }
            }
        }
        // VEX files name the errata that fix them in the vendor_fix remediations' URLs.
        for r in &vuln.remediations {
            if r.category == "vendor_fix"
                && let Some(url) = &r.url
                && let Some(erratum) = url.rsplit('/').next()
                && (erratum.starts_with("RHSA-")
                    || erratum.starts_with("RHBA-")
                    || erratum.starts_with("RHEA-"))
                && erratum != doc.document.tracking.id
                && !aliases.iter().any(|a| a == erratum)
            {
                aliases.push(erratum.to_owned());
            }
        }
        let wont_fix: BTreeSet<&str> = vuln
            .remediations
            .iter()
            .filter(|r| r.category == "no_fix_planned")
            .flat_map(|r| r.product_ids.iter().map(String::as_str))
            .collect();
        let impact = |product: &str| -> Option<String> {
            let impacts = vuln.threats.iter().filter(|t| t.category == "impact");
            impacts
                .clone()
                .find(|t| t.product_ids.iter().any(|p| p == product))
                .or_else(|| impacts.clone().find(|t| t.product_ids.is_empty()))
                .map(|t| t.details.clone())
                .or_else(|| aggregate.clone())
        };

        // Statuses from `product_status`, then from remediations for products it does not
        // list: a `vendor_fix` names fixed products, `no_fix_planned` and `none_available`
        // affected ones (some trimmed VEX copies carry only the remediations).
        let mut statuses: Vec<(FixState, &str)> = Vec::new();
        for (status, ids) in &vuln.product_status {
            let state = match status.as_str() {
                "fixed" => FixState::Fixed,
                "known_affected" | "under_investigation" => FixState::NotFixed,
                "known_not_affected" => FixState::NotAffected,
                // first_affected, last_affected, recommended, …: not used by Red Hat.
                _ => continue,
            };
            statuses.extend(ids.iter().map(|id| (state, id.as_str())));
        }
        let listed: BTreeSet<&str> = statuses.iter().map(|(_, id)| *id).collect();
        for r in &vuln.remediations {
            let state = match r.category.as_str() {
                "vendor_fix" => FixState::Fixed,
                "no_fix_planned" | "none_available" => FixState::NotFixed,
                _ => continue,
            };
            statuses.extend(
                r.product_ids
                    .iter()
                    .filter(|id| !listed.contains(id.as_str()))
                    .map(|id| (state, id.as_str())),
            );
        }
        {
            for (base_state, product_id) in statuses {
                let Some(rel) = relationships.get(product_id) else {
                    continue;
                };
                let Some(ecosystem) = helpers
                    .get(rel.relates_to_product_reference.as_str())
                    .and_then(|h| h.cpe.as_deref())
                    .and_then(cpe_ecosystem)
                else {
                    continue;
                };
                let Some(component) = component(
                    &rel.product_reference,
                    helpers.get(rel.product_reference.as_str()).copied(),
                )?
                else {
                    continue;
                };
                let state = if base_state == FixState::NotFixed && wont_fix.contains(product_id) {
                    FixState::WontFix
                } else {
                    base_state
                };
                let fixed = match state {
                    FixState::Fixed => {
                        if component.arch.as_deref() == Some("src") {
                            continue;
                        }
                        match component.evr {
                            Some(v) => Some(v),
                            None => {
                                return Err(format!(
                                    "fixed product {:?} without a version",
                                    shorten(product_id)
                                ));
                            }
                        }
                    }
                    _ => None,
                };
                entries
                    .entry((ecosystem, component.name, component.module, fixed))
                    .or_insert((state, impact(product_id)));
            }
        }
    }

    // A package the document affects through one CVE is affected, whatever another CVE says.
    let affected_keys: BTreeSet<(String, String)> = entries
        .iter()
        .filter(|(_, (s, _))| *s != FixState::NotAffected)
        .map(|((e, p, _, _), _)| (e.clone(), p.clone()))
        .collect();
    let mut affected = Vec::new();
    for ((ecosystem, package, module, fixed), (state, vendor_severity)) in entries {
        if state == FixState::NotAffected
            && affected_keys.contains(&(ecosystem.clone(), package.clone()))
        {
            continue;
        }
        let ranges = match (&state, fixed) {
            (FixState::NotAffected, _) => Vec::new(),
            (_, Some(v)) => vec![Range {
                kind: RangeKind::Ecosystem,
                repo: None,
                events: vec![Event::Introduced("0".into()), Event::Fixed(v)],
            }],
            (_, None) => vec![Range {
                kind: RangeKind::Ecosystem,
                repo: None,
                events: vec![Event::Introduced("0".into())],
            }],
        };
        affected.push(Affected {
            ecosystem,
            package,
            ranges,
            versions: Vec::new(),
            fix_state: Some(state),
            vendor_severity,
            module,
        });
    }

    let d = doc.document;
    Ok(Advisory {
        id: d.tracking.id,
        aliases,
        related: Vec::new(),
        source: FEED.to_owned(),
        published: opt_time(
            "initial_release_date",
            d.tracking.initial_release_date.as_deref(),
        )?,
        modified: opt_time(
            "current_release_date",
            d.tracking.current_release_date.as_deref(),
        )?,
        withdrawn: None,
        summary: d.title.unwrap_or_default(),
        details,
        severity,
        references: d
            .references
            .into_iter()
            .map(|r| Reference {
                kind: match r.category.as_deref() {
                    Some("self") => "ADVISORY".into(),
                    _ => "WEB".into(),
                },
                url: r.url,
            })
            .collect(),
        affected,
    })
}

/// `cpe:/o:redhat:enterprise_linux:9::baseos` → `RHEL:9`; `cpe:/a:redhat:rhel_eus:9.2` →
/// `RHEL:9.2+eus`; other products → `None`.
fn cpe_ecosystem(cpe: &str) -> Option<String> {
    let mut parts = cpe.strip_prefix("cpe:/")?.split(':');
    let _part = parts.next()?;
    if parts.next()? != "redhat" {
        return None;
    }
    let product = parts.next()?;
    let version = parts.next()?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    match product {
        "enterprise_linux" => Some(format!("RHEL:{version}")),
        _ => {
            let stream = product.strip_prefix("rhel_")?;
            matches!(
                stream,
                "eus" | "aus" | "e4s" | "tus" | "els" | "eus_long_life"
            )
            .then(|| format!("RHEL:{version}+{stream}"))
        }
    }
}

/// The component a product reference names: from its purl (`pkg:rpm/redhat/pam@1.5.1-21.el9_5?arch=x86_64&epoch=1&rpmmod=…`)
/// when there is one, else from the reference itself (a bare name). `Ok(None)` for
/// non-rpm components (container images); `Err` for an rpm purl that does not parse.
fn component(reference: &str, helper: Option<&RawHelper>) -> Result<Option<Component>, String> {
    let Some(purl) = helper.and_then(|h| h.purl.as_deref()) else {
        // Without a purl only a plain name is trustworthy: splitting an NEVRA string by
        // guessing is how wrong package names get made.
        let plain = !reference.is_empty()
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-._".contains(&b))
            && !reference.contains(':');
        return Ok(plain.then(|| Component {
            name: reference.to_owned(),
            evr: None,
            arch: None,
            module: None,
        }));
    };
    let Some(rest) = purl.strip_prefix("pkg:rpm/") else {
        return Ok(None);
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (path, version) = match path.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (path, None),
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() {
        return Err(format!("purl without a name: {:?}", shorten(purl)));
    }
    let mut arch = None;
    let mut epoch = None;
    let mut module = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("arch", v)) => arch = Some(v.to_owned()),
            Some(("epoch", v)) => epoch = Some(v.to_owned()),
            // name:stream:version:context → the stream is what selects the fix.
            Some(("rpmmod", v)) => {
                module = Some(v.split(':').take(2).collect::<Vec<_>>().join(":"))
            }
            _ => {}
        }
    }
    let evr = version.map(percent_decode).map(|v| match epoch.as_deref() {
        Some(e) if e != "0" => format!("{e}:{v}"),
        _ => v.to_owned(),
    });
    Ok(Some(Component {
        name: percent_decode(name),
        evr,
        arch,
        module,
    }))
}

/// purl names are percent-encoded (`%2B` for `+` in `libstdc%2B%2B`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpes() {
        assert_eq!(
            cpe_ecosystem("cpe:/o:redhat:enterprise_linux:9::baseos").as_deref(),
            Some("RHEL:9")
        );
        assert_eq!(
            cpe_ecosystem("cpe:/a:redhat:enterprise_linux:8").as_deref(),
            Some("RHEL:8")
        );
        assert_eq!(
            cpe_ecosystem("cpe:/a:redhat:rhel_eus:9.2::appstream").as_deref(),
            Some("RHEL:9.2+eus")
        );
        assert_eq!(
            cpe_ecosystem("cpe:/o:redhat:rhel_els:6").as_deref(),
            Some("RHEL:6+els")
        );
        assert_eq!(cpe_ecosystem("cpe:/a:redhat:openshift:4.14::el9"), None);
        assert_eq!(cpe_ecosystem("cpe:/a:redhat:enterprise_linux:*"), None);
    }

    #[test]
    fn purl_decoding() {
        assert_eq!(percent_decode("libstdc%2B%2B"), "libstdc++");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
    }
}
