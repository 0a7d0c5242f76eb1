//! The report for people: a header (image, OS, health), findings grouped by severity
//! (worst first), the recommendations, then diagnostics. Every string that came from an
//! image or a feed goes through [`sanitize`] first.

use std::io::Write;

use super::{Report, TableStyle};
use crate::text::sanitize;
use bulkhead_model::{Health, Level, Severity};

fn colour(style: TableStyle, severity: Severity, text: &str) -> String {
    if !style.colour {
        return text.to_string();
    }
    let code = match severity {
        Severity::Critical => "1;31",
        Severity::High => "31",
        Severity::Medium => "33",
        Severity::Low => "34",
        Severity::Negligible | Severity::Unknown => "2",
    };
    format!("\u{1b}[{code}m{text}\u{1b}[0m")
}

/// Left-aligned columns; the last column is not padded.
fn columns(out: &mut dyn Write, indent: &str, rows: &[Vec<String>]) -> std::io::Result<()> {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; n];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        writeln!(out, "{indent}{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

pub fn write(report: &Report, style: TableStyle, out: &mut dyn Write) -> std::io::Result<()> {
    let os = match &report.os {
        Some(os) => {
            let name = os
                .pretty_name
                .clone()
                .unwrap_or_else(|| format!("{} {}", os.id, os.version_id.as_deref().unwrap_or("")));
            sanitize(name.trim())
        }
        None => "no OS detected".to_string(),
    };
    writeln!(out, "{} ({os})", sanitize(&report.image.reference))?;
    if let Some(digest) = &report.image.digest {
        writeln!(out, "digest:   {}", sanitize(digest))?;
    }
    writeln!(out, "packages: {}", report.packages.len())?;
    if let Some(eol) = report.os.as_ref().and_then(|o| o.eol.as_ref())
        && eol.reached
    {
        writeln!(
            out,
            "{}",
            colour(
                style,
                Severity::High,
                &format!(
                    "WARNING: this release reached its end of life on {}: it gets no more security fixes; findings may be missing",
                    eol.date
                )
            )
        )?;
    }

    match (&report.summary, report.health) {
        (Some(summary), Some(health)) => {
            let counts: Vec<String> = Severity::ALL
                .iter()
                .map(|s| format!("{} {s}", summary.count(*s)))
                .collect();
            let health_word = match health {
                Health::Healthy => "HEALTHY".to_string(),
                Health::Unhealthy => colour(style, Severity::Critical, "UNHEALTHY"),
                // Not a pass: part of the image was not assessed (the diagnostics say what).
                Health::Unknown => colour(
                    style,
                    Severity::High,
                    "UNKNOWN (not fully assessed: see diagnostics)",
                ),
            };
            let threshold = report
                .health_threshold
                .map(|t| format!(" (threshold: {t})"))
                .unwrap_or_default();
            writeln!(out, "health:   {health_word}{threshold}")?;
            writeln!(
                out,
                "findings: {} ({}{})",
                report.findings.len(),
                counts.join(", "),
                if summary.suppressed > 0 {
                    format!("; {} suppressed", summary.suppressed)
                } else {
                    String::new()
                }
            )?;
        }
        _ => writeln!(
            out,
            "findings: not matched (no advisory database; run `bulkhead db update` or `bulkhead db import`)"
        )?,
    }

    if style.expand {
        findings_by_severity(report, style, out)?;
    } else {
        findings_by_upgrade(report, style, out)?;
    }

    if !report.recommendations.is_empty() {
        writeln!(out, "\nRecommendations")?;
        for r in &report.recommendations {
            let target = match &r.source_name {
                Some(src) if src != &r.package => format!(" (source {})", sanitize(src)),
                _ => String::new(),
            };
            let mut fixes = r
                .fixes
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if r.fixes.len() > 5 {
                fixes.push_str(&format!(" and {} more", r.fixes.len() - 5));
            }
            writeln!(
                out,
                "  {}: upgrade {}{target} from {} to {}: fixes {}",
                colour(style, r.severity, r.severity.as_str()),
                sanitize(&r.package),
                sanitize(&r.installed_version),
                sanitize(&r.fixed_version),
                sanitize(&fixes)
            )?;
        }
    }

    if (style.all_packages || report.summary.is_none()) && !report.packages.is_empty() {
        writeln!(out, "\nPackages")?;
        let mut rows = vec![
            ["NAME", "VERSION", "ARCH", "SOURCE", "TYPE"]
                .map(str::to_string)
                .to_vec(),
        ];
        for p in &report.packages {
            rows.push(vec![
                sanitize(&p.name),
                sanitize(&p.version),
                sanitize(p.arch.as_deref().unwrap_or("")),
                sanitize(p.source_name.as_deref().unwrap_or("")),
                sanitize(&p.ecosystem),
            ]);
        }
        columns(out, "  ", &rows)?;
    }

    if !report.suppressed.is_empty() {
        writeln!(out, "\nSuppressed ({})", report.suppressed.len())?;
        for s in &report.suppressed {
            writeln!(
                out,
                "  {} in {} ({}): {}",
                sanitize(&s.finding.id),
                sanitize(&s.finding.package),
                sanitize(&s.suppressed_by),
                sanitize(&s.reason)
            )?;
        }
    }

    if !report.diagnostics.is_empty() {
        writeln!(out, "\nDiagnostics")?;
        for d in &report.diagnostics {
            let level = match d.level {
                Level::Info => "info",
                Level::Warning => "warning",
                Level::Error => "error",
            };
            writeln!(out, "  {level}[{}]: {}", d.code, sanitize(&d.message))?;
        }
    }
    if !report.complete {
        writeln!(out, "\nThe scan is INCOMPLETE: see the errors above.")?;
    }
    // Last, so that it is the line a CI log shows when the rest scrolls away.
    writeln!(out, "\n{}", sanitize(&super::summary_line(report)))
}

/// `--expand`: one row per finding (binary package × vulnerability), grouped by severity.
fn findings_by_severity(
    report: &Report,
    style: TableStyle,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    for severity in Severity::ALL {
        let group: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        writeln!(
            out,
            "\n{} ({})",
            colour(style, severity, &severity.as_str().to_uppercase()),
            group.len()
        )?;
        let mut rows = vec![
            ["PACKAGE", "INSTALLED", "FIXED", "ID", "CVSS", "TITLE"]
                .map(str::to_string)
                .to_vec(),
        ];
        for f in group {
            let fixed = match &f.fixed_version {
                Some(v) => sanitize(v),
                None => format!("({})", f.fix_state.as_str()),
            };
            let mut title = sanitize(&f.title);
            if title.chars().count() > 60 {
                title = title.chars().take(59).collect::<String>() + "…";
            }
            rows.push(vec![
                sanitize(&f.package),
                sanitize(&f.installed_version),
                fixed,
                sanitize(&f.id),
                f.cvss
                    .as_ref()
                    .map(|c| format!("{:.1}", c.score))
                    .unwrap_or_default(),
                title,
            ]);
        }
        columns(out, "  ", &rows)?;
    }

    Ok(())
}

/// The findings that one upgrade of one (source) package removes: what a person acts on.
struct Upgrade<'a> {
    /// The source package when the advisories name one, else the package.
    target: &'a str,
    installed: &'a str,
    /// `None` when there is no fix; then `state` says why.
    fixed: Option<&'a str>,
    state: bulkhead_model::FixState,
    /// The binary packages it touches, sorted, without repeats.
    packages: Vec<&'a str>,
    /// One per vulnerability id (the worst finding of it), worst first.
    findings: Vec<&'a bulkhead_model::Finding>,
}

