//! The stored form of a scan: the model's [`Report`] (inventory and assessment together),
//! serialised as JSON in `images.report` with its `schema_version`. The store writes typed
//! values and reads them back typed; the rows of `findings`, `packages` and
//! `recommendations` are derived from the same value.

use bulkhead_model::{Health, Report};
use serde::Deserialize;

use crate::{Error, Result};

/// Reports are the scanner's own output, but the store still bounds what it reads back.
const MAX_REPORT_BYTES: usize = 256 << 20;

/// The major version of the report shape this store reads (`schema_version` "0.x").
const READABLE_MAJOR: &str = "0.";

/// A report to record must carry an assessment: the service always scans with an
/// advisory database. Returns its health.
pub(crate) fn assessed(report: &Report) -> Result<Health> {
    let health = report.health.ok_or_else(|| {
        Error::Report(
            "no assessment (health is null: scanned without an advisory database)".to_string(),
        )
    })?;
    if report.summary.is_none() {
        return Err(Error::Report("no summary".to_string()));
    }
    Ok(health)
}

/// The stored JSON of `report`.
pub(crate) fn encode(report: &Report) -> Result<String> {
    serde_json::to_string(report).map_err(|e| Error::Report(format!("cannot serialise: {e}")))
}

/// A stored report, read back; `what` names it in errors.
pub(crate) fn decode(json: &str, what: &str) -> Result<Report> {
    if json.len() > MAX_REPORT_BYTES {
        return Err(Error::Report(format!(
            "{what}: {} bytes, more than the {MAX_REPORT_BYTES} accepted",
            json.len()
        )));
    }
    let report: Report =
        serde_json::from_str(json).map_err(|e| Error::Report(format!("{what}: {e}")))?;
    if !report.schema_version.starts_with(READABLE_MAJOR) {
        return Err(Error::Report(format!(
            "{what}: report schema {} is not readable by this version (reads {READABLE_MAJOR}x); scan the image again",
            report.schema_version
        )));
    }
    Ok(report)
}

/// Only the health of a stored report (the previous assessment): the rest of it is not
/// needed to tell a health change.
pub(crate) fn stored_health(json: &str) -> Option<Health> {
    #[derive(Deserialize)]
    struct HealthOnly {
        health: Option<Health>,
    }
    serde_json::from_str::<HealthOnly>(json).ok()?.health
}
