//! CycloneDX 1.6 JSON: the image as the BOM's subject, its packages as components and the
//! findings as vulnerabilities (a "BOM with VEX" in one document).
//!
//! - `serialNumber` is a random (v4) UUID: CycloneDX asks for a unique serial per generated
//!   BOM "even if the contents of the BOM have not changed". A serial derived from the image
//!   digest would give two scans of one image, matched against different advisory data,
//!   the same identity.
//! - `metadata.component` is the image (`container`, version = manifest digest, an `oci`
//!   purl); the distribution is an `operating-system` component; every package a `library`
//!   whose `bom-ref` is its purl.
//! - One vulnerability per finding (id × package): each has its own fixed version,
//!   recommendation and, for suppressed findings, its own `analysis`.
//! - Licences: an analyzer's licence string that is a valid SPDX expression (deprecated
//!   identifiers allowed, as the SPDX spec does) becomes `expression`; anything else
//!   (`GPLv2+`, `custom`) a named licence, never a guess.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::{Value, json};

use super::Report;
use super::sarif::is_web_url;
use bulkhead_model::Package;
use bulkhead_model::{Cvss, Finding, FixState, Severity, Suppressed};

/// The URI the BOM declares as its schema.
pub const SCHEMA_URI: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

/// CycloneDX caps a version string at this many characters.
const MAX_VERSION: usize = 1024;

pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let serial = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now());
    serde_json::to_writer_pretty(&mut *out, &bom(report, &serial, &now.to_string()))?;
    writeln!(out)
}

/// The finding's package in the report: the one with the same purl (both come from
/// [`crate::purl::package`] of the same inventory package), else the same name, version
/// and type.
pub fn package_of<'r>(report: &'r Report, f: &Finding) -> Option<&'r Package> {
    report
        .packages
        .iter()
        .find(|p| !f.purl.is_empty() && p.purl == f.purl)
        .or_else(|| {
            report.packages.iter().find(|p| {
                p.name == f.package
                    && p.version == f.installed_version
                    && p.ecosystem == f.package_type
                    && (f.arch.is_none() || p.arch.is_none() || p.arch == f.arch)
            })
        })
}

