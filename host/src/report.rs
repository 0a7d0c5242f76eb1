//! Reports: `json` (machine-readable, stable field names) and `table` (for people).
//!
//! Everything an analyzer produced is untrusted text; the table sanitises it so that a
//! package name cannot carry terminal escape sequences.

use std::io::Write;

use serde::Serialize;

use crate::merge::InventoryPackage;
use crate::model::{Diagnostic, OsInfo};
use crate::scan::ScanResult;

/// The version of the JSON report's shape (`docs/report.schema.json`).
pub const SCHEMA_VERSION: &str = "0.1.0";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: &'a str,
    image: JsonImage<'a>,
    os: Option<&'a OsInfo>,
    complete: bool,
    analyzers: &'a [String],
    packages: Vec<JsonPackage<'a>>,
    diagnostics: &'a [Diagnostic],
    stats: JsonStats,
}

/// Where the time and bytes went: what a rescan saved shows here.
#[derive(Serialize)]
struct JsonStats {
    duration_ms: u64,
    layers: usize,
    layers_downloaded: usize,
    layers_from_cache: usize,
    compressed_bytes: u64,
    uncompressed_bytes: u64,
}

#[derive(Serialize)]
struct JsonImage<'a> {
    reference: &'a str,
    digest: Option<&'a str>,
    platform: Option<String>,
    layers: Vec<JsonLayer<'a>>,
}

#[derive(Serialize)]
struct JsonLayer<'a> {
    digest: &'a str,
    diff_id: &'a str,
    media_type: &'a str,
    size: u64,
    created_by: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonPackage<'a> {
    name: &'a str,
    version: &'a str,
    ecosystem: &'a str,
    source_name: Option<&'a str>,
    source_version: Option<&'a str>,
    arch: Option<&'a str>,
    license: Option<&'a str>,
    analyzer: &'a str,
    db_path: &'a str,
    layer_digest: Option<&'a str>,
    layer_diff_id: Option<&'a str>,
    layer_created_by: Option<&'a str>,
}

fn json_package(p: &InventoryPackage) -> JsonPackage<'_> {
    JsonPackage {
        name: &p.package.name,
        version: &p.package.version,
        ecosystem: &p.ecosystem,
        source_name: p.package.source_name.as_deref(),
        source_version: p.package.source_version.as_deref(),
        arch: p.package.arch.as_deref(),
        license: p.package.license.as_deref(),
        analyzer: &p.analyzer,
        db_path: &p.package.db_path,
        // A directory is one layer with no digest.
        layer_digest: p.layer_digest.as_deref(),
        layer_diff_id: p.layer_digest.as_ref().map(|_| p.layer.as_str()),
        layer_created_by: p.created_by.as_deref(),
    }
}

/// Write the report in `format`.
pub fn write(result: &ScanResult, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Json => {
            let report = JsonReport {
                schema_version: SCHEMA_VERSION,
                image: JsonImage {
                    reference: &result.reference,
                    digest: result
                        .image
                        .as_ref()
                        .and_then(|i| i.manifest_digest.as_deref()),
                    platform: result
                        .image
                        .as_ref()
                        .and_then(|i| i.platform.as_ref())
                        .map(|p| p.to_string()),
                    layers: result
                        .image
                        .iter()
                        .flat_map(|i| &i.layers)
                        .map(|l| JsonLayer {
                            digest: &l.digest,
                            diff_id: &l.diff_id,
                            media_type: &l.media_type,
                            size: l.size,
                            created_by: l.created_by.as_deref(),
                        })
                        .collect(),
                },
                os: result.inventory.os.as_ref(),
                complete: result.complete(),
                analyzers: &result.analyzers,
                packages: result.inventory.packages.iter().map(json_package).collect(),
                diagnostics: &result.diagnostics,
                stats: JsonStats {
                    duration_ms: result.stats.total.as_millis() as u64,
                    layers: result.stats.layers,
                    layers_downloaded: result.stats.layers_downloaded,
                    layers_from_cache: result.stats.layers_from_cache,
                    compressed_bytes: result.stats.compressed_bytes,
                    uncompressed_bytes: result.stats.uncompressed_bytes,
                },
            };
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)
        }
        Format::Table => table(result, out),
    }
}

fn table(result: &ScanResult, out: &mut dyn Write) -> std::io::Result<()> {
    let os = match &result.inventory.os {
        Some(os) => sanitize(os.pretty_name.as_deref().unwrap_or(&format!(
            "{} {}",
            os.id,
            os.version_id.as_deref().unwrap_or("")
        ))),
        None => "none detected".to_string(),
    };
    writeln!(out, "{} ({os})", sanitize(&result.reference))?;
    writeln!(out, "{} packages", result.inventory.packages.len())?;
    let rows: Vec<[String; 5]> = result
        .inventory
        .packages
        .iter()
        .map(|p| {
            [
                sanitize(&p.package.name),
                sanitize(&p.package.version),
                sanitize(p.package.arch.as_deref().unwrap_or("")),
                sanitize(p.package.source_name.as_deref().unwrap_or("")),
                sanitize(&p.ecosystem),
            ]
        })
        .collect();
    let header = ["NAME", "VERSION", "ARCH", "SOURCE", "TYPE"].map(str::to_string);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    if !rows.is_empty() {
        writeln!(out)?;
        for r in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = r
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect();
            writeln!(out, "{}", line.join("  ").trim_end())?;
        }
    }
    if !result.diagnostics.is_empty() {
        writeln!(out, "\nDiagnostics:")?;
        for d in &result.diagnostics {
            let level = match d.level {
                crate::model::Level::Info => "info",
                crate::model::Level::Warning => "warning",
                crate::model::Level::Error => "error",
            };
            writeln!(out, "  {level}[{}]: {}", d.code, sanitize(&d.message))?;
        }
    }
    if !result.complete() {
        writeln!(out, "\nThe scan is INCOMPLETE: see the errors above.")?;
    }
    Ok(())
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