impl Upgrade<'_> {
    fn worst(&self) -> Severity {
        self.findings
            .first()
            .map_or(Severity::Unknown, |f| f.severity)
    }
}

/// Groups the findings by (source package, installed version, fixed version): every binary
/// package of one source is fixed by the same upgrade, so repeating the vulnerability once
/// per binary package (libssl3, libcrypto3, openssl) only hides how much one upgrade does.
fn upgrades(report: &Report) -> Vec<Upgrade<'_>> {
    // The source package of each installed package, for advisories that name binary
    // packages (Red Hat's and AlmaLinux's name nginx-core, not nginx): the upgrade is still
    // one rebuild of one source.
    let sources: std::collections::HashMap<(&str, &str), &str> = report
        .packages
        .iter()
        .filter_map(|p| {
            p.source_name
                .as_deref()
                .map(|s| ((p.name.as_str(), p.version.as_str()), s))
        })
        .collect();
    let mut groups: std::collections::BTreeMap<(&str, &str, Option<&str>, &str), Upgrade<'_>> =
        std::collections::BTreeMap::new();
    for f in &report.findings {
        let target = f.source_name.as_deref().unwrap_or_else(|| {
            sources
                .get(&(f.package.as_str(), f.installed_version.as_str()))
                .copied()
                .unwrap_or(&f.package)
        });
        let key = (
            target,
            f.installed_version.as_str(),
            f.fixed_version.as_deref(),
            f.fix_state.as_str(),
        );
        let g = groups.entry(key).or_insert_with(|| Upgrade {
            target,
            installed: &f.installed_version,
            fixed: f.fixed_version.as_deref(),
            state: f.fix_state,
            packages: Vec::new(),
            findings: Vec::new(),
        });
        g.packages.push(&f.package);
        match g.findings.iter_mut().find(|seen| seen.id == f.id) {
            Some(seen) if seen.severity < f.severity => *seen = f,
            Some(_) => {}
            None => g.findings.push(f),
        }
    }
    let mut out: Vec<Upgrade<'_>> = groups.into_values().collect();
    for g in &mut out {
        g.packages.sort_unstable();
        g.packages.dedup();
        g.findings
            .sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    }
    // Worst first; among equals the upgrade that fixes most, then fixable before not.
    out.sort_by(|a, b| {
        b.worst()
            .cmp(&a.worst())
            .then_with(|| b.findings.len().cmp(&a.findings.len()))
            .then_with(|| b.fixed.is_some().cmp(&a.fixed.is_some()))
            .then_with(|| a.target.cmp(b.target))
            .then_with(|| a.fixed.cmp(&b.fixed))
    });
    out
}