/// The BOM of a report, with the serial number and timestamp given (tests pass fixed ones).
pub fn bom(report: &Report, serial: &str, timestamp: &str) -> Value {
    let image_ref = crate::purl::image(&report.image.reference, report.image.digest.as_deref())
        .unwrap_or_else(|| format!("image:{}", report.image.reference));

    // bom-refs must be unique; a package listed twice (two databases) gets a suffix.
    let mut used = BTreeSet::new();
    used.insert(image_ref.clone());
    let mut refs: Vec<String> = Vec::with_capacity(report.packages.len());
    for p in &report.packages {
        let mut r = p.purl.clone();
        let mut n = 1;
        while r.is_empty() || used.contains(&r) {
            n += 1;
            r = format!("{}#{n}", p.purl);
        }
        used.insert(r.clone());
        refs.push(r);
    }

    let mut components: Vec<Value> = Vec::new();
    let mut os_ref = None;
    if let Some(os) = &report.os {
        let r = format!("os:{}@{}", os.id, os.version_id.as_deref().unwrap_or(""));
        let mut c = json!({
            "type": "operating-system",
            "bom-ref": r,
            "name": os.id,
        });
        if let Some(v) = os.version_id.as_deref().filter(|v| v.len() <= MAX_VERSION) {
            c["version"] = json!(v);
        }
        if let Some(n) = &os.pretty_name {
            c["description"] = json!(n);
        }
        let mut props = vec![prop("bulkhead:os:source_file", &os.source_file)];
        if let Some(c) = &os.version_codename {
            props.push(prop("bulkhead:os:codename", c));
        }
        if let Some(eol) = &os.eol {
            props.push(prop("bulkhead:os:eol_date", &eol.date));
            props.push(prop("bulkhead:os:eol_reached", &eol.reached.to_string()));
        }
        c["properties"] = json!(props);
        if !used.contains(&r) {
            used.insert(r.clone());
            os_ref = Some(r);
            components.push(c);
        }
    }
    for (p, r) in report.packages.iter().zip(&refs) {
        components.push(component(p, r));
    }

    let by_purl: BTreeMap<&str, &str> = report
        .packages
        .iter()
        .zip(&refs)
        .map(|(p, r)| (p.purl.as_str(), r.as_str()))
        .rev() // the first of duplicates wins
        .collect();
    let vulnerabilities: Vec<Value> = report
        .findings
        .iter()
        .map(|f| (f, None))
        .chain(report.suppressed.iter().map(|s| (&s.finding, Some(s))))
        .enumerate()
        .map(|(i, (f, s))| {
            let target = package_of(report, f)
                .and_then(|p| by_purl.get(p.purl.as_str()).copied())
                .unwrap_or(if f.purl.is_empty() {
                    image_ref.as_str()
                } else {
                    f.purl.as_str()
                });
            vulnerability(f, s, target, i)
        })
        .collect();

    let mut subject = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": report.image.reference,
    });
    if let Some(d) = &report.image.digest {
        subject["version"] = json!(d);
    }
    if let Some(p) = crate::purl::image(&report.image.reference, report.image.digest.as_deref()) {
        subject["purl"] = json!(p);
    }
    let mut subject_props = vec![prop("bulkhead:scan:complete", &report.complete.to_string())];
    // Only when the verdict is `unknown`, like `bulkhead:scan:matched`: an empty
    // vulnerability list must not read as a clean image when part of it was not assessed.
    if report.health == Some(bulkhead_model::Health::Unknown) {
        subject_props.push(prop(
            "bulkhead:scan:health",
            bulkhead_model::Health::Unknown.as_str(),
        ));
    }
    if let Some(p) = &report.image.platform {
        subject_props.push(prop("bulkhead:image:platform", p));
    }
    for l in &report.image.layers {
        subject_props.push(prop("bulkhead:image:layer", &l.digest));
    }
    subject["properties"] = json!(subject_props);

    let mut depends: Vec<&str> = os_ref.iter().map(String::as_str).collect();
    depends.extend(refs.iter().map(String::as_str));

    let mut bom = json!({
        "$schema": SCHEMA_URI,
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "bulkhead",
                    "version": env!("CARGO_PKG_VERSION"),
                    "externalReferences": [{
                        "type": "website",
                        "url": super::sarif::INFORMATION_URI,
                    }],
                }]
            },
            "component": subject,
        },
        "components": components,
        "dependencies": [{ "ref": image_ref, "dependsOn": depends }],
        "vulnerabilities": vulnerabilities,
    });
    if report.database.is_none() {
        // Not matched: say so rather than let an empty list read as "no vulnerabilities".
        bom["metadata"]["properties"] = json!([prop("bulkhead:scan:matched", "false")]);
    }
    bom
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

fn component(p: &Package, bom_ref: &str) -> Value {
    let mut c = json!({
        "type": "library",
        "bom-ref": bom_ref,
        "name": p.name,
        "purl": p.purl,
    });
    if p.version.chars().count() <= MAX_VERSION {
        c["version"] = json!(p.version);
    }
    if let Some(l) = p
        .license
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        c["licenses"] = license(l);
    }
    let mut props = vec![
        prop("bulkhead:package:type", &p.ecosystem),
        prop("bulkhead:package:analyzer", &p.analyzer),
        prop("bulkhead:package:db_path", &p.db_path),
    ];
    let optional = [
        ("bulkhead:package:source_name", &p.source_name),
        ("bulkhead:package:source_version", &p.source_version),
        ("bulkhead:package:arch", &p.arch),
        ("bulkhead:package:layer_digest", &p.layer_digest),
        ("bulkhead:package:layer_diff_id", &p.layer_diff_id),
        ("bulkhead:package:layer_created_by", &p.layer_created_by),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            props.push(prop(name, v));
        }
    }
    c["properties"] = json!(props);
    c
}

