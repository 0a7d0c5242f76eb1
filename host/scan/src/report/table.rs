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
    Ok(())
}
