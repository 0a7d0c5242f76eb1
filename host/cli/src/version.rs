//! `bulkhead version`: what a support request needs to know about this installation, in
//! one command: the engine, the analyzer contract it speaks, the analyzers a scan would
//! run (with the digests that identify their code) and the advisory database's age.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use bulkhead_scan::analyzers::Listing;
use bulkhead_scan::sandbox::{WASMTIME_VERSION, WIT_VERSIONS};

use crate::cli::ListFormat;

#[derive(Serialize)]
struct Version<'a> {
    bulkhead: &'static str,
    /// The target the binary was built for (`linux-x86_64`).
    platform: String,
    wasmtime: &'static str,
    /// The analyzer WIT package versions this host runs (docs/writing-an-analyzer.md).
    wit_versions: &'static [&'static str],
    /// The version of the JSON report (docs/report.schema.json).
    report_schema: &'static str,
    analyzers: &'a [Listing],
    /// `db status --format json`, or why there is none.
    advisory_database: serde_json::Value,
}

pub(crate) fn print(
    db: &Path,
    analyzers: &[Listing],
    format: ListFormat,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    // A missing or unreadable database is part of the answer, not a failure of the command:
    // it is what a support request most often needs to show.
    let advisory_database = match bulkhead_scan::db::status::json(db) {
        Ok(status) => serde_json::to_value(status)?,
        Err(e) => serde_json::json!({ "database": db, "error": format!("{e:#}") }),
    };
    let version = Version {
        bulkhead: env!("CARGO_PKG_VERSION"),
        platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        wasmtime: WASMTIME_VERSION,
        wit_versions: WIT_VERSIONS,
        report_schema: bulkhead_model::report::SCHEMA_VERSION,
        analyzers,
        advisory_database,
    };
    let mut text = match format {
        ListFormat::Json => serde_json::to_string_pretty(&version)?,
        ListFormat::Table => table(&version),
    };
    text.push('\n');
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn table(v: &Version<'_>) -> String {
    let mut lines = vec![
        format!("bulkhead {} ({})", v.bulkhead, v.platform),
        format!(
            "sandbox:  wasmtime {}, analyzer WIT {}",
            v.wasmtime,
            v.wit_versions.join(", ")
        ),
        format!("report:   schema {}", v.report_schema),
    ];
    for a in v.analyzers {
        lines.push(format!(
            "analyzer: {} {} ({}, wit {}, sha256 {})",
            a.name, a.version, a.origin, a.wit_version, a.sha256
        ));
    }
    let db = &v.advisory_database;
    let path = db["database"].as_str().unwrap_or("?");
    match (db["sources"].as_array(), db["error"].as_str()) {
        (Some(sources), _) => {
            let newest = sources
                .iter()
                .filter_map(|s| s["upstream_date"].as_str())
                .max()
                .unwrap_or("-");
            lines.push(format!(
                "database: {path}: {} sources, newest data {newest}",
                sources.len()
            ));
        }
        (None, Some(error)) => lines.push(format!("database: {error}")),
        (None, None) => lines.push(format!("database: {path}")),
    }
    lines.join("\n")
}