/// An SPDX expression when the text is one, otherwise a named licence.
fn license(text: &str) -> Value {
    let mode = spdx::ParseMode {
        allow_deprecated: true,
        ..spdx::ParseMode::STRICT
    };
    if spdx::Expression::parse_mode(text, mode).is_ok() {
        json!([{ "expression": text }])
    } else {
        json!([{ "license": { "name": text } }])
    }
}

/// Who publishes an id, and the page about it when the finding links one.
fn source_of(id: &str, urls: &[String], feed: Option<&str>) -> Value {
    let name = if id.starts_with("CVE-") {
        "NVD".to_string()
    } else if id.starts_with("GHSA-") {
        "GitHub Advisory Database".to_string()
    } else {
        feed.unwrap_or("unknown").to_string()
    };
    let url = if id.starts_with("CVE-") {
        Some(format!("https://nvd.nist.gov/vuln/detail/{id}"))
    } else {
        urls.iter()
            .find(|u| u.contains(id) && is_web_url(u))
            .cloned()
    };
    match url {
        Some(u) if is_web_url(&u) => json!({ "name": name, "url": u }),
        _ => json!({ "name": name }),
    }
}

fn cdx_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        // CycloneDX has no "negligible"; "info" is its level below low.
        Severity::Negligible => "info",
        Severity::Unknown => "unknown",
    }
}

/// The CVSS severity rating scale (the same bands in v3.x and v4.0).
fn cvss_severity(score: f64) -> &'static str {
    match score {
        s if s >= 9.0 => "critical",
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        s if s > 0.0 => "low",
        _ => "none",
    }
}

fn cvss_rating(c: &Cvss) -> Value {
    let method = match c.version.as_str() {
        "2.0" | "2" => "CVSSv2",
        "3.0" | "3" => "CVSSv3",
        "3.1" => "CVSSv31",
        "4.0" | "4" => "CVSSv4",
        _ => "other",
    };
    let mut r = json!({
        "source": { "name": c.source },
        "method": method,
        "vector": c.vector,
    });
    if c.score.is_finite() {
        r["score"] = json!(c.score);
        r["severity"] = json!(cvss_severity(c.score));
    }
    r
}

fn recommendation(f: &Finding) -> String {
    match (f.fix_state, &f.fixed_version) {
        (FixState::Fixed, Some(v)) => match &f.source_name {
            Some(src) if *src != f.package => {
                format!("Upgrade {} (source package {src}) to {v}", f.package)
            }
            _ => format!("Upgrade {} to {v}", f.package),
        },
        (FixState::WontFix, _) => "The distribution will not fix this vulnerability".into(),
        (FixState::EndOfLife, _) => {
            "No fix: the distribution release is past its end of life; move to a supported release"
                .into()
        }
        (FixState::Unknown, _) => "Whether a fix exists is unknown".into(),
        _ => "No fix is available yet".into(),
    }
}

/// A suppression as an impact analysis. A VEX statement's justification (OpenVEX or
/// CycloneDX words, as the reason quotes them) maps to CycloneDX's; an ignore-file entry
/// asserts nothing about exploitability, so it only carries the reason.
fn analysis(s: &Suppressed) -> (Value, &'static str) {
    let reason = s.reason.to_ascii_lowercase();
    let detail = format!("Suppressed by {}: {}", s.suppressed_by, s.reason);
    if s.suppressed_by == ".bulkheadignore" || s.suppressed_by.ends_with("/.bulkheadignore") {
        return (json!({ "detail": detail }), "affected");
    }
    let justification = [
        ("vulnerable_code_not_present", "code_not_present"),
        ("code_not_present", "code_not_present"),
        ("vulnerable_code_not_in_execute_path", "code_not_reachable"),
        ("code_not_reachable", "code_not_reachable"),
        (
            "vulnerable_code_cannot_be_controlled_by_adversary",
            "requires_environment",
        ),
        ("component_not_present", "requires_dependency"),
        (
            "inline_mitigations_already_exist",
            "protected_by_mitigating_control",
        ),
        ("requires_configuration", "requires_configuration"),
        ("requires_dependency", "requires_dependency"),
        ("requires_environment", "requires_environment"),
        ("protected_by_compiler", "protected_by_compiler"),
        ("protected_at_runtime", "protected_at_runtime"),
        ("protected_at_perimeter", "protected_at_perimeter"),
        (
            "protected_by_mitigating_control",
            "protected_by_mitigating_control",
        ),
    ]
    .iter()
    .find(|(word, _)| reason.contains(word))
    .map(|(_, j)| *j);
    if reason.contains("fixed") || reason.contains("resolved") {
        return (
            json!({ "state": "resolved", "detail": detail }),
            "unaffected",
        );
    }
    let mut a = json!({ "state": "not_affected", "detail": detail });
    if let Some(j) = justification {
        a["justification"] = json!(j);
    }
    (a, "unaffected")
}

