//! Reports. [`json::Report`] is the one machine-readable shape (stable field names,
//! `docs/report.schema.json`); `sarif` and `cyclonedx` are derived from it, `table` is for
//! people.
//!
//! Everything an analyzer produced is untrusted text; the table sanitises it so that a
//! package name cannot carry terminal escape sequences.

use std::io::Write;

use crate::scan::ScanResult;

pub mod cyclonedx;
pub mod json;
pub mod sarif;
pub mod table;

pub use json::{Report, SCHEMA_VERSION};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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

/// How the table is drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStyle {
    /// ANSI colours for severities (on a terminal only).
    pub colour: bool,
    /// List every package, not only the vulnerable ones.
    pub all_packages: bool,
}

/// Write the report of `result` in `format`.
pub fn write(
    result: &ScanResult,
    format: Format,
    style: TableStyle,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let report = Report::from_result(result);
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        }
        Format::Table => table::write(&report, style, out),
        Format::Sarif => sarif::write(&report, out),
        Format::Cyclonedx => cyclonedx::write(&report, out),
    }
}

/// Replace control characters (terminal escapes, newlines) in untrusted text.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_are_neutralised() {
        assert_eq!(super::sanitize("a\u{1b}[31mb\n"), "a\u{fffd}[31mb\u{fffd}");
    }
}
