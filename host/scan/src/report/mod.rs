//! Reports. [`Report`] (in `bulkhead-model`) is the one machine-readable shape (stable
//! field names, `docs/report.schema.json`); `sarif` and `cyclonedx` are derived from it,
//! `table` is for people.
//!
//! Everything an analyzer produced is untrusted text; the table sanitises it so that a
//! package name cannot carry terminal escape sequences.

use std::io::Write;

pub use bulkhead_model::Report;

pub mod cyclonedx;
pub mod sarif;
pub mod table;
pub mod template;

use bulkhead_model::Severity;
pub use template::{Template, TemplateError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// For people: findings grouped by severity, recommendations, packages.
    Table,
    /// Bulkhead's own report (docs/report.schema.json).
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// CycloneDX 1.6 JSON: components and vulnerabilities.
    Cyclonedx,
    /// A Jinja template over the JSON report (`--template FILE`; report/template.rs).
    Template,
}

impl bulkhead_model::Named for Format {
    const ALL: &'static [Self] = &[
        Format::Table,
        Format::Json,
        Format::Sarif,
        Format::Cyclonedx,
        Format::Template,
    ];
    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Cyclonedx => "cyclonedx",
            Format::Template => "template",
        }
    }
}

/// How the table is drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStyle {
    /// ANSI colours for severities (on a terminal only).
    pub colour: bool,
    /// List every package, not only the vulnerable ones.
    pub all_packages: bool,
    /// One row per package and vulnerability, by severity, instead of one block per
    /// upgrade (`--expand`).
    pub expand: bool,
}

/// One line for the end of a CI log: counts by severity, how many are fixable, the
/// health, and whether the scan was complete. The table ends with it; the command line
/// prints it on stderr for the machine formats.
pub fn summary_line(report: &Report) -> String {
    let mut line = format!("{}: ", report.image.reference);
    match (&report.summary, report.health) {
        (Some(summary), Some(health)) => {
            let n = report.findings.len();
            let counts: Vec<String> = Severity::ALL
                .iter()
                .filter(|s| summary.count(**s) > 0)
                .map(|s| format!("{} {s}", summary.count(*s)))
                .collect();
            let fixable = report
                .findings
                .iter()
                .filter(|f| f.fixed_version.is_some())
                .count();
            let mut packages: Vec<&str> =
                report.findings.iter().map(|f| f.package.as_str()).collect();
            packages.sort_unstable();
            packages.dedup();
            line.push_str(&format!(
                "{n} finding{} in {} package{}",
                if n == 1 { "" } else { "s" },
                packages.len(),
                if packages.len() == 1 { "" } else { "s" },
            ));
            if !counts.is_empty() {
                line.push_str(&format!(" ({})", counts.join(", ")));
            }
            if n > 0 {
                line.push_str(&format!(", {fixable} fixable"));
            }
            if summary.suppressed > 0 {
                line.push_str(&format!(", {} suppressed", summary.suppressed));
            }
            line.push_str(&format!("; health {health}"));
            if let Some(t) = report.health_threshold {
                line.push_str(&format!(" (threshold {t})"));
            }
        }
        _ => line.push_str(&format!(
            "{} packages, not matched against advisories",
            report.packages.len()
        )),
    }
    if !report.complete {
        line.push_str("; scan INCOMPLETE");
    }
    line
}

/// Write `report` in `format`; `template` is the template of [`Format::Template`].
pub fn write(
    report: &Report,
    format: Format,
    style: TableStyle,
    template: Option<&Template>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)
        }
        Format::Table => table::write(report, style, out),
        Format::Sarif => sarif::write(report, out),
        Format::Cyclonedx => cyclonedx::write(report, out),
        Format::Template => {
            let Some(template) = template else {
                return Err(std::io::Error::other(
                    "--format template needs --template FILE (a Jinja template over the JSON report; see docs/reports.md)",
                ));
            };
            let text = template.render(report).map_err(std::io::Error::other)?;
            out.write_all(text.as_bytes())
        }
    }
}
