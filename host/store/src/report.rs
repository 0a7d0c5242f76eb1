//! The fields of a JSON report (docs/report.schema.json) that the store derives rows
//! from. Lenient about fields it does not read, strict about the ones it does.

use serde::Deserialize;

use crate::{Counts, Error, Health, Result, Severity};

/// Reports are the scanner's own output, but the store still bounds what it parses.
const MAX_REPORT_BYTES: usize = 256 << 20;

#[derive(Debug, Deserialize)]
pub(crate) struct Report {
    pub image: ImageInfo,
    pub os: Option<Os>,
    pub packages: Vec<Package>,
    pub findings: Vec<Finding>,
    pub summary: Option<Counts>,
    pub health: Option<Health>,
    pub recommendations: Vec<Recommendation>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ImageInfo {
    pub platform: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Os {
    pub id: String,
    pub version_id: Option<String>,
    pub name: Option<String>,
    pub eol: Option<Eol>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Eol {
    pub date: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Package {
    pub name: String,
    pub version: String,
    pub ecosystem: String,
    pub source_name: Option<String>,
    pub source_version: Option<String>,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub purl: String,
    pub layer_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Cvss {
    pub vector: String,
    pub score: f64,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub installed_version: String,
    pub fixed_version: Option<String>,
    pub fix_state: String,
    pub severity: Severity,
    pub cvss: Option<Cvss>,
    pub title: String,
    pub ecosystem: String,
    pub package_type: String,
    pub layer_digest: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Recommendation {
    pub package: String,
    pub installed_version: String,
    pub fixed_version: String,
    pub fixes: Vec<String>,
    pub severity: Severity,
}

/// Parses a report; it must carry an assessment (`health`, `summary`): the service always
/// scans with an advisory database.
pub(crate) fn parse(json: &str) -> Result<Report> {
    if json.len() > MAX_REPORT_BYTES {
        return Err(Error::Report(format!(
            "{} bytes, more than the {MAX_REPORT_BYTES} accepted",
            json.len()
        )));
    }
    let report: Report = serde_json::from_str(json).map_err(|e| Error::Report(e.to_string()))?;
    match report.health {
        Some(Health::Healthy | Health::Unhealthy) => {}
        Some(other) => {
            return Err(Error::Report(format!(
                "health {other} is not an assessment"
            )));
        }
        None => {
            return Err(Error::Report(
                "no assessment (health is null: scanned without an advisory database)".to_string(),
            ));
        }
    }
    if report.summary.is_none() {
        return Err(Error::Report("no summary".to_string()));
    }
    Ok(report)
}

/// Only the health of a stored report (the previous assessment).
pub(crate) fn stored_health(json: &str) -> Option<Health> {
    #[derive(Deserialize)]
    struct HealthOnly {
        health: Option<Health>,
    }
    serde_json::from_str::<HealthOnly>(json).ok()?.health
}
