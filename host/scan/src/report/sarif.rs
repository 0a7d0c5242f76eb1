//! SARIF 2.1.0 (OASIS), shaped for GitHub code scanning
//! (`github/codeql-action/upload-sarif`).
//!
//! - One run; `tool.driver` is Bulkhead with one rule per vulnerability id. A rule carries
//!   the title, a help text with the fix of every affected package, and the property bag
//!   GitHub reads: `security-severity` (a number as a string, GitHub's 0–10 scale) and
//!   `tags`.
//! - One result per finding, suppressed ones included with a `suppressions` entry (kind
//!   `external`): SARIF consumers count and show them as suppressed instead of losing them.
//! - GitHub requires every result to have a physical location in a file. An image is not
//!   a file of the repository, so the location is the package database the package was
//!   found in (`lib/apk/db/installed`), line 1, or the image reference when unknown.
//! - `partialFingerprints` identify a result across scans and images: a hash of the
//!   vulnerability id, the package and its installed version. GitHub combines it with the
//!   rule and the location's path, so an alert stays one alert while the image is rebuilt
//!   and closes when the package is upgraded.
//! - Diagnostics (an analyzer that failed, a layer not read) become tool execution
//!   notifications of the run's invocation.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Report;
use bulkhead_model::{Finding, FixState, Level, Severity, Suppressed};

/// The URI the log declares as its schema (the OASIS errata 01 schema).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Where Bulkhead is described: the workspace's `package.repository`.
pub const INFORMATION_URI: &str = env!("CARGO_PKG_REPOSITORY");

/// The fingerprint key Bulkhead defines (a versioned name, as SARIF §3.27.17 suggests), and
/// the key GitHub reads.
const FINGERPRINT_KEY: &str = "bulkheadFinding/v1";
const GITHUB_FINGERPRINT_KEY: &str = "primaryLocationLineHash";

pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &log(report))?;
    writeln!(out)
}

/// The SARIF log of a report.
pub fn log(report: &Report) -> Value {
    // Every finding, suppressed or not, in report order (worst first).
    let all: Vec<(&Finding, Option<&Suppressed>)> = report
        .findings
        .iter()
        .map(|f| (f, None))
        .chain(report.suppressed.iter().map(|s| (&s.finding, Some(s))))
        .collect();

    // One rule per vulnerability id, in order of first appearance.
    let mut rule_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_rule: Vec<(&str, Vec<&Finding>)> = Vec::new();
    for (f, _) in &all {
        match rule_index.get(f.id.as_str()) {
            Some(&i) => by_rule[i].1.push(*f),
            None => {
                rule_index.insert(&f.id, by_rule.len());
                by_rule.push((&f.id, vec![*f]));
            }
        }
    }
    let rules: Vec<Value> = by_rule.iter().map(|(_, fs)| rule(fs)).collect();
    let results: Vec<Value> = all
        .iter()
        .map(|(f, s)| result(report, f, *s, rule_index[f.id.as_str()]))
        .collect();

    let notifications: Vec<Value> = report
        .diagnostics
        .iter()
        .map(|d| {
            json!({
                "level": match d.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                    Level::Info => "note",
                },
                "message": { "text": d.message },
                "descriptor": { "id": d.code },
            })
        })
        .collect();

    let mut run_properties = json!({
        "image": report.image.reference,
        "complete": report.complete,
        "packages": report.packages.len(),
    });
    if let Some(d) = &report.image.digest {
        run_properties["digest"] = json!(d);
    }
    if let Some(p) = &report.image.platform {
        run_properties["platform"] = json!(p);
    }
    // Only when the verdict is `unknown`: results alone would read as a clean image
    // (healthy and unhealthy follow from the results and the threshold).
    if report.health == Some(bulkhead_model::Health::Unknown) {
        run_properties["health"] = json!(bulkhead_model::Health::Unknown.as_str());
    }
    if let Some(os) = &report.os {
        run_properties["os"] = json!(match &os.version_id {
            Some(v) => format!("{} {v}", os.id),
            None => os.id.clone(),
        });
    }

    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "bulkhead",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": INFORMATION_URI,
                    "rules": rules,
                }
            },
            "invocations": [{
                // The scan ran to its end; an incomplete inventory is reported through the
                // notifications (level error) and `properties.complete`, not as a failed run.
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
            "properties": run_properties,
        }]
    })
}

