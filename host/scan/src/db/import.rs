//! Reading resolved inputs with the advisory crate's parsers and importing them into a
//! [`Builder`], one source at a time.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use bulkhead_advisories::sources::{MAX_DOCUMENT, MAX_RECORD, alpine, csaf, debian, nvd, osv};
use bulkhead_advisories::{Builder, Error as FeedError, ImportReport, Record};

use super::detect::{FeedFormat, Input, Shape};

/// Problems printed per source; the rest are counted.
const SHOWN_ERRORS: usize = 5;

type Records = Box<dyn Iterator<Item = Result<Record, FeedError>>>;

fn boxed<R: Into<Record> + 'static>(
    it: impl IntoIterator<Item = Result<R, FeedError>, IntoIter: 'static>,
) -> Records {
    Box::new(it.into_iter().map(|r| r.map(Into::into)))
}

/// Reads at most `limit` bytes, failing on a longer file.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FeedError> {
    let file = std::fs::File::open(path)
        .map_err(|e| FeedError::with_source(path, "cannot open feed file", e))?;
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| FeedError::with_source(path, "cannot read feed file", e))?;
    if buf.len() as u64 > limit {
        return Err(FeedError::new(
            path,
            format!("file larger than {limit} bytes"),
        ));
    }
    Ok(buf)
}

/// The records of one input. A single file is parsed as its sniffed shape (a YAML OSV
/// record saved as `.json`, a secdb document without extension), since the parsers' own
/// file readers decide by file name.
pub fn open(input: &Input, releases: &debian::Releases) -> Result<Records, FeedError> {
    let path = input.path.as_path();
    Ok(match (input.format, input.shape) {
        (FeedFormat::Osv, Shape::Dir) => boxed(osv::read_path(path)?),
        (FeedFormat::Osv, Shape::Zip) => boxed(osv::read_zip(path)?),
        (FeedFormat::Osv, shape) => {
            let bytes = read_bounded(path, MAX_RECORD)?;
            boxed(std::iter::once(osv::parse(
                &bytes,
                path,
                shape == Shape::Yaml,
            )))
        }
        (FeedFormat::Alpine, Shape::Dir) => boxed(alpine::read_path(path)?),
        (FeedFormat::Alpine, shape) => {
            let bytes = read_bounded(path, MAX_DOCUMENT)?;
            boxed(alpine::parse(&bytes, path, shape == Shape::Json)?)
        }
        (FeedFormat::DebianJson, _) => boxed(debian::read_tracker_json(path, releases)?),
        (FeedFormat::DebianList, _) => boxed(debian::read_list(path, releases)?),
        (FeedFormat::Nvd, _) => boxed(nvd::read_path(path)?),
        (FeedFormat::Csaf, _) => boxed(csaf::read_path(path)?),
    })
}

/// Why a source was not imported.
#[derive(Debug, thiserror::Error)]
pub enum SourceFailure {
    /// An input could not be opened or read as a whole.
    #[error("{0}")]
    Unreadable(FeedError),
    /// The inputs hold no records at all.
    #[error("no records in {0}")]
    Empty(String),
    /// Every record failed (the store refuses such an import), or the database failed.
    #[error("{0}")]
    Import(FeedError),
}

/// Imports the records of `inputs` (all of one source) as `source` into `builder`,
/// replacing what the source had. Inputs are opened one after the other, so that only one
/// document is in memory at a time.
pub fn import_source(
    builder: &mut Builder,
    source: &str,
    inputs: &[&Input],
    releases: &debian::Releases,
) -> Result<ImportReport, SourceFailure> {
    let failure: RefCell<Option<FeedError>> = RefCell::new(None);
    let records = inputs
        .iter()
        .flat_map(|input| {
            if failure.borrow().is_some() {
                return Box::new(std::iter::empty()) as Records;
            }
            match open(input, releases) {
                Ok(records) => records,
                Err(e) => {
                    *failure.borrow_mut() = Some(e);
                    Box::new(std::iter::empty())
                }
            }
        })
        .peekable();
    let mut records = records;
    let empty = records.peek().is_none();
    if let Some(e) = failure.borrow_mut().take() {
        return Err(SourceFailure::Unreadable(e));
    }
    if empty {
        let names: Vec<String> = inputs
            .iter()
            .map(|i| i.path.display().to_string())
            .collect();
        return Err(SourceFailure::Empty(names.join(", ")));
    }
    let report = builder
        .import(source, records)
        .map_err(SourceFailure::Import)?;
    // An input after the first that failed to open ended the records early: the source
    // would be incomplete.
    if let Some(e) = failure.borrow_mut().take() {
        return Err(SourceFailure::Unreadable(e));
    }
    Ok(report)
}

/// Prints what an import did; `rename` turns an error's text into what the user knows
/// (a download's URL instead of its temporary file).
pub fn print_report(
    out: &mut dyn Write,
    report: &ImportReport,
    rename: &dyn Fn(String) -> String,
) -> Result<()> {
    writeln!(
        out,
        "{}: {} records, {} skipped, {} affected entries dropped",
        report.source, report.records, report.skipped, report.dropped_affected
    )
    .context("cannot write output")?;
    // Versions kept but ordered by the reference tool's fallback (apk-tools) are listed
    // among the errors too.
    let problems = report.skipped + report.dropped_affected + report.fallback_versions;
    for e in report.errors.iter().take(SHOWN_ERRORS) {
        writeln!(out, "  {}", rename(crate::text::sanitize(&e.to_string())))?;
    }
    let shown = report.errors.len().min(SHOWN_ERRORS) as u64;
    if problems > shown {
        writeln!(out, "  … and {} more", problems - shown)?;
    }
    Ok(())
}