/// "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => sanitize(one),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| sanitize(s))
                .collect::<Vec<_>>()
                .join(", "),
            sanitize(last)
        ),
    }
}

/// The default: one block per upgrade ("openssl 3.0.7-r0 → 3.0.13-r0 fixes 9, in libssl3
/// and libcrypto3"), its vulnerabilities below it, worst first.
fn findings_by_upgrade(
    report: &Report,
    style: TableStyle,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let groups = upgrades(report);
    if groups.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nUpgrades (--expand lists every package and vulnerability)"
    )?;
    // One set of column widths for all blocks, so the ids line up down the page.
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| g.findings.iter())
        .map(|f| {
            let mut title = sanitize(&f.title);
            if title.chars().count() > 60 {
                title = title.chars().take(59).collect::<String>() + "…";
            }
            vec![
                sanitize(&f.id),
                f.severity.as_str().to_string(),
                f.cvss
                    .as_ref()
                    .map(|c| format!("{:.1}", c.score))
                    .unwrap_or_default(),
                title,
            ]
        })
        .collect();
    let mut widths = [0usize; 3];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut rows = rows.into_iter();
    for g in &groups {
        let n = g.findings.len();
        let what = match g.fixed {
            Some(fixed) => format!(
                "{} {} → {} fixes {n}",
                sanitize(g.target),
                sanitize(g.installed),
                sanitize(fixed)
            ),
            None => format!(
                "{} {}: {n} with no fix ({})",
                sanitize(g.target),
                sanitize(g.installed),
                g.state.as_str()
            ),
        };
        let within = if g.packages.len() == 1 && g.packages[0] == g.target {
            String::new()
        } else {
            format!(", in {}", and_list(&g.packages))
        };
        writeln!(
            out,
            "\n{} {what}{within}",
            colour(style, g.worst(), &g.worst().as_str().to_uppercase())
        )?;
        for (f, row) in g.findings.iter().zip(rows.by_ref()) {
            let severity = colour(style, f.severity, &format!("{:w$}", row[1], w = widths[1]));
            let line = format!(
                "{:w0$}  {severity}  {:>w2$}  {}",
                row[0],
                row[2],
                row[3],
                w0 = widths[0],
                w2 = widths[2],
            );
            writeln!(out, "  {}", line.trim_end())?;
        }
    }
    Ok(())
}