/// The rule of one vulnerability id, from every finding with that id.
fn rule(findings: &[&Finding]) -> Value {
    let first = findings[0];
    let worst = findings
        .iter()
        .max_by_key(|f| f.severity)
        .copied()
        .unwrap_or(first);
    let title = one_line(&first.title);
    let tags = vec![
        "security".to_string(),
        "vulnerability".to_string(),
        worst.severity.as_str().to_string(),
    ];

    let mut help_text = format!("{}: {title}\n", first.id);
    let mut help_md = format!("**{}**: {}\n\n", md(&first.id), md(&title));
    if !first.aliases.is_empty() {
        help_text.push_str(&format!("Also known as: {}\n", first.aliases.join(", ")));
        let aliases: Vec<String> = first.aliases.iter().map(|a| md(a)).collect();
        help_md.push_str(&format!("Also known as: {}\n\n", aliases.join(", ")));
    }
    help_md.push_str("| Package | Installed version | Fixed version |\n|---|---|---|\n");
    for f in findings {
        let fix = fix_text(f);
        help_text.push_str(&format!(
            "{} {}: {fix}\n",
            one_line(&f.package),
            one_line(&f.installed_version)
        ));
        help_md.push_str(&format!(
            "| {} | {} | {} |\n",
            md(&f.package),
            md(&f.installed_version),
            md(&fix)
        ));
    }
    let links: Vec<&str> = findings
        .iter()
        .flat_map(|f| &f.urls)
        .map(String::as_str)
        .filter(|u| is_web_url(u))
        .fold(Vec::new(), |mut v, u| {
            if !v.contains(&u) {
                v.push(u);
            }
            v
        });
    if !links.is_empty() {
        help_text.push_str(&format!("References: {}\n", links.join(" ")));
        help_md.push_str("\nReferences:\n");
        for u in &links {
            help_md.push_str(&format!("- <{u}>\n"));
        }
    }

    let mut full = format!("{} ({})", title, worst.severity);
    if let Some(c) = &worst.cvss {
        full.push_str(&format!(
            ", CVSS {} {:.1} ({})",
            c.version, c.score, c.vector
        ));
    }
    let mut r = json!({
        "id": first.id,
        "shortDescription": { "text": short(&title) },
        "fullDescription": { "text": full },
        "defaultConfiguration": { "level": level(worst.severity) },
        "help": { "text": help_text, "markdown": help_md },
        "properties": {
            "security-severity": security_severity(worst),
            "tags": tags,
            "precision": "very-high",
        },
    });
    if let Some(u) = links.first() {
        r["helpUri"] = json!(u);
    }
    r
}

fn result(report: &Report, f: &Finding, s: Option<&Suppressed>, rule_index: usize) -> Value {
    let package = super::cyclonedx::package_of(report, f);
    let uri = match package {
        Some(p) if !p.db_path.is_empty() => uri_reference(&p.db_path),
        _ => uri_reference(&report.image.reference),
    };
    let who = match &f.source_name {
        Some(src) if *src != f.package => format!("{} (source package {src})", f.package),
        _ => f.package.clone(),
    };
    let message = format!(
        "Package {who} version {} is vulnerable to {} ({}); {}",
        f.installed_version,
        f.id,
        f.severity,
        fix_text(f)
    );
    let fingerprint = fingerprint(f);
    let mut properties = json!({
        "package": f.package,
        "installedVersion": f.installed_version,
        "fixState": f.fix_state.as_str(),
        "severity": f.severity.as_str(),
        "purl": f.purl,
        "image": report.image.reference,
    });
    if let Some(v) = &f.fixed_version {
        properties["fixedVersion"] = json!(v);
    }
    if let Some(d) = &f.layer_digest {
        properties["layerDigest"] = json!(d);
    }
    let mut r = json!({
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": level(f.severity),
        "message": { "text": message },
        "locations": [{
            "physicalLocation": {
                "artifactLocation": { "uri": uri },
                "region": { "startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1 },
            },
            "message": { "text": format!("{who} {} in {}", f.installed_version, report.image.reference) },
        }],
        "partialFingerprints": {
            FINGERPRINT_KEY: fingerprint,
            GITHUB_FINGERPRINT_KEY: fingerprint,
        },
        "properties": properties,
    });
    if let Some(s) = s {
        r["suppressions"] = json!([{
            "kind": "external",
            "status": "accepted",
            "justification": format!("{} ({})", s.reason, s.suppressed_by),
            "properties": { "suppressedBy": s.suppressed_by },
        }]);
    }
    r
}

/// What to do about a finding, in words.
fn fix_text(f: &Finding) -> String {
    match (f.fix_state, &f.fixed_version) {
        (FixState::Fixed, Some(v)) => format!("fixed in {v}"),
        (FixState::WontFix, _) => "the distribution will not fix it".to_string(),
        (FixState::EndOfLife, _) => "no fix: the release is past its end of life".to_string(),
        (FixState::Unknown, _) => "fix status unknown".to_string(),
        _ => "no fix yet".to_string(),
    }
}

/// Stable across images and scans: what the vulnerability is and which package version
/// has it, nothing about where or when it was seen.
fn fingerprint(f: &Finding) -> String {
    let mut h = Sha256::new();
    for part in [&f.id, &f.package_type, &f.package, &f.installed_version] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// SARIF levels as GitHub ranks them: error fails a check by default.
fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Negligible | Severity::Unknown => "note",
    }
}