fn vulnerability(f: &Finding, s: Option<&Suppressed>, target: &str, index: usize) -> Value {
    let feed = f
        .sources
        .first()
        .and_then(|s| s.split_once(':'))
        .map(|(feed, _)| feed);
    let mut ratings = Vec::new();
    if let Some(c) = &f.cvss {
        ratings.push(cvss_rating(c));
    }
    // The severity we report, with what decided it (a vendor's word; no source when
    // nothing rated it and the severity is unknown).
    if f.cvss.is_none() || f.severity_source.starts_with("vendor:") {
        let mut r = json!({ "severity": cdx_severity(f.severity), "method": "other" });
        if let Some((_, who)) = f.severity_source.split_once(':')
            && !who.is_empty()
        {
            r["source"] = json!({ "name": who });
        }
        ratings.push(r);
    }
    let references: Vec<Value> = f
        .aliases
        .iter()
        .filter(|a| **a != f.id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|a| json!({ "id": a, "source": source_of(a, &f.urls, feed) }))
        .collect();
    let advisories: Vec<Value> = f
        .urls
        .iter()
        .filter(|u| is_web_url(u))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|u| json!({ "url": u }))
        .collect();
    let (analysis, status) = match s {
        Some(s) => {
            let (a, status) = analysis(s);
            (Some(a), status)
        }
        None => (None, "affected"),
    };
    let mut affected = json!({ "ref": target });
    if f.installed_version.chars().count() <= MAX_VERSION {
        affected["versions"] = json!([{ "version": f.installed_version, "status": status }]);
    }
    let mut v = json!({
        "bom-ref": format!("vuln-{}:{}:{}", index + 1, f.id, target),
        "id": f.id,
        "source": source_of(&f.id, &f.urls, feed),
        "ratings": ratings,
        "description": f.title,
        "recommendation": recommendation(f),
        "affects": [affected],
        "properties": [
            prop("bulkhead:finding:fix_state", f.fix_state.as_str()),
            prop("bulkhead:finding:severity_source", &f.severity_source),
            prop("bulkhead:finding:ecosystem", &f.ecosystem),
        ],
    });
    if !references.is_empty() {
        v["references"] = json!(references);
    }
    if !advisories.is_empty() {
        v["advisories"] = json!(advisories);
    }
    if let Some(a) = analysis {
        v["analysis"] = a;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licences_are_expressions_only_when_valid_spdx() {
        assert_eq!(license("MIT")[0]["expression"], "MIT");
        assert_eq!(
            license("MIT AND BSD-3-Clause")[0]["expression"],
            "MIT AND BSD-3-Clause"
        );
        // Deprecated but valid SPDX (Alpine writes it).
        assert_eq!(license("GPL-2.0")[0]["expression"], "GPL-2.0");
        // rpm's Fedora short names before SPDX, free text.
        assert_eq!(license("GPLv2+")[0]["license"]["name"], "GPLv2+");
        assert_eq!(license("custom")[0]["license"]["name"], "custom");
    }

    #[test]
    fn cvss_bands_follow_the_cvss_spec() {
        assert_eq!(cvss_severity(9.8), "critical");
        assert_eq!(cvss_severity(7.0), "high");
        assert_eq!(cvss_severity(6.9), "medium");
        assert_eq!(cvss_severity(0.1), "low");
        assert_eq!(cvss_severity(0.0), "none");
    }
}
