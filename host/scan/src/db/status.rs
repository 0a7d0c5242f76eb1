//! `bulkhead db status`: the sources in the database and how old their data is.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use bulkhead_advisories::{SourceStatus, Store};
use serde::Serialize;

/// Output format of `db status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFormat {
    Table,
    Json,
}

impl bulkhead_model::Named for StatusFormat {
    const ALL: &'static [Self] = &[StatusFormat::Table, StatusFormat::Json];
    fn name(self) -> &'static str {
        match self {
            StatusFormat::Table => "table",
            StatusFormat::Json => "json",
        }
    }
}

/// `db status --format json`, also part of `bulkhead version --format json`.
#[derive(Serialize)]
pub struct JsonStatus<'a> {
    database: &'a Path,
    sources: Vec<JsonSource>,
}

#[derive(Serialize)]
pub struct JsonSource {
    name: String,
    records: u64,
    skipped: u64,
    /// RFC 3339; absent when no record had a date.
    upstream_date: Option<String>,
    imported_at: String,
    /// Seconds from the upstream date to now.
    age_seconds: Option<i64>,
    age: Option<String>,
}

/// The message for a database that is not there yet.
pub fn missing_db(db: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no advisory database at {}: run `bulkhead db update` or `bulkhead db import`",
        db.display()
    )
}

fn sources(db: &Path) -> Result<Vec<SourceStatus>> {
    if !db.exists() {
        return Err(missing_db(db));
    }
    let store = Store::open(db).with_context(|| {
        format!(
            "cannot read the advisory database {}; rebuild it with `bulkhead db update`",
            db.display()
        )
    })?;
    Ok(store.status()?)
}

/// The status of `db` as `db status --format json` prints it.
pub fn json(db: &Path) -> Result<JsonStatus<'_>> {
    Ok(json_status(db, &sources(db)?, now_seconds()))
}

fn json_status<'a>(db: &'a Path, sources: &[SourceStatus], now: i64) -> JsonStatus<'a> {
    JsonStatus {
        database: db,
        sources: sources.iter().map(|s| json_source(s, now)).collect(),
    }
}

pub fn run(db: &Path, format: StatusFormat, out: &mut dyn Write) -> Result<()> {
    let sources = sources(db)?;
    let now = now_seconds();
    match format {
        StatusFormat::Json => {
            // Serialised first, so that a closed stdout (`| head`) surfaces as the I/O
            // error the command line treats as benign.
            let mut text = serde_json::to_string_pretty(&json_status(db, &sources, now))?;
            text.push('\n');
            out.write_all(text.as_bytes())?;
        }
        StatusFormat::Table => table(db, &sources, now, out)?,
    }
    Ok(())
}

/// Now, in seconds since the epoch (what the store's timestamps are compared with).
fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn json_source(s: &SourceStatus, now: i64) -> JsonSource {
    let age = s.upstream_date.map(|t| now - t.as_second());
    JsonSource {
        name: s.name.clone(),
        records: s.records,
        skipped: s.skipped,
        upstream_date: s.upstream_date.map(|t| t.to_string()),
        imported_at: s.imported_at.to_string(),
        age_seconds: age,
        age: age.map(human_age),
    }
}

fn table(db: &Path, sources: &[SourceStatus], now: i64, out: &mut dyn Write) -> Result<()> {
    let total: u64 = sources.iter().map(|s| s.records).sum();
    writeln!(
        out,
        "advisory database {}: {} sources, {total} records",
        db.display(),
        sources.len()
    )?;
    if sources.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 6]> = sources
        .iter()
        .map(|s| {
            [
                crate::text::sanitize(&s.name),
                s.records.to_string(),
                s.skipped.to_string(),
                s.upstream_date
                    .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into()),
                s.upstream_date
                    .map(|t| human_age(now - t.as_second()))
                    .unwrap_or_else(|| "-".into()),
                s.imported_at.strftime("%Y-%m-%d %H:%M").to_string(),
            ]
        })
        .collect();
    let header = [
        "SOURCE",
        "RECORDS",
        "SKIPPED",
        "UPSTREAM DATE (UTC)",
        "AGE",
        "IMPORTED (UTC)",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Counts are right-aligned, text left-aligned.
            let pad = w.saturating_sub(cell.chars().count());
            if i == 1 || i == 2 {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header))?;
    for row in &rows {
        writeln!(out, "{}", line(row.each_ref().map(String::as_str)))?;
    }
    Ok(())
}

/// "3 days", "5 hours", "4 months": how long ago, in the largest unit that still counts
/// at least two of it (a month is 30 days, a year 365).
pub fn human_age(seconds: i64) -> String {
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
    if seconds < 0 {
        return "in the future".into();
    }
    let (n, unit) = match seconds {
        s if s < 2 * HOUR => (s / 60, "minute"),
        s if s < 2 * DAY => (s / HOUR, "hour"),
        s if s < 60 * DAY => (s / DAY, "day"),
        s if s < 730 * DAY => (s / (30 * DAY), "month"),
        s => (s / (365 * DAY), "year"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(human_age(0), "0 minutes");
        assert_eq!(human_age(59), "0 minutes");
        assert_eq!(human_age(60), "1 minute");
        assert_eq!(human_age(7199), "119 minutes");
        assert_eq!(human_age(7200), "2 hours");
        assert_eq!(human_age(86_400 * 2 - 1), "47 hours");
        assert_eq!(human_age(86_400 * 3 + 5), "3 days");
        assert_eq!(human_age(86_400 * 59), "59 days");
        assert_eq!(human_age(86_400 * 60), "2 months");
        assert_eq!(human_age(86_400 * 729), "24 months");
        assert_eq!(human_age(86_400 * 1955), "5 years");
        assert_eq!(human_age(-5), "in the future");
    }
}