/// GitHub's severity bands (critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, low > 0, none 0).
fn band(score: f64) -> u8 {
    match score {
        s if s >= 9.0 => 4,
        s if s >= 7.0 => 3,
        s if s >= 4.0 => 2,
        s if s > 0.0 => 1,
        _ => 0,
    }
}

fn severity_band(s: Severity) -> u8 {
    match s {
        Severity::Critical => 4,
        Severity::High => 3,
        Severity::Medium => 2,
        Severity::Low | Severity::Negligible => 1,
        Severity::Unknown => 0,
    }
}

/// The `security-severity` GitHub shows: the CVSS score when it falls in the band of the
/// severity we report, otherwise a score in the middle of that band. A distribution can
/// rate a vulnerability lower or higher than its CVSS score says (its severity decides ours
/// when it has one); GitHub must show the severity the other reports show, not another.
fn security_severity(f: &Finding) -> String {
    if let Some(c) = &f.cvss
        && c.score.is_finite()
        && band(c.score) == severity_band(f.severity)
    {
        return format!("{:.1}", c.score);
    }
    match f.severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "2.0",
        Severity::Negligible => "1.0",
        Severity::Unknown => "0.0",
    }
    .to_string()
}

/// Control characters (newlines included) as spaces: descriptions are one line.
fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most 1,000 characters: a short description is a title, whatever a feed put there.
fn short(s: &str) -> String {
    const MAX: usize = 1000;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Untrusted text inside Markdown: one line, every Markdown punctuation escaped, so a
/// package name or advisory title cannot add links, images or table cells.
fn md(s: &str) -> String {
    let mut out = String::new();
    for c in one_line(s).chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Only plain absolute http(s) URLs, without characters that are not allowed in a URI or
/// that would end a Markdown autolink: feed text is untrusted, and SARIF's `helpUri` and
/// CycloneDX's `url` fields must be URIs.
pub(super) fn is_web_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() <= 2000
        && u.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'<' | b'>' | b'"' | b'`' | b'\\' | b'{' | b'}' | b'|' | b'^'
                )
        })
}

/// A path or reference as an RFC 3986 URI reference: everything outside the unreserved and
/// path characters percent-encoded (a `docker-archive:` reference keeps its scheme).
fn uri_reference(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::Cvss;

    fn finding(severity: Severity, cvss: Option<f64>) -> Finding {
        Finding {
            id: "CVE-2020-1967".into(),
            aliases: vec![],
            package: "libssl1.1".into(),
            installed_version: "1.1.1d-r3".into(),
            source_name: Some("openssl".into()),
            fixed_version: Some("1.1.1g-r0".into()),
            fix_state: FixState::Fixed,
            severity,
            severity_source: "vendor:alpine".into(),
            cvss: cvss.map(|score| Cvss {
                version: "3.1".into(),
                vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H".into(),
                score,
                source: "nvd@nist.gov".into(),
            }),
            title: "Segmentation fault in SSL_check_chain".into(),
            ecosystem: "Alpine:v3.11".into(),
            package_type: "apk".into(),
            purl: "pkg:apk/alpine/libssl1.1@1.1.1d-r3".into(),
            arch: None,
            layer_digest: None,
            layer_diff_id: None,
            sources: vec![],
            urls: vec![],
        }
    }

    #[test]
    fn security_severity_agrees_with_our_severity() {
        // GitHub's bands: 7.5 is "high".
        assert_eq!(
            security_severity(&finding(Severity::High, Some(7.5))),
            "7.5"
        );
        // The vendor said medium although CVSS says high: GitHub must say medium too.
        assert_eq!(
            security_severity(&finding(Severity::Medium, Some(7.5))),
            "5.5"
        );
        assert_eq!(security_severity(&finding(Severity::Critical, None)), "9.5");
        assert_eq!(security_severity(&finding(Severity::Unknown, None)), "0.0");
    }

    #[test]
    fn fingerprints_ignore_the_image_and_follow_the_version() {
        let a = finding(Severity::High, None);
        let mut b = a.clone();
        b.layer_digest = Some("sha256:aa".into());
        b.purl = "pkg:apk/alpine/libssl1.1@1.1.1d-r3?distro=3.11.6".into();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        b.installed_version = "1.1.1d-r4".into();
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn markdown_and_uris_are_neutralised() {
        assert_eq!(md("a](javascript:x)"), "a\\]\\(javascript\\:x\\)");
        assert_eq!(md("x\ny|z"), "x y\\|z");
        assert_eq!(uri_reference("var/lib/dpkg/status"), "var/lib/dpkg/status");
        assert_eq!(uri_reference("dir:/my root#1"), "dir:/my%20root%231");
        assert!(!is_web_url("javascript:alert(1)"));
        assert!(!is_web_url("https://x/<script>"));
        assert!(is_web_url(
            "https://security.alpinelinux.org/vuln/CVE-2020-1967"
        ));
    }
}
