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
}

impl bulkhead_model::Named for Format {
    const ALL: &'static [Self] = &[
        Format::Table,
        Format::Json,
        Format::Sarif,
        Format::Cyclonedx,
    ];
    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Sarif => "sarif",
            Format::Cyclonedx => "cyclonedx",
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
}

/// Write `report` in `format`.
pub fn write(
    report: &Report,
    format: Format,
    style: TableStyle,
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
    }
}
